'use strict';
// Load: one HTTP server, four ways (plus an A/A control, a timing-only control and a
// timing-and-attribute-objects control), under autocannon on loopback, measured so that a
// 2% difference can be told from the noise of a shared 2-core machine.
//
//   npm run bench:server                      (builds the TS, then runs this file; ~3 min)
//   npm run bench:server -- --long            (1200 s measured instead of 120; ~22 min: +-0.3% on a median)
//   node bench/server.js --seconds 120 --procs 3 --phase-ms 250 --warmup 3 --connections 32 --seed 1
//   node bench/server.js --only hotmeter,bare (fewer variants; `none` is always included)
//   node bench/server.js --serve hotmeter     (just the server; prints its port; for profiling)
//   node bench/server.js --separate           (the per-process method below; 3-4 min)
//   node bench/server.js --same-process       (every variant in each process, switched per 2 s run)
//
// Three methods:
// - interleaved (default; bench/server-interleaved.js says exactly how): every variant in
//   each of --procs processes, switched every 250 ms under one continuous load; per cycle
//   (every variant once, in a shuffled order) ratios against that cycle's `none`; the
//   verdict reads a 95% confidence interval of the median ratio. A variant's phases are
//   never more than a cycle (1.5 s) from its baseline's, in the same process: an A/A
//   control's 95% interval has been within +-1.5% here (+-1.2% in most runs), where the methods below spread +-3 to +-16%.
// - --separate: each variant in processes of its own, one 2 s run at a time (below).
// - --same-process: like interleaved but one 2 s run per variant at a time (below).
// The rest of this comment is about the two older methods.
//
// Variants, each in --procs server processes of its own (identical handler and routes):
//   none        no metrics at all: the baseline every ratio is taken against
//   none2       a second, identical uninstrumented process: the A/A control. Its ratio to
//               `none` is what "no difference" looks like under the conditions of the run
//               (noise plus any process-to-process bias).
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
// - Pinning: with `taskset` (Linux, >= 2 CPUs) every server runs on CPU 1 and this process
//   (autocannon) on CPU 0 (--no-pin to let the scheduler place them).
// - Several processes per variant (--procs, default 3): two identical processes differ by
//   up to ~6% here, and the difference lasts as long as the processes do (an A/A pair
//   measured 6.1% apart over a whole run, while in another run three identical processes
//   were within 2%): where a process's memory and code land (ASLR, physical pages,
//   cache sets) changes its speed. With one process per variant that bias is fixed into
//   the result; with several, round k uses process k mod P of every variant, so the
//   spread over rounds includes it and the median averages it out.
// - --same-process: instead, each of the --procs processes holds every variant (its own
//   instruments, all created at start) and serves the one the driver last chose
//   (GET /__use?v=V) for each run, so that a process's own speed cancels out of each
//   round's ratios. The other SDKs then share the process (idle while not chosen): a
//   different situation from a process of one library, reported as such.
// - Warm-up: all servers start and stay up; each process is loaded for --warmup s
//   (discarded) so its handler and the library are JIT-compiled before anything is
//   measured.
// - Rounds: --rounds rounds; in each, every variant is loaded for --duration s, one at a
//   time, the order rotated by one each round (A B C D, B C D A, ...), so that a change of
//   the machine's load hits every variant alike and no variant always follows another.
// - Disturbance, two kinds: (1) other work: from /proc/stat, the CPU time on either core
//   that was neither the server nor autocannon (other processes, steal); (2) a slow core:
//   the hypervisor can give a vCPU less of a physical core without any steal showing (CPU
//   time per request was seen to double with nothing else running in the VM), so a fixed piece
//   of work is timed on both cores (in the server process and here) just before and just
//   after each run and compared with the median of the previous 8 runs' probes. A run is
//   disturbed when other work exceeded 5% of a core or a probe was more than 10% slow.
//   Before each run the driver waits while other work uses more than 5% of a core; a
//   disturbed run is repeated, up to --retries times (the least disturbed attempt is
//   kept). Waiting and repeating share a budget, --patience s (default: a third of the
//   planned time). The rule is the same for every variant and never looks at the
//   variant's own figures.
// - Per round, each variant's requests/s and server CPU time per request are divided by
//   those of `none` in the same round; reported are the medians over rounds of those
//   ratios with their interquartile range (IQR, 25th..75th percentile), taken over the
//   "clean" rounds (this variant's run and that round's `none` both undisturbed) when there
//   are at least 5 of them, else over all rounds (and the output says so). Absolute
//   figures (requests/s, p99, CPU/request) are medians over the same rounds.
// - Server CPU time per request = process.cpuUsage() of the server process over the run /
//   requests it served. Time the server is not scheduled (another process on its core)
//   costs it nothing there, so it moves much less with the machine's load than requests/s.
//   Each run also records the server's and autocannon's CPU use and, from /proc/stat, the
//   other work and hypervisor steal on both cores.
// - p99: from every response's latency (all statuses) at microsecond resolution
//   (autocannon's own histogram is in whole milliseconds and 2xx only).
// - Checks: no errors, timeouts, resets or 1xx/3xx/5xx; the only 4xx are the /missing
//   404s (the server counts any request it did not expect); afterwards each instrumented
//   server collects and reports what its instruments counted, which must equal what it
//   served, per method, route and status. Any failure prints FAIL and exits 1.
// - Verdict for "hotmeter within 2% of no metrics", separately for throughput (ratio >=
//   0.98) and CPU per request (ratio <= 1.02): PASS when the whole IQR is on the good
//   side of the 2% line, FAIL when the whole IQR is on the bad side, INCONCLUSIVE when the
//   IQR straddles it (the noise is wider than the distance of the effect from 2%) or lies
//   closer to the line than the A/A control's IQR reaches (two identical processes differ
//   by that much, so a smaller margin proves nothing). The same verdict is given for
//   hotmeter against `bare`: the library's own calls, without the timing harness. The
//   verdicts do not change the exit status. Results: bench/results/server.json.
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ALL_VARIANTS = ['none', 'none2', 'bare', 'attrs', 'hotmeter', 'hmbound', 'otel', 'prom'];
// How instrumented servers time a request: by default performance.now() before the
// handler and after res.end() (the handler is synchronous); with --timing-finish, a
// 'finish' listener per request and hrtime.bigint(), as middleware for asynchronous
// handlers does (it costs ~3 µs a request here, the same for every library).
if (process.argv.includes('--timing-finish')) process.env.HOTMETER_BENCH_TIMING = 'finish';
const FINISH_TIMING = process.env.HOTMETER_BENCH_TIMING === 'finish';
const LIBRARIES = ['hotmeter', 'hmbound', 'otel', 'prom'];
const TITLE = {
  none: 'no metrics',
  none2: 'no metrics, 2nd process (A/A)',
  bare: 'timing only, no library',
  attrs: 'timing and attribute objects, no library',
  hotmeter: 'hotmeter',
  hmbound: 'hotmeter, bound handles per route',
  otel: '@opentelemetry/sdk-metrics',
  prom: 'prom-client',
};
// What autocannon sends, in turn on each connection.
const REQUESTS = [
  { method: 'GET', path: '/api/users' },
  { method: 'GET', path: '/api/orders/1234' },
  { method: 'POST', path: '/api/orders', body: '{"item":1}', headers: { 'content-type': 'application/json' } },
  { method: 'GET', path: '/api/users' },
  { method: 'GET', path: '/missing' },
];
const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const TARGET = 0.02;
const QUIET = 0.05; // a run is undisturbed when other work + steal <= 5% on both cores
const SLOW = 0.1; // ... and neither core's speed probe was more than 10% slower than its best
const MIN_CLEAN = 5;
const SERVER_CPU = 1;
const CLIENT_CPU = 0;

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

