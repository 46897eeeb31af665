// One export for a node:cluster fleet: hotmeter's processShared records against
// prom-client's AggregatorRegistry (the primary asks every worker over IPC and merges).
//
//   npm run bench:cluster                 4 workers x 25,000 label sets
//   node bench/cluster.js --procs 4 --n 25000 --scrapes 5
//
// Each worker records the same n label sets ({method, route, status}: a counter and a
// 16-bucket histogram each, as bench/collect.js), so the fleet has n series per
// instrument and every series sums `procs` processes. Reported:
//   scrape      wall time of one whole-fleet scrape: hotmeter, a worker's
//               PrometheusExporter.scrape() (it reads every process's cells from shared
//               memory); prom-client, the primary's clusterMetrics() (IPC to every worker,
//               JSON merge; it gives up after 5 s), and the same IPC + aggregate() timed
//               without that limit. First, then median of the next --scrapes.
//   hot path    ns per bound counter add and per counter.add(1, attrs) (cached attribute
//               object): in a cluster worker with processShared, and in a single process
//               without it.
//   memory      per label set per process: the worker's RSS growth from recording (its
//               share of the shared pages included), and the segment's slabs in use
//               (64 KiB each) divided by procs x n.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const PROCS = opt('procs', 4);
const N = opt('n', 25_000);
const SCRAPES = opt('scrapes', 5);
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const hm = () => require(path.join(__dirname, '..'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// The sum of every http_server_requests_total sample of a scrape: procs x n when exact.
function requestsTotal(text) {
  let sum = 0;
  for (const m of text.matchAll(/^http_server_requests_total\{[^\n]*\} (\S+)/gm)) sum += Number(m[1]);
  return sum;
}
const attrsOf = (i) => ({ method: METHODS[i % 4], route: `/api/r${Math.floor(i / 4)}`, status: String(200 + (i % 3)) });

function hotPath(provider) {
  const meter = provider.getMeter('hot');
  const bound = meter.createCounter('hot_bound').bind({ k: 'v' });
  const c = meter.createCounter('hot_attrs');
  const attrs = { method: 'GET', route: '/x', status: '200' };
  const time = (fn, n) => {
    fn(n / 10);
    const t = process.hrtime.bigint();
    fn(n);
    return Number(process.hrtime.bigint() - t) / n;
  };
  return {
    bound: time((n) => { for (let i = 0; i < n; i++) bound.add(1); }, 50_000_000),
    attrs: time((n) => { for (let i = 0; i < n; i++) c.add(1, attrs); }, 5_000_000),
  };
}

async function hotmeterWorker(name) {
  const { MeterProvider, PrometheusExporter } = hm();
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ processShared: name, readers: [exporter], cardinalityLimit: N + 10 });
  const meter = provider.getMeter('bench', '1.0.0');
  const c = meter.createCounter('http.server.requests');
  const h = meter.createHistogram('http.server.duration', { unit: 's', advice: { explicitBucketBoundaries: BOUNDS } });
  const attrs = Array.from({ length: N }, (_, i) => attrsOf(i));
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < N; i++) {
    c.add(1, attrs[i]);
    h.record((i % 100) / 10, attrs[i]);
  }
  global.gc?.();
  const rss = process.memoryUsage().rss - rss0;
  process.send({ recorded: true, rss });
  process.on('message', async (m) => {
    if (m === 'scrape') {
      const times = [];
      let bytes = 0;
      let total = 0;
      for (let i = 0; i <= SCRAPES; i++) {
        const t = process.hrtime.bigint();
        const s = await exporter.scrape();
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
        bytes = s.byteLength;
        if (i === SCRAPES) total = requestsTotal(Buffer.concat(s.chunks).toString());
        s.release();
      }
      process.send({ scrape: times, bytes, total, stats: provider.processSharedStats() });
    } else if (m === 'hot') {
      process.send({ hot: hotPath(provider) });
    }
  });
}

function promWorker() {
  const client = require('prom-client');
  new client.AggregatorRegistry();  // installs the worker's answer to the primary's requests
  const labelNames = ['method', 'route', 'status'];
  const c = new client.Counter({ name: 'http_server_requests_total', help: 'Requests served', labelNames });
  const h = new client.Histogram({ name: 'http_server_duration_seconds', help: 'Request duration', labelNames, buckets: BOUNDS });
  for (let i = 0; i < N; i++) {
    const a = attrsOf(i);
    c.inc(a);
    h.observe(a, (i % 100) / 10);
  }
  process.send({ recorded: true });
}

function fleet(role, extra) {
  const workers = [];
  let recorded = 0;
  const rss = [];
  return new Promise((resolve) => {
    for (let i = 0; i < PROCS; i++) {
      const w = cluster.fork({ BENCH_ROLE: role, ...extra });
      workers.push(w);
      w.on('message', (m) => {
        if (m && m.recorded) {
          rss.push(m.rss);
          if (++recorded === PROCS) resolve({ workers, rss });
        }
      });
    }
  });
}
const ask = (w, msg, key) => new Promise((resolve) => {
  const on = (m) => {
    if (m && m[key] !== undefined) {
      w.off('message', on);
      resolve(m);
    }
  };
  w.on('message', on);
  w.send(msg);
});
async function stop(workers) {
  for (const w of workers) w.kill();
  // Gone from cluster.workers (clusterMetrics() asks every worker listed there).
  while (Object.keys(cluster.workers).length > 0) await new Promise((r) => setTimeout(r, 20));
}

