// Type-checks test/otlp-types.fixture.ts: hotmeter's structural OpenTelemetry types must
// stay assignable to @opentelemetry/sdk-metrics' (a compile error here means users'
// TypeScript would need casts to use OpenTelemetry readers with hotmeter).
import * as path from 'node:path';
import ts from 'typescript';
import { expect, it } from 'vitest';

it('hotmeter\'s OpenTelemetry bridge types are assignable to @opentelemetry/sdk-metrics\' types', () => {
  const root = path.join(__dirname, '..');
  const config = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, rootDir: root, declaration: false, sourceMap: false };
  const program = ts.createProgram([path.join(__dirname, 'otlp-types.fixture.ts')], options);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  expect(diagnostics).toEqual([]);
}, 60_000);
