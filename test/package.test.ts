// The published package works where there is no compiler: scripts/pack-test.js packs
// it (prebuildify + tsc through the prepack/prepare lifecycle, in a staged copy, so
// this repo's build/ is untouched), checks the tarball's contents, installs it into an
// empty directory whose PATH holds only node, npm and sh, and runs an `import` and a
// `require` consumer that record and collect. Set HOTMETER_SKIP_PACK_TEST=1 to skip.
import { it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const tuple = `${process.platform}-${process.arch}`;
const skip = process.env.HOTMETER_SKIP_PACK_TEST === '1' || process.platform === 'win32';

function runPackTest(): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(root, 'scripts', 'pack-test.js')],
      { cwd: root, maxBuffer: 64 << 20, timeout: 230_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

it.skipIf(skip)(
  'npm pack -> install without a compiler -> import and require record and collect',
  async () => {
    const { code, out } = await runPackTest();
    if (code !== 0) console.log(out);
    expect(code).toBe(0);
    expect(out).toContain(`contents ok:`);
    expect(out).toMatch(new RegExp(`prebuilds: prebuilds/${tuple}/[^ ,]+\\.node`));
    expect(out).toMatch(/none of cc gcc g\+\+ c\+\+ clang clang\+\+ make gmake cmake python python3 reachable/);
    expect(out).toContain('installed with no compiler; install script ran, nothing was built');
    for (const kind of ['esm', 'cjs']) {
      expect(out).toContain(`${kind} ok: counter {/a: 5, /b: 7 -> 8}, histogram {count 3, sum 555, buckets [1,1,1]}`);
      expect(out).toMatch(new RegExp(`${kind} addon: .*/app/node_modules/hotmeter/prebuilds/${tuple}/[^/]+\\.node`));
    }
    expect(out).toContain('without prebuilds/ the compiler-less install fails loudly');
    expect(out).toContain('PACK TEST PASSED');
  },
  240_000,
);
