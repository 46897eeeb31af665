// The OTLP push path, side by side: hotmeter vs @opentelemetry/sdk-metrics, each in its own
// child process (node --expose-gc). 100,000 label sets (--n), each with a counter and a
// 16-bucket histogram (200,000 points), recorded by direct calls, read by a
// PeriodicExportingMetricReader (interval 1 h: flushed by hand).
//
//   npm run bench:otlp                       both SDKs, 100,000 label sets
//   node bench/otlp.js --n 20000 --flushes 5
//
// Scenarios (each in a fresh process per SDK):
//   cumulative  InMemoryMetricExporter (CUMULATIVE): collection and conversion alone. The
//               first flush after recording, then --flushes (default 9) more with nothing
//               written between them (an idle registry), then the same count with 1% of
//               the label sets written before each.
//   delta       InMemoryMetricExporter (DELTA): 10% of the label sets written before each
//               flush (20,000 points per flush), then 1% (2,000 points); the first flush
//               (200,000 points) apart. hotmeter keeps its defaults: the thread caches the
//               handle of every series written twice for cacheIdleMillis (60 s), longer
//               than the whole run, so its passes read every series written in the run.
//   delta-paced as delta, with hotmeter's cacheIdleMillis 0: a cached handle is given back
//               once its series was idle for one export interval, as the defaults do in
//               production (export interval 60 s, cacheIdleMillis 60 s) where this run's
//               flushes come ~60 ms apart. A delta pass then reads what was written in the
//               last two intervals, not every series the run ever wrote.
//   otlp-proto  end to end: @opentelemetry/exporter-metrics-otlp-proto's OTLPMetricExporter
//               (cumulative) posting to a loopback OTLP/HTTP receiver in the parent process
//               (reads the body, answers 200 with an empty response); 1% written before
//               each flush; bytes per export reported.
//   otlp-proto-sliced  as otlp-proto, but hotmeter exports with its own OTLPMetricExporter
//               (the same transport, the request encoded in slices); sdk-metrics keeps the
//               upstream exporter.
// Per flush: wall time of reader.forceFlush() (collect + convert + export; a full GC and
// 30 ms of idle event loop before each), and the longest event-loop stall during it (a
// 1 ms setInterval probe: the largest gap between its ticks). Reported: median and max
// over the flushes; ratios sdk-metrics / hotmeter (> 1: hotmeter faster).
// Results: a table on stdout and bench/results/otlp.json.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const BOUNDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]; // 16 buckets
const PEERS = ['hotmeter', 'sdk-metrics'];
const SCENARIOS = ['cumulative', 'delta', 'delta-paced', 'otlp-proto', 'otlp-proto-sliced'];
const isDelta = (scenario) => scenario === 'delta' || scenario === 'delta-paced';
const isOtlp = (scenario) => scenario === 'otlp-proto' || scenario === 'otlp-proto-sliced';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function child(peer, scenario, n, flushes, url) {
  const sdk = require('@opentelemetry/sdk-metrics');
  let exporter;
  if (isOtlp(scenario)) {
    const { OTLPMetricExporter } =
      scenario === 'otlp-proto-sliced' && peer === 'hotmeter' ? require('..') : require('@opentelemetry/exporter-metrics-otlp-proto');
    exporter = new OTLPMetricExporter({ url, timeoutMillis: 60_000 });
  } else {
    exporter = new sdk.InMemoryMetricExporter(isDelta(scenario) ? sdk.AggregationTemporality.DELTA : sdk.AggregationTemporality.CUMULATIVE);
  }
  const reader = new sdk.PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, exportTimeoutMillis: 60_000 });
  let provider;
  if (peer === 'hotmeter') {
    const hm = require('..');
    provider = new hm.MeterProvider({ readers: [reader], cardinalityLimit: n + 10, ...(scenario === 'delta-paced' ? { cacheIdleMillis: 0 } : {}) });
  } else {
    provider = new sdk.MeterProvider({ readers: [reader], views: [{ instrumentName: '*', aggregationCardinalityLimit: n + 10 }] });
  }
  const meter = provider.getMeter('bench', '1.0.0');
  const c = meter.createCounter('http.server.requests', { description: 'Requests served' });
  const h = meter.createHistogram('http.server.duration', { unit: 's', description: 'Request duration', advice: { explicitBucketBoundaries: BOUNDS } });
  const attrs = [];
  const methods = ['GET', 'POST', 'PUT', 'DELETE'];
  for (let i = 0; i < n; i++) attrs.push({ 'http.request.method': methods[i & 3], 'http.route': `/api/v1/resource/${i}`, 'http.response.status_code': 200 + (i % 5) });
  let rnd = 1;
  const rand = () => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  const write = (share) => {
    const step = Math.round(1 / share);
    const phase = Math.floor(rand() * step);
    for (let i = phase; i < n; i += step) {
      c.add(1, attrs[i]);
      h.record(rand() * 2, attrs[i]);
    }
  };
  write(1);
  let last = performance.now();
  let gap = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    if (now - last > gap) gap = now - last;
    last = now;
  }, 1);
  const flush = async () => {
    global.gc();
    await new Promise((r) => setTimeout(r, 30));
    last = performance.now();
    gap = 0;
    const t0 = performance.now();
    await reader.forceFlush();
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 3)); // the probe's tick after the flush
    if (exporter.reset) exporter.reset();
    return { ms, stall: gap };
  };
  const out = { first: await flush(), runs: {} };
  const phases = scenario === 'cumulative' ? [['idle', 0], ['1%', 0.01]] : isDelta(scenario) ? [['10%', 0.1], ['1%', 0.01]] : [['1%', 0.01]];
  for (const [name, share] of phases) {
    const runs = [];
    for (let k = 0; k < flushes; k++) {
      if (share > 0) write(share);
      runs.push(await flush());
    }
    out.runs[name] = runs;
  }
  clearInterval(probe);
  await provider.shutdown();
  return out;
}

