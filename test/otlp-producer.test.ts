// The OpenTelemetry JS bridge: recognising OpenTelemetry readers, wiring by hand
// (HotmeterMetricProducer as an additional producer, setMetricProducer), temporality,
// serialized collections, the reclamation epoch protocol, shutdown order, the aggregation
// mapping of sketch / exact / minMaxSumCount, exponential histogram deltas, resources.
import { ValueType } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality as SdkTemporality,
  AggregationType,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider as SdkMeterProvider,
  MetricReader as SdkMetricReader,
  PeriodicExportingMetricReader,
  type Histogram,
  type ResourceMetrics,
  type SumMetricData,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AggregationKind,
  AggregationTemporality,
  ConsoleMetricExporter,
  exactSelector,
  exponentialHistogramSelector,
  HotmeterMetricProducer,
  inexpensiveSelector,
  InstrumentKind,
  MeterProvider,
  PrometheusExporter,
  PullController,
  PushController,
  sketchSelector,
  toOtelResourceMetrics,
  type ExponentialHistogramAggregation,
} from '../src';
import {
  isOtelMetricReader,
  otelInstrumentType,
  StaticResource,
  toHrTime,
  toOtelResource,
  type OtelResourceMetrics,
} from '../src/exporters/otlp';
import { downscaleBuckets, exponentialDelta } from '../src/exporters/otlp';
import { CapturingLogger, installLogger, prng, randInt, uninstallLogger, ManualReader } from './helpers';

/** A plain sdk-metrics MetricReader the test collects from by hand. */
class ManualOtelReader extends SdkMetricReader {
  constructor(temporality: SdkTemporality = SdkTemporality.CUMULATIVE) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function points(rm: ResourceMetrics | OtelResourceMetrics, name: string): { attributes: Record<string, unknown>; value: unknown }[] {
  const out = [];
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) if (m.descriptor.name === name) out.push(...(m.dataPoints as { attributes: Record<string, unknown>; value: unknown }[]));
  return out;
}

function metric(rm: ResourceMetrics | OtelResourceMetrics, name: string) {
  return rm.scopeMetrics.flatMap((sm) => sm.metrics).find((m) => m.descriptor.name === name);
}

let logger: CapturingLogger | undefined;
afterEach(() => {
  uninstallLogger();
  logger = undefined;
});

describe('recognising OpenTelemetry JS readers', () => {
  it('sdk-metrics readers are; hotmeter readers and other objects are not', async () => {
    expect(isOtelMetricReader(new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(SdkTemporality.CUMULATIVE) }))).toBe(true);
    expect(isOtelMetricReader(new ManualOtelReader())).toBe(true);
    const prom = new PrometheusExporter({ preventServerStart: true });
    for (const r of [
      new PushController({ exporter: new ConsoleMetricExporter({ stream: { write: () => true } }) }),
      new PullController(),
      prom,
      new HotmeterMetricProducer(),
      new ManualReader(),
      null,
      undefined,
      {},
      { setMetricProducer() {}, collect() {} },
      'reader',
    ]) {
      expect(isOtelMetricReader(r)).toBe(false);
    }
    const throwing = new Proxy({}, { get: () => { throw new Error('trap'); } });
    expect(isOtelMetricReader(throwing)).toBe(false);
  });

  it('maps every instrument kind to its OpenTelemetry InstrumentType', () => {
    expect(Object.values(InstrumentKind).filter((k) => typeof k === 'number').map((k) => otelInstrumentType(k as InstrumentKind))).toEqual([
      'COUNTER', 'UP_DOWN_COUNTER', 'HISTOGRAM', 'GAUGE', 'OBSERVABLE_COUNTER', 'OBSERVABLE_UP_DOWN_COUNTER', 'OBSERVABLE_GAUGE',
    ]);
  });
});

