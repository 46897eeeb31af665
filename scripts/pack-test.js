#!/usr/bin/env node
// Packs hotmeter with `npm pack` and installs the tarball where no compiler exists.
//
//   node scripts/pack-test.js [--tarball FILE] [--no-negative] [--keep]
//
// 1. Stages a copy of the working tree in a temp dir (node_modules symlinked, no
//    build/, dist/ or prebuilds/) and runs `npm pack` there, so the prepack/prepare
//    lifecycle (prebuildify + tsc) never touches the repo's own build/ directory.
//    With --tarball FILE, tests that tarball instead (e.g. a release candidate).
// 2. Checks the tarball's file list: dist/, prebuilds/<platform>-<arch>/*.node, the
//    native sources named in binding.gyp, binding.gyp, CMakeLists.txt, package.json;
//    and no node_modules/, build/, test/, bench/, native/test/.
// 3. Makes a bin directory holding only node, npm and sh, checks that no compiler,
//    make, cmake or python is reachable through it, and with PATH set to it alone
//    installs the tarball and @opentelemetry/api into an empty directory.
// 4. Runs scripts/pack-consumer/esm.mjs (import) and cjs.cjs (require) there: they
//    record, collect, and check exact values, and print which addon file was loaded,
//    which must be the prebuild.
// 5. Unless --no-negative: removes prebuilds/ from the tarball and checks that the
//    same compiler-less install fails loudly instead of installing a broken package,
//    with hotmeter's explanation (platform, libc, what to install).
//
// POSIX only (Linux, macOS). Exits non-zero on any failure; the temp dir is kept on
// failure (and with --keep) and its path printed.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const opt = {
  keep: args.includes('--keep'),
  negative: !args.includes('--no-negative'),
  tarball: args.includes('--tarball') ? path.resolve(args[args.indexOf('--tarball') + 1] || '') : null,
};
const FORBIDDEN_TOOLS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'gmake', 'cmake', 'python', 'python3'];
const TUPLE = `${process.platform}-${process.arch}`;

const started = Date.now();
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotmeter-pack-')));
let failed = true;

function log(msg) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[pack-test ${s}s] ${msg}`);
}

function fail(msg) {
  throw new Error(msg);
}

// The environment of the npm we are maybe running under (npm test -> vitest -> us)
// must not leak into the npm processes we start: npm_config_local_prefix alone would
// make them operate on the repo instead of the temp dir.
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// Only what an npm install needs: no CC/CXX, no PATH beyond `bin`.
function restrictedEnv(bin) {
  const env = { PATH: bin, HOME: os.homedir(), TMPDIR: os.tmpdir(), LANG: 'C' };
  for (const k of ['USER', 'LOGNAME', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
    'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return env;
}

function run(cmd, argv, { cwd, env, allowFail = false, quiet = false } = {}) {
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.error) fail(`${cmd} ${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !allowFail) {
    console.log(out);
    fail(`${cmd} ${argv.join(' ')} (in ${cwd}) exited with ${r.status} after ${secs}s`);
  }
  if (!quiet) log(`${cmd} ${argv.join(' ')}: exit ${r.status} in ${secs}s`);
  return { status: r.status, out, stdout: r.stdout || '' };
}

