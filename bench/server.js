'use strict';
// Load: one HTTP server, instrumented several ways (plus an A/A control, a timing-only
// control and a timing-and-attribute-objects control), under autocannon on loopback,
// measured so that a 2% difference can be told from the noise of a shared 2-core machine.
// The measurement itself (every variant in each server process, switched every 250 ms under
// one continuous load; per-cycle ratios; a confidence interval of the median; the
// verdicts) is bench/server-interleaved.js; this file parses the options and is the server.
//
// Usage: `npm run bench:server -- --help` (the USAGE text below).
//
// Variants (every server process holds all of them, with identical handler and routes):
//   none        no metrics at all: the baseline every ratio is taken against
//   none2       a second, identical uninstrumented variant: the A/A control. Its ratio to
//               `none` is what "no difference" looks like under the conditions of the run
//               (noise plus any bias between phases).
//   bare        the instrumentation harness without a library: the request's start time
//               and its duration computed (after res.end(), or in a 'finish' listener with
//               --timing-finish), then nothing recorded (what every library's variant
//               pays before its own calls)
//   attrs       the harness and the two `{method, route, status}` objects every library
//               variant builds per request, then nothing recorded: the user's code
//               without the library's calls
//   hotmeter    hotmeter's MeterProvider behind @opentelemetry/api
//   hmbound     the same, through bound handles: each route holds the handles it bound for
//               its method and each status it answered (what a router that knows its
//               routes can do); a request writes through them without attribute objects
//   otel        @opentelemetry/sdk-metrics' MeterProvider behind @opentelemetry/api
//   prom        prom-client Counter and Histogram
// Each instrumented variant records, per request, a request counter and a duration
// histogram (seconds, 11 bounds) with {method, route, status}, as fresh attribute
// objects, once the response is written (see --timing-finish). Routes: GET /api/users, GET /api/orders/:id,
// POST /api/orders, GET /missing (404); autocannon cycles through them.
//
// Method
// - Pinning: with `taskset` (Linux, >= 2 CPUs) every server runs on CPU 1 and the driver
//   (autocannon) on CPU 0 (--no-pin to let the scheduler place them).
// - Several server processes (--procs, default 3), measured one after the other: where a
//   process's memory and code land (ASLR, physical pages, cache sets) changes its speed for
//   its whole life, so each ratio is taken within one process and the median is over all.
// - Server CPU time per request = process.cpuUsage() of the server process over a phase /
//   requests it served. Time the server is not scheduled costs it nothing there, so it
//   moves much less with the machine's load than requests/s.
// - p99: from every response's latency (all statuses) at microsecond resolution
//   (autocannon's own histogram is in whole milliseconds and 2xx only).
// - Checks: no errors, timeouts, resets or 1xx/3xx/5xx; the only 4xx are the /missing
//   404s (the server counts any request it did not expect); afterwards each instrumented
//   variant in each process collects and reports what its instruments counted, which must
//   equal what it served, per method, route and status. Any failure prints FAIL and exits 1.
//   The verdicts do not change the exit status. Results: bench/results/server.json.
const { spawnSync, execFileSync } = require('node:child_process');
const http = require('node:http');
const os = require('node:os');
const { runInterleaved } = require('./server-interleaved');

const ALL_VARIANTS = ['none', 'none2', 'bare', 'attrs', 'hotmeter', 'hmbound', 'otel', 'prom'];
// How instrumented servers time a request: by default performance.now() before the
// handler and after res.end() (the handler is synchronous); with --timing-finish, a
// 'finish' listener per request and hrtime.bigint(), as middleware for asynchronous
// handlers does (it costs ~3 µs a request here, the same for every library).
if (process.argv.includes('--timing-finish')) process.env.HOTMETER_BENCH_TIMING = 'finish';
const FINISH_TIMING = process.env.HOTMETER_BENCH_TIMING === 'finish';
const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

