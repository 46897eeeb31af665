'use strict';
// Runs `npm run build:ts` only when dist/ is missing or older than what it is built from
// (src/**/*.ts, the tsconfig files, scripts/write-esm-entry.js), so `npm run demo` and the
// bench scripts start at once when nothing changed. `--force` always builds.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** Newest mtime (ms) of the .ts files under `dir`, recursively; 0 if there are none. */
function newestTs(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** mtime (ms) of a file, or undefined when it does not exist. */
function mtime(p) {
  try {
    return fs.statSync(path.join(root, p)).mtimeMs;
  } catch {
    return undefined;
  }
}

function stale() {
  // Every build rewrites both entry points (tsc, then write-esm-entry.js): the older one
  // is when the last complete build finished.
  const outputs = ['dist/cjs/index.js', 'dist/esm/index.mjs'].map(mtime);
  if (outputs.some((t) => t === undefined)) return 'dist/ is missing';
  const built = Math.min(...outputs);
  const inputs = ['tsconfig.json', 'tsconfig.build.json', 'scripts/write-esm-entry.js'].map((p) => mtime(p) ?? 0);
  const newest = Math.max(newestTs(path.join(root, 'src')), ...inputs);
  return newest > built ? 'sources changed since the last build' : undefined;
}

const why = process.argv.includes('--force') ? '--force' : stale();
if (why === undefined) {
  console.log('dist/ is up to date; not rebuilding the TypeScript');
} else {
  console.log(`building the TypeScript (${why})`);
  const npm = process.env.npm_execpath;
  const r = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build:ts'], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build:ts'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  process.exit(r.status ?? 1);
}