/**
 * A fixed piece of CPU work (integer hashing over a 64 KiB table: no allocation, so no GC
 * in it), run five times; the least CPU time one took, in µs. CPU time, so that being
 * preempted does not count (other processes are measured separately). On a quiet core the
 * figure repeats within ~1%; when the hypervisor gives the vCPU less of a physical core
 * (which shows as no steal), it grows.
 */
const PROBE_TABLE = new Int32Array(1 << 14);
function speedProbe() {
  let best = Infinity;
  let h = 0x811c9dc5 | 0;
  for (let rep = 0; rep < 5; rep++) {
    const t = process.cpuUsage();
    for (let i = 0; i < 100000; i++) {
      const j = (h >>> 18) & 16383;
      h = (Math.imul(h ^ PROBE_TABLE[j], 16777619) + i) | 0;
      PROBE_TABLE[j] = h;
    }
    const d = process.cpuUsage(t);
    best = Math.min(best, d.user + d.system);
  }
  speedProbe.sink = h;
  return best;
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
    // process that serves both (--same-process).
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
    record = (method, route, status, seconds) => {
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
 * variant, the active one chosen by GET /__use?v=V (--same-process).
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
    if (url === '/__probe') {
      res.end(JSON.stringify({ us: speedProbe() }));
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
  for (let i = 0; i < 30; i++) speedProbe(); // compiled before it is relied on
  server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------
// Driver side

function startServer(variant, cpu) {
  return new Promise((resolve, reject) => {
    const cmd = cpu === undefined ? [process.execPath] : ['taskset', '-c', String(cpu), process.execPath];
    const child = spawn(cmd[0], [...cmd.slice(1), __filename, '--serve', variant], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      buf += d;
      const m = /listening (\d+)/.exec(buf);
      if (m) resolve({ variant, child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${variant} server exited (${code}) before listening`)));
  });
}

function get(port, pathName) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data));
    }).on('error', reject);
  });
}

/** Per-CPU [busy, steal] in clock ticks from /proc/stat (null where unavailable). */
function cpuTicks() {
  try {
    const out = {};
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+) (.*)$/.exec(line);
      if (!m) continue;
      const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].trim().split(/\s+/).map(Number);
      out[m[1]] = { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
    }
    return out;
  } catch {
    return null;
  }
}
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/**
 * What went wrong in one autocannon run `r`, given the server's /__cpu (or /__use)
 * counters before and after it: errors, timeouts, resets, 1xx/3xx/5xx, 4xx other than the
 * /missing 404s, requests the server did not expect, answers that do not add up.
 */
function checkRun(r, before, after, connections) {
  const codes = r.statusCodeStats || {};
  const count = (prefix) => Object.entries(codes).reduce((a, [c, s]) => a + (String(c)[0] === prefix ? s.count : 0), 0);
  const client4xx = count('4');
  const server404 = after.served404 - before.served404;
  const served = after.served - before.served;
  const problems = [];
  if (r.errors) problems.push(`${r.errors} errors`);
  if (r.timeouts) problems.push(`${r.timeouts} timeouts`);
  if (r.resets) problems.push(`${r.resets} resets`);
  if (r.mismatches) problems.push(`${r.mismatches} mismatches`);
  for (const c of ['1', '3', '5']) if (count(c)) problems.push(`${count(c)} ${c}xx`);
  if (after.unexpected - before.unexpected) problems.push(`${after.unexpected - before.unexpected} unexpected requests`);
  // autocannon counts the answers it read; requests still in flight when it stopped were
  // served but not counted: at most one per connection.
  if (client4xx > server404 || server404 - client4xx > connections) problems.push(`4xx: client ${client4xx}, server 404 ${server404}`);
  if (r.requests.total > served || served - r.requests.total > connections) problems.push(`answered ${r.requests.total}, served ${served}`);
  return problems;
}

/**
 * Asks each {v, srv, k} (a library variant and a server process holding it) what its
 * instruments counted and compares it with what the handler served, per method, route and
 * status; prints a line each. True when every count matched.
 */
async function verifyCounts(list) {
  let ok = true;
  for (const { v, srv, k } of list) {
    const { served, counted } = JSON.parse(await get(srv.port, `/__verify?v=${v}`));
    const problems = [];
    for (const [key, n] of Object.entries(served)) {
      for (const metric of ['http.server.requests', 'http.server.request.duration']) {
        const got = counted[`${metric} ${key}`];
        if (got !== n) problems.push(`${metric} ${key}: counted ${got}, served ${n}`);
      }
    }
    const total = Object.values(served).reduce((a, b) => a + b, 0);
    console.log(`  ${problems.length === 0 ? 'ok  ' : 'FAIL'} ${v} (process ${k + 1}): ${total} requests served, every one counted in both instruments${problems.length ? `: ${problems.slice(0, 3).join('; ')}` : ''}`);
    if (problems.length) ok = false;
  }
  return ok;
}

/** Writes bench/results/server.json: `{ benchmark: 'bench:server', ...result }`. */
function writeResults(result) {
  const file = path.join(__dirname, 'results', 'server.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ benchmark: 'bench:server', ...result }, null, 1) + '\n');
}

/** Speed probes on both cores: the server's (in the server process) and autocannon's. */
async function probes(port) {
  return { server: JSON.parse(await get(port, '/__probe')).us, client: speedProbe() };
}

async function load(port, seconds, connections) {
  const autocannon = require('autocannon');
  const probeBefore = await probes(port);
  const before = JSON.parse(await get(port, '/__cpu'));
  const ticksBefore = cpuTicks();
  const clientBefore = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let lat = new Float64Array(1 << 17);
  let n = 0;
  const r = await new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: `http://127.0.0.1:${port}`,
        connections,
        duration: seconds,
        pipelining: 1,
        requests: REQUESTS,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    inst.on('response', (_client, _status, _bytes, ms) => {
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = ms;
    });
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e3; // µs
  const client = process.cpuUsage(clientBefore);
  const ticksAfter = cpuTicks();
  const after = JSON.parse(await get(port, '/__cpu'));
  const probeAfter = await probes(port);
  const served = after.served - before.served;
  const serverCpuMicros = after.cpuMicros - before.cpuMicros;
  const clientCpuMicros = client.user + client.system;
  const sorted = lat.subarray(0, n).sort();
  const q = (p) => (n ? sorted[Math.min(n - 1, Math.ceil(p * n) - 1)] : NaN);

  const problems = checkRun(r, before, after, connections);

  const core = (k, ownMicros) => {
    if (!ticksBefore || !ticksAfter || !ticksBefore[k] || !ticksAfter[k]) return { other: null, steal: null };
    const busy = (ticksAfter[k].busy - ticksBefore[k].busy) * TICK_US;
    const steal = (ticksAfter[k].steal - ticksBefore[k].steal) * TICK_US;
    return { other: Math.max(0, busy - ownMicros) / wall, steal: steal / wall };
  };
  return {
    rps: r.requests.total / r.duration,
    p50: q(0.5),
    p99: q(0.99),
    total: r.requests.total,
    served,
    problems,
    cpuPerReq: serverCpuMicros / served,
    serverCpu: serverCpuMicros / wall,
    clientCpu: clientCpuMicros / wall,
    // Work that was neither the server nor autocannon, and hypervisor steal, per core
    // (fraction of the run's wall time); only meaningful when pinned.
    serverCore: core(String(SERVER_CPU), serverCpuMicros),
    clientCore: core(String(CLIENT_CPU), clientCpuMicros),
    // µs of the speed probe just before and just after the run, per core.
    probe: { server: [probeBefore.server, probeAfter.server], client: [probeBefore.client, probeAfter.client] },
  };
}

// Each core's reference speed is the median of its last 16 probes (8 runs): a lasting
// change of the host's speed hits every variant of a round alike and becomes the new
// reference; what is flagged is a core that was slow around one run.
const probeHistory = { server: [], client: [] };
/** Sets r.slowdown (how much slower than the reference the slower probe of the run was,
 * 0.1 = 10%), then adds the run's probes to the history. */
function noteProbes(r) {
  r.slowdown = 0;
  for (const side of ['server', 'client']) {
    const h = probeHistory[side];
    if (h.length) r.slowdown = Math.max(r.slowdown, Math.max(...r.probe[side]) / median(h) - 1);
    h.push(...r.probe[side]);
    if (h.length > 16) h.splice(0, h.length - 16);
  }
  return r;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Busy + steal fraction of the busier of our two cores over `ms` while we do nothing. */
async function idleBusy(ms) {
  const a = cpuTicks();
  await sleep(ms);
  const b = cpuTicks();
  if (!a || !b) return null;
  let worst = 0;
  for (const k of [String(SERVER_CPU), String(CLIENT_CPU)]) {
    if (!a[k] || !b[k]) return null;
    const total = b[k].total - a[k].total;
    if (total > 0) worst = Math.max(worst, (b[k].busy - a[k].busy + b[k].steal - a[k].steal) / total);
  }
  return worst;
}

/** Fraction of the busier core's time that went to neither side (null: unknown). */
function otherWork(r) {
  const a = r.serverCore;
  const b = r.clientCore;
  if (a.other === null || b.other === null) return null;
  return Math.max(a.other + a.steal, b.other + b.steal);
}
/** A run is disturbed when other work took more than 5% of a core or a core was slow. */
function disturbance(r) {
  const o = otherWork(r);
  return Math.max(o === null ? 0 : o / QUIET, r.slowdown / SLOW); // > 1: disturbed
}

/** Quantile with linear interpolation (R type 7). */
function quantile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  return lo + 1 < s.length ? s[lo] + (h - lo) * (s[lo + 1] - s[lo]) : s[lo];
}
const median = (xs) => quantile(xs, 0.5);
const summary = (xs) => ({ median: median(xs), q1: quantile(xs, 0.25), q3: quantile(xs, 0.75) });

function uptime() {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

/** PASS / FAIL / INCONCLUSIVE for "within TARGET", given a ratio's IQR. */
function verdict(s, higherIsBetter) {
  const lo = higherIsBetter ? 1 - TARGET : -Infinity;
  const hi = higherIsBetter ? Infinity : 1 + TARGET;
  if (s.q1 >= lo && s.q3 <= hi) return 'PASS';
  if (s.q3 < lo || s.q1 > hi) return 'FAIL';
  return 'INCONCLUSIVE';
}

const pct = (x, digits = 1) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(digits)}%`;
const fmtRatio = (s) => `${pct(s.median - 1)} [${pct(s.q1 - 1)}, ${pct(s.q3 - 1)}]`;
const int = (x) => Math.round(x).toLocaleString('en-US');

async function main() {
  const long = argv.includes('--long');
  const DURATION = opt('duration', 2);
  const ROUNDS = Math.round(opt('rounds', long ? 30 : 12));
  const CONNECTIONS = Math.round(opt('connections', 32));
  const WARMUP = opt('warmup', 3);
  const PROCS = Math.round(opt('procs', 3));
  const SAME_PROCESS = argv.includes('--same-process');
  const INTERLEAVED = !SAME_PROCESS && !argv.includes('--separate');
  const RETRIES = argv.includes('--retries') && argv[argv.indexOf('--retries') + 1] === '0' ? 0 : Math.round(opt('retries', 2));
  const onlyArg = argv.indexOf('--only');
  const only = onlyArg >= 0 ? argv[onlyArg + 1].split(',') : null;
  const VARIANTS = only ? ALL_VARIANTS.filter((v) => v === 'none' || only.includes(v)) : ALL_VARIANTS;
  const pin = !argv.includes('--no-pin') && process.platform === 'linux' && os.cpus().length >= 2 &&
    spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  if (pin) spawnSync('taskset', ['-pc', String(CLIENT_CPU), String(process.pid)]); // autocannon on CPU 0

  const cpus = os.cpus();
  const loadBefore = uptime();
  if (INTERLEAVED) {
    const ok = await require('./server-interleaved').runInterleaved({
      variants: VARIANTS,
      procs: PROCS,
      seconds: opt('seconds', long ? 1200 : 120),
      warmup: WARMUP * VARIANTS.length, // --warmup s for each variant, served in turn
      phaseMs: opt('phase-ms', 250),
      connections: CONNECTIONS,
      seed: Math.round(opt('seed', 1)),
      pin,
      cpus,
      loadBefore,
      uptime,
      timing: FINISH_TIMING ? 'finish listener' : 'sync after res.end()',
    });
    if (!ok) process.exitCode = 1;
    return;
  }
  for (let i = 0; i < 30; i++) speedProbe(); // compiled before it is relied on
  const planned = VARIANTS.length * (ROUNDS * (DURATION + 0.15) + PROCS * (WARMUP + 0.3));
  // Seconds at most spent waiting for quiet and repeating disturbed runs.
  const budget = !argv.includes('--patience') ? Math.round(planned / 3) : argv[argv.indexOf('--patience') + 1] === '0' ? 0 : opt('patience', 60);
  console.log(
    `bench:server: ${VARIANTS.length} variants x ${ROUNDS} rounds x ${DURATION} s, ` +
      (SAME_PROCESS ? `${PROCS} processes serving every variant in turn (+ ${WARMUP} s warm-up per variant and process), ` : `${PROCS} processes per variant (+ ${WARMUP} s warm-up each), `) +
      `${CONNECTIONS} connections, ~${(planned / 60).toFixed(1)} min + at most ${(budget / 60).toFixed(1)} min waiting out other work; ` +
      `${cpus.length} x ${cpus[0]?.model.trim()}, node ${process.version}; ` +
      (pin ? `server on CPU ${SERVER_CPU}, autocannon on CPU ${CLIENT_CPU}` : 'no CPU pinning'),
  );
  console.log(`before: ${loadBefore}`);
  const servers = {};
  const results = Object.fromEntries(VARIANTS.map((v) => [v, []]));
  let failed = false;
  let retried = 0; // runs repeated
  let waited = 0; // seconds waited for the machine to be quiet
  let spent = 0; // seconds of both
  try {
    if (SAME_PROCESS) {
      // Every variant in each process: servers[v][k] is process k for every v.
      const procs = [];
      for (let k = 0; k < PROCS; k++) procs.push(await startServer(`all:${VARIANTS.join(',')}`, pin ? SERVER_CPU : undefined));
      for (const v of VARIANTS) servers[v] = procs;
    } else {
      for (const v of VARIANTS) {
        servers[v] = [];
        for (let k = 0; k < PROCS; k++) servers[v].push(await startServer(v, pin ? SERVER_CPU : undefined));
      }
    }
    // Makes `v` the variant process `srv` serves (a no-op for a process of one variant).
    const use = async (srv, v) => {
      if (SAME_PROCESS) await get(srv.port, `/__use?v=${v}`);
    };
    for (const v of VARIANTS) {
      for (const srv of servers[v]) {
        await use(srv, v);
        noteProbes(await load(srv.port, WARMUP, CONNECTIONS)); // JIT, sockets, heap
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = VARIANTS.map((_, k) => VARIANTS[(k + round) % VARIANTS.length]);
      // Before a run, while the machine is busy with other work, wait (within the budget).
      const quietFirst = async () => {
        let said = -Infinity;
        while (pin && spent < budget) {
          const busy = await idleBusy(500);
          spent += 0.5;
          if (busy === null || busy <= QUIET) return;
          waited += 0.5;
          if (waited - said >= 15) {
            said = waited;
            console.log(`  (waiting: other work uses ${(busy * 100).toFixed(0)}% of a core; ${Math.round(budget - spent)} s of patience left)`);
          }
        }
      };
      for (const v of order) {
        await quietFirst();
        const srv = servers[v][round % PROCS];
        const port = srv.port;
        await use(srv, v);
        let best = await load(port, DURATION, CONNECTIONS);
        noteProbes(best);
        best.attempts = 1;
        while (pin && best.attempts <= RETRIES && disturbance(best) > 1 && spent + DURATION <= budget) {
          spent += DURATION;
          retried++;
          await quietFirst();
          const again = await load(port, DURATION, CONNECTIONS);
          noteProbes(again);
          again.attempts = best.attempts + 1;
          if (disturbance(again) < disturbance(best)) best = again;
          else best.attempts = again.attempts;
        }
        best.proc = round % PROCS;
        results[v].push(best);
      }
      const base = results.none[round];
      console.log(
        `round ${String(round + 1).padStart(2)}: ` +
          order
            .map((v) => {
              const r = results[v][round];
              const o = otherWork(r);
              const busy = disturbance(r) <= 1 ? '' : ` [${o !== null && o > QUIET ? `other work ${(o * 100).toFixed(0)}%` : ''}${r.slowdown > SLOW ? `${o !== null && o > QUIET ? ', ' : ''}core ${(r.slowdown * 100).toFixed(0)}% slow` : ''}]`;
              return `${v} ${int(r.rps)}/s ${r.cpuPerReq.toFixed(1)}µs` + (v === 'none' ? '' : ` (${pct(r.rps / base.rps - 1, 0)} ${pct(r.cpuPerReq / base.cpuPerReq - 1, 0)})`) +
                busy + (r.attempts > 1 ? ` x${r.attempts}` : '');
            })
            .join(' | '),
      );
    }
    const loadAfter = uptime();
    for (const v of VARIANTS) for (const r of results[v]) r.clean = pin && disturbance(r) <= 1;

    // Verification: every request answered as expected and counted by the instruments.
    console.log('');
    for (const v of VARIANTS) {
      const problems = results[v].flatMap((r) => r.problems);
      if (problems.length) {
        failed = true;
        console.log(`  FAIL ${v}: ${problems.slice(0, 4).join('; ')}`);
      }
    }
    if (!(await verifyCounts(LIBRARIES.filter((x) => VARIANTS.includes(x)).flatMap((v) => servers[v].map((srv, k) => ({ v, srv, k })))))) failed = true;
    const totalProblems = VARIANTS.reduce((a, v) => a + results[v].reduce((b, r) => b + r.problems.length, 0), 0);
    if (totalProblems === 0) console.log(`  ok   every run: 0 errors, timeouts, resets; no 1xx/3xx/5xx; the only 4xx are the /missing 404s`);

    // The table.
    // Which rounds count: those where this variant's run and that round's `none` were both
    // undisturbed, if there are enough of them.
    const roundsFor = (v) => {
      const clean = [];
      for (let k = 0; k < ROUNDS; k++) if (results[v][k].clean && results.none[k].clean) clean.push(k);
      return clean.length >= MIN_CLEAN ? { rounds: clean, clean: true } : { rounds: [...Array(ROUNDS).keys()], clean: false };
    };
    const rows = VARIANTS.map((v) => {
      const used = roundsFor(v);
      const rs = used.rounds.map((k) => results[v][k]);
      const bases = used.rounds.map((k) => results.none[k]);
      const rpsRatio = summary(rs.map((r, k) => r.rps / bases[k].rps));
      const cpuRatio = summary(rs.map((r, k) => r.cpuPerReq / bases[k].cpuPerReq));
      const other = rs.map((r) => r.serverCore.other).filter((x) => x !== null);
      return {
        variant: v,
        title: TITLE[v],
        rounds: used.rounds.length,
        cleanRoundsOnly: used.clean,
        rps: median(rs.map((r) => r.rps)),
        rpsRatio,
        p50Ms: median(rs.map((r) => r.p50)),
        p99Ms: median(rs.map((r) => r.p99)),
        cpuPerReq: median(rs.map((r) => r.cpuPerReq)),
        cpuRatio,
        cpuDeltaMicros: median(rs.map((r, k) => r.cpuPerReq - bases[k].cpuPerReq)),
        serverCpu: median(rs.map((r) => r.serverCpu)),
        clientCpu: median(rs.map((r) => r.clientCpu)),
        otherOnServerCore: other.length ? median(other) : null,
        problems: rs.reduce((a, r) => a + r.problems.length, 0),
        // Median CPU/request ratio of each of the variant's processes (over its rounds).
        perProcessCpuRatio: [...Array(PROCS).keys()].map((p) => {
          const ks = used.rounds.filter((k) => results[v][k].proc === p);
          return ks.length ? median(ks.map((k) => results[v][k].cpuPerReq / results.none[k].cpuPerReq)) : null;
        }),
      };
    });
    console.log('');
    const cleanRuns = VARIANTS.reduce((a, v) => a + results[v].filter((r) => r.clean).length, 0);
    console.log(
      `undisturbed runs: ${cleanRuns} of ${VARIANTS.length * ROUNDS} (${retried} repeated, ${Math.round(waited)} s waited for quiet); ` +
        `medians over the rounds in the "rounds" column; ratios are per round against \`none\` of the same round: median [IQR]`,
    );
    console.log('');
    console.log('| server | rounds | req/s | req/s vs none | p99 ms | server CPU µs/req | CPU/req vs none | server CPU use |');
    console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
    for (const r of rows) {
      console.log(
        `| ${r.title} | ${r.rounds}${r.cleanRoundsOnly ? '' : ' (all, busy)'} | ${int(r.rps)} | ${r.variant === 'none' ? '' : fmtRatio(r.rpsRatio)} | ${r.p99Ms.toFixed(2)} | ` +
          `${r.cpuPerReq.toFixed(1)} | ${r.variant === 'none' ? '' : fmtRatio(r.cpuRatio)} | ${(r.serverCpu * 100).toFixed(0)}% |`,
      );
    }
    if (PROCS > 1) {
      console.log('');
      console.log(
        `per process, CPU/req vs none (median of its rounds): ` +
          rows
            .filter((r) => r.variant !== 'none')
            .map((r) => `${r.variant} ${r.perProcessCpuRatio.map((x) => (x === null ? '-' : pct(x - 1))).join(' ')}`)
            .join('; '),
      );
    }
    const row = (v) => rows.find((r) => r.variant === v);
    const none = row('none');
    console.log('');
    console.log(
      `saturation: the uninstrumented server used ${(none.serverCpu * 100).toFixed(0)}% of its core, autocannon ${(none.clientCpu * 100).toFixed(0)}% of its` +
        (none.otherOnServerCore !== null ? `; other work on the server's core: ${(none.otherOnServerCore * 100).toFixed(0)}% (median)` : ''),
    );
    console.log(`load: before ${loadBefore.replace(/.*load average/, 'load average')}; after ${loadAfter.replace(/.*load average/, 'load average')}`);
    const hm = row('hotmeter');
    const aa = row('none2');
    const verdicts = {};
    if (aa) {
      console.log(
        `A/A control (a 2nd uninstrumented process): req/s ${fmtRatio(aa.rpsRatio)}, CPU/req ${fmtRatio(aa.cpuRatio)}: ` +
          `the noise floor of this run`,
      );
    }
    if (hm) {
      // Two identical servers differ by up to the A/A control's IQR: a PASS or FAIL counts
      // only if hotmeter's IQR is further than that from the 2% line.
      const judge = (s, metric, higherIsBetter) => {
        const v = verdict(s, higherIsBetter);
        const line = higherIsBetter ? 1 - TARGET : 1 + TARGET;
        const margin = v === 'INCONCLUSIVE' ? 0 : Math.min(Math.abs(s.q1 - line), Math.abs(s.q3 - line));
        const noise = aa ? Math.max(Math.abs(aa[metric].q1 - 1), Math.abs(aa[metric].q3 - 1)) : 0;
        if (v !== 'INCONCLUSIVE' && margin < noise) {
          return { verdict: 'INCONCLUSIVE', raw: v, why: `its IQR is ${(margin * 100).toFixed(1)}% from the line, less than the A/A control's ±${(noise * 100).toFixed(1)}%` };
        }
        return { verdict: v, raw: v, why: v === 'INCONCLUSIVE' ? 'the IQR straddles the 2% line' : '' };
      };
      const tp = judge(hm.rpsRatio, 'rpsRatio', true);
      const cpu = judge(hm.cpuRatio, 'cpuRatio', false);
      verdicts.throughput = tp.verdict;
      verdicts.cpuPerRequest = cpu.verdict;
      verdicts.throughputIgnoringControl = tp.raw;
      verdicts.cpuPerRequestIgnoringControl = cpu.raw;
      verdicts.fromCleanRounds = hm.cleanRoundsOnly;
      const why = (j) => (j.why ? `; ${j.why}${j.raw !== j.verdict ? `, else ${j.raw}` : ''}` : '');
      console.log(
        `VERDICT "hotmeter within 2% of no metrics": throughput ${tp.verdict} (${fmtRatio(hm.rpsRatio)}${why(tp)}), ` +
          `server CPU per request ${cpu.verdict} (${fmtRatio(hm.cpuRatio)}, ${hm.cpuDeltaMicros >= 0 ? '+' : ''}${hm.cpuDeltaMicros.toFixed(2)} µs${why(cpu)})` +
          (hm.cleanRoundsOnly ? '' : `; fewer than ${MIN_CLEAN} undisturbed rounds, so from all rounds: treat with care`),
      );
      console.log(
        '  (PASS: the whole IQR within 2%; FAIL: the whole IQR beyond 2%; INCONCLUSIVE: the IQR straddles the 2% line, ' +
          "or is closer to it than the A/A control's IQR reaches)",
      );
      const bare = row('bare');
      if (bare) {
        const ks = [];
        for (let k = 0; k < ROUNDS; k++) if (results.hotmeter[k].clean && results.bare[k].clean && results.none[k].clean) ks.push(k);
        const use = ks.length >= MIN_CLEAN ? ks : [...Array(ROUNDS).keys()];
        const own = summary(use.map((k) => results.hotmeter[k].cpuPerReq / results.bare[k].cpuPerReq));
        const ownRps = summary(use.map((k) => results.hotmeter[k].rps / results.bare[k].rps));
        const ownMicros = median(use.map((k) => results.hotmeter[k].cpuPerReq - results.bare[k].cpuPerReq));
        const harness = median(use.map((k) => results.bare[k].cpuPerReq - results.none[k].cpuPerReq));
        const ownTp = judge(ownRps, 'rpsRatio', true);
        const ownCpu = judge(own, 'cpuRatio', false);
        verdicts.ownCallsThroughput = ownTp.verdict;
        verdicts.ownCallsCpuPerRequest = ownCpu.verdict;
        console.log(
          `split of hotmeter's CPU per request vs none: the timing harness (bare - none) ${harness >= 0 ? '+' : ''}${harness.toFixed(2)} µs, ` +
            `hotmeter's own calls (hotmeter - bare) ${ownMicros >= 0 ? '+' : ''}${ownMicros.toFixed(2)} µs`,
        );
        console.log(
          `hotmeter vs the timing-only harness (its own calls within 2%?): throughput ${ownTp.verdict} (${fmtRatio(ownRps)}${why(ownTp)}), ` +
            `server CPU per request ${ownCpu.verdict} (${fmtRatio(own)}${why(ownCpu)})`,
        );
      }
    }

    writeResults({
      method: SAME_PROCESS ? 'same-process' : 'separate',
      date: new Date().toISOString(),
      environment: {
        node: process.version,
        cpus: cpus.length,
        cpu: cpus[0]?.model.trim(),
        pinned: pin ? { server: SERVER_CPU, autocannon: CLIENT_CPU } : false,
        uptimeBefore: loadBefore,
        uptimeAfter: loadAfter,
      },
      config: { duration: DURATION, rounds: ROUNDS, procs: PROCS, sameProcess: SAME_PROCESS, connections: CONNECTIONS, warmup: WARMUP, retries: RETRIES, patience: budget, quiet: QUIET, slow: SLOW, variants: VARIANTS, target: TARGET, timing: FINISH_TIMING ? "finish listener" : "sync after res.end()" },
      repeatedRuns: retried,
      waitedSeconds: waited,
      verdict: verdicts,
      rows,
      runs: results,
    });
  } finally {
    for (const s of new Set(Object.values(servers).flat())) s.child.kill('SIGTERM');
  }
  if (failed) process.exitCode = 1;
}

module.exports = { writeResults, get, startServer, median, summary, pct, int, TITLE, TARGET, LIBRARIES, SERVER_CPU, verifyCounts, checkRun, REQUESTS };

if (require.main === module) {
  if (argv[0] === '--serve') serve(argv[1]);
  else main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
