// Collect + serialise a large registry to Prometheus text, side by side with the peers:
// 100,000 label sets, each with a counter and a 16-bucket histogram, recorded by direct
// calls (`counter.add(1, attrs)`, `histogram.record(v, attrs)`), then scraped.
//
//   npm run bench:collect                      every peer, 100,000 label sets
//   node bench/collect.js --n 20000            fewer label sets
//   node bench/collect.js --peers hotmeter,prom-client
//   node bench/collect.js --idle-s 0            skip the scrape after a long idle
//
// Each peer runs in a process of its own (node --expose-gc), so heaps and caches do not
// mix. Per peer:
//   memory      RSS and JS heap growth from recording the label sets (after full GCs and
//               200 ms idle twice, so V8 has unmapped freed pages; before any collection),
//               divided by the number of label sets; the median over the scrape run and
//               --mem-runs (default 3) processes that only record. The
//               attribute objects are created before the baseline and stay alive in both
//               snapshots, so they are not counted.
//   scrape      wall time of one collection + serialisation to Prometheus text: the first
//               scrape after recording, and the median and best of the following ones
//               (hotmeter 9, prom-client 2, otel 1; a full GC
//               and 50 ms of idle event loop between scrapes, as time would pass between
//               real ones; hotmeter's later scrapes write into the output blocks of the
//               earlier ones, which each scrape releases when done, as its HTTP handler
//               does); for hotmeter, one more scrape after --idle-s (default 75) s of
//               idle (not in the median): a server scraped once a minute waits that long,
//               and this VM's kernel reclaims memory idle for ~60 s (DAMON pageout; the
//               output blocks are MADV_FREE while pooled), so the pooled memory might be
//               gone by then;
//   held        RSS growth from the scrapes, measured (as memory) after the last one: what
//               the process keeps between scrapes (pooled output blocks, the stashed
//               snapshot, the peers' heaps)
//   blocked     the longest the event loop did not turn during the first scrape (a 1 ms
//               timer probes it; in the first scrape only, see child()).
// Peers:
//   hotmeter          PrometheusExporter.scrape(): native serialisation off the JS thread,
//                     text format, otel_scope_name/version labels on (the default)
//   hotmeter-noscope  the same with withoutScopeInfo (the same labels prom-client writes)
//   hotmeter-stream   the HTTP handler's path: the text written in parts of 4 MiB, each
//                     given back once consumed (streamed(); -noscope: withoutScopeInfo)
//   hotmeter-protobuf PrometheusExporter.scrape() answering Prometheus' native-histograms
//                     Accept: the protobuf format (delimited MetricFamily messages)
//   hotmeter-http     a GET of the exporter's own server on loopback (requestHandler), read
//                     by an http client in the same process; -gzip: with Accept-Encoding:
//                     gzip (level 1), the text column then counts the gzip bytes sent
//   prom-client       registry.metrics()
//   otel              @opentelemetry/sdk-metrics collect() + @opentelemetry/exporter-prometheus'
//                     PrometheusSerializer (cardinality limit raised to fit)
// First scrape vs later ones: the first writes its whole text (and snapshot) into memory
// the process never had. On this VM that is the dearest part of it: the host backs guest
// memory lazily and the guest hands freed memory back to it (virtio_balloon free page
// reporting), so memory that is new to a process is written at ~0.7-1.0 GB/s, against
// ~10 GB/s when it was touched moments before (measured with an ad hoc C program that
// times the first write of 1 GiB of fresh pages, not committed). The later scrapes show
// the steady state a server scraped every 15-60 s lives in.
// Results: a table on stdout and bench/results/collect.json.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const BOUNDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]; // 16 buckets
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const PEERS = ['hotmeter', 'hotmeter-noscope', 'hotmeter-stream', 'hotmeter-stream-noscope', 'hotmeter-protobuf', 'hotmeter-http', 'hotmeter-http-gzip', 'prom-client', 'otel'];
const PROTOBUF_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

function attributes(n) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = { method: METHODS[i & 3], route: `/api/v1/items/${i >> 2}`, status: 200 + (i % 5) };
  return out;
}

function collectGarbage() {
  for (let i = 0; i < 4; i++) global.gc();
}

