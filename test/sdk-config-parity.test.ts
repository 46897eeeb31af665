// An @opentelemetry/sdk-metrics configuration, built with sdk-metrics' own helpers, given
// unchanged to sdk-metrics' MeterProvider and to hotmeter's: the same measurements must
// export the same points (names, descriptions, units, attributes, values, buckets,
// overflow), per reader (temporality, aggregation, series limit), one stream per view.
import type { Attributes, Meter as ApiMeter, MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  createAllowListAttributesProcessor,
  createDenyListAttributesProcessor,
  InMemoryMetricExporter,
  InstrumentType,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
  type ViewOptions,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { installLogger, uninstallLogger } from './helpers';

/** A user-written processor: route values lower-cased, everything else kept. */
const lowerRoute = {
  process(incoming: Attributes): Attributes {
    const out: Attributes = { ...incoming };
    if (typeof out.route === 'string') out.route = out.route.toLowerCase();
    return out;
  },
};

const views: ViewOptions[] = [
  {
    instrumentName: 'http.duration',
    instrumentType: InstrumentType.HISTOGRAM,
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [10, 100, 1000] } },
    attributesProcessors: [lowerRoute, createAllowListAttributesProcessor(['route'])],
  },
  { instrumentName: 'requests', aggregationCardinalityLimit: 5, attributesProcessors: [createDenyListAttributesProcessor(['user'])] },
  { instrumentName: 'noise', aggregation: { type: AggregationType.DROP } },
  { instrumentName: 'jobs', name: 'jobs.done', description: 'jobs finished' },
  // Two views on one instrument: two streams.
  { instrumentName: 'latency', name: 'latency.exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 40 } } },
  {
    instrumentName: 'latency',
    name: 'latency.buckets',
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [1, 5], recordMinMax: false } },
  },
  { instrumentUnit: 'By', meterName: 'io', meterVersion: '2', aggregation: { type: AggregationType.LAST_VALUE } },
  { instrumentType: InstrumentType.UP_DOWN_COUNTER, aggregation: { type: AggregationType.SUM } },
  { instrumentType: InstrumentType.GAUGE, aggregation: { type: AggregationType.DEFAULT } },
];

const resource = resourceFromAttributes({ 'service.name': 'parity' });

function record(provider: ApiMeterProvider): void {
  const m: ApiMeter = provider.getMeter('app', '1.0');
  const dur = m.createHistogram('http.duration', { description: 'request duration', unit: 'ms' });
  for (const [v, route] of [[3, '/A'], [30, '/a'], [300, '/b'], [3000, '/B'], [50, '/c']] as const) dur.record(v, { route, method: 'GET', user: 'x' });
  const req = m.createCounter('requests', { description: 'requests served' });
  for (let i = 0; i < 12; i++) req.add(i + 1, { path: `/p${i}`, user: `u${i}` });
  m.createCounter('noise').add(5, { a: 1 });
  const jobs = m.createCounter('jobs', { description: 'original' });
  jobs.add(2, { queue: 'q' });
  jobs.add(3, { queue: 'q' });
  const lat = m.createHistogram('latency', { unit: 's' });
  for (const v of [0.5, 2, 2, 7, 1000, 0]) lat.record(v, { k: 'v' });
  const ud = m.createUpDownCounter('inflight');
  ud.add(5);
  ud.add(-2);
  m.createGauge('temperature').record(21.5, { room: 'a' });
  const io = provider.getMeter('io', '2');
  io.createGauge('io.bytes', { unit: 'By' }).record(4096);
  io.createGauge('io.other', { unit: 'ms' }).record(1);
}

/** Every export's points, comparable: scopes and metrics by name, points by attributes; no times. */
function normalize(rm: ResourceMetrics[]): Record<string, { type: number; points: { attributes: Attributes; value: unknown }[] }>[] {
  return rm.map(one);
}

function one(last: ResourceMetrics): Record<string, { type: number; points: { attributes: Attributes; value: unknown }[] }> {
  const out: Record<string, unknown> = { resource: last.resource.attributes };
  for (const sm of last.scopeMetrics) {
    for (const md of sm.metrics) {
      const points = md.dataPoints
        .map((p) => ({ attributes: p.attributes, value: p.value }))
        .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes)));
      out[`${sm.scope.name}@${sm.scope.version ?? ''} ${md.descriptor.name}`] = {
        description: md.descriptor.description,
        unit: md.descriptor.unit,
        type: md.dataPointType,
        temporality: md.aggregationTemporality,
        monotonic: (md as { isMonotonic?: boolean }).isMonotonic,
        points,
      };
    }
  }
  return out as never;
}

async function exportBoth(configure: () => { readers: PeriodicExportingMetricReader[]; exporters: InMemoryMetricExporter[] }) {
  const results: unknown[][] = [];
  for (const Provider of [SdkMeterProvider, MeterProvider] as const) {
    const { readers, exporters } = configure();
    const provider = new Provider({ resource, views, readers });
    record(provider);
    await provider.forceFlush();
    results.push(exporters.map((e) => normalize(e.getMetrics())));
    await provider.shutdown();
  }
  return results;
}

/** Histograms as exponential histograms of at most 20 buckets, the rest as the default. */
const exponentialHistograms = (t: InstrumentType): unknown =>
  t === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 20 } } : { type: AggregationType.DEFAULT };