describe('wiring', () => {
  it('an OpenTelemetry reader given to the provider collects hotmeter data', async () => {
    const reader = new ManualOtelReader();
    const p = new MeterProvider({ readers: [reader] });
    p.getMeter('m').createCounter('c', { valueType: ValueType.INT }).add(4, { a: 'b' });
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    expect(points(resourceMetrics, 'c')).toMatchObject([{ attributes: { a: 'b' }, value: 4 }]);
    await p.shutdown();
  });

  it('HotmeterMetricProducer as an additional producer of an sdk-metrics reader: both SDKs in one export', async () => {
    const producer = new HotmeterMetricProducer();
    const hm = new MeterProvider({ readers: [producer], resource: { attributes: { ignored: 'hotmeter resource' } } });
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers: [producer] });
    const resource = resourceFromAttributes({ 'service.name': 'both' });
    const sdk = new SdkMeterProvider({ resource, readers: [reader] });
    sdk.getMeter('sdk-scope').createCounter('from.sdk').add(1);
    hm.getMeter('hotmeter-scope').createCounter('from.hotmeter').add(2);
    await reader.forceFlush();
    const rm = exporter.getMetrics()[0];
    expect(rm.resource).toBe(resource); // the SDK's resource, as sdk-metrics merges producers
    expect(rm.scopeMetrics.map((s) => s.scope.name).sort()).toEqual(['hotmeter-scope', 'sdk-scope']);
    expect(points(rm, 'from.sdk')[0].value).toBe(1);
    expect(points(rm, 'from.hotmeter')[0].value).toBe(2);
    await sdk.shutdown();
    await hm.shutdown();
  });

  it('reader.setMetricProducer(producer) by hand, with the reader\'s temporality passed as an option', async () => {
    const producer = new HotmeterMetricProducer({ temporality: AggregationTemporality.DELTA });
    const p = new MeterProvider({ readers: [producer] });
    const reader = new ManualOtelReader(SdkTemporality.DELTA);
    reader.setMetricProducer(producer);
    const c = p.getMeter('m').createCounter('c');
    c.add(3);
    expect(points((await reader.collect()).resourceMetrics, 'c')[0].value).toBe(3);
    c.add(4);
    const rm = (await reader.collect()).resourceMetrics;
    expect(points(rm, 'c')[0].value).toBe(4);
    expect(metric(rm, 'c')!.aggregationTemporality).toBe(SdkTemporality.DELTA);
    await p.shutdown();
  });

  it('misuse fails loudly', async () => {
    const lone = new HotmeterMetricProducer();
    await expect(lone.collect()).rejects.toThrow(/not attached to a MeterProvider/);
    const p = new MeterProvider({ readers: [lone] });
    expect(() => new MeterProvider({ readers: [lone] })).toThrow(/serves one MeterProvider/);
    const reader = new ManualOtelReader();
    const q = new MeterProvider({ readers: [reader] });
    expect(() => new MeterProvider({ readers: [reader] })).toThrow(/bound to a MeterProvider again/);
    expect(() => new HotmeterMetricProducer({ reader: {} as never })).toThrow(TypeError);
    await p.shutdown();
    await q.shutdown();
  });

  it('collections are serialized: concurrent collect() calls each get their own interval', async () => {
    const reader = new ManualOtelReader(SdkTemporality.DELTA);
    const p = new MeterProvider({ readers: [reader] });
    const c = p.getMeter('m').createCounter('c');
    const o = p.getMeter('m').createObservableCounter('o');
    let total = 0;
    o.addCallback(async (r) => {
      await new Promise((resolve) => setTimeout(resolve, randInt(rand, 0, 5)));
      r.observe(total);
    });
    const rand = prng(5);
    let sum = 0;
    let seen = 0;
    let observedSeen = 0;
    for (let round = 0; round < 10; round++) {
      const pending = [];
      for (let k = 0; k < 4; k++) {
        c.add(k + 1);
        sum += k + 1;
        total += 2;
        pending.push(reader.collect());
      }
      for (const r of await Promise.all(pending)) {
        for (const pt of points(r.resourceMetrics, 'c')) seen += pt.value as number;
        for (const pt of points(r.resourceMetrics, 'o')) observedSeen += pt.value as number;
      }
    }
    expect(seen).toBe(sum);
    expect(observedSeen).toBe(total);
    await p.shutdown();
  });

  it('an OpenTelemetry reader takes part in reclamation like any reader: it still exports a series\' final value', async () => {
    const fast = new ManualReader();
    const slow = new ManualOtelReader();
    // Expiry opted in; short sleeps make the series idle longer than reclaimIdleMillis.
    const p = new MeterProvider({ readers: [fast, slow], reclaimIdleMillis: 1 });
    const c = p.getMeter('r').createCounter('c');
    c.add(1, { id: 'x' });
    await slow.collect();
    c.add(41, { id: 'x' }); // only `fast` collects this soon
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 5));
      await fast.collect();
    }
    expect(points((await slow.collect()).resourceMetrics, 'c')).toMatchObject([{ attributes: { id: 'x' }, value: 42 }]);
    await new Promise((r) => setTimeout(r, 5));
    await fast.collect();
    await new Promise((r) => setTimeout(r, 5));
    expect((await fast.collect()).records.filter((r) => r.descriptor.name === 'c')).toEqual([]); // now reclaimed
    await p.shutdown();
  });
});