/**
 * Makes V8's young generation as resident as heavy allocation leaves it. V8 commits the
 * semispaces up front but the kernel maps their pages only when first written, so
 * without this the first phase that makes a lot of garbage (recording, for every peer)
 * adds up to ~10 MB of RSS once, whatever the number of label sets: a fixed cost that
 * would be charged ~100 B per label set at 100,000. Same for every peer.
 */
function fillYoungGeneration() {
  let keep = 0;
  for (let i = 0; i < 4_000_000; i++) {
    const o = { a: i, b: [i, i + 1], c: `x${i}` };
    keep += o.b.length;
  }
  return keep;
}

/**
 * Memory once settled: V8 unmaps the pages a GC freed from a background task shortly
 * after it, so RSS read straight after gc() still counts garbage of the last phase: two
 * GCs each followed by 200 ms of idle event loop. What remains variable is the size V8
 * gives its young generation (it follows the allocation rate while recording): that
 * swings one run's figure by up to ~150 B a label set, hence the median of several runs.
 */
async function memory() {
  for (let round = 0; round < 2; round++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
}

/** Runs `fn` (async) and times it. */
async function timed(fn) {
  const t0 = performance.now();
  const bytes = await fn();
  return { ms: performance.now() - t0, bytes, blockedMs: NaN };
}

/** Runs `fn` (async) while a 1 ms timer measures the longest event-loop stall. */
async function probe(fn) {
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  const bytes = await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  maxGap = Math.max(maxGap, performance.now() - last);
  return { ms, bytes, blockedMs: maxGap };
}

// The HTTP handler's path (requestHandler): the text written a part (partBytes, 4 MiB) at a
// time, the next part asked for before the current one is consumed, each part given back
// once consumed, as by a client that reads as fast as it is sent.
async function streamed(exporter) {
  const format = exporter.format;
  const stream = await exporter.producer.streamPrometheus({ ...format, openMetrics: false }, exporter.partBytes);
  let bytes = 0;
  let next = stream.next();
  for (;;) {
    const part = await next;
    if (part === undefined) break;
    next = stream.next();
    bytes += part.byteLength;
    stream.release(part);
  }
  stream.close();
  return bytes;
}

// A scrape over loopback HTTP: the bytes of the body as sent (gzip bytes with `gzip`).
function httpGet(url, gzip) {
  return new Promise((resolve, reject) => {
    const req = require('node:http').get(url, { agent: false, headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function setupPeer(peer, n) {
  if (peer.startsWith('hotmeter')) {
    const hm = require('..');
    const http = peer.startsWith('hotmeter-http');
    const exporter = new hm.PrometheusExporter({ preventServerStart: !http, port: 0, withoutScopeInfo: peer.endsWith('-noscope') });
    await exporter.ready();
    if (http) exporter.server.unref(); // the child exits once done
    // Reclamation off: every scrape sees the same registry (the peers keep every series).
    const provider = new hm.MeterProvider({ readers: [exporter], cardinalityLimit: n + 10, reclamation: false });
    const meter = provider.getMeter('bench', '1.0.0');
    const c = meter.createCounter('http.server.requests', { description: 'Requests served' });
    const h = meter.createHistogram('http.server.duration', { unit: 's', description: 'Request duration', advice: { explicitBucketBoundaries: BOUNDS } });
    return {
      record: (a, v) => {
        c.add(1, a);
        h.record(v, a);
      },
      // As the exporter's HTTP handler does once the response is written: the text's
      // blocks go back for the next scrape now, not when a GC gets to the Buffers.
      scrape: http ? () => httpGet(exporter.url, peer.endsWith('-gzip')) : peer.startsWith('hotmeter-stream') ? () => streamed(exporter) : async () => {
        const s = await exporter.scrape(peer === 'hotmeter-protobuf' ? PROTOBUF_ACCEPT : undefined);
        s.release();
        return s.byteLength;
      },
    };
  }
  if (peer === 'prom-client') {
    const client = require('prom-client');
    const registry = new client.Registry();
    const labelNames = ['method', 'route', 'status'];
    const c = new client.Counter({ name: 'http_server_requests_total', help: 'Requests served', labelNames, registers: [registry] });
    const h = new client.Histogram({ name: 'http_server_duration_seconds', help: 'Request duration', labelNames, buckets: BOUNDS, registers: [registry] });
    return {
      record: (a, v) => {
        c.inc(a);
        h.observe(a, v);
      },
      scrape: async () => Buffer.byteLength(await registry.metrics()),
    };
  }
  if (peer === 'otel') {
    const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
    const { PrometheusSerializer } = require('@opentelemetry/exporter-prometheus');
    class Reader extends MetricReader {
      async onForceFlush() {}
      async onShutdown() {}
    }
    const reader = new Reader({ cardinalitySelector: () => n + 10 });
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter('bench', '1.0.0');
    const c = meter.createCounter('http.server.requests', { description: 'Requests served' });
    const h = meter.createHistogram('http.server.duration', { unit: 's', description: 'Request duration', advice: { explicitBucketBoundaries: BOUNDS } });
    const serializer = new PrometheusSerializer();
    return {
      record: (a, v) => {
        c.add(1, a);
        h.record(v, a);
      },
      scrape: async () => {
        const { resourceMetrics } = await reader.collect();
        return Buffer.byteLength(serializer.serialize(resourceMetrics));
      },
    };
  }
  throw new Error(`unknown peer ${peer}`);
}

async function child(peer, n, scrapes, idleS) {
  const p = await setupPeer(peer, n);
  // Warm up the recording path (not the scrape) on other label sets.
  for (let i = 0; i < 1000; i++) p.record({ method: 'GET', route: `/warm/${i}`, status: 200 }, i / 100);
  const attrs = attributes(n);
  fillYoungGeneration();
  const before = await memory();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) p.record(attrs[i], (i % 1000) / 50);
  const recordMs = performance.now() - t0;
  const after = await memory();
  const runs = [{ ms: NaN, bytes: NaN, blockedMs: NaN }];
  if (scrapes > 0) runs.length = 0;
  for (let k = 0; k < scrapes; k++) {
    // As if time passed between scrapes: the previous scrape's text is garbage by now,
    // collected, and its native memory released (Buffer finalizers run from the event
    // loop after the GC).
    if (k > 0) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The event-loop probe runs in the first scrape only: its timer wakes the JS thread
    // every ms, which takes a core from hotmeter's serialisation threads (measured: later
    // scrapes 63-66 ms without it, 79-92 ms with it); the peers' scrapes block the loop,
    // so the timer never fires during theirs.
    runs.push(k === 0 ? await probe(p.scrape) : await timed(p.scrape));
  }
  // What the process keeps between scrapes (pooled output, stashed snapshot), over the
  // RSS after recording.
  const held = scrapes > 0 ? await memory() : after;
  let afterIdleScrapeMs = NaN;
  if (scrapes > 1 && idleS > 0 && peer.startsWith('hotmeter')) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, idleS * 1000));
    afterIdleScrapeMs = (await timed(p.scrape)).ms;
  }
  const result = {
    peer,
    n,
    recordNsPerLabelSet: (recordMs * 1e6) / n,
    rssPerLabelSet: (after.rss - before.rss) / n,
    heldBetweenScrapesMB: (held.rss - after.rss) / 1e6,
    heapPerLabelSet: (after.heap - before.heap) / n,
    heapCommittedPerLabelSet: (after.heapTotal - before.heapTotal) / n,
    externalPerLabelSet: (after.external - before.external) / n,
    firstScrapeMs: runs[0].ms,
    bestScrapeMs: Math.min(...runs.map((r) => r.ms)),
    // The median of the scrapes after the first (the lower middle of an even count).
    laterScrapeMs: runs.length > 1 ? [...runs.slice(1)].map((r) => r.ms).sort((a, b) => a - b)[Math.floor((runs.length - 2) / 2)] : NaN,
    scrapesMs: runs.map((r) => Math.round(r.ms)),
    afterIdleScrapeMs,
    idleS,
    bytes: runs[0].bytes,
    blockedMs: runs[0].blockedMs,
    attrsAlive: attrs.length,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

function fmt(x, digits = 0) {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function main() {
  const n = Number(arg('n', '100000'));
  const peers = arg('peers', PEERS.join(',')).split(',');
  const memRuns = Number(arg('mem-runs', '3'));
  const idleS = Number(arg('idle-s', '75'));
  const results = [];
  const run = (peer, scrapes) => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', __filename, '--child', peer, '--n', String(n), '--scrapes', String(scrapes), '--idle-s', String(idleS)], {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (r.status !== 0) throw new Error(`${peer} failed (exit ${r.status})`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  for (const peer of peers) {
    const scrapes = peer.startsWith('hotmeter') ? 10 : peer === 'prom-client' ? 3 : 2;
    const idle = peer.startsWith('hotmeter') && idleS > 0 ? `, one after ${idleS} s idle` : '';
    process.stderr.write(`bench:collect ${peer} (${n} label sets, ${scrapes} scrapes${idle}, then ${memRuns} more recordings for memory)...\n`);
    const r = run(peer, scrapes);
    // Memory: the median over this run and memRuns recording-only processes (no scrapes, no idle).
    const rss = [r.rssPerLabelSet];
    const heap = [r.heapPerLabelSet];
    for (let k = 0; k < memRuns; k++) {
      const m = run(peer, 0);
      rss.push(m.rssPerLabelSet);
      heap.push(m.heapPerLabelSet);
    }
    r.rssRunsPerLabelSet = rss.map((x) => Math.round(x));
    r.rssPerLabelSet = median(rss);
    r.heapPerLabelSet = median(heap);
    results.push(r);
  }
  const prom = results.find((r) => r.peer === 'prom-client');
  console.log(`\nCollect + serialise ${fmt(n)} label sets (a counter and a 16-bucket histogram each) to Prometheus text`);
  console.log(`Node ${process.version}, ${require('node:os').cpus().length} CPUs (${require('node:os').cpus()[0]?.model ?? '?'})\n`);
  console.log(`| peer | first scrape | later scrapes (median) | best scrape | after ${idleS} s idle | vs prom-client (first) | vs prom-client (later) | event loop blocked | text | held between scrapes | RSS / label set (median [runs]) | heap / label set | record / label set |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const vs = prom ? `${fmt(prom.firstScrapeMs / r.firstScrapeMs, 1)}x` : '';
    const vsLater = prom ? `${fmt(prom.laterScrapeMs / r.laterScrapeMs, 1)}x` : '';
    console.log(
      `| ${r.peer} | ${fmt(r.firstScrapeMs)} ms | ${fmt(r.laterScrapeMs)} ms | ${fmt(r.bestScrapeMs)} ms | ${Number.isFinite(r.afterIdleScrapeMs) ? `${fmt(r.afterIdleScrapeMs)} ms` : ''} | ${vs} | ${vsLater} | ${fmt(r.blockedMs)} ms | ${fmt(r.bytes / 1e6, 1)} MB | ${fmt(r.heldBetweenScrapesMB)} MB | ${fmt(r.rssPerLabelSet)} B [${Math.min(...r.rssRunsPerLabelSet)}..${Math.max(...r.rssRunsPerLabelSet)}] | ${fmt(r.heapPerLabelSet)} B | ${fmt(r.recordNsPerLabelSet)} ns |`,
    );
  }
  for (const r of results.filter((x) => x.peer.startsWith('hotmeter-http'))) {
    // Over a 1 Gbit/s link the body takes bytes * 8 ns more than over loopback (at best: the
    // parts are sent while the next ones are written, so the slower of the two sets the pace).
    console.log(`${r.peer}: ${fmt(r.bytes / 1e6, 1)} MB sent; at 1 Gbit/s the body alone takes ${fmt((r.bytes * 8) / 1e6)} ms (scrape on loopback: ${fmt(r.laterScrapeMs)} ms)`);
  }
  const out = path.join(__dirname, 'results', 'collect.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, n, results }, null, 2) + '\n');
  console.log(`\n(written to ${path.relative(process.cwd(), out)})`);
}

if (process.argv.includes('--child')) {
  child(arg('child'), Number(arg('n', '100000')), Number(arg('scrapes', '2')), Number(arg('idle-s', '0'))).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
