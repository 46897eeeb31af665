#!/usr/bin/env node
// Records and collects through the built SDK (dist/, run `npm run build:ts` first) on
// the main thread and in two worker threads, checks exact values, and prints which
// addon file node-gyp-build loaded. Meant for the debug and sanitizer builds:
//
//   npm run build:debug && node scripts/addon-smoke.js
//   npm run build:asan  && scripts/asan-node.sh scripts/addon-smoke.js
//   npm run prebuild    && node scripts/addon-smoke.js --expect-prebuild
'use strict';
const path = require('node:path');
const assert = require('node:assert/strict');
const { Worker, isMainThread, threadId } = require('node:worker_threads');

const root = path.resolve(__dirname, '..');
const { MeterProvider } = require(path.join(root, 'dist', 'cjs', 'index.js'));

async function exercise() {
  const provider = new MeterProvider();
  const meter = provider.getMeter('addon-smoke');
  const counter = meter.createCounter('requests');
  const updown = meter.createUpDownCounter('inflight');
  const hist = meter.createHistogram('latency', { advice: { explicitBucketBoundaries: [1, 10, 100] } });
  const gauge = meter.createGauge('temperature');

  const N = 20000;
  for (let i = 0; i < N; i++) {
    counter.add(1, { route: `/r${i % 50}`, method: i % 3 ? 'GET' : 'POST' });
    updown.add(i % 2 ? 1 : -1, { pool: 'main' });
    hist.record(i % 200, { route: `/r${i % 7}` });
    gauge.record(i, { sensor: 's' });
  }
  let cs = await provider.collect();
  const requests = cs.byName('requests');
  assert.equal(requests.length, 100);
  assert.equal(requests.reduce((s, r) => s + r.aggregation.sum, 0), N);
  assert.equal(cs.byName('inflight')[0].aggregation.sum, 0);
  assert.equal(cs.byName('temperature')[0].aggregation.value, N - 1);
  const h = cs.byName('latency');
  assert.equal(h.length, 7);
  assert.equal(h.reduce((s, r) => s + r.aggregation.count, 0), N);

  // Many distinct, long label sets: grows the native map and the slab arena.
  for (let i = 0; i < 5000; i++) counter.add(2, { id: `id-${i}-${'x'.repeat(i % 300)}` });
  cs = await provider.collect();
  assert.equal(cs.byName('requests').length, 5100);
  assert.equal(cs.byName('requests').reduce((s, r) => s + r.aggregation.sum, 0), N + 10000);
  for (let round = 0; round < 3; round++) {
    counter.add(1, { route: '/r0', method: 'POST' });
    cs = await provider.collect();
  }
  await provider.shutdown();
  return cs.size;
}

async function main() {
  if (!isMainThread) {
    await exercise();
    return;
  }
  // node-gyp-build as the SDK resolves it: build/Release, then build/Debug, then prebuilds/.
  const addon = require(require.resolve('node-gyp-build', { paths: [root] })).path(root);
  console.log(`addon: ${addon}`);
  // --expect-prebuild: fail unless the addon came from prebuilds/ (release CI).
  if (process.argv.includes('--expect-prebuild') && !addon.startsWith(path.join(root, 'prebuilds') + path.sep)) {
    throw new Error(`expected a prebuild from ${path.join(root, 'prebuilds')}, loaded ${addon}`);
  }
  const size = await exercise();
  await Promise.all([1, 2].map(() => new Promise((resolve, reject) => {
    const w = new Worker(__filename);
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
  })));
  console.log(`addon-smoke ok: main thread + 2 workers, ${size} records in the last collection (thread ${threadId})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