describe('shutdown and flush', () => {
  it('provider.shutdown(): the reader exports the last collection, then its exporter is shut down, then recording stops', async () => {
    logger = installLogger();
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const p = new MeterProvider({ readers: [reader] });
    const c = p.getMeter('m').createCounter('c');
    c.add(5);
    await p.shutdown();
    expect(exporter.getMetrics().length).toBe(1);
    expect(points(exporter.getMetrics()[0], 'c')[0].value).toBe(5);
    // The exporter was shut down after that export: it refuses more.
    const result = await new Promise<{ code: number }>((resolve) => exporter.export(exporter.getMetrics()[0], resolve));
    expect(result.code).toBe(1);
    await expect(p.forceFlush()).rejects.toThrow(/after shutdown/);
    await expect(reader.collect()).rejects.toThrow(/shutdown/);
    await p.shutdown(); // idempotent
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('provider.forceFlush() makes every OpenTelemetry reader export now', async () => {
    const e1 = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const e2 = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const p = new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({ exporter: e1, exportIntervalMillis: 3_600_000 }),
        new PeriodicExportingMetricReader({ exporter: e2, exportIntervalMillis: 3_600_000 }),
      ],
    });
    const c = p.getMeter('m').createCounter('c');
    c.add(1);
    await p.forceFlush();
    c.add(2);
    await p.forceFlush();
    expect(e1.getMetrics().map((rm) => points(rm, 'c')[0].value)).toEqual([1, 3]);
    expect(e2.getMetrics().map((rm) => points(rm, 'c')[0].value)).toEqual([1, 2]);
    expect(e2.getMetrics().map((rm) => metric(rm, 'c')!.aggregationTemporality)).toEqual([SdkTemporality.DELTA, SdkTemporality.DELTA]);
    await p.shutdown();
  });

  it('a reader the user already shut down does not break provider.shutdown()', async () => {
    const reader = new ManualOtelReader();
    const p = new MeterProvider({ readers: [reader] });
    await reader.shutdown();
    await expect(p.shutdown()).resolves.toBeUndefined();
  });

  it('nothing recorded: nothing exported (as sdk-metrics)', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const p = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })] });
    p.getMeter('m').createCounter('unused');
    await p.forceFlush();
    expect(exporter.getMetrics()).toEqual([]);
    await p.shutdown();
  });

  it('a reader\'s aggregation preference applies to its own export only', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    (exporter as unknown as { selectAggregation: (t: string) => unknown }).selectAggregation = (t) =>
      t === 'HISTOGRAM' ? { type: AggregationType.EXPONENTIAL_HISTOGRAM } : { type: AggregationType.DEFAULT };
    const plain = new ManualOtelReader(SdkTemporality.CUMULATIVE);
    const p = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 }), plain] });
    p.getMeter('m').createHistogram('h').record(3);
    await p.forceFlush();
    expect(metric(exporter.getMetrics()[0], 'h')!.dataPointType).toBe(DataPointType.EXPONENTIAL_HISTOGRAM);
    expect(metric((await plain.collect()).resourceMetrics, 'h')!.dataPointType).toBe(DataPointType.HISTOGRAM);
    await p.shutdown();
  });
});