function which(name, pathVar) {
  for (const dir of (pathVar || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

// ---- 1. pack ---------------------------------------------------------------------

function stageAndPack() {
  const stage = path.join(tmp, 'stage');
  const skip = new Set(['node_modules', 'build', 'dist', 'prebuilds', '.git', '.vitest-cache']);
  fs.mkdirSync(stage);
  for (const name of fs.readdirSync(ROOT)) {
    if (skip.has(name) || /^build-/.test(name) || /\.tgz$/.test(name)) continue;
    fs.cpSync(path.join(ROOT, name), path.join(stage, name), { recursive: true });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
  log(`staged ${ROOT} -> ${stage}; npm pack (prepack: prebuildify, prepare: tsc)...`);
  const r = run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: stage, env: cleanEnv() });
  const json = r.stdout.slice(r.stdout.indexOf('\n[') + 1 || r.stdout.indexOf('['));
  let info;
  try {
    info = JSON.parse(json)[0];
  } catch {
    console.log(r.out);
    fail('could not parse `npm pack --json` output');
  }
  return { tarball: path.join(tmp, info.filename), files: info.files.map((f) => f.path), size: info.size };
}

function listTarball(tarball) {
  const r = run('tar', ['-tzf', tarball], { quiet: true });
  return r.stdout.split('\n').filter((l) => l && !l.endsWith('/')).map((l) => l.replace(/^package\//, ''));
}

// ---- 2. contents -----------------------------------------------------------------

function gypSources() {
  // binding.gyp is a Python literal; ours is also valid JSON once comments are gone.
  const text = fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
  const gyp = JSON.parse(text);
  return gyp.targets.flatMap((t) => t.sources || []);
}

function checkContents(files) {
  const set = new Set(files);
  const problems = [];
  const need = ['package.json', 'binding.gyp', 'CMakeLists.txt', 'dist/cjs/index.js', 'dist/cjs/index.d.ts',
    'dist/esm/index.mjs', ...gypSources()];
  if (fs.existsSync(path.join(ROOT, 'README.md'))) need.push('README.md');
  for (const f of need) if (!set.has(f)) problems.push(`missing ${f}`);
  // Every header and source under native/ (but native/test/) ships, for source builds.
  const walk = (dir) => fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(`${dir}/${d.name}`) : [`${dir}/${d.name}`]);
  for (const f of walk('native')) {
    if (!f.startsWith('native/test/') && /\.(cc|cpp|c|h|hpp)$/.test(f) && !set.has(f)) problems.push(`missing ${f}`);
  }
  const prebuilds = files.filter((f) => f.startsWith(`prebuilds/${TUPLE}/`) && f.endsWith('.node'));
  if (prebuilds.length === 0) problems.push(`no prebuilds/${TUPLE}/*.node`);
  for (const f of files) {
    if (/^(node_modules|build|test|bench|native\/test|\.git)\//.test(f) || /\.tgz$/.test(f)) {
      problems.push(`should not ship ${f}`);
    }
  }
  if (problems.length) fail(`tarball contents:\n  ${problems.join('\n  ')}`);
  log(`contents ok: ${files.length} files; prebuilds: ${files.filter((f) => f.startsWith('prebuilds/')).join(', ')}`);
  return prebuilds;
}

// ---- 3. compiler-less install ----------------------------------------------------

function makeBin() {
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  const npm = which('npm', process.env.PATH);
  const sh = which('sh', process.env.PATH) || '/bin/sh';
  if (!npm) fail('npm not found on PATH');
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(fs.realpathSync(npm), path.join(bin, 'npm'));
  fs.symlinkSync(sh, path.join(bin, 'sh'));
  const env = restrictedEnv(bin);
  for (const tool of FORBIDDEN_TOOLS) {
    if (which(tool, env.PATH)) fail(`${tool} is reachable through the restricted PATH`);
    const r = spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env, encoding: 'utf8' });
    if (r.status === 0) fail(`${tool} is reachable through the restricted PATH: ${r.stdout.trim()}`);
  }
  log(`restricted PATH=${bin} (node, npm, sh); none of ${FORBIDDEN_TOOLS.join(' ')} reachable`);
  return env;
}

function installInto(dir, tarball, env, allowFail) {
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'),
    JSON.stringify({ name: path.basename(dir), version: '0.0.0', private: true }, null, 2));
  return run('npm', ['install', tarball, '@opentelemetry/api', '--prefer-offline', '--no-audit', '--no-fund',
    '--foreground-scripts', '--loglevel=warn'], { cwd: dir, env, allowFail });
}

// ---- main ------------------------------------------------------------------------

