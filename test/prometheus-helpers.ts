// Shared by the Prometheus tests (not a test file): data that exercises every instrument
// kind and aggregation, hostile label values, a parser of the exposition, and runners for
// the real peers (promtool, the Debian python3-prometheus-client).
import { expect } from 'vitest';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import { AggregationKind, MeterProvider, type PrometheusExporter } from '../src';
import { formatValue } from '../src/exporters/prometheus/naming';
import { prng } from './helpers';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a connection of its own. */
export function request(url: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** What Prometheus 2.x sends. */
/** A client that sends GET /metrics, goes away at the first bytes of the answer; resolves once closed. */
export function getAndLeave(url: string): Promise<void> {
  const port = Number(new URL(url).port);
  return new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.once('data', () => s.destroy());
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

export const OM = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** Label values that must survive any exporter and parser unchanged. */
export const HOSTILE = [
  'plain',
  'quote " inside',
  'back\\slash',
  'new\nline',
  '\\n literally',
  'trailing backslash \\',
  '"\\"\\\\"',
  'tab\there\rcr',
  'unicode: héllo wörld — 日本語 🚀',
  'combining e\u0301 and zero\u200bwidth',
  '{braces}=,commas',
  '#hash # HELP fake',
  '} 1\nfake_metric 2',
  '',
];

export const VIEWS = [
  { instrumentName: 'lat.sketch', aggregation: AggregationKind.SKETCH },
  { instrumentName: 'lat.advised', aggregation: AggregationKind.SKETCH },
  { instrumentName: 'lat.mmsc', aggregation: AggregationKind.MIN_MAX_SUM_COUNT },
  { instrumentName: 'lat.exact', aggregation: AggregationKind.EXACT },
  { instrumentName: 'lat.exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM },
];

/**
 * Records the same things into a provider (created with VIEWS): every instrument kind and
 * aggregation, hostile label values, colliding and reserved label names. `baseUnits`
 * keeps to units promtool's linter accepts (seconds, bytes).
 */
export function recordEverything(p: MeterProvider, baseUnits = false): void {
  const m = p.getMeter('fmt', '2.1.0');
  const m2 = p.getMeter('other.scope');
  const c = m.createCounter('http.requests', { description: 'Requests "served"\nby route \\ method' });
  for (const [i, v] of HOSTILE.entries()) c.add(i + 1, { route: v, 'http.method': 'GET', ok: i % 2 === 0 });
  c.add(1.5, {});
  m2.createCounter('http.requests', { description: 'from another scope' }).add(7, { route: '/x' });
  const up = m.createUpDownCounter('queue.depth', { unit: '{item}' });
  up.add(5, { q: 'a' });
  up.add(-7.25, { q: 'b' });
  m.createGauge('temperature', { unit: baseUnits ? '' : 'Cel' }).record(-3.5, { room: 'kitchen' });
  const h = m.createHistogram('rpc.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.001, 0.01, 0.1, 1, 10] } });
  const rand = prng(42);
  for (let i = 0; i < 500; i++) h.record(rand() * 5, { method: i % 3 === 0 ? 'a' : 'b', le: 'user-le' });
  const sk = m.createHistogram('lat.sketch', { unit: baseUnits ? 's' : 'ms' });
  for (let i = 1; i <= 1000; i++) sk.record(baseUnits ? i / 1000 : i, { quantile: 'user-q' });
  const adv = m.createHistogram('lat.advised', { advice: { quantiles: [0.25, 0.75] } } as never);
  for (let i = 1; i <= 100; i++) adv.record(i);
  const mm = m.createHistogram('lat.mmsc');
  for (let i = 1; i <= 10; i++) mm.record(i);
  const ex = m.createHistogram('lat.exact');
  for (let i = 1; i <= 20; i++) ex.record(i / 4);
  const eh = m.createHistogram('lat.exp', { unit: 'By' });
  for (let i = 0; i < 200; i++) eh.record(i);
  m.createObservableGauge('obs.level').addCallback((r) => r.observe(42, { k: 'v' }));
  m.createObservableCounter('obs.count', { unit: 'By' }).addCallback((r) => r.observe(1024));
  m.createObservableUpDownCounter('obs.updown').addCallback((r) => r.observe(-1));
  m.createCounter('numbers').add(1, { n: 200, f: 1.5, b: false, arr: ['x', 1, true] as never, 'a.b': 'dot', a_b: 'underscore' });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition (either format), label values unescaped. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null;
    while ((lm = re.exec(m[2] ?? '')) !== null) {
      if (lm[1] in labels) throw new Error(`duplicate label ${lm[1]} in ${line}`);
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[3];
    out.push({ name: m[1], labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

/** A canonical text of a sample, for comparing lists of samples. */
export function sampleKey(s: Sample): string {
  const keys = Object.keys(s.labels).sort();
  return JSON.stringify([s.name, keys.map((k) => [k, s.labels[k]]), Number.isNaN(s.value) ? 'NaN' : s.value]);
}

export function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error !== undefined) {
    throw new Error(`promtool is required by this test and could not be run (${r.error.message}). Install it: apt-get install prometheus (Debian/Ubuntu), as .ci/run does.`);
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

export interface PythonFamily {
  name: string;
  type: string;
  unit: string;
  documentation: string;
  samples: Sample[];
}

/**
 * Parses with the Debian python3-prometheus-client (/usr/bin/python3): its text format
 * parser, or its (strict) OpenMetrics parser. Throws what the parser raised.
 */
export function pythonParse(text: string, openMetrics: boolean): PythonFamily[] {
  const script = [
    'import sys, json, math',
    openMetrics
      ? 'from prometheus_client.openmetrics.parser import text_string_to_metric_families'
      : 'from prometheus_client.parser import text_string_to_metric_families',
    "text = sys.stdin.buffer.read().decode('utf-8')",
    'out = []',
    'for f in text_string_to_metric_families(text):',
    "    out.append({'name': f.name, 'type': f.type, 'unit': getattr(f, 'unit', ''), 'documentation': f.documentation,",
    "                'samples': [{'name': s.name, 'labels': s.labels, 'value': repr(float(s.value))} for s in f.samples]})",
    'sys.stdout.write(json.dumps(out))',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', script], { input: Buffer.from(text, 'utf8'), encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error !== undefined) {
    throw new Error(`/usr/bin/python3 could not be run (${r.error.message}); install python3-prometheus-client, as .ci/run does`);
  }
  if (r.status !== 0) {
    if (/No module named .?prometheus_client/.test(r.stderr)) {
      throw new Error('the Debian python3-prometheus-client is required by this test: apt-get install python3-prometheus-client, as .ci/run does');
    }
    throw new Error(`python parser: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
  }
  const fams = JSON.parse(r.stdout) as (Omit<PythonFamily, 'samples'> & { samples: { name: string; labels: Record<string, string>; value: string }[] })[];
  return fams.map((f) => ({
    ...f,
    samples: f.samples.map((s) => ({
      name: s.name,
      labels: s.labels,
      value: s.value === 'inf' ? Infinity : s.value === '-inf' ? -Infinity : s.value === 'nan' ? NaN : Number(s.value),
    })),
  }));
}

/**
 * Records pairs that render to one Prometheus identity (a provider created with VIEWS):
 * attribute values of different types that print alike, names that sanitize alike, a
 * name registered again with another description, a counter and an observable counter of
 * one name, a histogram, a gauge and an exact summary. MERGED lists the samples each pair
 * must become (scope labels on: every instrument is in the scope 'dup').
 */
export function recordCollisions(p: MeterProvider): void {
  const m = p.getMeter('dup');
  const hits = m.createCounter('http.hits');
  hits.add(5, { status: 200 });
  hits.add(7, { status: '200' });
  const flags = m.createCounter('flags');
  flags.add(10, { on: true });
  flags.add(32, { on: 'true' });
  const arrays = m.createCounter('arrays');
  arrays.add(3, { v: [1, 2] as never });
  arrays.add(4, { v: '[1,2]' });
  m.createCounter('orders.placed').add(5, { k: 'x' });
  m.createCounter('orders_placed').add(7, { k: 'x' });
  m.createCounter('jobs', { description: 'first' }).add(2);
  m.createCounter('jobs', { description: 'second' }).add(3);
  m.createCounter('bytes.sent').add(10);
  m.createObservableCounter('bytes.sent').addCallback((r) => r.observe(32));
  const h = m.createHistogram('lat', { advice: { explicitBucketBoundaries: [1, 10] } });
  h.record(0.5, { code: 1 });
  h.record(5, { code: '1' });
  const g = m.createGauge('temp');
  g.record(20, { room: 1 });
  g.record(21, { room: '1' });
  const ex = m.createHistogram('lat.exact');
  ex.record(1, { a: 1 });
  ex.record(2, { a: 1 });
  ex.record(10, { a: '1' });
}

/** What recordCollisions' pairs must be: one sample each (name, labels without scope, value). */
export const MERGED: readonly [string, Record<string, string>, number][] = [
  ['http_hits_total', { status: '200' }, 12],
  ['flags_total', { on: 'true' }, 42],
  ['arrays_total', { v: '[1,2]' }, 7],
  ['orders_placed_total', { k: 'x' }, 12],
  ['jobs_total', {}, 5],
  ['bytes_sent_total', {}, 42],
  ['lat_bucket', { code: '1', le: '1' }, 1],
  ['lat_bucket', { code: '1', le: '10' }, 2],
  ['lat_bucket', { code: '1', le: '+Inf' }, 2],
  ['lat_count', { code: '1' }, 2],
  ['lat_sum', { code: '1' }, 5.5],
  ['temp', { room: '1' }, 20],
  ['lat_exact_count', { a: '1' }, 3],
  ['lat_exact_sum', { a: '1' }, 13],
];

/** A free loopback TCP port (for a Prometheus server of a test). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** GET `url` and parse its body as JSON (Prometheus' HTTP API). */
export function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body));
          } catch (e) {
            reject(e);
          }
        });
      })
      .on('error', reject);
  });
}

/** One sample of an instant vector from Prometheus' query API. */
export interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

/**
 * A Prometheus server on 127.0.0.1:`port` with `dir`/prometheus.yml as its configuration
 * and `dir`/data as its storage; what it prints goes to `onLog`. `extraArgs` are added to
 * its command line (e.g. `--enable-feature=native-histograms`).
 */
export function spawnPrometheus(dir: string, port: number, onLog: (text: string) => void, extraArgs: readonly string[] = []): ChildProcess {
  const p = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  p.stdout?.on('data', (d: Buffer) => onLog(d.toString()));
  p.stderr?.on('data', (d: Buffer) => onLog(d.toString()));
  return p;
}

/** Throws, saying how to install it, unless the `prometheus` server binary is on PATH. */
export function requirePrometheus(): void {
  const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  if (version.error !== undefined) {
    throw new Error(`the prometheus server is required by this test (${version.error.message}): apt-get install prometheus, as .ci/run does`);
  }
}

/**
 * A new temporary directory (name starting `prefix`) holding a prometheus.yml that scrapes
 * each job's `host:port` target every `interval` (also the scrape timeout), e.g. '1s'.
 */
export function prometheusConfigDir(prefix: string, interval: string, jobs: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const lines = ['global:', `  scrape_interval: ${interval}`, `  scrape_timeout: ${interval}`, 'scrape_configs:'];
  for (const [job, target] of Object.entries(jobs)) lines.push(`  - job_name: ${job}`, `    static_configs: [{ targets: ['${target}'] }]`);
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [...lines, ''].join('\n'));
  return dir;
}

/** An instant-vector query `q` against the Prometheus HTTP API at `apiBase`; the query must succeed. */
export async function promQuery(apiBase: string, q: string): Promise<VectorSample[]> {
  const r = (await getJson(`${apiBase}/api/v1/query?query=${encodeURIComponent(q)}`)) as { status: string; data: { result: VectorSample[] } };
  expect(r.status).toBe('success');
  return r.data.result;
}

/**
 * Polls `cond` every `intervalMs` until it holds; throws (with Prometheus' log) when `ms` pass
 * or the Prometheus process `p` exits first. A throwing `cond` throws here too (see orFalse).
 */
export async function untilPrometheus(
  p: ChildProcess | undefined,
  cond: () => Promise<boolean>,
  what: string,
  log: () => string,
  ms = 60_000,
  intervalMs = 250,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline || p?.exitCode !== null) throw new Error(`timed out waiting for ${what} (or Prometheus exited)\n${log()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `cond` with a throw (e.g. Prometheus not listening yet) counted as false. */
export function orFalse(cond: () => Promise<boolean>): () => Promise<boolean> {
  return async () => {
    try {
      return await cond();
    } catch {
      return false;
    }
  };
}

/** SIGTERM Prometheus `p` and wait for it to exit; SIGKILL if it is still running after 10 s. */
export async function stopPrometheus(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

/** Calls `onHead(status, headers)` at each writeHead of `res` (to see what the exporter served). */
export function watchWriteHead(res: http.ServerResponse, onHead: (status: unknown, headers: Record<string, string> | undefined) => void): void {
  const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => http.ServerResponse;
  (res as unknown as { writeHead: (...a: unknown[]) => http.ServerResponse }).writeHead = (...a: unknown[]) => {
    onHead(a[0], a[1] as Record<string, string> | undefined);
    return writeHead(...a);
  };
}

// ---- The protobuf exposition decoded, as the text format's samples ----

export const root = protobuf.loadSync(path.join(__dirname, 'fixtures', 'prometheus-proto', 'metrics.proto'));
export const MetricFamily = root.lookupType('io.prometheus.client.MetricFamily');

export interface Span {
  offset?: number;
  length?: number;
}
export interface Histogram {
  sampleCount?: number;
  sampleSum?: number;
  bucket?: { cumulativeCount?: number; upperBound?: number }[];
  schema?: number;
  zeroThreshold?: number;
  zeroCount?: number;
  negativeSpan?: Span[];
  negativeDelta?: number[];
  positiveSpan?: Span[];
  positiveDelta?: number[];
}
export interface Metric {
  label?: { name: string; value: string }[];
  gauge?: { value?: number };
  counter?: { value?: number };
  summary?: { sampleCount?: number; sampleSum?: number; quantile?: { quantile?: number; value?: number }[] };
  untyped?: { value?: number };
  histogram?: Histogram;
  timestampMs?: number;
}
export interface Family {
  name: string;
  help: string;
  type: string;
  metric: Metric[];
}

/** Every delimited MetricFamily message of a body. */
export function decode(body: Buffer): Family[] {
  const r = protobuf.Reader.create(body);
  const out: Family[] = [];
  while (r.pos < r.len) {
    const msg = MetricFamily.decodeDelimited(r);
    out.push(MetricFamily.toObject(msg, { longs: Number, enums: String, arrays: true }) as Family);
  }
  return out;
}


/** The Accept header of a scrape in the protobuf format. */
export const PROTOBUF_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

/** One scrape of the exporter, its chunks joined into one body and released. */
export async function scrapeBody(exporter: PrometheusExporter, accept: string): Promise<{ contentType: string; body: Buffer }> {
  const s = await exporter.scrape(accept);
  try {
    return { contentType: s.contentType, body: Buffer.concat(s.chunks as Buffer[]) };
  } finally {
    s.release();
  }
}

/** The MetricFamily messages of a protobuf scrape (decode), typed by the caller. */
export async function protobufScrape<T = Family>(exporter: PrometheusExporter): Promise<T[]> {
  return decode((await scrapeBody(exporter, PROTOBUF_ACCEPT)).body) as unknown as T[];
}

/** A native histogram's buckets by Prometheus index: [positive, negative]. */
export function nativeBuckets(h: Histogram): [Map<number, number>, Map<number, number>] {
  const expand = (spans: Span[] = [], deltas: number[] = []): Map<number, number> => {
    const m = new Map<number, number>();
    let index = 0;
    let count = 0;
    let k = 0;
    spans.forEach((s) => {
      index += s.offset ?? 0; // the first span's: its start; later: the gap since the previous one
      for (let j = 0; j < (s.length ?? 0); j++) {
        count += deltas[k++];
        expect(count).toBeGreaterThanOrEqual(0);
        if (count > 0) m.set(index, count);
        index++;
      }
    });
    expect(k).toBe(deltas.length);
    return m;
  };
  return [expand(h.positiveSpan, h.positiveDelta), expand(h.negativeSpan, h.negativeDelta)];
}

/** A histogram as the text format's samples: classic buckets, or a native one's as the text writes them. */
export function histogramSamples(name: string, labels: Record<string, string>, h: Histogram): Sample[] {
  const out: Sample[] = [];
  const count = h.sampleCount ?? 0;
  if (h.schema !== undefined) {
    const [pos, neg] = nativeBuckets(h);
    let cum = (h.zeroCount ?? 0) + [...neg.values()].reduce((a, b) => a + b, 0);
    out.push({ name: `${name}_bucket`, labels: { ...labels, le: '0' }, value: cum });
    if (pos.size > 0) {
      const lo = Math.min(...pos.keys());
      const hi = Math.max(...pos.keys());
      // The text writes every bucket from the lowest used to the highest, at its upper bound.
      for (let i = lo; i <= hi; i++) {
        cum += pos.get(i) ?? 0;
        out.push({ name: `${name}_bucket`, labels: { ...labels, le: formatValue(2 ** (i / 2 ** h.schema)) }, value: cum });
      }
    }
  } else {
    for (const b of h.bucket ?? []) out.push({ name: `${name}_bucket`, labels: { ...labels, le: formatValue(b.upperBound ?? NaN) }, value: b.cumulativeCount ?? 0 });
  }
  out.push({ name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
  out.push({ name: `${name}_sum`, labels, value: h.sampleSum ?? 0 });
  out.push({ name: `${name}_count`, labels, value: count });
  return out;
}

/** The decoded families as the text format's samples. */
export function samplesOf(families: Family[]): Sample[] {
  const out: Sample[] = [];
  for (const f of families) {
    for (const m of f.metric) {
      expect(m.timestampMs).toBeUndefined();
      const labels: Record<string, string> = {};
      for (const l of m.label ?? []) {
        expect(labels[l.name], `label ${l.name} twice`).toBeUndefined();
        labels[l.name] = l.value;
      }
      switch (f.type) {
        case 'COUNTER':
          out.push({ name: f.name, labels, value: m.counter?.value ?? NaN });
          break;
        case 'GAUGE':
          out.push({ name: f.name, labels, value: m.gauge?.value ?? NaN });
          break;
        case 'SUMMARY':
          for (const q of m.summary?.quantile ?? []) out.push({ name: f.name, labels: { ...labels, quantile: formatValue(q.quantile ?? NaN) }, value: q.value ?? NaN });
          out.push({ name: `${f.name}_sum`, labels, value: m.summary?.sampleSum ?? 0 });
          out.push({ name: `${f.name}_count`, labels, value: m.summary?.sampleCount ?? 0 });
          break;
        case 'HISTOGRAM':
          out.push(...histogramSamples(f.name, labels, m.histogram ?? {}));
          break;
        default:
          throw new Error(`unexpected type ${f.type} of ${f.name}`);
      }
    }
  }
  return out;
}

/** Bucket bounds compared as numbers to 12 digits (the text prints them from the state's scale). */
export function canonical(samples: Sample[]): string[] {
  return samples
    .map((s) => (s.labels.le !== undefined && s.labels.le !== '+Inf' ? { ...s, labels: { ...s.labels, le: Number(s.labels.le).toPrecision(12) } } : s))
    .map(sampleKey)
    .sort();
}

export interface PySample {
  name: string;
  labels: Record<string, string>;
  value: number;
  exemplar: { labels: Record<string, string>; value: number; timestamp: number } | null;
}

/** Every sample of an OpenMetrics text, with its exemplar, as the Python parser reads it. */
export function pythonSamples(text: string): PySample[] {
  const script = [
    'import sys, json',
    'from prometheus_client.openmetrics.parser import text_string_to_metric_families',
    "text = sys.stdin.buffer.read().decode('utf-8')",
    'out = []',
    'for f in text_string_to_metric_families(text):',
    '    for s in f.samples:',
    '        e = s.exemplar',
    "        out.append({'name': s.name, 'labels': s.labels, 'value': float(s.value), 'exemplar': None if e is None else",
    "                    {'labels': e.labels, 'value': float(e.value), 'timestamp': float(e.timestamp.sec) + e.timestamp.nsec / 1e9}})",
    'sys.stdout.write(json.dumps(out))',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python OpenMetrics parser: ${r.stderr || r.error}`);
  return JSON.parse(r.stdout) as PySample[];
}