function periodic(
  temporality: AggregationTemporality,
  extra: Partial<ConstructorParameters<typeof PeriodicExportingMetricReader>[0]> = {},
  selectAggregation?: (t: InstrumentType) => unknown,
) {
  const exporter = new InMemoryMetricExporter(temporality);
  // An exporter's aggregation preference becomes its reader's aggregationSelector.
  if (selectAggregation !== undefined) Object.assign(exporter, { selectAggregation });
  return { exporter, reader: new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, ...extra }) };
}

describe('an sdk-metrics configuration, unchanged', () => {
  it('exports the same points from both providers', async () => {
    const [sdk, hot] = await exportBoth(() => {
      const a = periodic(AggregationTemporality.CUMULATIVE);
      return { readers: [a.reader], exporters: [a.exporter] };
    });
    const s = (sdk[0] as ReturnType<typeof normalize>)[0];
    // The configuration did something (the comparison below is not of two defaults).
    expect(s['app@1.0 http.duration'].points.map((p) => p.attributes)).toEqual([{ route: '/a' }, { route: '/b' }, { route: '/c' }]);
    expect(s['app@1.0 requests'].points).toHaveLength(5);
    expect(s['app@1.0 requests'].points.some((p) => p.attributes['otel.metric.overflow'] === true)).toBe(true);
    expect(s['app@1.0 noise']).toBeUndefined();
    expect(s['app@1.0 latency.exp']).toBeDefined();
    expect(s['app@1.0 latency.buckets']).toBeDefined();
    expect(hot[0]).toEqual(sdk[0]);
  });

  it('per reader: temporality, aggregation and series limit, as sdk-metrics applies them', async () => {
    const [sdk, hot] = await exportBoth(() => {
      const delta = periodic(AggregationTemporality.DELTA, { cardinalityLimits: { counter: 3 } }, exponentialHistograms);
      const cumulative = periodic(AggregationTemporality.CUMULATIVE);
      return { readers: [delta.reader, cumulative.reader], exporters: [delta.exporter, cumulative.exporter] };
    });
    expect(hot).toEqual(sdk);
  });

  it("a reader's own streams come with a diagnostic that worker threads' providers do not write them", async () => {
    const logger = installLogger();
    try {
      const own = periodic(AggregationTemporality.CUMULATIVE, {}, exponentialHistograms);
      const provider = new MeterProvider({ resource, readers: [own.reader] });
      expect(logger.warned('streams of its own', 'worker threads')).toBe(true);
      await provider.shutdown();
      const fresh = installLogger(); // and a fresh rate-limit window
      const plain = new MeterProvider({ resource, readers: [periodic(AggregationTemporality.CUMULATIVE).reader] });
      expect(fresh.warned('worker threads')).toBe(false);
      await plain.shutdown();
    } finally {
      uninstallLogger();
    }
  });

  it('per reader, for instruments no view matches', async () => {
    const results: unknown[][] = [];
    for (const Provider of [SdkMeterProvider, MeterProvider] as const) {
      // (Exponential histograms cumulative: hotmeter's delta intervals of them keep the
      // cumulative cell's scale, sdk-metrics' restart at scale 20; both are valid OTLP.)
      const own = periodic(AggregationTemporality.CUMULATIVE, { cardinalityLimits: { counter: 3 } }, exponentialHistograms);
      const delta = periodic(AggregationTemporality.DELTA);
      const provider = new Provider({ resource, readers: [own.reader, delta.reader] });
      const m = provider.getMeter('plain');
      const c = m.createCounter('c');
      for (let i = 0; i < 6; i++) c.add(1, { i });
      const h = m.createHistogram('h');
      for (const v of [1, 2, 4, 8, 100]) h.record(v);
      await provider.forceFlush();
      c.add(10, { i: 0 });
      h.record(3);
      await provider.forceFlush();
      results.push([own.exporter, delta.exporter].map((e) => normalize(e.getMetrics())));
      await provider.shutdown();
    }
    const [sdk, hot] = results as ReturnType<typeof normalize>[][];
    // The readers differ: exponential and explicit histograms; 3 and 2000 series of c.
    expect(sdk[0][0]['plain@ h'].type).not.toBe(sdk[1][0]['plain@ h'].type);
    expect(sdk[0][0]['plain@ c'].points).toHaveLength(3);
    expect(sdk[1][0]['plain@ c'].points).toHaveLength(6);
    expect(sdk[1][1]['plain@ c'].points).toHaveLength(1); // delta: only the series that changed
    // hotmeter's cells are cumulative: a delta histogram point knows its interval's min and
    // max only when they moved the cumulative ones (src/exporters/otlp/convert.ts), which
    // the second interval's value 3 does not. Everything else must be equal.
    const deltaH = (x: ReturnType<typeof normalize>[]) => x[1][1]['plain@ h'].points[0].value as { min?: number; max?: number };
    expect(deltaH(hot)).toMatchObject({ min: undefined, max: undefined });
    expect(deltaH(sdk)).toMatchObject({ min: 3, max: 3 });
    for (const x of [hot, sdk]) {
      delete deltaH(x).min;
      delete deltaH(x).max;
    }
    expect(hot).toEqual(sdk);
  });
});
