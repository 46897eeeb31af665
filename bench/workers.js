'use strict';
// Worker-thread benchmark: hotmeter's hot path inside a worker, and the total update
// throughput of 1 and 2 workers recording into one process-wide export, against the
// message-passing alternative users have today (workers postMessage batches of
// measurements to the main thread, which records them into prom-client or
// @opentelemetry/sdk-metrics).
//
//   npm run bench:workers                 (builds the TS if it changed, then runs this file)
//   HOTMETER_BENCH_ROUNDS=5 node bench/workers.js
//   HOTMETER_BENCH_SCALE=0.2 node bench/workers.js     (shorter runs)
//   HOTMETER_BENCH_ONLY=floor,hm-fresh HOTMETER_BENCH_SKIP_HOTPATH=1 node bench/workers.js
//                                        (some configs only; results file left as it is)
//
// Method
// - Part 1 (hot path): the same loop functions run in the main thread and in one worker
//   (the main thread idle meanwhile); each case has its own function, so every call
//   site is monomorphic; median ns/op over rounds after a warm-up.
// - Part 2 (throughput): W workers (1, 2) each perform N updates after a start barrier
//   (Atomics), so worker start-up is not timed. Updates/s = W x N / wall time from the
//   barrier to the last update applied:
//     hotmeter: the worker records into an attached provider; done when every worker
//       reports done. The main thread collects every 100 ms meanwhile (a scrape).
//     message passing: the worker encodes each measurement into a batch of 1000
//       (method, route, status, value), posts it (structured clone; bound case: a
//       transferred Float64Array of values) and the main thread records every
//       measurement into prom-client or sdk-metrics. Flow control: at most 16 batches in
//       flight per worker (a SharedArrayBuffer counter), as a bounded queue would do.
//       Done when the main thread has applied the last batch.
//     floor: each worker increments a private Float64Array cell, no metrics: how far
//       this machine itself scales from 1 to 2 busy threads.
//   Each (config, workers) pair runs ROUNDS times with fresh workers; the median is
//   reported. Totals are checked exactly after every run (hotmeter: a collection;
//   prom-client: registry values; sdk-metrics: a reader collection); a mismatch prints
//   FAIL and exits 1.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker, isMainThread, workerData, parentPort } = require('node:worker_threads');

const hm = require('../dist/cjs');

const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const ROUTES = ['/api/users', '/api/orders'];
const STATUSES = [200, 201, 404, 500];
const ATTRS = { method: 'GET', route: '/api/users', status: 200 };
const BUCKETS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
const VALS = new Float64Array(1024);
{
  let s = 0x2545f491;
  for (let i = 0; i < VALS.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const u = s / 4294967296;
    VALS[i] = Math.floor(u * u * 12000);
  }
}
const BATCH = 1000;
const MAX_INFLIGHT = 16;
const DOMAIN = 'bench-workers';

