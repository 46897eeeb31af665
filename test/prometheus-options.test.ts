// PrometheusExporter with @opentelemetry/exporter-prometheus' option names: the same
// recordings give the same samples as exporter-prometheus over sdk-metrics once
// `withoutUnits` asks for its names (no unit word), so dashboards keep working.
import type { MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import { PrometheusExporter as OtelPrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';

const resource = resourceFromAttributes({ 'service.name': 'svc', 'service.version': '3', 'host.name': 'h1' });

function record(p: ApiMeterProvider): void {
  const m = p.getMeter('web', '1.2');
  const req = m.createCounter('http.requests', { unit: '{request}', description: 'requests' });
  req.add(3, { method: 'GET', status: 200 });
  req.add(1, { method: 'POST', status: 500 });
  const dur = m.createHistogram('http.server.duration', { unit: 'ms', description: 'duration' });
  for (const v of [3, 12, 80, 700, 12000]) dur.record(v, { route: '/a' });
  m.createGauge('queue.size', { unit: 'By' }).record(4096);
  m.createUpDownCounter('inflight', { unit: 's' }).add(-2, { pool: 'x' });
  m.createCounter('cpu.time', { unit: 's' }).add(1.5);
}

/** Every sample line as `name{sorted labels} value [timestamp]`, sorted; no comments, no target_info. */
function samples(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('target_info')) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)(?: (\S+))?$/.exec(line);
    expect(m, line).not.toBeNull();
    const labels = (m![2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
    out.push(`${m![1]}{${labels.sort().join(',')}} ${Number(m![3])}${m![4] !== undefined ? ' ts' : ''}`);
  }
  return out.sort();
}

async function otelText(options: ConstructorParameters<typeof OtelPrometheusExporter>[0]): Promise<string> {
  const exporter = new OtelPrometheusExporter({ ...options, preventServerStart: true });
  const p = new SdkMeterProvider({ resource, readers: [exporter] });
  record(p);
  const body = await new Promise<string>((resolve) => {
    exporter.getMetricsRequestHandler({} as never, { statusCode: 0, setHeader() {}, end: (b: string) => resolve(b) } as never);
  });
  await p.shutdown();
  return body;
}

async function hotText(options: ConstructorParameters<typeof PrometheusExporter>[0], extraReaders: PeriodicExportingMetricReader[] = []): Promise<string> {
  const exporter = new PrometheusExporter({ ...options, preventServerStart: true });
  const p = new MeterProvider({ resource, readers: [exporter, ...extraReaders] });
  record(p);
  const text = await exporter.render();
  await p.shutdown();
  return text;
}

/** An sdk-metrics reader with a series limit of its own: the provider then serves Prometheus from CheckpointSets (the TypeScript writer). */
function limitedReader(): PeriodicExportingMetricReader {
  return new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 3_600_000,
    cardinalityLimits: { counter: 10 },
  });
}

const SHARED = { prefix: 'app', withResourceConstantLabels: /^service\./ };

describe('PrometheusExporter with exporter-prometheus option names', () => {
  for (const [path, extra] of [['native writer', () => []], ['TypeScript writer', () => [limitedReader()]]] as const) {
    it(`withoutUnits: the same samples as exporter-prometheus (${path})`, async () => {
      const want = samples(await otelText(SHARED));
      const got = samples(await hotText({ ...SHARED, withoutUnits: true }, extra()));
      // The options did something: prefixed names, constant labels from the resource.
      expect(want).toContain('app_cpu_time_total{otel_scope_name="web",otel_scope_version="1.2",service_name="svc",service_version="3"} 1.5');
      expect(got).toEqual(want);
    });
  }

  it('without withoutUnits the names carry the unit word (what differs from exporter-prometheus)', async () => {
    const got = samples(await hotText(SHARED));
    expect(got.some((l) => l.startsWith('app_http_server_duration_milliseconds_bucket{'))).toBe(true);
    expect(got.some((l) => l.startsWith('app_cpu_time_seconds_total{'))).toBe(true);
    expect(got.some((l) => l.startsWith('app_queue_size_bytes{'))).toBe(true);
  });

  it('appendTimestamp: every sample carries the collection time in ms, as exporter-prometheus writes it', async () => {
    for (const extra of [[], [limitedReader()]]) {
      const before = Date.now();
      const text = await hotText({ appendTimestamp: true, withoutScopeInfo: true, withoutTargetInfo: true }, extra);
      const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(lines.length).toBeGreaterThan(10);
      for (const l of lines) {
        const ts = Number(l.split(' ').at(-1));
        expect(ts).toBeGreaterThanOrEqual(before);
        expect(ts).toBeLessThanOrEqual(Date.now());
      }
      const want = samples(await otelText({ appendTimestamp: true, withoutScopeInfo: true, withoutTargetInfo: true })).map((l) => l.replace(/^(\S+?)_(milliseconds|bytes|seconds)/, '$1'));
      expect(samples(text).map((l) => l.replace(/_(milliseconds|bytes|seconds)(_|\{)/, '$2'))).toEqual(want);
    }
  });

  it('withoutCounterSuffixes (the Go exporter\'s): counters without _total in the text format; OpenMetrics keeps it', async () => {
    for (const extra of [[], [limitedReader()]]) {
      const exporter = new PrometheusExporter({ preventServerStart: true, withoutUnits: true, withoutCounterSuffixes: true, withoutScopeInfo: true });
      const p = new MeterProvider({ resource, readers: [exporter, ...extra] });
      record(p);
      const text = await exporter.render();
      expect(text).toContain('# TYPE cpu_time counter\ncpu_time 1.5\n');
      expect(text).not.toContain('_total');
      const om = await exporter.render('application/openmetrics-text; version=1.0.0');
      expect(om).toContain('# TYPE cpu_time counter\ncpu_time_total 1.5\n');
      await p.shutdown();
    }
  });

  it('rejects what it cannot honour', () => {
    expect(() => new PrometheusExporter({ preventServerStart: true, metricProducers: [] } as never)).toThrow(/metricProducers/);
    expect(() => new PrometheusExporter({ preventServerStart: true, prefix: 'a-b' })).toThrow(/prefix/);
    expect(() => new PrometheusExporter({ preventServerStart: true, withResourceConstantLabels: 'service' as never })).toThrow(/withResourceConstantLabels/);
    expect(() => new PrometheusExporter({ preventServerStart: true, withoutUnits: 'yes' as never })).toThrow(/withoutUnits/);
    expect(() => new PrometheusExporter({ preventServerStart: true, withoutCounterSuffixes: 1 as never })).toThrow(/withoutCounterSuffixes/);
    expect(() => new PrometheusExporter({ preventServerStart: true, witoutUnits: true } as never)).toThrow(/unknown PrometheusExporter option "witoutUnits"/);
    expect(() => new PrometheusExporter({ preventServerStart: true, protobuf: true, appendTimestamp: true })).toThrow(/protobuf/);
  });

  it('appendTimestamp and withResourceConstantLabels answer text to a scraper that prefers protobuf (the protobuf writer has neither)', async () => {
    const protobufAccept = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9,text/plain;version=0.0.4;q=0.1';
    for (const opts of [{ appendTimestamp: true }, { withResourceConstantLabels: /^service\./ }, {}]) {
      const exporter = new PrometheusExporter({ preventServerStart: true, ...opts });
      const p = new MeterProvider({ resource, readers: [exporter] });
      record(p);
      const s = await exporter.scrape(protobufAccept);
      expect(s.contentType.startsWith('application/vnd.google.protobuf')).toBe(Object.keys(opts).length === 0);
      s.release();
      await p.shutdown();
    }
  });
});