function main() {
  log(`temp dir ${tmp}; node ${process.version}, ${TUPLE}`);
  let tarball;
  let files;
  if (opt.tarball) {
    tarball = opt.tarball;
    files = listTarball(tarball);
  } else {
    const p = stageAndPack();
    tarball = p.tarball;
    files = listTarball(tarball);
    const fromNpm = [...p.files].sort().join('\n');
    if (fromNpm !== [...files].sort().join('\n')) fail('npm pack --json and tar -t disagree on the file list');
    log(`packed ${path.basename(tarball)} (${p.size} bytes)`);
  }
  console.log(files.map((f) => `  ${f}`).join('\n'));
  checkContents(files);

  const env = makeBin();
  const app = path.join(tmp, 'app');
  const inst = installInto(app, tarball, env, false);
  if (!/> node-gyp-build/.test(inst.out)) fail(`the install script did not run:\n${inst.out}`);
  const installed = path.join(app, 'node_modules', 'hotmeter');
  if (fs.existsSync(path.join(installed, 'build'))) fail('the install compiled something (node_modules/hotmeter/build exists)');
  log('installed with no compiler; install script ran, nothing was built');

  for (const f of fs.readdirSync(path.join(ROOT, 'scripts', 'pack-consumer'))) {
    fs.copyFileSync(path.join(ROOT, 'scripts', 'pack-consumer', f), path.join(app, f));
  }
  for (const prog of ['esm.mjs', 'cjs.cjs']) {
    const r = run(process.execPath, [prog], { cwd: app, env });
    console.log(r.out.trimEnd().replace(/^/gm, '  '));
    const m = /addon: (.*)/.exec(r.out);
    if (!m || !m[1].startsWith(path.join(installed, 'prebuilds', TUPLE) + path.sep)) {
      fail(`${prog} did not load the prebuild: ${m ? m[1] : '(no addon line)'}`);
    }
  }

  if (opt.negative) {
    const x = path.join(tmp, 'noprebuilds');
    fs.mkdirSync(x);
    run('tar', ['-xzf', tarball, '-C', x], { quiet: true });
    fs.rmSync(path.join(x, 'package', 'prebuilds'), { recursive: true, force: true });
    const bare = path.join(tmp, 'hotmeter-noprebuilds.tgz');
    run('tar', ['-czf', bare, '-C', x, 'package'], { quiet: true });
    const r = installInto(path.join(tmp, 'app-noprebuilds'), bare, env, true);
    const lines = r.out.trim().split('\n');
    const at = lines.findIndex((l) => l.startsWith('hotmeter: no usable native addon'));
    const tail = [...lines.filter((l) => /ERR|error/.test(l)).slice(0, 4), ...(at >= 0 ? lines.slice(at, at + 6) : [])]
      .map((l) => `  ${l}`).join('\n');
    if (r.status === 0) fail(`install without prebuilds and without a compiler succeeded:\n${r.out}`);
    if (!/gyp|node-gyp|No native build/i.test(r.out)) fail(`install failed, but not in the native build:\n${r.out}`);
    // The install script's fallback (src/sdk/native-help.ts) says what this is and what to install.
    const help = new RegExp(`hotmeter: no usable native addon for ${TUPLE}\\b[^\\n]*Node\\.js ${process.version.replace(/\./g, '\\.')}`);
    if (!help.test(r.out) || !/npm rebuild hotmeter/.test(r.out)) fail(`install failed without hotmeter's explanation:\n${r.out}`);
    log(`without prebuilds/ the compiler-less install fails loudly (exit ${r.status}):\n${tail}`);
  }

  failed = false;
  log('PACK TEST PASSED');
}

try {
  main();
} catch (err) {
  console.error(`[pack-test] FAILED: ${err.message}`);
} finally {
  if (failed || opt.keep) {
    console.error(`[pack-test] temp dir kept: ${tmp}`);
  } else {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}