function receiver() {
  const stats = { requests: 0, bytes: 0 };
  const server = http.createServer((req, res) => {
    let bytes = 0;
    req.on('data', (d) => (bytes += d.length));
    req.on('end', () => {
      stats.requests++;
      stats.bytes += bytes;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, stats, url: `http://127.0.0.1:${server.address().port}/v1/metrics` })));
}

function runChild(peer, scenario, n, flushes, url) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', __filename, '--child', peer, scenario, String(n), String(flushes), url ?? ''], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text)) : reject(new Error(`${peer} ${scenario}: exit ${code}`))));
  });
}

async function main() {
  if (process.argv[2] === '--child') {
    const [, , , peer, scenario, n, flushes, url] = process.argv;
    const out = await child(peer, scenario, Number(n), Number(flushes), url || undefined);
    process.stdout.write(JSON.stringify(out));
    return;
  }
  const n = Number(arg('n', 100_000));
  const flushes = Number(arg('flushes', 9));
  const peers = arg('peers', PEERS.join(',')).split(',');
  const scenarios = arg('scenarios', SCENARIOS.join(',')).split(',');
  const results = {};
  const rcv = await receiver();
  try {
    for (const scenario of scenarios) {
      for (const peer of peers) {
        const before = { ...rcv.stats };
        const r = await runChild(peer, scenario, n, flushes, isOtlp(scenario) ? rcv.url : undefined);
        if (isOtlp(scenario)) r.bytesPerExport = Math.round((rcv.stats.bytes - before.bytes) / Math.max(1, rcv.stats.requests - before.requests));
        results[`${scenario}/${peer}`] = r;
        process.stderr.write(`done ${scenario} ${peer}\n`);
      }
    }
  } finally {
    rcv.server.close();
  }
  const rows = [];
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  for (const scenario of scenarios) {
    const first = {};
    const phaseNames = Object.keys(results[`${scenario}/${peers[0]}`].runs);
    for (const peer of peers) first[peer] = results[`${scenario}/${peer}`].first;
    rows.push([`${scenario}: first flush (all ${2 * n} points)`, ...peers.map((p) => `${f(first[p].ms)} ms, stall ${f(first[p].stall)}`), ratio(first, peers, (x) => x.ms)]);
    for (const ph of phaseNames) {
      const agg = {};
      for (const peer of peers) {
        const runs = results[`${scenario}/${peer}`].runs[ph];
        agg[peer] = { ms: median(runs.map((r) => r.ms)), stall: Math.max(...runs.map((r) => r.stall)), stallMedian: median(runs.map((r) => r.stall)) };
      }
      const label = `${scenario}: ${ph === 'idle' ? 'nothing' : ph} written between flushes (median of ${flushes})`;
      rows.push([label, ...peers.map((p) => `${f(agg[p].ms)} ms, stall ${f(agg[p].stallMedian)}/${f(agg[p].stall)}`), ratio(agg, peers, (x) => x.ms)]);
      for (const peer of peers) results[`${scenario}/${peer}`][`summary:${ph}`] = agg[peer];
    }
    if (isOtlp(scenario)) rows.push([`${scenario}: bytes per export`, ...peers.map((p) => String(results[`${scenario}/${p}`].bytesPerExport)), '']);
  }
  const header = ['', ...peers.map((p) => `${p} (stall median/max ms)`), `${peers[1] ?? ''}/${peers[0]}`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'otlp.json'), JSON.stringify({ n, flushes, node: process.version, date: new Date().toISOString(), results }, null, 1));
}

function ratio(agg, peers, pick) {
  if (peers.length < 2) return '';
  const a = pick(agg[peers[0]]);
  const b = pick(agg[peers[1]]);
  return `${(b / a).toFixed(2)}x`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
