'use strict';
// Load: one HTTP server, four ways (and a fifth, the bare timing harness), under autocannon
// on loopback.
//
//   npm run bench:server                                  (builds the TS, then runs this file)
//   node bench/server.js --duration 10 --rounds 5 --connections 32
//
// Variants, each in its own server process (identical handler and routes):
//   none        no metrics at all
//   bare        the instrumentation harness without a library: the request's start time,
//               a 'finish' listener and the duration computed, then nothing recorded
//               (what any library's variant pays before its own calls)
//   hotmeter    hotmeter's MeterProvider behind @opentelemetry/api
//   otel        @opentelemetry/sdk-metrics' MeterProvider behind @opentelemetry/api
//   prom        prom-client Counter and Histogram
// Each instrumented variant records, per request, a request counter and a duration
// histogram (seconds, 11 bounds) with {method, route, status}, as fresh attribute
// objects, when the response finishes. Routes: GET /api/users, GET /api/orders/:id,
// POST /api/orders, GET /missing (404); autocannon cycles through them.
//
// Method
// - The four servers start first and stay up; autocannon (in this process) drives one at
//   a time: a warm-up run each (--warmup s, discarded), then --rounds rounds in which
//   every variant runs --duration s, the order rotating per round (A B C D E, B C D E A, ...)
//   so drift and noise spread over all of them. Reported: the median over rounds of
//   requests/s and of p50 / p99 latency, and each variant's median throughput relative
//   to `none`.
// - With `taskset` available (Linux), the server gets CPU 1 and autocannon CPU 0 (--no-pin
//   to let the scheduler place them): on a 2-core machine each side gets a core, and
//   every variant gets the same one.
// - Besides requests/s, each run measures the server's CPU time per request served
//   (process.cpuUsage() before and after, over its own request count) and both sides'
//   CPU use: on a shared 2-core machine requests/s moves with whatever else runs, the
//   CPU cost of a request much less, and the CPU use shows whether the server (and not
//   autocannon) was the bottleneck.
// - Nothing is skipped unnoticed: afterwards each instrumented server collects and
//   reports what its instruments counted, which must equal the requests it served
//   (exactly, per route and status). A mismatch prints FAIL and exits 1.
// - The verdict (hotmeter within 2% of `none`) is printed; it does not change the exit
//   status. Results: bench/results/server.json.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const VARIANTS = ['none', 'bare', 'hotmeter', 'otel', 'prom'];
const LIBRARIES = ['hotmeter', 'otel', 'prom'];
const TITLE = {
  none: 'no metrics',
  bare: 'timing only, no library',
  hotmeter: 'hotmeter',
  otel: '@opentelemetry/sdk-metrics',
  prom: 'prom-client',
};
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

if (argv[0] === '--serve') serve(argv[1]);
else main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// ---------------------------------------------------------------------------------------
// Server side (a child process per variant)

