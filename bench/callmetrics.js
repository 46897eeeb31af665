'use strict';
// Call-metrics and runtime-metrics benchmark.
//
//   npm run bench:callmetrics          (builds the TS if it changed, then runs this file)
//   HOTMETER_BENCH_ROUNDS=9 HOTMETER_BENCH_OPS=1000000 node bench/callmetrics.js
//
// Part 1, the per-call cost of MetricsEngine (ns per call, median over rounds):
//   a bare call, a disabled engine, an enabled engine (recordCall + end, instrument()),
//   the same with 10 000 calls in flight ending in random order, and, for scale, what
//   the alternatives cost: a per-call setTimeout/clearTimeout (the timeout mechanism the
//   engine does not use) and the same four measurements with prom-client (Summary +
//   Counter + Gauge + in-flight Gauge, with labels).
// Part 2, the cost of runtime metrics: per collection (each group alone, and all), and
//   in the background (GC observer under an allocation-heavy load; the event-loop delay
//   monitor under a setImmediate ping-pong).
//
// Method: every case has its own loop function (one call target per call site). After
// a warm-up round, each round runs every case once, in an order rotated per round; the
// figure is the median ns/op. Totals are checked at the end through a collection:
// every call counted, none in flight, the summary count equal to the call count.
// A mismatch prints FAIL and exits 1.
const { performance, monitorEventLoopDelay } = require('node:perf_hooks');
const hm = require('../dist/cjs');
const prom = require('prom-client');

