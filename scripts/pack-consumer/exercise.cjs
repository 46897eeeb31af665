// Shared by esm.mjs and cjs.cjs (copied next to them into the scratch app by
// scripts/pack-test.js): records on a counter and a histogram, collects, and checks
// exact values. Throws (non-zero exit) on any mismatch.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const { createRequire } = require('node:module');

async function exercise(label, MeterProvider) {
  const provider = new MeterProvider();
  const meter = provider.getMeter('pack-test', '1.0.0');

  const requests = meter.createCounter('requests', { description: 'requests served', unit: '1' });
  requests.add(2, { route: '/a', method: 'GET' });
  requests.add(3, { method: 'GET', route: '/a' }); // same label set, other key order
  requests.add(7, { route: '/b', method: 'POST' });

  const latency = meter.createHistogram('latency', {
    unit: 'ms',
    advice: { explicitBucketBoundaries: [10, 100] },
  });
  latency.record(5, { route: '/a' });
  latency.record(50, { route: '/a' });
  latency.record(500, { route: '/a' });
  latency.record(0.25, { route: '/b' });

  const cs = await provider.collect();

  const sums = cs
    .byName('requests')
    .map((r) => ({ attributes: r.attributes, aggregation: r.aggregation }))
    .sort((x, y) => String(x.attributes.route).localeCompare(String(y.attributes.route)));
  // deepStrictEqual ignores key order, so attribute order does not matter here.
  assert.deepEqual(sums, [
    { attributes: { route: '/a', method: 'GET' }, aggregation: { kind: 'sum', sum: 5, monotonic: true } },
    { attributes: { route: '/b', method: 'POST' }, aggregation: { kind: 'sum', sum: 7, monotonic: true } },
  ]);

  const hist = cs
    .byName('latency')
    .sort((x, y) => String(x.attributes.route).localeCompare(String(y.attributes.route)));
  assert.equal(hist.length, 2);
  assert.deepEqual(hist[0].attributes, { route: '/a' });
  const a = hist[0].aggregation;
  assert.deepEqual(
    { ...a, boundaries: [...a.boundaries], bucketCounts: [...a.bucketCounts] },
    { kind: 'histogram', count: 3, sum: 555, min: 5, max: 500, boundaries: [10, 100], bucketCounts: [1, 1, 1] },
  );
  assert.deepEqual(hist[1].attributes, { route: '/b' });
  assert.equal(hist[1].aggregation.count, 1);
  assert.equal(hist[1].aggregation.sum, 0.25);
  assert.deepEqual([...hist[1].aggregation.bucketCounts], [1, 0, 0]);
  assert.equal(hist[0].descriptor.unit, 'ms');
  assert.equal(hist[0].scope.name, 'pack-test');

  // Cumulative: a second collection adds on top of the first.
  requests.add(1, { route: '/b', method: 'POST' });
  const cs2 = await provider.collect();
  const b2 = cs2.byName('requests').find((r) => r.attributes.route === '/b');
  assert.equal(b2.aggregation.sum, 8);

  await provider.shutdown();

  // Which addon file node-gyp-build picked, resolved from the installed package.
  const pkgJson = require.resolve('hotmeter/package.json', { paths: [process.cwd()] });
  const addon = createRequire(pkgJson)('node-gyp-build').path(path.dirname(pkgJson));
  console.log(`${label} ok: counter {/a: 5, /b: 7 -> 8}, histogram {count 3, sum 555, buckets [1,1,1]}`);
  console.log(`${label} addon: ${addon}`);
}

module.exports = { exercise };
