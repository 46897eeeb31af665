'use strict';
// Soak: record at full rate for a while, collecting every 100 ms, and watch memory.
//
//   npm run bench:soak -- --seconds 60          (builds the TS if it changed, then runs this file)
//   node bench/soak.js --seconds 600 --churn 2000 --threshold 1
//
// One process, one thread. The recording loop runs in ~5 ms bursts (setImmediate
// between them, so timers run), mixing every kind of call an instrumented service makes:
//   steady    counter.add(1, {method, route, status}) on 24 label sets (fresh literals),
//             histogram.record(v, {method, route}), gauge.record, up-down add/sub
//   bound     bound counter add and bound histogram record (handles held for the run)
//   churn     --churn new label sets per second, each used for 1/churn s then abandoned
//             (request ids, URLs with parameters): created, exported, reclaimed;
//             bind() + unbind() on churned sets, and 1 in 10 bound handles dropped
//             without unbind() (the FinalizationRegistry gives their references back)
// A PullController collects every --collect-ms (default 100) and, once a second, the
// collection is rendered as Prometheus text. Every second one line: elapsed, RSS, V8 heap
// used and committed, external + array buffers, the native arena's bytes, live native
// records, series in the last collection, measurements per second, the slowest
// collection. Every 5th sample is taken right after a full GC (marked).
//
// V8 flags: unless --no-relaunch, the script re-runs itself with --expose-gc and the
// young generation fixed at 16 MB semi-spaces (V8's own maximum, which it grows to in
// steps under this allocation rate: steps of RSS that are V8 sizing itself).
//
// Verdict, after --warmup seconds (default: a quarter of the run, at most 15 s), on the
// samples taken after a full GC (retained memory, not the allocation sawtooth): the
// least-squares slopes of RSS, heap and native arena. PASS if RSS grows less than
// --threshold MB per minute (default 1), the arena less than 0.25 MB/min and the live
// records stay bounded. The raw RSS slope over every sample is printed too. The steady
// and bound series are then checked for exact totals (nothing lost under load).
// Exit status 1 on FAIL or on a mismatch. --json FILE writes the samples.
//
// Options: --seconds N (60), --warmup S, --collect-ms MS (100), --churn N (1000 new label
// sets per second), --forget-every N (10: 1 in N churned bound handles is never unbound;
// 0: none), --threshold MB (1), --json FILE, --no-relaunch.
const fs = require('node:fs');
const path = require('node:path');