function envNum(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!(v > 0)) {
    console.error(`${name} must be a positive number (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return v;
}
const SCALE = envNum('HOTMETER_BENCH_SCALE', 1);
const ROUNDS = Math.max(1, Math.round(envNum('HOTMETER_BENCH_ROUNDS', 3)));
const HOT_ROUNDS = Math.max(3, Math.round(envNum('HOTMETER_BENCH_HOT_ROUNDS', 7)));
const HOT_OPS = Math.max(10_000, Math.round(2_000_000 * SCALE));
// Comma-separated config ids (hm-fresh, prom-fresh, ...) to run only those; 'none' skips part 2.
const ONLY = (process.env.HOTMETER_BENCH_ONLY ?? '').split(',').filter(Boolean);
const SKIP_HOTPATH = process.env.HOTMETER_BENCH_SKIP_HOTPATH === '1';
const now = process.hrtime.bigint;

// ---------------------------------------------------------------------------------------
// Part 1: hot-path loops (one function per case), run in whichever thread calls them.

function hotPathCases(provider) {
  const m = provider.getMeter('bench-hotpath');
  const boundC = m.createCounter('hp_bound_counter').bind(ATTRS);
  const boundH = m.createHistogram('hp_bound_histogram', { advice: { explicitBucketBoundaries: BUCKETS } }).bind(ATTRS);
  const reused = m.createCounter('hp_reused_attrs_counter');
  const fresh = m.createCounter('hp_fresh_attrs_counter');
  const freshH = m.createHistogram('hp_fresh_attrs_histogram', { advice: { explicitBucketBoundaries: BUCKETS } });
  return [
    ['bound counter add', function boundAdd(n) {
      const h = boundC;
      const t0 = now();
      for (let i = 0; i < n; i++) h.add(1);
      return Number(now() - t0);
    }],
    ['bound histogram record', function boundRecord(n) {
      const h = boundH;
      const v = VALS;
      const t0 = now();
      for (let i = 0; i < n; i++) h.record(v[i & 1023]);
      return Number(now() - t0);
    }],
    ['counter.add(1, attrs), reused object', function reusedAdd(n) {
      const c = reused;
      const a = ATTRS;
      const t0 = now();
      for (let i = 0; i < n; i++) c.add(1, a);
      return Number(now() - t0);
    }],
    ['counter.add(1, {method, route, status}), fresh literal', function freshAdd(n) {
      const c = fresh;
      const t0 = now();
      for (let i = 0; i < n; i++) c.add(1, { method: METHODS[i & 3], route: ROUTES[(i >> 2) & 1], status: STATUSES[i & 3] });
      return Number(now() - t0);
    }],
    ['histogram.record(v, {...}), fresh literal', function freshRecord(n) {
      const h = freshH;
      const v = VALS;
      const t0 = now();
      for (let i = 0; i < n; i++) h.record(v[i & 1023], { method: METHODS[i & 3], route: ROUTES[(i >> 2) & 1], status: STATUSES[i & 3] });
      return Number(now() - t0);
    }],
  ];
}

/** Median ns/op per case, run in this thread. */
function runHotPath(provider, ops, rounds) {
  const cases = hotPathCases(provider);
  const samples = cases.map(() => []);
  for (let w = 0; w < 2; w++) for (const [, fn] of cases) fn(Math.max(1000, ops >> 1));
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < cases.length; c++) samples[c].push(cases[c][1](ops) / ops);
  }
  return cases.map(([title], c) => ({ title, ns: median(samples[c]) }));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ---------------------------------------------------------------------------------------
// Worker side.

function workerMain() {
  const d = workerData;
  if (d.role === 'hotpath') {
    const provider = hm.attachMeterProvider(DOMAIN + '-hotpath');
    parentPort.postMessage({ type: 'hotpath', results: runHotPath(provider, d.ops, d.rounds) });
    return;
  }
  const sync = new Int32Array(d.sync); // [go, inflight of worker 0, inflight of worker 1, ...]
  const slot = 1 + d.index;
  const n = d.ops;
  let run;
  let floorCell;
  if (d.role === 'floor') {
    // The machine's own scaling: a private Float64Array cell per worker, no metrics.
    floorCell = new Float64Array(1);
    const f = floorCell;
    run = function floor() {
      for (let i = 0; i < n; i++) f[0] += 1;
    };
    for (let i = 0; i < 100_000; i++) f[0] += 1;
    f[0] = 0;
  } else if (d.role === 'hm-fresh' || d.role === 'hm-bound') {
    const provider = hm.attachMeterProvider(DOMAIN);
    const c = provider.getMeter('bench').createCounter(d.role === 'hm-fresh' ? 'tp_fresh' : 'tp_bound');
    if (d.role === 'hm-fresh') {
      run = function hmFresh() {
        for (let i = 0; i < n; i++) c.add(1, { method: METHODS[i & 3], route: ROUTES[(i >> 2) & 1], status: STATUSES[i & 3] });
      };
    } else {
      const h = c.bind(ATTRS);
      run = function hmBound() {
        for (let i = 0; i < n; i++) h.add(1);
      };
    }
    // Warm the code path on a throwaway label set, so the timed run is not the JIT's.
    const warm = provider.getMeter('bench').createCounter('tp_warmup');
    for (let i = 0; i < 100_000; i++) warm.add(1, { method: METHODS[i & 3], route: ROUTES[(i >> 2) & 1], status: STATUSES[i & 3] });
    const wb = warm.bind(ATTRS);
    for (let i = 0; i < 100_000; i++) wb.add(1);
  } else {
    // Message passing: batches of BATCH measurements to the main thread.
    const post = (msg, transfer) => {
      let cur;
      while ((cur = Atomics.load(sync, slot)) >= MAX_INFLIGHT) Atomics.wait(sync, slot, cur, 50);
      Atomics.add(sync, slot, 1);
      parentPort.postMessage(msg, transfer);
    };
    if (d.role === 'mp-fresh') {
      run = function mpFresh() {
        let b = new Array(BATCH * 4);
        let k = 0;
        for (let i = 0; i < n; i++) {
          b[k++] = METHODS[i & 3];
          b[k++] = ROUTES[(i >> 2) & 1];
          b[k++] = STATUSES[i & 3];
          b[k++] = 1;
          if (k === b.length) {
            post(b);
            b = new Array(BATCH * 4);
            k = 0;
          }
        }
        if (k > 0) post(b.slice(0, k));
      };
    } else {
      run = function mpBound() {
        let b = new Float64Array(BATCH);
        let k = 0;
        for (let i = 0; i < n; i++) {
          b[k++] = 1;
          if (k === BATCH) {
            post(b, [b.buffer]);
            b = new Float64Array(BATCH);
            k = 0;
          }
        }
        if (k > 0) post(b.slice(0, k));
      };
    }
  }
  parentPort.postMessage({ type: 'ready' });
  Atomics.wait(sync, 0, 0); // the start barrier
  const t0 = now();
  run();
  parentPort.postMessage({ type: 'done', ns: Number(now() - t0), floor: floorCell ? floorCell[0] : undefined });
}

// ---------------------------------------------------------------------------------------
// Main side.

function startWorkers(role, count, ops, sync, onBatch) {
  const ws = [];
  for (let index = 0; index < count; index++) {
    const w = new Worker(__filename, { workerData: { role, index, ops, sync: sync.buffer } });
    const state = { w, ready: null, done: null };
    state.ready = new Promise((resolve, reject) => {
      w.on('error', reject);
      state.done = new Promise((res2) => {
        w.on('message', (m) => {
          if (m && m.type === 'ready') resolve();
          else if (m && m.type === 'done') res2(m);
          else onBatch(m, index);
        });
      });
    });
    ws.push(state);
  }
  return ws;
}

/** The message-passing receivers: apply each batch to the library in the main thread. */
function makeReceiver(lib, bound) {
  if (lib === 'prom') {
    const prom = require('prom-client');
    const registry = new prom.Registry();
    const c = new prom.Counter({ name: 'tp_total', help: 'tp', labelNames: ['method', 'route', 'status'], registers: [registry] });
    const child = c.labels(ATTRS);
    return {
      apply: bound
        ? (b) => {
            for (let k = 0; k < b.length; k++) child.inc(b[k]);
          }
        : (b) => {
            for (let k = 0; k < b.length; k += 4) c.inc({ method: b[k], route: b[k + 1], status: b[k + 2] }, b[k + 3]);
          },
      total: async () => {
        const m = await registry.getSingleMetric('tp_total').get();
        return m.values.reduce((a, v) => a + v.value, 0);
      },
    };
  }
  const otel = require('@opentelemetry/sdk-metrics');
  class Reader extends otel.MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const reader = new Reader();
  const provider = new otel.MeterProvider({ readers: [reader] });
  const c = provider.getMeter('bench').createCounter('tp');
  return {
    apply: bound
      ? (b) => {
          for (let k = 0; k < b.length; k++) c.add(b[k], ATTRS);
        }
      : (b) => {
          for (let k = 0; k < b.length; k += 4) c.add(b[k + 3], { method: b[k], route: b[k + 1], status: b[k + 2] });
        },
    total: async () => {
      const { resourceMetrics } = await reader.collect();
      let t = 0;
      for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) for (const p of m.dataPoints) t += p.value;
      return t;
    },
  };
}

async function throughputRun(config, workers, ops) {
  const sync = new Int32Array(new SharedArrayBuffer(4 * (1 + workers)));
  const hmRun = config.kind === 'hotmeter';
  const floorRun = config.kind === 'floor';
  let applied = 0;
  let receiver;
  let allApplied;
  let resolveApplied;
  if (!hmRun && !floorRun) {
    receiver = makeReceiver(config.lib, config.bound);
    allApplied = new Promise((r) => (resolveApplied = r));
  }
  const onBatch = (b, index) => {
    receiver.apply(b);
    applied += config.bound ? b.length : b.length / 4;
    Atomics.sub(sync, 1 + index, 1);
    Atomics.notify(sync, 1 + index);
    if (applied === workers * ops) resolveApplied();
  };
  const role = floorRun ? 'floor' : (hmRun ? 'hm-' : 'mp-') + (config.bound ? 'bound' : 'fresh');
  const ws = startWorkers(role, workers, ops, sync, onBatch);
  await Promise.all(ws.map((s) => s.ready));
  // hotmeter: the main thread scrapes every 100 ms meanwhile.
  const provider = hmRun ? new hm.MeterProvider({ domain: DOMAIN }) : null;
  const name = config.bound ? 'tp_bound' : 'tp_fresh';
  const before = hmRun ? sumNamed(await provider.collect(), name) : 0;
  let scrapes = 0;
  const scrape = hmRun
    ? setInterval(() => {
        provider.collect().then(() => scrapes++);
      }, 100)
    : null;
  const t0 = now();
  Atomics.store(sync, 0, 1);
  Atomics.notify(sync, 0);
  if (hmRun || floorRun) await Promise.all(ws.map((s) => s.done));
  else await allApplied;
  const ns = Number(now() - t0);
  if (scrape) clearInterval(scrape);
  await Promise.all(ws.map((s) => s.done));
  let total;
  if (floorRun) {
    total = (await Promise.all(ws.map((s) => s.done))).reduce((a, m) => a + m.floor, 0);
  } else if (hmRun) {
    total = sumNamed(await provider.collect(), name) - before;
  } else {
    total = await receiver.total();
  }
  await Promise.all(ws.map((s) => s.w.terminate()));
  if (total !== workers * ops) {
    console.error(`FAIL ${config.id} x${workers}: total ${total}, expected ${workers * ops}`);
    process.exit(1);
  }
  return { ns, rate: (workers * ops) / (ns / 1e9), scrapes };
}

function sumNamed(cs, name) {
  let t = 0;
  for (const r of cs) if (r.descriptor.name === name) t += r.aggregation.sum;
  return t;
}

const CONFIGS = [
  { id: 'floor', kind: 'floor', bound: true, title: 'floor: f64[0] += 1 in each worker (no metrics)', ops: 200_000_000 },
  { id: 'hm-fresh', kind: 'hotmeter', bound: false, title: 'hotmeter counter.add(1, {3 attrs}) in workers', ops: 20_000_000 },
  { id: 'prom-fresh', kind: 'mp', lib: 'prom', bound: false, title: 'postMessage batches -> prom-client inc({3 labels}) in main', ops: 1_000_000 },
  { id: 'otel-fresh', kind: 'mp', lib: 'otel', bound: false, title: 'postMessage batches -> sdk-metrics add(v, {3 attrs}) in main', ops: 500_000 },
  { id: 'hm-bound', kind: 'hotmeter', bound: true, title: 'hotmeter bound add in workers', ops: 200_000_000 },
  { id: 'prom-bound', kind: 'mp', lib: 'prom', bound: true, title: 'postMessage batches -> prom-client child.inc(v) in main', ops: 4_000_000 },
  { id: 'otel-bound', kind: 'mp', lib: 'otel', bound: true, title: 'postMessage batches -> sdk-metrics add(v, attrs) in main', ops: 1_000_000 },
];

function fmtRate(r) {
  return r >= 1e6 ? `${(r / 1e6).toFixed(r >= 1e8 ? 0 : 1)} M/s` : `${(r / 1e3).toFixed(0)} k/s`;
}

async function main() {
  const results = { hotpath: null, throughput: [] };
  const loadBefore = os.loadavg()[0];
  console.log(`hotmeter worker benchmark: node ${process.version}, ${os.cpus().length} cpus (${os.cpus()[0].model.trim()}), ` +
    `load average ${loadBefore.toFixed(2)} (other processes skew multi-thread figures: see the floor row)`);

  // Part 1.
  if (!SKIP_HOTPATH) {
    console.log(`\n1. Hot path, ns/op (median of ${HOT_ROUNDS} rounds x ${HOT_OPS} ops)`);
  const mainHot = runHotPath(new hm.MeterProvider({ domain: DOMAIN + '-hotpath' }), HOT_OPS, HOT_ROUNDS);
  const w = new Worker(__filename, { workerData: { role: 'hotpath', ops: HOT_OPS, rounds: HOT_ROUNDS } });
  const workerHot = await new Promise((resolve, reject) => {
    w.on('message', (m) => m.type === 'hotpath' && resolve(m.results));
    w.on('error', reject);
  });
  await w.terminate();
  const hotRows = mainHot.map((r, i) => ({ case: r.title, mainNs: r.ns, workerNs: workerHot[i].ns }));
  results.hotpath = hotRows;
  printTable(
    ['case', 'main thread', 'worker', 'worker / main'],
    hotRows.map((r) => [r.case, r.mainNs.toFixed(1), r.workerNs.toFixed(1), (r.workerNs / r.mainNs).toFixed(2)]),
  );
  }

  // Part 2.
  console.log(`\n2. Throughput: total updates/s into one export (median of ${ROUNDS} runs; batches of ${BATCH}, <= ${MAX_INFLIGHT} in flight per worker)`);
  const rows = [];
  for (const workers of [1, 2]) {
    for (const config of CONFIGS) {
      if (ONLY.length > 0 && !ONLY.includes(config.id)) continue;
      const ops = Math.max(BATCH, Math.round(config.ops * SCALE / BATCH) * BATCH);
      const runs = [];
      for (let r = 0; r < ROUNDS; r++) runs.push(await throughputRun(config, workers, ops));
      const rate = median(runs.map((x) => x.rate));
      const row = { config: config.id, title: config.title, workers, opsPerWorker: ops, updatesPerSecond: rate, runs: runs.map((x) => x.rate) };
      results.throughput.push(row);
      rows.push(row);
      process.stdout.write(`  ${config.id} x${workers}: ${fmtRate(rate)}\n`);
    }
  }
  const ref = (id, workers) => results.throughput.find((x) => x.config === id && x.workers === workers)?.updatesPerSecond ?? NaN;
  const ratio = (a, b) => (Number.isFinite(a / b) ? `${(a / b).toFixed(1)}x` : '-');
  console.log('');
  printTable(
    ['workers', 'case', 'updates/s', 'vs prom-client msg', 'vs sdk-metrics msg'],
    rows.map((r) => {
      const fam = r.config.endsWith('bound') || r.config === 'floor' ? 'bound' : 'fresh';
      return [
        String(r.workers),
        r.title,
        fmtRate(r.updatesPerSecond),
        ratio(r.updatesPerSecond, ref(`prom-${fam}`, r.workers)),
        ratio(r.updatesPerSecond, ref(`otel-${fam}`, r.workers)),
      ];
    }),
  );
  const scaling = (id) => ref(id, 2) / ref(id, 1); // NaN when a config was not run
  console.log(`\n2 workers / 1 worker: floor ${scaling('floor').toFixed(2)}x, hotmeter fresh ${scaling('hm-fresh').toFixed(2)}x, bound ${scaling('hm-bound').toFixed(2)}x; ` +
    `prom-client msg ${scaling('prom-fresh').toFixed(2)}x; sdk-metrics msg ${scaling('otel-fresh').toFixed(2)}x`);

  if (ONLY.length > 0 || SKIP_HOTPATH) return; // partial runs do not replace the results file
  const out = path.join(__dirname, 'results', 'workers.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({
    benchmark: 'hotmeter worker threads',
    date: new Date().toISOString(),
    environment: {
      node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0].model.trim(), platform: `${os.platform()} ${os.arch()}`,
      loadAverage1m: { before: loadBefore, after: os.loadavg()[0] },
    },
    config: { scale: SCALE, rounds: ROUNDS, hotRounds: HOT_ROUNDS, hotOps: HOT_OPS, batch: BATCH, maxInflight: MAX_INFLIGHT },
    ...results,
  }, null, 2) + '\n');
  console.log(`\nresults: ${path.relative(process.cwd(), out)}`);
}

function printTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i === 0 || i === 1 && head.length === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w, i) => (i === 0 || (i === 1 && head.length === 5) ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  workerMain();
}
