// Every code block of README.md runs as written, so the user's guide cannot rot.
//
// ```js / ```mjs blocks are saved as ES modules (.mjs), ```cjs blocks as CommonJS (.cjs),
// and run with node in a folder inside the repository, where `import 'hotmeter'` resolves
// to this package's own build (package self-reference through "exports"). ```ts blocks are
// type-checked against the built declarations (dist/cjs/index.d.ts, as a user's editor sees
// them, so a declaration that leaks or loses a type fails here) and then run the same way
// once transpiled. A block must end by
// itself (shut its provider down) and exit 0 within the timeout.
//
// A block that is one file of a multi-file example is preceded by the line
// `<!-- file: NAME -->`: it is saved under NAME (not run itself) next to the block after
// it, which runs with it. ```sh blocks are commands for people and are not run here.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ts from 'typescript';

const root = path.join(__dirname, '..');

interface Block {
  lang: string;
  code: string;
  line: number;
  file?: string; // a companion file of the next block
}

export function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let pendingFile: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const marker = /^<!-- file: ([\w.-]+) -->$/.exec(lines[i]);
    if (marker !== null) {
      pendingFile = marker[1];
      continue;
    }
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    blocks.push({ lang: open[1], code: lines.slice(start, end).join('\n') + '\n', line: start, file: pendingFile });
    pendingFile = undefined;
    i = end;
  }
  return blocks;
}

function run(file: string, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
      resolve({ code, out: `${stdout}\n${stderr}` });
    });
  });
}

function typeCheck(file: string): string[] {
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules/@types')],
    baseUrl: root,
    paths: { hotmeter: ['dist/cjs/index.d.ts'] },
  });
  // Only the example's and hotmeter's own declarations: third-party .d.ts are not ours to check.
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file === undefined || d.file.fileName === file || d.file.fileName.includes('/dist/'))
    .map((d) => `${d.file ? path.basename(d.file.fileName) : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}

const blocks = readmeBlocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
const runnable = blocks.filter((b) => ['js', 'mjs', 'cjs', 'ts'].includes(b.lang) && b.file === undefined);

describe('README.md code blocks', () => {
  it('has runnable examples, and every non-shell block is one of the runnable kinds', () => {
    expect(runnable.length).toBeGreaterThanOrEqual(5);
    for (const b of blocks) {
      expect(['js', 'mjs', 'cjs', 'ts', 'sh', 'text', ''], `README.md:${b.line} language "${b.lang}"`).toContain(b.lang);
    }
  });

  for (const b of runnable) {
    it(`README.md:${b.line} (${b.lang}) runs`, async () => {
      const dir = path.join(root, 'test-results', 'readme', String(b.line));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      // Companion files: the blocks marked `<!-- file: NAME -->` right before this one.
      for (let k = blocks.indexOf(b) - 1; k >= 0 && blocks[k].file !== undefined; k--) {
        fs.writeFileSync(path.join(dir, blocks[k].file as string), blocks[k].code);
      }
      let file: string;
      if (b.lang === 'ts') {
        const src = path.join(dir, 'example.ts');
        fs.writeFileSync(src, b.code);
        expect(typeCheck(src), `README.md:${b.line} type-checks`).toEqual([]);
        const js = ts.transpileModule(b.code, {
          compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
        }).outputText;
        file = path.join(dir, 'example.mjs');
        fs.writeFileSync(file, js);
      } else {
        file = path.join(dir, b.lang === 'cjs' ? 'example.cjs' : 'example.mjs');
        fs.writeFileSync(file, b.code);
      }
      const r = await run(file, dir);
      expect(r.code, `README.md:${b.line} exited ${r.code}:\n${r.out}`).toBe(0);
    }, 90_000);
  }
});