const argv = process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} needs a positive number`);
    process.exit(2);
  }
  return v;
}

// ---------------------------------------------------------------------------------------
// Server side (a child process per variant)

// The routes the handler knows, one entry per (method, path): the entry is where a
// variant may keep what it prepared for that route (hmbound: its bound handles, by
// status).
const ROUTES = {
  users: { method: 'GET', route: '/api/users', hmbound: new Array(600).fill(undefined) },
  order: { method: 'GET', route: '/api/orders/:id', hmbound: new Array(600).fill(undefined) },
  create: { method: 'POST', route: '/api/orders', hmbound: new Array(600).fill(undefined) },
  unmatched: { method: 'GET', route: 'unmatched', hmbound: new Array(600).fill(undefined) },
};

/**
 * One variant's instruments: record(method, route, status, seconds, entry) (entry: the
 * ROUTES entry the handler matched), and verify() -> what they counted.
 */
function makeVariant(variant) {
  let record = () => {};
  let verify = async () => ({});
  if (variant === 'hotmeter' || variant === 'hmbound' || variant === 'otel') {
    const api = require('@opentelemetry/api');
    let provider;
    let collectTotals;
    if (variant !== 'otel') {
      const hm = require('../dist/cjs');
      const pull = new hm.PullController();
      provider = new hm.MeterProvider({ readers: [pull] });
      collectTotals = async () => {
        const out = {};
        for (const r of (await pull.collect()).records) {
          const k = `${r.descriptor.name} ${r.attributes.method} ${r.attributes.route} ${r.attributes.status}`;
          out[k] = r.aggregation.kind === 'sum' ? r.aggregation.sum : r.aggregation.count;
        }
        return out;
      };
    } else {
      const sdk = require('@opentelemetry/sdk-metrics');
      class PullReader extends sdk.MetricReader {
        async onForceFlush() {}
        async onShutdown() {}
      }
      const pull = new PullReader();
      provider = new sdk.MeterProvider({ readers: [pull] });
      collectTotals = async () => {
        const out = {};
        const { resourceMetrics } = await pull.collect();
        for (const sm of resourceMetrics.scopeMetrics) {
          for (const m of sm.metrics) {
            for (const dp of m.dataPoints) {
              const a = dp.attributes;
              out[`${m.descriptor.name} ${a.method} ${a.route} ${a.status}`] = typeof dp.value === 'number' ? dp.value : dp.value.count;
            }
          }
        }
        return out;
      };
    }
    // provider.getMeter is what api.metrics.getMeter() returns once the provider is global
    // (no proxy in between); taken directly so that two SDKs can live in one process.
    const meter = provider.getMeter('bench-server');
    const requests = meter.createCounter('http.server.requests', { valueType: api.ValueType.INT });
    const duration = meter.createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: BOUNDS } });
    // One function literal per library: closures of one literal share V8's feedback (and
    // optimized code), which would make each library's calls polymorphic over both in a
    // process that serves both (every server process serves every variant).
    if (variant === 'hotmeter') {
      record = (method, route, status, seconds) => {
        requests.add(1, { method, route, status });
        duration.record(seconds, { method, route, status });
      };
    } else if (variant === 'hmbound') {
      // Bound on a route's first answer with each status, held for the process's life.
      // A method the route was not registered for (only the unmatched route can see one)
      // takes the attribute path.
      record = (method, route, status, seconds, entry) => {
        if (method === entry.method && status < 600) {
          let b = entry.hmbound[status];
          if (b === undefined) {
            b = { requests: requests.bind({ method, route, status }), duration: duration.bind({ method, route, status }) };
            entry.hmbound[status] = b;
          }
          b.requests.add(1);
          b.duration.record(seconds);
        } else {
          requests.add(1, { method, route, status });
          duration.record(seconds, { method, route, status });
        }
      };
    } else {
      record = (method, route, status, seconds) => {
        requests.add(1, { method, route, status });
        duration.record(seconds, { method, route, status });
      };
    }
    verify = collectTotals;
  } else if (variant === 'prom') {
    const prom = require('prom-client');
    const registry = new prom.Registry();
    const labelNames = ['method', 'route', 'status'];
    const requests = new prom.Counter({ name: 'http_server_requests', help: 'requests', labelNames, registers: [registry] });
    const duration = new prom.Histogram({ name: 'http_server_request_duration', help: 'seconds', labelNames, buckets: BOUNDS, registers: [registry] });
    record = (method, route, status, seconds) => {
      requests.inc({ method, route, status });
      duration.observe({ method, route, status }, seconds);
    };
    verify = async () => {
      const out = {};
      for (const m of await registry.getMetricsAsJSON()) {
        for (const v of m.values) {
          if (m.name === 'http_server_requests') out[`http.server.requests ${v.labels.method} ${v.labels.route} ${v.labels.status}`] = v.value;
          if (v.metricName === 'http_server_request_duration_count') {
            out[`http.server.request.duration ${v.labels.method} ${v.labels.route} ${v.labels.status}`] = v.value;
          }
        }
      }
      return out;
    };
  } else if (variant === 'attrs') {
    // The harness plus the two attribute objects the libraries' variants build, kept
    // where V8 cannot elide them: what the user's own code costs before any library call.
    const sink = [undefined, undefined];
    record = (method, route, status) => {
      sink[0] = { method, route, status };
      sink[1] = { method, route, status };
    };
  } else if (variant !== 'none' && variant !== 'none2' && variant !== 'bare') {
    throw new Error(`unknown variant ${variant}`);
  }
  return { record, verify, instrumented: variant !== 'none' && variant !== 'none2', served: {} };
}

/**
 * `--serve V`: a server of variant V. `--serve all:V1,V2,...`: one server with every listed
 * variant, the active one chosen by GET /__use?v=V (what the driver runs).
 */
function serve(spec) {
  const names = spec.startsWith('all:') ? spec.slice(4).split(',') : [spec];
  const variants = Object.fromEntries(names.map((v) => [v, makeVariant(v)]));
  let cur = variants[names[0]];
  // cur.served: what the handler itself saw while that variant was active: "method route status" -> count
  let servedTotal = 0;
  let served404 = 0;
  let unexpected = 0; // requests for anything autocannon is not configured to send

  const server = http.createServer((req, res) => {
    const v = cur;
    const t0 = !v.instrumented ? 0 : FINISH_TIMING ? process.hrtime.bigint() : performance.now();
    const method = req.method;
    const url = req.url;
    if (url.startsWith('/__verify')) {
      const w = variants[new URL(url, 'http://x').searchParams.get('v') ?? names[0]];
      w.verify().then((counted) => res.end(JSON.stringify({ served: w.served, counted })));
      return;
    }
    if (url.startsWith('/__use?v=')) {
      // Answers with this process's counters at the switch: the interleaved driver's
      // phase boundaries (what was served and the CPU it took while the previous variant
      // was active).
      const w = variants[url.slice('/__use?v='.length)];
      const c = process.cpuUsage();
      const at = { cpuMicros: c.user + c.system, served: servedTotal, served404, unexpected, us: Number(process.hrtime.bigint()) / 1e3 };
      if (w) cur = w;
      res.writeHead(w ? 200 : 404).end(JSON.stringify(at));
      return;
    }
    if (url === '/__cpu') {
      // CPU time this process used so far and the requests it served: cost per request.
      const c = process.cpuUsage();
      res.end(JSON.stringify({ cpuMicros: c.user + c.system, served: servedTotal, served404, unexpected }));
      return;
    }
    servedTotal++;
    let entry;
    let status = 200;
    let body;
    if (url === '/api/users') {
      entry = ROUTES.users;
      body = '[{"id":1,"name":"ada"},{"id":2,"name":"grace"}]';
    } else if (url.startsWith('/api/orders/')) {
      entry = ROUTES.order;
      body = `{"id":${JSON.stringify(url.slice(12))},"total":42}`;
    } else if (url === '/api/orders' && method === 'POST') {
      entry = ROUTES.create;
      status = 201;
      body = '{"id":7}';
      req.resume();
    } else {
      entry = ROUTES.unmatched;
      status = 404;
      body = 'not found';
      served404++;
      if (url !== '/missing' || method !== 'GET') unexpected++;
    }
    const route = entry.route;
    const key = `${method} ${route} ${status}`;
    v.served[key] = (v.served[key] || 0) + 1;
    if (v.instrumented && FINISH_TIMING) {
      res.once('finish', () => v.record(method, route, status, Number(process.hrtime.bigint() - t0) / 1e9, entry));
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    // The handler is synchronous: once res.end() returns the response is written.
    if (v.instrumented && !FINISH_TIMING) v.record(method, route, status, (performance.now() - t0) / 1e3, entry);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.on('disconnect', () => process.exit(0));
}

function uptime() {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

const USAGE = `Usage:
  npm run bench:server                      (builds the TS if it changed, then runs this file; ~3 min)
  npm run bench:server -- --long            (1200 s measured instead of 120; ~22 min: +-0.3% on a median)
  node bench/server.js --seconds 120 --procs 3 --phase-ms 250 --warmup 3 --connections 32 --seed 1
  node bench/server.js --only hotmeter,bare (fewer variants; 'none' is always included)
  node bench/server.js --timing-finish      (time requests in a 'finish' listener, as async middleware does)
  node bench/server.js --no-pin             (no taskset: the scheduler places the processes)
  node bench/server.js --serve hotmeter     (just the server; prints its port; for profiling)
  node bench/server.js --help               (this text)

  --seconds S     measured seconds in all, split evenly over the processes (default 120; --long 1200)
  --procs P       server processes, measured one after the other (default 3)
  --phase-ms MS   how long each variant is served before the next (default 250)
  --warmup W      seconds of warm-up per variant in each process, discarded (default 3)
  --connections C autocannon connections (default 32)
  --seed N        seed of the shuffled phase orders (default 1)
