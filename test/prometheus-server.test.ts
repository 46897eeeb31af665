// A real Prometheus server (Debian package `prometheus`, installed by CI: .ci/run) scrapes
// two exporters on loopback every second, one answering OpenMetrics (what Prometheus asks
// for) and one held to the text format; the test reads the values back through
// Prometheus' HTTP API, hostile label values included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { AggregationKind, MeterProvider, PrometheusExporter } from '../src';
import {
  freePort,
  getJson,
  HOSTILE,
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
const providers: MeterProvider[] = [];
const servers: http.Server[] = [];
const acceptSeen: string[] = [];
const typesServed: string[] = [];

function query(q: string): Promise<VectorSample[]> {
  return promQuery(apiBase, q);
}

function record(p: MeterProvider): void {
  const m = p.getMeter('e2e', '1.0.0');
  const c = m.createCounter('hostile.requests', { description: 'requests with hostile labels' });
  HOSTILE.forEach((v, i) => c.add(i + 1, { route: v, kind: 'hostile' }));
  const h = m.createHistogram('rpc.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } });
  for (const v of [0.05, 0.2, 0.3, 0.7, 2]) h.record(v, { method: 'GET' });
  const s = m.createHistogram('lat', { unit: 's' });
  for (let i = 1; i <= 1000; i++) s.record(i / 1000, { path: '/q' });
  m.createUpDownCounter('queue.depth').add(-4.5, { q: 'a' });
  m.createGauge('temperature').record(21.25, { room: 'lab' });
  // Pairs that render to one identity: Prometheus keeps one sample of an identity, so each
  // pair must arrive as one series with both values added.
  const d = p.getMeter('dup');
  const hits = d.createCounter('dup.hits');
  hits.add(5, { status: 200 });
  hits.add(7, { status: '200' });
  d.createCounter('orders.placed').add(10, { k: 'x' });
  d.createCounter('orders_placed').add(32, { k: 'x' });
  d.createCounter('jobs.done', { description: 'first' }).add(5);
  d.createCounter('jobs.done', { description: 'second' }).add(7);
  // Enough text for many parts where the exporter streams in 4 KiB parts.
  const bulk = m.createCounter('bulk.items');
  for (let i = 0; i < BULK; i++) bulk.add(i, { item: `item-${i}`, shard: `shard-${i % 7}` });
}

const BULK = 400;
/** Per job: whether a response was sent chunked (no Content-Length: several parts). */
const chunkedServed = new Map<string, boolean[]>();
/** Per job: the Content-Encoding of each 200 response ('' for none), and what Prometheus accepted. */
const encodingServed = new Map<string, string[]>();
const acceptEncodingSeen: string[] = [];

async function exporterServer(openMetrics: boolean): Promise<string> {
  // The OpenMetrics job is streamed in parts of 4 KiB (chunked) and gzipped (Prometheus
  // sends Accept-Encoding: gzip), the text job in one part, uncompressed.
  const exporter = new PrometheusExporter({ preventServerStart: true, openMetrics, partBytes: openMetrics ? 4096 : undefined, compression: openMetrics });
  const p = new MeterProvider({
    readers: [exporter],
    reclamation: false,
    resource: { attributes: { 'service.name': openMetrics ? 'e2e-om' : 'e2e-text' } },
    views: [{ instrumentName: 'lat', aggregation: AggregationKind.SKETCH }],
  });
  providers.push(p);
  record(p);
  const server = http.createServer((req, res) => {
    if (openMetrics) acceptSeen.push(String(req.headers.accept));
    if (openMetrics) acceptEncodingSeen.push(String(req.headers['accept-encoding']));
    watchWriteHead(res, (status, h) => {
      if (h?.['content-type']) typesServed.push(`${openMetrics ? 'om' : 'text'} ${h['content-type']}`);
      const job = openMetrics ? 'om' : 'text';
      if (status === 200) chunkedServed.set(job, [...(chunkedServed.get(job) ?? []), h?.['content-length'] === undefined]);
      if (status === 200) encodingServed.set(job, [...(encodingServed.get(job) ?? []), h?.['content-encoding'] ?? '']);
    });
    exporter.requestHandler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

beforeAll(async () => {
  requirePrometheus();
  const om = await exporterServer(true);
  const text = await exporterServer(false);
  dir = prometheusConfigDir('hotmeter-prom-', '1s', { om, text });
  const port = await freePort();
  apiBase = `http://127.0.0.1:${port}`;
  prometheus = spawnPrometheus(dir, port, (text) => (promLog += text));
  // Both targets up, and a scrape of each that ingested samples.
  await untilPrometheus(prometheus, orFalse(async () => (await query('up == 1 and scrape_samples_scraped > 0')).length === 2), 'Prometheus to scrape both targets', () => promLog);
}, 90_000);

afterAll(async () => {
  await stopPrometheus(prometheus);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await Promise.all(providers.map((p) => p.shutdown()));
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('a real Prometheus server scrapes the exporter', () => {
  it('negotiated OpenMetrics with Prometheus, and the text format where told to', () => {
    expect(acceptSeen.length).toBeGreaterThan(0);
    expect(acceptSeen[0]).toContain('application/openmetrics-text');
    expect(typesServed).toContain('om application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(typesServed).toContain('text text/plain; version=0.0.4; charset=utf-8');
  });

  for (const job of ['om', 'text']) {
    it(`finds every value and every hostile label value exactly (${job})`, async () => {
      const hostile = await query(`hostile_requests_total{job="${job}"}`);
      // Prometheus treats an empty label value as no label at all.
      expect(hostile).toHaveLength(HOSTILE.length);
      const byRoute = new Map(hostile.map((s) => [s.metric.route ?? '', Number(s.value[1])]));
      HOSTILE.forEach((v, i) => expect(byRoute.get(v), JSON.stringify(v)).toBe(i + 1));
      for (const s of hostile) {
        expect(s.metric.otel_scope_name).toBe('e2e');
        expect(s.metric.otel_scope_version).toBe('1.0.0');
        expect(s.metric.kind).toBe('hostile');
      }

      const buckets = await query(`rpc_duration_seconds_bucket{job="${job}",method="GET"}`);
      const byLe = Object.fromEntries(buckets.map((s) => [s.metric.le, Number(s.value[1])]));
      expect(byLe).toEqual({ '0.1': 1, '0.5': 3, '1': 4, '+Inf': 5 });
      expect(Number((await query(`rpc_duration_seconds_count{job="${job}"}`))[0].value[1])).toBe(5);
      expect(Number((await query(`rpc_duration_seconds_sum{job="${job}"}`))[0].value[1])).toBeCloseTo(3.25, 12);
      // A histogram Prometheus can compute on.
      const p50 = Number((await query(`histogram_quantile(0.5, rpc_duration_seconds_bucket{job="${job}"})`))[0].value[1]);
      expect(p50).toBeGreaterThan(0.1);
      expect(p50).toBeLessThanOrEqual(0.5);

      const median = await query(`lat_seconds{job="${job}",quantile="0.5"}`);
      expect(median).toHaveLength(1);
      expect(Math.abs(Number(median[0].value[1]) - 0.5) / 0.5).toBeLessThanOrEqual(0.01);
      expect(Number((await query(`lat_seconds_count{job="${job}"}`))[0].value[1])).toBe(1000);

      expect(Number((await query(`queue_depth{job="${job}"}`))[0].value[1])).toBe(-4.5);
      expect(Number((await query(`temperature{job="${job}",room="lab"}`))[0].value[1])).toBe(21.25);
      // Every bulk series, exact: the OpenMetrics job's scrapes came in many chunked parts.
      const bulk = await query(`bulk_items_total{job="${job}"}`);
      expect(bulk).toHaveLength(BULK);
      for (const s of bulk) expect(Number(s.value[1]), s.metric.item).toBe(Number(s.metric.item.slice('item-'.length)));
      expect(chunkedServed.get(job)?.length).toBeGreaterThan(0);
      expect(chunkedServed.get(job)?.every((c) => c === (job === 'om'))).toBe(true);
      // Prometheus 2.42 asks for gzip; the om job's values above arrived gzipped.
      expect(acceptEncodingSeen[0]).toContain('gzip');
      expect(encodingServed.get(job)?.every((e) => e === (job === 'om' ? 'gzip' : ''))).toBe(true);
      // The colliding pairs, merged (not one of the two values).
      for (const [q, v] of [
        [`dup_hits_total{job="${job}",status="200"}`, 12],
        [`orders_placed_total{job="${job}",k="x"}`, 42],
        [`jobs_done_total{job="${job}"}`, 12],
      ] as const) {
        const got = await query(q);
        expect(got.map((x) => Number(x.value[1])), q).toEqual([v]);
      }
      const target = await query(`target_info{job="${job}"}`);
      expect(target).toHaveLength(1);
      expect(target[0].metric.service_name).toBe(job === 'om' ? 'e2e-om' : 'e2e-text');
    });
  }

  it('the metadata API shows the types and help', async () => {
    const r = (await getJson(`${apiBase}/api/v1/metadata?metric=rpc_duration_seconds`)) as { data: Record<string, { type: string; help: string; unit: string }[]> };
    const md = r.data.rpc_duration_seconds ?? [];
    expect(md.some((m) => m.type === 'histogram')).toBe(true);
    const c = (await getJson(`${apiBase}/api/v1/targets/metadata?match_target=${encodeURIComponent('{job="om"}')}&metric=lat_seconds`)) as {
      data: { type: string; unit: string }[];
    };
    expect(c.data.some((m) => m.type === 'summary')).toBe(true);
  });
});
