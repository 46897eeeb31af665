// A real Prometheus server (Debian package `prometheus`, 2.42) started with
// `--enable-feature=native-histograms` asks for the protobuf format and scrapes the
// exporter every second; its HTTP API must then answer histogram_count / histogram_sum /
// histogram_quantile over the exponential histograms (native series), while the classic
// histogram, counters and gauges of the same scrapes read as they do over text.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { AggregationKind, MeterProvider, PrometheusExporter } from '../src';
import {
  freePort,
  orFalse,
  prometheusConfigDir,
  promQuery,
  requirePrometheus,
  spawnPrometheus,
  stopPrometheus,
  untilPrometheus,
  watchWriteHead,
  type VectorSample,
} from './prometheus-helpers';

let prometheus: ChildProcess | undefined;
let promLog = '';
let apiBase = '';
let dir = '';
let provider: MeterProvider | undefined;
let server: http.Server | undefined;
const acceptSeen: string[] = [];
const typesServed: string[] = [];
const BULK = 300;

function query(q: string): Promise<VectorSample[]> {
  return promQuery(apiBase, q);
}

async function one(q: string): Promise<number> {
  const r = await query(q);
  expect(r, q).toHaveLength(1);
  return Number(r[0].value[1]);
}

/** The bucket (lower, upper] of Prometheus schema `schema` that holds v > 0, computed here. */
function nativeBucket(v: number, schema: number): [number, number] {
  // Prometheus index i holds (2^((i-1) / 2^schema), 2^(i / 2^schema)].
  const perOctave = 2 ** schema;
  let i = Math.ceil(Math.log2(v) * perOctave);
  // Correct the floating-point logarithm at the edges: v must be in (lower, upper].
  while (2 ** (i / perOctave) < v) i++;
  while (2 ** ((i - 1) / perOctave) >= v) i--;
  return [2 ** ((i - 1) / perOctave), 2 ** (i / perOctave)];
}

