#!/usr/bin/env node
// npm's prepack: makes sure the package gets a fresh prebuild.
//
// - If `npm run prebuild:linux` made the portable Linux prebuilds
//   (prebuilds/linux-{x64,arm64}/hotmeter.glibc.node) after the last change to
//   binding.gyp or native/, ships them as they are: `npm run prebuild:linux && npm pack`
//   packs both, and no machine-specific build is added next to them.
// - If they exist but are older than the sources, stops: they would be shipped stale
//   (node-gyp-build prefers the libc-tagged file over an untagged one).
// - Otherwise runs `npm run prebuild` (prebuildify for this machine only), as before.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const portable = ['linux-x64', 'linux-arm64'].map((t) => path.join(root, 'prebuilds', t, 'hotmeter.glibc.node'));

function newestSource() {
  let newest = fs.statSync(path.join(root, 'binding.gyp')).mtimeMs;
  const walk = (dir) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) {
        if (p !== path.join(root, 'native', 'test')) walk(p);
      } else {
        newest = Math.max(newest, fs.statSync(p).mtimeMs);
      }
    }
  };
  walk(path.join(root, 'native'));
  return newest;
}

const present = portable.filter((f) => fs.existsSync(f));
if (present.length > 0) {
  const src = newestSource();
  const stale = present.filter((f) => fs.statSync(f).mtimeMs < src);
  if (present.length === portable.length && stale.length === 0) {
    console.log(`prepack: shipping the Linux prebuilds of npm run prebuild:linux: ${present.map((f) => path.relative(root, f)).join(', ')}`);
    process.exit(0);
  }
  const why = stale.length ? `older than binding.gyp or native/: ${stale.map((f) => path.relative(root, f)).join(', ')}`
    : `incomplete: only ${present.map((f) => path.relative(root, f)).join(', ')}`;
  console.error(`prepack: the Linux prebuilds are ${why}.\n` +
    '  Run `npm run prebuild:linux` again (or remove prebuilds/) before packing.');
  process.exit(1);
}
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const r = spawnSync(npm, ['run', 'prebuild'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(r.status ?? 1);