describe('aggregation mapping', () => {
  const values = [0.5, 3, 3, 7, 120];
  for (const [name, selector] of [['sketch', sketchSelector], ['exact', exactSelector], ['minMaxSumCount', inexpensiveSelector]] as const) {
    it(`${name} -> a HISTOGRAM without bounds (one bucket; count, sum, min, max), cumulative and delta`, async () => {
      const cumulative = new ManualOtelReader(SdkTemporality.CUMULATIVE);
      const delta = new ManualOtelReader(SdkTemporality.DELTA);
      const p = new MeterProvider({ aggregationSelector: selector, readers: [cumulative, delta] });
      const h = p.getMeter('m').createHistogram('h');
      for (const v of values) h.record(v, { k: 1 });
      for (const r of [cumulative, delta]) {
        const rm = (await r.collect()).resourceMetrics;
        expect(metric(rm, 'h')!.dataPointType).toBe(DataPointType.HISTOGRAM);
        expect(points(rm, 'h')[0].value).toEqual({ buckets: { boundaries: [], counts: [5] }, count: 5, sum: 133.5, min: 0.5, max: 120 });
      }
      h.record(1000, { k: 1 });
      h.record(0.25, { k: 1 });
      expect(points((await cumulative.collect()).resourceMetrics, 'h')[0].value).toEqual({
        buckets: { boundaries: [], counts: [7] }, count: 7, sum: 1133.75, min: 0.25, max: 1000,
      });
      // Both extremes moved in the interval, so the delta knows them.
      expect(points((await delta.collect()).resourceMetrics, 'h')[0].value).toEqual({
        buckets: { boundaries: [], counts: [2] }, count: 2, sum: 1000.25, min: 0.25, max: 1000,
      });
      h.record(5, { k: 1 });
      const v = points((await delta.collect()).resourceMetrics, 'h')[0].value as Histogram;
      expect(v).toEqual({ buckets: { boundaries: [], counts: [1] }, count: 1, sum: 5, min: undefined, max: undefined });
      await p.shutdown();
    });
  }

  it('exponential histogram -> EXPONENTIAL_HISTOGRAM; its deltas are exact across rescaling', async () => {
    const cumulative = new ManualOtelReader(SdkTemporality.CUMULATIVE);
    const delta = new ManualOtelReader(SdkTemporality.DELTA);
    const p = new MeterProvider({ aggregationSelector: exponentialHistogramSelector, readers: [cumulative, delta] });
    const h = p.getMeter('m').createHistogram('h');
    h.record(1.5);
    h.record(0);
    let rm = (await delta.collect()).resourceMetrics;
    expect(metric(rm, 'h')!.dataPointType).toBe(DataPointType.EXPONENTIAL_HISTOGRAM);
    expect(points(rm, 'h')[0].value).toMatchObject({ count: 2, zeroCount: 1, sum: 1.5, min: 0, max: 1.5, scale: 20 });
    h.record(1e9); // forces the scale down
    rm = (await delta.collect()).resourceMetrics;
    const d = points(rm, 'h')[0].value as { count: number; scale: number; zeroCount: number; min?: number; max?: number; positive: { offset: number; bucketCounts: number[] } };
    expect(d.count).toBe(1);
    expect(d.zeroCount).toBe(0);
    expect(d.max).toBe(1e9);
    expect(d.min).toBeUndefined(); // the interval's min is unknown (the cumulative min did not move)
    expect(d.positive.bucketCounts.reduce((a, b) => a + b, 0)).toBe(1);
    const base = 2 ** (2 ** -d.scale);
    expect(base ** d.positive.offset < 1e9 && 1e9 <= base ** (d.positive.offset + 1) * (1 + 1e-12)).toBe(true);
    const c = points((await cumulative.collect()).resourceMetrics, 'h')[0].value as { scale: number; count: number };
    expect(c.count).toBe(3);
    expect(c.scale).toBe(d.scale);
    await p.shutdown();
  });

  it('exponentialDelta equals the histogram of the interval\'s values, at the later scale (random phases)', async () => {
    const rand = prng(99);
    for (let trial = 0; trial < 40; trial++) {
      // One provider sees phase 1 then phase 2; another sees phase 2 only.
      const both = new ManualReader();
      const only = new ManualReader();
      const p1 = new MeterProvider({ aggregationSelector: exponentialHistogramSelector, readers: [both] });
      const p2 = new MeterProvider({ aggregationSelector: exponentialHistogramSelector, readers: [only] });
      const h1 = p1.getMeter('m').createHistogram('h');
      const h2 = p2.getMeter('m').createHistogram('h');
      const gen = () => (rand() < 0.1 ? 0 : rand() * 10 ** randInt(rand, -6, 6));
      for (let i = randInt(rand, 0, 50); i > 0; i--) h1.record(gen());
      const a = (await both.collect()).records[0]?.aggregation as ExponentialHistogramAggregation | undefined;
      for (let i = randInt(rand, 1, 50); i > 0; i--) {
        const v = gen();
        h1.record(v);
        h2.record(v);
      }
      const b = (await both.collect()).records[0].aggregation as ExponentialHistogramAggregation;
      const want = (await only.collect()).records[0].aggregation as ExponentialHistogramAggregation;
      const empty: ExponentialHistogramAggregation = { ...b, count: 0, sum: 0, zeroCount: 0, min: Infinity, max: -Infinity, positive: { offset: 0, bucketCounts: [] } };
      const d = exponentialDelta(a ?? empty, b)!;
      expect(d).toBeDefined();
      expect(d.count).toBe(want.count);
      expect(d.zeroCount).toBe(want.zeroCount);
      expect(Math.abs(d.sum - want.sum)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(b.sum)));
      expect(want.scale >= b.scale).toBe(true);
      const lowered = downscaleBuckets(want.positive, want.scale - b.scale);
      const trim = (x: { offset: number; bucketCounts: readonly number[] }) => {
        const c = [...x.bucketCounts];
        let off = x.offset;
        while (c.length && c[0] === 0) {
          c.shift();
          off++;
        }
        while (c.length && c[c.length - 1] === 0) c.pop();
        return c.length ? { offset: off, bucketCounts: c } : { offset: 0, bucketCounts: [] };
      };
      expect(trim(d.positive)).toEqual(trim(lowered));
      if (d.min !== undefined) expect(d.min).toBe(want.min);
      if (d.max !== undefined) expect(d.max).toBe(want.max);
      // Backwards is a reset.
      if (a !== undefined && a.count > 0 && b.count > a.count) expect(exponentialDelta(b, a)).toBeUndefined();
      await p1.shutdown();
      await p2.shutdown();
    }
  });
});