beforeAll(async () => {
  requirePrometheus();
  // Parts of 4 KiB: the bulk counter's family is written as several messages.
  const exporter = new PrometheusExporter({ preventServerStart: true, partBytes: 4096 });
  provider = new MeterProvider({
    readers: [exporter],
    reclamation: false,
    resource: { attributes: { 'service.name': 'native-e2e' } },
    views: [
      { instrumentName: 'native.*', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM },
      { instrumentName: 'mixed', meterName: 'other', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM },
    ],
  });
  const m = provider.getMeter('e2e', '1.0.0');
  const lat = m.createHistogram('native.latency', { unit: 's' });
  for (let i = 1; i <= 1000; i++) lat.record(i / 1000, { path: '/q' });
  // One value: the state stays at scale 20 and is written at schema 8.
  m.createHistogram('native.single').record(3, { k: 'one' });
  // Zeros and one positive value: the zero bucket.
  const z = m.createHistogram('native.zeros');
  for (let i = 0; i < 4; i++) z.record(0);
  z.record(10);
  const rpc = m.createHistogram('rpc.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } });
  for (const v of [0.05, 0.2, 0.3, 0.7, 2]) rpc.record(v, { method: 'GET' });
  m.createCounter('hits').add(42, { route: '/a' });
  // One family, a classic histogram (scope e2e) and a native one (scope other).
  const classic = m.createHistogram('mixed', { advice: { explicitBucketBoundaries: [1, 10] } });
  const native = provider.getMeter('other').createHistogram('mixed');
  for (const v of [0.5, 5, 50]) {
    classic.record(v);
    native.record(v);
  }
  m.createGauge('temperature').record(21.25, { room: 'lab' });
  const bulk = m.createCounter('bulk.items');
  for (let i = 0; i < BULK; i++) bulk.add(i, { item: `item-${i}` });

  server = http.createServer((req, res) => {
    acceptSeen.push(String(req.headers.accept));
    watchWriteHead(res, (_status, h) => {
      if (h?.['content-type']) typesServed.push(h['content-type']);
    });
    exporter.requestHandler(req, res);
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  const target = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  dir = prometheusConfigDir('hotmeter-prom-native-', '1s', { native: target });
  const port = await freePort();
  apiBase = `http://127.0.0.1:${port}`;
  prometheus = spawnPrometheus(dir, port, (text) => (promLog += text), ['--enable-feature=native-histograms']);
  await untilPrometheus(
    prometheus,
    orFalse(async () => (await query('up == 1 and scrape_samples_scraped > 0')).length === 1 && (await query('histogram_count(native_latency_seconds)')).length === 1),
    'Prometheus to scrape the target',
    () => promLog,
  );
}, 90_000);

afterAll(async () => {
  await stopPrometheus(prometheus);
  await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
  await provider?.shutdown();
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('a real Prometheus with native histograms scrapes the protobuf format', () => {
  it('asked for protobuf first and got it', () => {
    expect(acceptSeen[0]).toMatch(/^application\/vnd\.google\.protobuf;\s*proto=io\.prometheus\.client\.MetricFamily;\s*encoding=delimited/);
    expect(typesServed[0]).toBe('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited');
    expect(promLog).not.toMatch(/level=(error|warn).*scrape/i);
  });

  it('answers histogram_count, histogram_sum and histogram_quantile over the native series', async () => {
    expect(await one('histogram_count(native_latency_seconds{path="/q"})')).toBe(1000);
    expect(await one('histogram_sum(native_latency_seconds{path="/q"})')).toBeCloseTo(500.5, 9);
    // The median of 0.001 .. 1 is 0.5005; a native bucket at this scale is narrower than 10%.
    const p50 = await one('histogram_quantile(0.5, native_latency_seconds{path="/q"})');
    expect(Math.abs(p50 - 0.5005) / 0.5005).toBeLessThan(0.1);
    const p99 = await one('histogram_quantile(0.99, native_latency_seconds{path="/q"})');
    expect(Math.abs(p99 - 0.99) / 0.99).toBeLessThan(0.1);
    // No classic series were made of it.
    expect(await query('native_latency_seconds_bucket')).toHaveLength(0);
    expect(await query('native_latency_seconds_count')).toHaveLength(0);
  });

  it('puts a single value in its bucket at schema 8 (downscaled from scale 20)', async () => {
    expect(await one('histogram_count(native_single{k="one"})')).toBe(1);
    const [lower, upper] = nativeBucket(3, 8);
    const q = await one('histogram_quantile(0.5, native_single{k="one"})');
    expect(q).toBeGreaterThan(lower);
    expect(q).toBeLessThanOrEqual(upper);
  });

  it('counts zeros in the zero bucket', async () => {
    expect(await one('histogram_count(native_zeros)')).toBe(5);
    expect(await one('histogram_sum(native_zeros)')).toBe(10);
    // 4 of 5 observations are zero: the median is in the zero bucket, the 0.9 quantile at 10.
    expect(await one('histogram_quantile(0.5, native_zeros)')).toBeLessThan(1e-300);
    const [lower, upper] = nativeBucket(10, 8);
    const q = await one('histogram_quantile(0.9, native_zeros)');
    expect(q).toBeGreaterThan(lower);
    expect(q).toBeLessThanOrEqual(upper);
  });

  it('keeps the classic histogram, counters and gauges of the same scrapes right', async () => {
    const buckets = await query('rpc_duration_seconds_bucket{method="GET"}');
    // Prometheus formats a protobuf bucket's upper bound itself, as OpenMetrics does ("1.0"
    // where the text format's `le` says "1"), for every client's protobuf alike.
    expect(Object.fromEntries(buckets.map((s) => [s.metric.le, Number(s.value[1])]))).toEqual({ '0.1': 1, '0.5': 3, '1.0': 4, '+Inf': 5 });
    expect(await one('rpc_duration_seconds_count{method="GET"}')).toBe(5);
    expect(await one('rpc_duration_seconds_sum{method="GET"}')).toBeCloseTo(3.25, 12);
    expect(await one('hits_total{route="/a",otel_scope_name="e2e",otel_scope_version="1.0.0"}')).toBe(42);
    expect(await one('temperature{room="lab"}')).toBe(21.25);
    expect(await one('target_info{service_name="native-e2e"}')).toBe(1);
    // A family of a classic and a native histogram: each read as what it is.
    const mixed = await query('mixed_bucket');
    expect(Object.fromEntries(mixed.map((s) => [`${s.metric.otel_scope_name} ${s.metric.le}`, Number(s.value[1])]))).toEqual({ 'e2e 1.0': 1, 'e2e 10.0': 2, 'e2e +Inf': 3 });
    expect(await one('histogram_count(mixed{otel_scope_name="other"})')).toBe(3);
    expect(await one('histogram_sum(mixed{otel_scope_name="other"})')).toBe(55.5);
    const bulk = await query('bulk_items_total');
    expect(bulk).toHaveLength(BULK);
    for (const s of bulk) expect(Number(s.value[1]), s.metric.item).toBe(Number(s.metric.item.slice('item-'.length)));
  });
});