async function primary() {
  const name = `bench-cluster-${process.pid}`;
  console.log(`bench:cluster: ${PROCS} processes x ${N} label sets (counter + 16-bucket histogram each), node ${process.version}`);
  const hmFleet = await fleet('hotmeter', { BENCH_NAME: name });
  const s = await ask(hmFleet.workers[0], 'scrape', 'scrape');
  const hot = await ask(hmFleet.workers[1], 'hot', 'hot');
  await stop(hmFleet.workers);
  hm().MeterProvider.cleanupProcessShared(name);

  const { AggregatorRegistry } = require('prom-client');
  const promFleet = await fleet('prom-client', {});
  // First the same work as clusterMetrics() without its 5 s limit: the same IPC request
  // to every worker (answered by prom-client's own listener there), then the static
  // aggregate() and metrics() in the primary. (Before any AggregatorRegistry exists
  // here: its primary-side listener would take these answers.)
  const unlimited = [];
  let unlimitedTotal = 0;
  for (let i = 0; i <= SCRAPES; i++) {
    const t = process.hrtime.bigint();
    const parts = await Promise.all(promFleet.workers.map((w) => new Promise((resolve) => {
      const on = (m) => {
        if (m && m.type === 'prom-client:getMetricsRes' && m.requestId === -1 - i) {
          w.off('message', on);
          resolve(m.metrics);
        }
      };
      w.on('message', on);
      w.send({ type: 'prom-client:getMetricsReq', requestId: -1 - i });
    })));
    const text = await AggregatorRegistry.aggregate(parts.flat()).metrics();
    unlimited.push(Number(process.hrtime.bigint() - t) / 1e6);
    unlimitedTotal = requestsTotal(text);
  }
  const registry = new AggregatorRegistry();
  const promTimes = [];
  let promBytes = 0;
  let promTotal = 0;
  const promFailures = [];
  for (let i = 0; i <= SCRAPES; i++) {
    const t = process.hrtime.bigint();
    let text;
    try {
      text = await registry.clusterMetrics();
    } catch (e) {
      // prom-client gives up after 5 s (a busy or slow worker): the scrape fails.
      promTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
      promFailures.push(String(e.message));
      continue;
    }
    promTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
    promBytes = Buffer.byteLength(text);
    promTotal = requestsTotal(text);
  }
  await stop(promFleet.workers);

  const single = hotPath(new (hm().MeterProvider)());
  const fmt = (t) => `first ${t[0].toFixed(0)} ms, median ${median(t.slice(1)).toFixed(0)} ms`;
  console.log(`scrape, whole fleet   hotmeter (any worker):        ${fmt(s.scrape)}  (${(s.bytes / 1e6).toFixed(1)} MB)`);
  console.log(`                      prom-client clusterMetrics(): ${fmt(promTimes)}  (${(promBytes / 1e6).toFixed(1)} MB)` +
    (promFailures.length > 0 ? `, ${promFailures.length} of ${SCRAPES + 1} failed: ${promFailures[0]}` : ''));
  console.log(`                      prom-client, same work without the 5 s limit: ${fmt(unlimited)}`);
  console.log(`hot path, bound add   cluster worker ${hot.hot.bound.toFixed(2)} ns, single process ${single.bound.toFixed(2)} ns`);
  console.log(`hot path, add(attrs)  cluster worker ${hot.hot.attrs.toFixed(1)} ns, single process ${single.attrs.toFixed(1)} ns`);
  const perSet = median(hmFleet.rss) / N;
  const slabBytes = (s.stats.slabs * 65536) / (PROCS * N);
  console.log(`memory per label set per process: RSS ${perSet.toFixed(0)} B (median worker), shared cells ${slabBytes.toFixed(0)} B (${s.stats.slabs} slabs of 64 KiB, ${s.stats.series} series)`);
  const results = {
    procs: PROCS, n: N, node: process.version,
    scrapeMs: { hotmeter: s.scrape, promClient: promTimes, promClientWithoutLimit: unlimited }, promClientFailures: promFailures, bytes: { hotmeter: s.bytes, promClient: promBytes },
    hotPathNs: { clusterWorker: hot.hot, singleProcess: single },
    memoryPerLabelSetPerProcess: { rssBytes: perSet, sharedCellBytes: slabBytes }, segment: s.stats,
  };
  require('node:fs').writeFileSync(path.join(__dirname, 'results', 'cluster.json'), `${JSON.stringify(results, null, 2)}\n`);
  // The scrapes must show every process's counts exactly.
  let failed = false;
  const checks = [['hotmeter', s.total]];
  if (promFailures.length <= SCRAPES) checks.push(['prom-client', promTotal]);  // its last good scrape
  checks.push(['prom-client (no limit)', unlimitedTotal]);
  for (const [peer, total] of checks) {
    if (total !== PROCS * N) {
      console.log(`FAIL: ${peer} scrape shows ${total} requests, expected ${PROCS * N}`);
      failed = true;
    }
  }
  process.exit(failed ? 1 : 0);
}

if (cluster.isPrimary) {
  primary().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (process.env.BENCH_ROLE === 'hotmeter') {
  hotmeterWorker(process.env.BENCH_NAME);
} else {
  promWorker();
}