// V8's young generation grows in steps (semi-spaces of 1 MB up to 16 MB) under a high
// allocation rate, which shows in RSS as steps of up to ~45 MB over the first minutes:
// V8 sizing itself, not memory held. Unless told --no-relaunch, the soak runs itself
// with the semi-space fixed at that maximum (V8's own steady state here) and with gc
// exposed, so a minute shows the steady state.
const V8_FLAGS = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'];
if (!process.argv.includes('--no-relaunch') && !process.execArgv.includes('--expose-gc')) {
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(process.execPath, [...V8_FLAGS, __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const hm = require('../dist/cjs');
const { native } = require('../dist/cjs/sdk/native');

// ---------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`--${name} needs a non-negative number`);
    process.exit(2);
  }
  return v;
}
const SECONDS = opt('seconds', 60);
const WARMUP = opt('warmup', Math.min(15, Math.max(2, SECONDS / 4)));
const COLLECT_MS = opt('collect-ms', 100);
const CHURN = opt('churn', 1000); // new label sets per second
const THRESHOLD = opt('threshold', 1); // MB of RSS per minute after warm-up
const FORGET_EVERY = opt('forget-every', 10); // 1 in N churned bound handles is never unbound (0: none)
const jsonIdx = argv.indexOf('--json');
const JSON_FILE = jsonIdx >= 0 ? argv[jsonIdx + 1] : undefined;
if (WARMUP >= SECONDS) {
  console.error('--warmup must be shorter than --seconds');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// The instrumented "service"

const pull = new hm.PullController();
const provider = new hm.MeterProvider({ readers: [pull], resource: { attributes: { 'service.name': 'soak' } } });
const meter = provider.getMeter('soak');
const requests = meter.createCounter('soak.requests');
const latency = meter.createHistogram('soak.latency', { unit: 'ms', advice: { explicitBucketBoundaries: [1, 2, 5, 10, 25, 50, 100, 250] } });
const inflight = meter.createUpDownCounter('soak.inflight');
const temperature = meter.createGauge('soak.temperature');
const churned = meter.createCounter('soak.churned');
const sessions = meter.createCounter('soak.sessions');
const boundOk = requests.bind({ method: 'GET', route: '/health', status: 200 });
const boundLatency = latency.bind({ method: 'GET', route: '/health' });
meter.createObservableGauge('soak.rss', { unit: 'By' }).addCallback((r) => r.observe(process.memoryUsage.rss()));

const METHODS = ['GET', 'POST', 'PUT'];
const ROUTES = ['/api/users', '/api/orders', '/api/items', '/'];
const STATUSES = [200, 404];
const want = { steady: 0, steadyLatencyCount: 0, steadyLatencySum: 0, bound: 0, boundLatency: 0 };

let ops = 0;
let i = 0;
let churnBase = 0;
let running = true;
const started = Date.now();

function burst() {
  if (!running) return;
  const end = performance.now() + 5;
  // Churn: the label set id advances with time, CHURN per second.
  const churnId = Math.floor(((Date.now() - started) * CHURN) / 1000);
  do {
    for (let k = 0; k < 256; k++, i++) {
      const method = METHODS[i % 3];
      const route = ROUTES[(i >> 2) & 3];
      requests.add(1, { method, route, status: STATUSES[(i >> 4) & 1] });
      const v = i & 127;
      latency.record(v, { method, route });
      inflight.add(1, { route });
      inflight.add(-1, { route });
      boundOk.add(1);
      boundLatency.record(v);
      if ((i & 15) === 0) temperature.record(v, { room: ROUTES[i & 3] });
      want.steady++;
      want.steadyLatencyCount++;
      want.steadyLatencySum += v;
      want.bound++;
      want.boundLatency++;
      if ((i & 63) === 0) churned.add(1, { route: '/item', id: churnId });
      ops += 7;
    }
    if (churnId !== churnBase) {
      // once per new churned label set: a short-lived bound handle (bind/unbind), and one
      // in ten dropped without unbind()
      churnBase = churnId;
      const s = sessions.bind({ session: churnId });
      s.add(1);
      if (FORGET_EVERY === 0 || churnId % FORGET_EVERY !== 0) s.unbind();
      ops += 1;
    }
  } while (performance.now() < end);
  setImmediate(burst);
}

// ---------------------------------------------------------------------------------------
// Collection every COLLECT_MS, a Prometheus rendering once a second

let collections = 0;
let collecting = false;
let lastSeries = 0;
let slowest = 0;
let renderBytes = 0;
const collectTimer = setInterval(async () => {
  if (collecting) return;
  collecting = true;
  const t0 = performance.now();
  try {
    const set = await pull.collect();
    lastSeries = set.size;
    collections++;
    if (collections % Math.max(1, Math.round(1000 / COLLECT_MS)) === 0 && typeof hm.toPrometheusText === 'function') {
      renderBytes = hm.toPrometheusText(set).length;
    }
  } finally {
    slowest = Math.max(slowest, performance.now() - t0);
    collecting = false;
  }
}, COLLECT_MS);

// ---------------------------------------------------------------------------------------
// Sampling and reporting

const MB = 1024 * 1024;
const samples = [];
let lastOps = 0;
const header = `${'t s'.padStart(5)} ${'rss MB'.padStart(8)} ${'heap MB'.padStart(8)} ${'of MB'.padStart(6)} ${'ext+ab MB'.padStart(10)} ${'arena MB'.padStart(9)} ${'records'.padStart(8)} ${'series'.padStart(7)} ${'Mops/s'.padStart(7)} ${'coll/s'.padStart(7)} ${'max coll ms'.padStart(12)}`;
console.log(`soak: ${SECONDS} s, warm-up ${WARMUP} s, collect every ${COLLECT_MS} ms, churn ${CHURN} label sets/s (node ${process.version})`);
console.log(header);
let lastCollections = 0;
const GC_EVERY = 5; // seconds: every 5th sample is taken right after a full GC
const reportTimer = setInterval(() => {
  const gcNow = typeof global.gc === 'function' && (samples.length + 1) % GC_EVERY === 0;
  if (gcNow) global.gc(); // what survives a full collection, not V8's sawtooth
  const m = process.memoryUsage();
  const st = native().stats();
  const t = (Date.now() - started) / 1000;
  const s = {
    t,
    gc: gcNow,
    rss: m.rss / MB,
    heap: m.heapUsed / MB,
    heapTotal: m.heapTotal / MB,
    external: (m.external + m.arrayBuffers) / MB,
    arena: st.arenaBytes / MB,
    records: st.records,
    series: lastSeries,
    mops: (ops - lastOps) / 1e6,
    collections: collections - lastCollections,
    slowest,
  };
  lastOps = ops;
  lastCollections = collections;
  slowest = 0;
  samples.push(s);
  console.log(
    `${t.toFixed(0).padStart(5)} ${s.rss.toFixed(1).padStart(8)} ${s.heap.toFixed(1).padStart(8)} ${s.heapTotal.toFixed(0).padStart(6)} ${s.external.toFixed(1).padStart(10)} ` +
      `${s.arena.toFixed(2).padStart(9)} ${String(s.records).padStart(8)} ${String(s.series).padStart(7)} ${s.mops.toFixed(2).padStart(7)} ` +
      `${String(s.collections).padStart(7)} ${s.slowest.toFixed(1).padStart(12)}${gcNow ? '  after full GC' : ''}`,
  );
  if (t >= SECONDS) void finish();
}, 1000);

/** Least-squares slope of y over x. */
function slope(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let k = 0; k < n; k++) {
    num += (xs[k] - mx) * (ys[k] - my);
    den += (xs[k] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function finish() {
  running = false;
  clearInterval(reportTimer);
  clearInterval(collectTimer);
  while (collecting) await new Promise((r) => setTimeout(r, 5));

  const after = samples.filter((s) => s.t > WARMUP);
  // The verdict uses the samples taken right after a full GC (all of them when gc is not
  // exposed): retained memory, not where V8's allocation sawtooth happened to be.
  const gcd = after.some((s) => s.gc) ? after.filter((s) => s.gc) : after;
  const xs = gcd.map((s) => s.t / 60); // minutes
  const rssSlope = slope(xs, gcd.map((s) => s.rss));
  const heapSlope = slope(xs, gcd.map((s) => s.heap));
  const arenaSlope = slope(xs, gcd.map((s) => s.arena));
  const recordsSlope = slope(xs, gcd.map((s) => s.records));
  const rawRssSlope = slope(after.map((s) => s.t / 60), after.map((s) => s.rss));
  const range = (k, list = after) => `${Math.min(...list.map((s) => s[k])).toFixed(1)}..${Math.max(...list.map((s) => s[k])).toFixed(1)}`;
  const totalOps = samples.reduce((a, s) => a + s.mops, 0) * 1e6;
  const maxRecords = Math.max(...gcd.map((s) => s.records));

  // Exact totals: the steady and bound series never went idle, so nothing was reclaimed.
  const set = await provider.collect();
  const sum = (name, pred = () => true) =>
    set.records.filter((r) => r.descriptor.name === name && pred(r)).reduce((a, r) => a + (r.aggregation.sum ?? 0), 0);
  const count = (name, pred = () => true) =>
    set.records.filter((r) => r.descriptor.name === name && pred(r)).reduce((a, r) => a + (r.aggregation.count ?? 0), 0);
  const isHealth = (r) => r.attributes.route === '/health';
  const checks = [
    ['steady counter total', sum('soak.requests', (r) => !isHealth(r)), want.steady],
    ['bound counter total', sum('soak.requests', isHealth), want.bound],
    ['steady histogram count', count('soak.latency', (r) => !isHealth(r)), want.steadyLatencyCount],
    ['steady histogram sum', sum('soak.latency', (r) => !isHealth(r)), want.steadyLatencySum],
    ['bound histogram count', count('soak.latency', isHealth), want.boundLatency],
    ['up-down counter (adds and subtracts cancel)', sum('soak.inflight'), 0],
  ];
  const mismatches = checks.filter(([, got, exp]) => got !== exp);

  console.log('');
  console.log(`after warm-up (${after.length} samples, t > ${WARMUP} s): RSS ${range('rss')} MB, heap ${range('heap')} MB, arena ${range('arena')} MB, records ${range('records')}`);
  console.log(`  of which after a full GC (${gcd.length}): RSS ${range('rss', gcd)} MB, heap ${range('heap', gcd)} MB, records ${range('records', gcd)}`);
  console.log(`slopes per minute (after full GCs): RSS ${rssSlope.toFixed(2)} MB, heap ${heapSlope.toFixed(2)} MB, arena ${arenaSlope.toFixed(3)} MB, records ${recordsSlope.toFixed(0)}; every sample: RSS ${rawRssSlope.toFixed(2)} MB`);
  console.log(`${(totalOps / 1e6).toFixed(0)} M measurements in ${samples.length} s (${(totalOps / samples.length / 1e6).toFixed(2)} M/s), ${collections} collections, last Prometheus text ${renderBytes} bytes`);
  for (const [what, got, exp] of checks) console.log(`  ${got === exp ? 'ok  ' : 'FAIL'} ${what}: ${got}${got === exp ? '' : ` (expected ${exp})`}`);
  const flat = rssSlope < THRESHOLD && arenaSlope < 0.25 && maxRecords < 50_000;
  const verdict = flat && mismatches.length === 0;
  console.log(
    `verdict: ${verdict ? 'PASS' : 'FAIL'}: RSS slope ${rssSlope.toFixed(2)} MB/min ${rssSlope < THRESHOLD ? '<' : '>='} ${THRESHOLD}; ` +
      `arena slope ${arenaSlope.toFixed(3)} MB/min; totals ${mismatches.length === 0 ? 'exact' : 'MISMATCH'}`,
  );
  if (JSON_FILE) {
    fs.mkdirSync(path.dirname(path.resolve(JSON_FILE)), { recursive: true });
    fs.writeFileSync(JSON_FILE, JSON.stringify({ config: { SECONDS, WARMUP, COLLECT_MS, CHURN, THRESHOLD, v8: process.execArgv }, samples, rssSlope, rawRssSlope, heapSlope, arenaSlope, verdict }, null, 1));
  }
  await provider.shutdown();
  process.exit(verdict ? 0 : 1);
}

setImmediate(burst);