describe('conversion details', () => {
  it('toHrTime', () => {
    expect(toHrTime(0)).toEqual([0, 0]);
    expect(toHrTime(1_700_000_000_123)).toEqual([1_700_000_000, 123_000_000]);
    expect(toHrTime(999)).toEqual([0, 999_000_000]);
    expect(toHrTime(1000.5)).toEqual([1, 500_000]);
  });

  it('resources: plain objects become a Resource; an OpenTelemetry Resource is used as it is', () => {
    const plain = toOtelResource({ attributes: { a: 1 } });
    expect(plain).toBeInstanceOf(StaticResource);
    expect(plain.attributes).toEqual({ a: 1 });
    expect(Object.isFrozen(plain.attributes)).toBe(true);
    expect(plain.asyncAttributesPending).toBe(false);
    expect(plain.getRawAttributes()).toEqual([['a', 1]]);
    expect(plain.merge(toOtelResource({ attributes: { a: 2, b: 3 } })).attributes).toEqual({ a: 2, b: 3 });
    expect(plain.merge(null)).toBe(plain);
    expect(toOtelResource({ attributes: {}, schemaUrl: 'https://x/1.0' } as never).schemaUrl).toBe('https://x/1.0');
    expect(toOtelResource(undefined).attributes).toEqual({});
    const real = resourceFromAttributes({ 'service.name': 's' });
    expect(toOtelResource(real)).toBe(real);
  });

  it('toOtelResourceMetrics on a CheckpointSet from provider.collect(): cumulative, grouped by scope then instrument', async () => {
    const p = new MeterProvider({ resource: { attributes: { r: 1 } } });
    const m1 = p.getMeter('one', '1');
    const m2 = p.getMeter('two');
    m1.createCounter('a').add(1, { x: 1 });
    m2.createUpDownCounter('b').add(-2);
    m1.createCounter('a').add(1, { x: 2 });
    m1.createGauge('g').record(7);
    const rm = toOtelResourceMetrics(await p.collect(), { resource: p.resource });
    expect(rm.resource.attributes).toEqual({ r: 1 });
    expect(rm.scopeMetrics.map((s) => [s.scope.name, s.scope.version, s.metrics.map((x) => x.descriptor.name)])).toEqual([
      ['one', '1', ['a', 'g']],
      ['two', undefined, ['b']],
    ]);
    const a = metric(rm, 'a') as unknown as SumMetricData;
    expect([a.dataPointType, a.isMonotonic, a.aggregationTemporality, a.dataPoints.length]).toEqual([DataPointType.SUM, true, SdkTemporality.CUMULATIVE, 2]);
    const b = metric(rm, 'b') as unknown as SumMetricData;
    expect([b.isMonotonic, b.dataPoints[0].value]).toEqual([false, -2]);
    expect(metric(rm, 'g')!.dataPointType).toBe(DataPointType.GAUGE);
    await p.shutdown();
  });

  it('views that drop an instrument, or a DROP aggregation, export nothing for it', async () => {
    const reader = new ManualOtelReader();
    const p = new MeterProvider({ readers: [reader], views: [{ instrumentName: 'gone', aggregation: AggregationKind.DROP }] });
    p.getMeter('m').createCounter('gone').add(1);
    p.getMeter('m').createCounter('kept').add(1);
    const rm = (await reader.collect()).resourceMetrics;
    expect(rm.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name))).toEqual(['kept']);
    await p.shutdown();
  });
});