function envInt(name, dflt, min) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    console.error(`${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return v;
}
const ROUNDS = envInt('HOTMETER_BENCH_ROUNDS', 7, 1);
const OPS = envInt('HOTMETER_BENCH_OPS', 1_000_000, 1000);
const ASYNC_OPS = Math.max(1000, Math.floor(OPS / 10 / 1000) * 1000);
const INFLIGHT = 10_000;

const now = process.hrtime.bigint;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------
// Part 1: per call.

const enabled = new hm.MetricsEngine({ port: 0 }); // default 2-minute timeout: calls are tracked
const untracked = new hm.MetricsEngine({ port: 0, callTimeoutMs: 0 });
const rotating = new hm.MetricsEngine({ port: 0 });
const inflight = new hm.MetricsEngine({ port: 0, callTimeoutMs: 3_600_000 });
const wrapping = new hm.MetricsEngine({ port: 0 });
const disabled = new hm.MetricsEngine({ enabled: false });
const NAMES = ['getUser', 'listOrders', 'createOrder', 'deleteUser', 'search', 'ping', 'login', 'logout'];

let sink = 0;
function work(x) {
  return x + 1;
}
async function asyncWork(x) {
  return x + 1;
}
const wrappedEnabled = wrapping.instrument('fn', 'work', work);
const wrappedDisabled = disabled.instrument('fn', 'work', work);
const wrappedAsync = wrapping.instrument('fn', 'asyncWork', asyncWork);
const wrappedAsyncDisabled = disabled.instrument('fn', 'asyncWork', asyncWork);

// prom-client: what an engine built on it does per call (with labels, as the engine has).
const reg = new prom.Registry();
const promSummary = new prom.Summary({
  name: 'bench_call_duration_seconds', help: 'x', labelNames: ['api_type', 'call_name'],
  percentiles: [0.5, 0.9, 0.99], registers: [reg],
});
const promCalls = new prom.Counter({ name: 'bench_calls_total', help: 'x', labelNames: ['api_type', 'call_name', 'outcome'], registers: [reg] });
const promLast = new prom.Gauge({ name: 'bench_call_last_duration_seconds', help: 'x', labelNames: ['api_type', 'call_name'], registers: [reg] });
const promActive = new prom.Gauge({ name: 'bench_calls_active', help: 'x', labelNames: ['api_type', 'call_name'], registers: [reg] });
function promRecordCall(api, name) {
  const labels = { api_type: api, call_name: name };
  promActive.inc(labels);
  const start = performance.now();
  return () => {
    const s = (performance.now() - start) / 1000;
    promSummary.observe(labels, s);
    promLast.set(labels, s);
    promCalls.inc({ api_type: api, call_name: name, outcome: 'ok' });
    promActive.dec(labels);
  };
}

function noop() {}

const loops = {
  bare(n) {
    let s = 0;
    const t0 = now();
    for (let i = 0; i < n; i++) s += work(i);
    const t = Number(now() - t0);
    sink += s;
    return t;
  },
  clockOnly(n) {
    let s = 0;
    const t0 = now();
    for (let i = 0; i < n; i++) s += performance.now();
    const t = Number(now() - t0);
    sink += s;
    return t;
  },
  disabledRecordCall(n) {
    const e = disabled;
    const t0 = now();
    for (let i = 0; i < n; i++) e.recordCall('http', 'getUser')();
    return Number(now() - t0);
  },
  enabledRecordCall(n) {
    const e = enabled;
    const t0 = now();
    for (let i = 0; i < n; i++) e.recordCall('http', 'getUser')();
    return Number(now() - t0);
  },
  untrackedRecordCall(n) {
    const e = untracked;
    const t0 = now();
    for (let i = 0; i < n; i++) e.recordCall('http', 'getUser')();
    return Number(now() - t0);
  },
  rotatingRecordCall(n) {
    const e = rotating;
    const names = NAMES;
    const t0 = now();
    for (let i = 0; i < n; i++) e.recordCall('http', names[i & 7])();
    return Number(now() - t0);
  },
  inflightRecordCall(n) {
    // INFLIGHT calls pending throughout; each op starts one and ends a random pending one.
    const e = inflight;
    const ends = inflightEnds;
    let x = 0x9e3779b9;
    const t0 = now();
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const j = (x >>> 0) % INFLIGHT;
      const end = ends[j];
      ends[j] = e.recordCall('http', 'getUser');
      end();
    }
    return Number(now() - t0);
  },
  disabledInstrument(n) {
    const f = wrappedDisabled;
    let s = 0;
    const t0 = now();
    for (let i = 0; i < n; i++) s += f(i);
    const t = Number(now() - t0);
    sink += s;
    return t;
  },
  enabledInstrument(n) {
    const f = wrappedEnabled;
    let s = 0;
    const t0 = now();
    for (let i = 0; i < n; i++) s += f(i);
    const t = Number(now() - t0);
    sink += s;
    return t;
  },
  perCallSetTimeout(n) {
    // The alternative timeout mechanism: one timer per call, cleared at end().
    const t0 = now();
    for (let i = 0; i < n; i++) {
      const t = setTimeout(noop, 120_000);
      clearTimeout(t);
    }
    return Number(now() - t0);
  },
  perCallSetTimeoutUnref(n) {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      const t = setTimeout(noop, 120_000);
      t.unref();
      clearTimeout(t);
    }
    return Number(now() - t0);
  },
  promClient(n) {
    const t0 = now();
    for (let i = 0; i < n; i++) promRecordCall('http', 'getUser')();
    return Number(now() - t0);
  },
};
let inflightEnds = [];

// Async cases: calls issued in batches of ASYNC_BATCH, each batch awaited (Promise.all).
const ASYNC_BATCH = 1000;
async function asyncBatches(f, n) {
  const ps = new Array(ASYNC_BATCH);
  const t0 = now();
  for (let done = 0; done < n; done += ASYNC_BATCH) {
    for (let i = 0; i < ASYNC_BATCH; i++) ps[i] = f(i);
    await Promise.all(ps);
  }
  return Number(now() - t0);
}
const asyncLoops = {
  bareAsync: (n) => asyncBatches(asyncWork, n),
  disabledInstrumentAsync: (n) => asyncBatches(wrappedAsyncDisabled, n),
  enabledInstrumentAsync: (n) => asyncBatches(wrappedAsync, n),
};

const CASES = [
  ['bare', 'bare call of a tiny function (work(i))', OPS],
  ['clockOnly', 'performance.now() alone', OPS],
  ['disabledRecordCall', 'disabled engine: recordCall()()', OPS],
  ['enabledRecordCall', 'enabled: recordCall()() (timeout tracking on)', OPS],
  ['untrackedRecordCall', 'enabled, callTimeoutMs 0: recordCall()()', OPS],
  ['rotatingRecordCall', 'enabled: recordCall()() over 8 call names', OPS],
  ['inflightRecordCall', `enabled: ${INFLIGHT.toLocaleString('en-US')} in flight, random end order`, OPS],
  ['disabledInstrument', 'disabled: instrument(fn) (is fn) sync call', OPS],
  ['enabledInstrument', 'enabled: instrument(fn) sync call', OPS],
  ['bareAsync', `bare async fn call, awaited in batches of ${ASYNC_BATCH}`, ASYNC_OPS],
  ['disabledInstrumentAsync', 'disabled: instrument(asyncFn) call', ASYNC_OPS],
  ['enabledInstrumentAsync', 'enabled: instrument(asyncFn) call', ASYNC_OPS],
  ['perCallSetTimeout', 'alternative: setTimeout + clearTimeout per call', OPS],
  ['perCallSetTimeoutUnref', 'alternative: setTimeout + unref + clearTimeout', OPS],
  ['promClient', 'prom-client: summary+counter+2 gauges, labels', Math.max(1000, Math.floor(OPS / 10))],
];

// Operations performed per engine, for the checks.
const performed = { enabled: 0, untracked: 0, rotating: 0, inflight: 0, wrapping: 0, wrappingAsync: 0 };
const engineOf = {
  enabledRecordCall: 'enabled',
  untrackedRecordCall: 'untracked',
  rotatingRecordCall: 'rotating',
  inflightRecordCall: 'inflight',
  enabledInstrument: 'wrapping',
  enabledInstrumentAsync: 'wrappingAsync',
};

/** Runs one case: [wall ns/op, process CPU ns/op] (CPU time shows a busy machine). */
async function runCase(id, ops) {
  const fn = loops[id] ?? asyncLoops[id];
  const n = loops[id] !== undefined ? ops : Math.ceil(ops / ASYNC_BATCH) * ASYNC_BATCH;
  const c0 = process.cpuUsage();
  const ns = await fn(n);
  const c = process.cpuUsage(c0);
  if (engineOf[id] !== undefined) performed[engineOf[id]] += n;
  return [ns / n, ((c.user + c.system) * 1000) / n];
}

async function part1() {
  inflightEnds = Array.from({ length: INFLIGHT }, () => inflight.recordCall('http', 'getUser'));
  const wall = Object.fromEntries(CASES.map(([id]) => [id, []]));
  const cpu = Object.fromEntries(CASES.map(([id]) => [id, []]));
  // Warm-up round (not recorded).
  for (const [id, , n] of CASES) await runCase(id, Math.max(1000, n >> 2));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < CASES.length; k++) {
      const [id, , n] = CASES[(k + r) % CASES.length];
      const [w, c] = await runCase(id, n);
      wall[id].push(w);
      cpu[id].push(c);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  for (const end of inflightEnds) end();
  performed.inflight += INFLIGHT;
  return {
    wall: Object.fromEntries(CASES.map(([id]) => [id, median(wall[id])])),
    cpu: Object.fromEntries(CASES.map(([id]) => [id, median(cpu[id])])),
  };
}

async function verify() {
  const failures = [];
  const total = async (engine, api, name) => {
    const cs = await engine.meterProvider.collect();
    let ok = 0;
    let count = 0;
    let active = 0;
    for (const r of cs.records) {
      if (r.attributes.api_type !== api || (name !== undefined && r.attributes.call_name !== name)) continue;
      if (r.descriptor.name === 'hotmeter.calls' && r.attributes.outcome === 'ok') ok += r.aggregation.sum;
      if (r.descriptor.name === 'hotmeter.call.duration') count += r.aggregation.count;
      if (r.descriptor.name === 'hotmeter.calls.active') active += r.aggregation.sum;
    }
    return { ok, count, active };
  };
  const check = async (label, engine, api, name, expected) => {
    const t = await total(engine, api, name);
    if (t.ok !== expected || t.count !== expected || t.active !== 0) {
      failures.push(`${label}: expected ${expected} calls, got ok=${t.ok} summary count=${t.count} in flight=${t.active}`);
    }
    if (engine.pendingCalls !== 0) failures.push(`${label}: ${engine.pendingCalls} calls still pending`);
  };
  await check('enabled', enabled, 'http', 'getUser', performed.enabled);
  await check('untracked', untracked, 'http', 'getUser', performed.untracked);
  await check('rotating', rotating, 'http', undefined, performed.rotating);
  await check('inflight', inflight, 'http', 'getUser', performed.inflight);
  await check('instrument sync', wrapping, 'fn', 'work', performed.wrapping);
  await check('instrument async', wrapping, 'fn', 'asyncWork', performed.wrappingAsync);
  return failures;
}

// ---------------------------------------------------------------------------------------
// Part 2: runtime metrics.

const COLLECTIONS = envInt('HOTMETER_BENCH_COLLECTIONS', 300, 10);

async function collectCost(options) {
  const provider = new hm.MeterProvider();
  const rt = options === null ? null : hm.startRuntimeMetrics(provider, options);
  for (let i = 0; i < 20; i++) await provider.collect();
  const xs = [];
  for (let i = 0; i < COLLECTIONS; i++) {
    const t0 = now();
    await provider.collect();
    xs.push(Number(now() - t0));
  }
  rt?.stop();
  await provider.shutdown();
  return median(xs);
}

async function part2() {
  const only = (g) => ({ eventLoop: g === 'eventLoop', gc: g === 'gc', heap: g === 'heap', process: g === 'process', resources: g === 'resources' });
  const base = await collectCost(null);
  const rows = [];
  for (const g of ['eventLoop', 'gc', 'heap', 'process', 'resources']) {
    rows.push([`collect(): ${g} only`, (await collectCost(only(g))) - base]);
  }
  rows.push(['collect(): all runtime metrics', (await collectCost({})) - base]);

  // prom-client's collectDefaultMetrics for scale: registry.metrics() with and without.
  const r0 = new prom.Registry();
  new prom.Counter({ name: 'x_total', help: 'x', registers: [r0] });
  const r1 = new prom.Registry();
  prom.collectDefaultMetrics({ register: r1 });
  const promCost = async (r) => {
    for (let i = 0; i < 20; i++) await r.metrics();
    const xs = [];
    for (let i = 0; i < COLLECTIONS; i++) {
      const t0 = now();
      await r.metrics();
      xs.push(Number(now() - t0));
    }
    return median(xs);
  };
  const promDefault = (await promCost(r1)) - (await promCost(r0));

  // Rendered text, like a scrape: hotmeter exporter.render() with and without.
  const renderCost = async (withRuntime) => {
    const exporter = new hm.PrometheusExporter({ preventServerStart: true });
    const provider = new hm.MeterProvider({ readers: [exporter] });
    const rt = withRuntime ? hm.startRuntimeMetrics(provider) : null;
    for (let i = 0; i < 20; i++) await exporter.render();
    const xs = [];
    for (let i = 0; i < COLLECTIONS; i++) {
      const t0 = now();
      await exporter.render();
      xs.push(Number(now() - t0));
    }
    rt?.stop();
    await provider.shutdown();
    return median(xs);
  };
  const hmRender = (await renderCost(true)) - (await renderCost(false));

  // Background: GC observer under allocation pressure (process CPU time: the machine may
  // be shared, and the observer's cost is CPU spent in this process).
  const allocLoad = () => {
    let keep = [];
    let n = 0;
    for (let i = 0; i < 10_000_000; i++) {
      keep.push({ i });
      if (keep.length > 5000) {
        n += keep.length;
        keep = [];
      }
    }
    return n + keep.length;
  };
  const cpuNs = (c) => (c.user + c.system) * 1000;
  const bgRounds = Math.max(5, ROUNDS);
  let gcEvents = 0;
  const gcWith = [];
  const gcWithout = [];
  for (let r = 0; r < bgRounds; r++) {
    for (const on of r % 2 ? [true, false] : [false, true]) {
      const provider = new hm.MeterProvider();
      const rt = on ? hm.startRuntimeMetrics(provider, { eventLoop: false, heap: false, process: false, resources: false }) : null;
      const c0 = process.cpuUsage();
      sink += allocLoad();
      await new Promise((resolve) => setTimeout(resolve, 5)); // GC entries are delivered after
      const c = cpuNs(process.cpuUsage(c0));
      if (on) {
        const cs = await provider.collect();
        for (const rec of cs.records) if (rec.descriptor.name === 'v8js.gc.duration') gcEvents += rec.aggregation.count;
        gcWith.push(c);
      } else {
        gcWithout.push(c);
      }
      rt?.stop();
      await provider.shutdown();
    }
  }
  const gcPerRound = gcEvents / bgRounds;
  const gcDelta = median(gcWith) - median(gcWithout);

  // Background: the event-loop delay monitor (10 ms) under a setImmediate ping-pong.
  const HOPS = 200_000;
  const pingPong = () =>
    new Promise((resolve) => {
      let k = 0;
      const c0 = process.cpuUsage();
      const hop = () => (++k < HOPS ? setImmediate(hop) : resolve(cpuNs(process.cpuUsage(c0))));
      setImmediate(hop);
    });
  const elWith = [];
  const elWithout = [];
  for (let r = 0; r < bgRounds; r++) {
    for (const on of r % 2 ? [true, false] : [false, true]) {
      const h = on ? monitorEventLoopDelay({ resolution: 10 }) : null;
      h?.enable();
      (on ? elWith : elWithout).push(await pingPong());
      h?.disable();
    }
  }
  return {
    rows,
    promDefault,
    hmRender,
    gc: { perRound: gcPerRound, deltaNs: gcDelta, withNs: median(gcWith), withoutNs: median(gcWithout) },
    el: { withNs: median(elWith), withoutNs: median(elWithout), hops: HOPS },
  };
}

// ---------------------------------------------------------------------------------------

function fmt(ns) {
  return ns < 10 ? ns.toFixed(2) : ns < 100 ? ns.toFixed(1) : Math.round(ns).toLocaleString('en-US');
}

async function main() {
  console.log(`node ${process.version}, ${ROUNDS} rounds, ${OPS.toLocaleString('en-US')} ops per sync case, ${ASYNC_OPS.toLocaleString('en-US')} per async case`);
  const { wall: p1, cpu: c1 } = await part1();
  const failures = await verify();
  console.log('\n### MetricsEngine: ns per call (median wall clock; process CPU time beside it)\n');
  console.log('| case | ns/call | over the bare call | CPU ns/call |');
  console.log('|---|---:|---:|---:|');
  for (const [id, title] of CASES) {
    const base = id.endsWith('Async') ? p1.bareAsync : p1.bare;
    const over = id === 'bare' || id === 'bareAsync' ? '' : fmt(p1[id] - base);
    console.log(`| ${title} | ${fmt(p1[id])} | ${over} | ${fmt(c1[id])} |`);
  }

  const p2 = await part2();
  console.log('\n### Runtime metrics: cost\n');
  console.log('| what | cost |');
  console.log('|---|---:|');
  for (const [title, ns] of p2.rows) console.log(`| ${title} | ${fmt(ns / 1000)} µs per collection |`);
  console.log(`| exporter.render() with all runtime metrics, over without | ${fmt(p2.hmRender / 1000)} µs per scrape |`);
  console.log(`| prom-client collectDefaultMetrics: registry.metrics(), over without | ${fmt(p2.promDefault / 1000)} µs per scrape |`);
  const gcPer = p2.gc.perRound > 0 ? p2.gc.deltaNs / p2.gc.perRound : NaN;
  const pct = (a, b) => `${(((b - a) / a) * 100).toFixed(1)}%`;
  console.log(`| GC observer: allocation load, ${Math.round(p2.gc.perRound)} GCs per run (CPU time) | ${fmt(p2.gc.withoutNs / 1e6)} -> ${fmt(p2.gc.withNs / 1e6)} ms, ${pct(p2.gc.withoutNs, p2.gc.withNs)} (${fmt(gcPer / 1000)} µs per GC) |`);
  console.log(`| event-loop delay monitor (10 ms): ${p2.el.hops.toLocaleString('en-US')} setImmediate hops (CPU time) | ${fmt(p2.el.withoutNs / 1e6)} -> ${fmt(p2.el.withNs / 1e6)} ms, ${pct(p2.el.withoutNs, p2.el.withNs)} |`);

  if (sink === 42) console.log('');
  await Promise.all([enabled, untracked, rotating, inflight, wrapping, disabled].map((e) => e.shutdown()));
  if (failures.length > 0) {
    for (const f of failures) console.log(`FAIL ${f}`);
    process.exit(1);
  }
  console.log('\nChecks: every call counted, summary count = call count, nothing in flight: OK');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