`;

async function main() {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const long = argv.includes('--long');
  const onlyArg = argv.indexOf('--only');
  const only = onlyArg >= 0 ? (argv[onlyArg + 1] ?? '').split(',') : null;
  const unknown = only ? only.filter((v) => !ALL_VARIANTS.includes(v)) : [];
  if (unknown.length) {
    console.error(`--only: unknown variant ${unknown.join(', ')} (known: ${ALL_VARIANTS.join(', ')})`);
    process.exit(2);
  }
  const VARIANTS = only ? ALL_VARIANTS.filter((v) => v === 'none' || only.includes(v)) : ALL_VARIANTS;
  const pin = !argv.includes('--no-pin') && process.platform === 'linux' && os.cpus().length >= 2 &&
    spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  if (pin) spawnSync('taskset', ['-pc', '0', String(process.pid)]); // autocannon on CPU 0

  const ok = await runInterleaved({
    variants: VARIANTS,
    procs: Math.round(opt('procs', 3)),
    seconds: opt('seconds', long ? 1200 : 120),
    warmup: opt('warmup', 3) * VARIANTS.length, // --warmup s for each variant, served in turn
    phaseMs: opt('phase-ms', 250),
    connections: Math.round(opt('connections', 32)),
    seed: Math.round(opt('seed', 1)),
    pin,
    cpus: os.cpus(),
    loadBefore: uptime(),
    uptime,
    timing: FINISH_TIMING ? 'finish listener' : 'sync after res.end()',
  });
  if (!ok) process.exitCode = 1;
}

if (argv[0] === '--serve') serve(argv[1]);
else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