function serve(variant) {
  let record = () => {};
  let verify = async () => ({});
  if (variant === 'hotmeter' || variant === 'otel') {
    const api = require('@opentelemetry/api');
    let provider;
    let collectTotals;
    if (variant === 'hotmeter') {
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
    api.metrics.setGlobalMeterProvider(provider);
    const meter = api.metrics.getMeter('bench-server');
    const requests = meter.createCounter('http.server.requests', { valueType: api.ValueType.INT });
    const duration = meter.createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: BOUNDS } });
    record = (method, route, status, seconds) => {
      requests.add(1, { method, route, status });
      duration.record(seconds, { method, route, status });
    };
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
  } else if (variant !== 'none' && variant !== 'bare') {
    throw new Error(`unknown variant ${variant}`);
  }
  const instrumented = variant !== 'none';
  const served = {}; // what the handler itself saw: "method route status" -> count
  let servedTotal = 0;

  const server = http.createServer((req, res) => {
    const t0 = instrumented ? process.hrtime.bigint() : 0n;
    const method = req.method;
    const url = req.url;
    if (url === '/__verify') {
      verify().then((counted) => res.end(JSON.stringify({ served, counted })));
      return;
    }
    if (url === '/__cpu') {
      // CPU time this process used so far and the requests it served: cost per request.
      const c = process.cpuUsage();
      res.end(JSON.stringify({ cpuMicros: c.user + c.system, served: servedTotal }));
      return;
    }
    servedTotal++;
    let route;
    let status = 200;
    let body;
    if (url === '/api/users') {
      route = '/api/users';
      body = '[{"id":1,"name":"ada"},{"id":2,"name":"grace"}]';
    } else if (url.startsWith('/api/orders/')) {
      route = '/api/orders/:id';
      body = `{"id":${JSON.stringify(url.slice(12))},"total":42}`;
    } else if (url === '/api/orders' && method === 'POST') {
      route = '/api/orders';
      status = 201;
      body = '{"id":7}';
      req.resume();
    } else {
      route = 'unmatched';
      status = 404;
      body = 'not found';
    }
    const key = `${method} ${route} ${status}`;
    served[key] = (served[key] || 0) + 1;
    if (instrumented) {
      res.once('finish', () => record(method, route, status, Number(process.hrtime.bigint() - t0) / 1e9));
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
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

async function load(port, seconds, connections) {
  const autocannon = require('autocannon');
  const before = JSON.parse(await get(port, '/__cpu'));
  const clientBefore = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    pipelining: 1,
    requests: [
      { method: 'GET', path: '/api/users' },
      { method: 'GET', path: '/api/orders/1234' },
      { method: 'POST', path: '/api/orders', body: '{"item":1}', headers: { 'content-type': 'application/json' } },
      { method: 'GET', path: '/api/users' },
      { method: 'GET', path: '/missing' },
    ],
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e3; // µs
  const client = process.cpuUsage(clientBefore);
  const after = JSON.parse(await get(port, '/__cpu'));
  const served = after.served - before.served;
  return {
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    errors: r.errors + r.timeouts,
    // The server's CPU time per request served: far less sensitive to a shared machine's
    // noise than requests/s (time the server was not scheduled costs it nothing here).
    cpuPerReq: (after.cpuMicros - before.cpuMicros) / served,
    serverCpu: (after.cpuMicros - before.cpuMicros) / wall,
    clientCpu: (client.user + client.system) / wall,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

async function main() {
  const DURATION = opt('duration', 5);
  const ROUNDS = Math.round(opt('rounds', 5));
  const CONNECTIONS = Math.round(opt('connections', 32));
  const WARMUP = opt('warmup', 2);
  const pin = !argv.includes('--no-pin') && process.platform === 'linux' && os.cpus().length >= 2 &&
    spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  if (pin) spawnSync('taskset', ['-pc', '0', String(process.pid)]); // autocannon on CPU 0

  const cpus = os.cpus();
  console.log(
    `bench:server: ${VARIANTS.length} variants x ${ROUNDS} rounds x ${DURATION} s, ${CONNECTIONS} connections, warm-up ${WARMUP} s; ` +
      `${cpus.length} x ${cpus[0]?.model.trim()}, node ${process.version}; ` +
      (pin ? 'server pinned to CPU 1, autocannon to CPU 0' : 'no CPU pinning'),
  );
  const servers = {};
  for (const v of VARIANTS) servers[v] = await startServer(v, pin ? 1 : undefined);
  const results = Object.fromEntries(VARIANTS.map((v) => [v, []]));
  try {
    for (const v of VARIANTS) await load(servers[v].port, WARMUP, CONNECTIONS); // JIT, sockets, heap
    for (let round = 0; round < ROUNDS; round++) {
      const order = VARIANTS.map((_, k) => VARIANTS[(k + round) % VARIANTS.length]);
      const line = [];
      for (const v of order) {
        const r = await load(servers[v].port, DURATION, CONNECTIONS);
        results[v].push(r);
        line.push(`${v} ${Math.round(r.rps)} req/s ${r.cpuPerReq.toFixed(1)} µs/req p99 ${r.p99} ms (cpu server ${(r.serverCpu * 100).toFixed(0)}% client ${(r.clientCpu * 100).toFixed(0)}%)${r.errors ? ` (${r.errors} errors)` : ''}`);
      }
      console.log(`round ${round + 1}:\n  ${line.join('\n  ')}`);
    }

    // Verification: every request served was counted by the instruments, exactly.
    let mismatch = false;
    for (const v of LIBRARIES) {
      const { served, counted } = JSON.parse(await get(servers[v].port, '/__verify'));
      const problems = [];
      for (const [key, n] of Object.entries(served)) {
        for (const metric of ['http.server.requests', 'http.server.request.duration']) {
          const got = counted[`${metric} ${key}`];
          if (got !== n) problems.push(`${metric} ${key}: counted ${got}, served ${n}`);
        }
      }
      const total = Object.values(served).reduce((a, b) => a + b, 0);
      console.log(`  ${problems.length === 0 ? 'ok  ' : 'FAIL'} ${v}: ${total} requests served, every one counted in both instruments${problems.length ? `: ${problems.slice(0, 3).join('; ')}` : ''}`);
      if (problems.length) mismatch = true;
    }

    // The table.
    const base = median(results.none.map((r) => r.rps));
    const baseCpu = median(results.none.map((r) => r.cpuPerReq));
    const rows = VARIANTS.map((v) => {
      const rps = median(results[v].map((r) => r.rps));
      const cpuPerReq = median(results[v].map((r) => r.cpuPerReq));
      return {
        variant: v,
        title: TITLE[v],
        rps,
        relative: rps / base,
        cpuPerReq,
        cpuOverhead: cpuPerReq / baseCpu - 1,
        serverCpu: median(results[v].map((r) => r.serverCpu)),
        clientCpu: median(results[v].map((r) => r.clientCpu)),
        p50: median(results[v].map((r) => r.p50)),
        p99: median(results[v].map((r) => r.p99)),
        spread: [Math.min(...results[v].map((r) => r.rps)), Math.max(...results[v].map((r) => r.rps))],
        errors: results[v].reduce((a, r) => a + r.errors, 0),
      };
    });
    console.log('');
    console.log(`| server | requests/s (median) | vs no metrics | server CPU µs/request | CPU vs no metrics | p50 ms | p99 ms | requests/s min..max |`);
    console.log(`|---|--:|--:|--:|--:|--:|--:|--:|`);
    for (const r of rows) {
      console.log(
        `| ${r.title} | ${Math.round(r.rps).toLocaleString('en-US')} | ${(r.relative * 100).toFixed(1)}% | ${r.cpuPerReq.toFixed(1)} | ` +
          `${r.variant === 'none' ? '' : `${r.cpuOverhead >= 0 ? '+' : ''}${(r.cpuOverhead * 100).toFixed(1)}%`} | ${r.p50} | ${r.p99} | ` +
          `${Math.round(r.spread[0]).toLocaleString('en-US')}..${Math.round(r.spread[1]).toLocaleString('en-US')} |`,
      );
    }
    const hm = rows.find((r) => r.variant === 'hotmeter');
    const noise = Math.max(...results.none.map((r) => r.rps)) / Math.min(...results.none.map((r) => r.rps)) - 1;
    const none = rows.find((r) => r.variant === 'none');
    console.log('');
    console.log(
      `saturation (median CPU use during the runs of the uninstrumented server): server ${(none.serverCpu * 100).toFixed(0)}% of a core, ` +
        `autocannon ${(none.clientCpu * 100).toFixed(0)}%`,
    );
    console.log(
      `target: hotmeter within 2% of no metrics: throughput ${hm.relative >= 0.98 ? 'PASS' : 'FAIL'} (${((hm.relative - 1) * 100).toFixed(1)}%), ` +
        `server CPU per request ${hm.cpuOverhead <= 0.02 ? 'PASS' : 'FAIL'} (${hm.cpuOverhead >= 0 ? '+' : ''}${(hm.cpuOverhead * 100).toFixed(1)}%); ` +
        `run-to-run spread of the uninstrumented server's requests/s: ${(noise * 100).toFixed(1)}%` +
        (noise > 0.04 ? ' (more than the 2% to resolve: the machine is noisy, trust the CPU column more)' : ''),
    );
    const bare = rows.find((r) => r.variant === 'bare');
    console.log(
      `hotmeter's own calls (vs the timing-only harness): throughput ${((hm.rps / bare.rps - 1) * 100).toFixed(1)}%, ` +
        `server CPU per request ${(hm.cpuPerReq - bare.cpuPerReq >= 0 ? '+' : '')}${(hm.cpuPerReq - bare.cpuPerReq).toFixed(1)} µs ` +
        `(${((hm.cpuPerReq / bare.cpuPerReq - 1) * 100).toFixed(1)}%)`,
    );
    const file = path.join(__dirname, 'results', 'server.json');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      JSON.stringify(
        {
          benchmark: 'bench:server',
          date: new Date().toISOString(),
          environment: { node: process.version, cpus: cpus.length, cpu: cpus[0]?.model.trim(), pinned: pin },
          config: { duration: DURATION, rounds: ROUNDS, connections: CONNECTIONS, warmup: WARMUP },
          rows,
          runs: results,
        },
        null,
        1,
      ) + '\n',
    );
    if (mismatch) process.exitCode = 1;
  } finally {
    for (const v of VARIANTS) servers[v].child.kill('SIGTERM');
  }
}
