// Drop-in evidence: the same recordings, made through @opentelemetry/api, into
// @opentelemetry/sdk-metrics' own MeterProvider and into hotmeter's, each read by an
// sdk-metrics PeriodicExportingMetricReader with an InMemoryMetricExporter. The
// ResourceMetrics the two exporters receive must agree: scopes, metric descriptors,
// point types, temporality, monotonicity, attributes, values, bucket boundaries and
// counts, exponential histogram buckets. Only timestamps differ (checked for sanity),
// and the documented differences are normalised explicitly:
//  * a delta histogram's min/max: sdk-metrics keeps per-interval extremes, hotmeter's
//    cumulative cells know them only when the interval moved them (else unset); when
//    hotmeter sets them they must equal sdk-metrics';
//  * a delta exponential histogram: sdk-metrics starts each interval at the maximum
//    scale, hotmeter keeps the cumulative scale; compared at the lower of the two scales.
import { metrics as apiMetrics, ValueType, type Attributes, type Meter as ApiMeter } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality as SdkTemporality,
  AggregationType,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
  type ExponentialHistogram,
  type Histogram,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { AggregationKind, MeterProvider } from '../src';
import { attrKey, prng, randInt } from './helpers';

const HOSTILE = ['quote " inside', 'new\nline', 'back\\slash', 'unicode ✓ 日本語 😀', '{k="v"}', ''];
const ATTRS: Attributes[] = [
  {},
  { method: 'GET', status: 200, ok: true, ratio: 0.5 },
  { method: 'POST', status: 500, ok: false, ratio: 1.25 },
  { list: ['a', 'b'], nums: [1, 2.5], flags: [true] },
  ...HOSTILE.map((h, i) => ({ hostile: h, i })),
];

interface Instruments {
  record(rand: () => number, round: number, attrs: Attributes): void;
}

/** Creates the same instruments on any @opentelemetry/api Meter and records the same way. */
function instruments(meter: ApiMeter, meter2: ApiMeter, observed: { total: number; gauge: number }): Instruments {
  const counter = meter.createCounter('requests', { valueType: ValueType.INT, description: 'requests "served"\n✓', unit: '{request}' });
  const dcounter = meter.createCounter('bytes', { unit: 'By' });
  const updown = meter.createUpDownCounter('inflight');
  const hist = meter.createHistogram('latency', { unit: 's', advice: { explicitBucketBoundaries: [0.01, 0.1, 1, 10] } });
  const defHist = meter.createHistogram('size');
  const exp = meter.createHistogram('exp', { unit: 'ms' });
  const gauge = meter.createGauge('temperature');
  const ocounter = meter.createObservableCounter('o.counter', { valueType: ValueType.INT });
  const oupdown = meter.createObservableUpDownCounter('o.updown');
  const ogauge = meter.createObservableGauge('o.gauge');
  ocounter.addCallback((r) => {
    r.observe(observed.total, { src: 'a' });
    r.observe(observed.total * 2, { src: 'b', hostile: HOSTILE[1] });
  });
  oupdown.addCallback((r) => r.observe(-observed.total / 4 - 0.5, { src: 'a' }));
  ogauge.addCallback((r) => r.observe(observed.gauge, { src: HOSTILE[3] }));
  const other = meter2.createCounter('other.count');
  return {
    record(rand, round, attrs) {
      counter.add(randInt(rand, 1, 9), attrs);
      dcounter.add(randInt(rand, 1, 4096) / 64, attrs);
      // Never nets to zero in an interval: hotmeter tells updates by a changed value, so
      // an up-down series whose updates cancel out exports no delta point (sdk-metrics
      // exports a 0).
      updown.add(randInt(rand, -9, 9) + 1 / 1024, attrs);
      hist.record([0, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50][randInt(rand, 0, 8)], attrs);
      defHist.record(randInt(rand, 0, 20000), attrs);
      exp.record(round === 0 && randInt(rand, 0, 3) === 0 ? 0 : rand() * 10 ** randInt(rand, -3, 3 + round), attrs);
      gauge.record(randInt(rand, -100, 100) / 4, attrs);
      if (attrs === ATTRS[1]) other.add(1.5, { k: 'v' });
    },
  };
}

type Norm = Record<string, unknown>;

/** A comparable form of sdk-metrics ResourceMetrics: no times, order-free. */
function normalize(rm: ResourceMetrics, opts: Drop = {}): Norm {
  return {
    scopes: rm.scopeMetrics
      .map((sm) => ({
        scope: { name: sm.scope.name, version: sm.scope.version || undefined, schemaUrl: sm.scope.schemaUrl || undefined },
        metrics: sm.metrics
          .map((m) => normalizeMetric(m, opts))
          .sort((a, b) => String(a.name).localeCompare(String(b.name))),
      }))
      .sort((a, b) => a.scope.name.localeCompare(b.scope.name)),
  };
}

interface Drop {
  min?: Set<string>;
  max?: Set<string>;
}

function normalizeMetric(m: MetricData, opts: Drop): Norm {
  const d = m.descriptor;
  const points = (m.dataPoints as { attributes: Attributes; value: unknown }[])
    .map((p) => ({ key: attrKey(p.attributes), attributes: p.attributes, value: normalizeValue(m.dataPointType, p.value, opts, `${d.name}${attrKey(p.attributes)}`) }))
    .sort((a, b) => a.key.localeCompare(b.key));
  return {
    name: d.name,
    description: d.description,
    unit: d.unit,
    valueType: d.valueType,
    dataPointType: m.dataPointType,
    temporality: m.dataPointType === DataPointType.GAUGE ? undefined : m.aggregationTemporality,
    isMonotonic: m.dataPointType === DataPointType.SUM ? m.isMonotonic : undefined,
    points,
  };
}

function normalizeValue(type: DataPointType, v: unknown, drop: Drop, key: string): unknown {
  switch (type) {
    case DataPointType.HISTOGRAM:
    case DataPointType.EXPONENTIAL_HISTOGRAM: {
      const h = v as Histogram | ExponentialHistogram;
      // Sums are compared apart (compareSums): a delta sum from cumulative cells is a
      // difference of two large sums, exact only to their rounding.
      return { ...h, min: drop.min?.has(key) ? undefined : h.min, max: drop.max?.has(key) ? undefined : h.max, sum: undefined };
    }
    default:
      return round(v as number);
  }
}

/** Rounds away floating-point noise (sums added in different orders). */
function round(v: number | undefined): number | undefined {
  return v === undefined ? undefined : Number(v.toPrecision(12));
}

/** Exponential buckets lowered from scale `from` to `to` and trimmed. */
function lower(b: { offset: number; bucketCounts: number[] }, from: number, to: number): { offset: number; bucketCounts: number[] } {
  const f = 2 ** (from - to);
  const acc = new Map<number, number>();
  b.bucketCounts.forEach((c, k) => {
    if (c === 0) return;
    const i = Math.floor((b.offset + k) / f);
    acc.set(i, (acc.get(i) ?? 0) + c);
  });
  if (acc.size === 0) return { offset: 0, bucketCounts: [] };
  const lo = Math.min(...acc.keys());
  const hi = Math.max(...acc.keys());
  const counts = new Array<number>(hi - lo + 1).fill(0);
  for (const [i, c] of acc) counts[i - lo] = c;
  return { offset: lo, bucketCounts: counts };
}

/**
 * Brings the exponential histogram points of `a` and `b` (same metric, same attributes)
 * to a common scale, in place, so that they can be compared.
 */
function alignExponential(a: ResourceMetrics, b: ResourceMetrics): void {
  const points = (rm: ResourceMetrics) => {
    const out = new Map<string, { value: ExponentialHistogram }>();
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        if (m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
        for (const p of m.dataPoints) out.set(`${sm.scope.name}/${m.descriptor.name}${attrKey(p.attributes)}`, p as { value: ExponentialHistogram });
      }
    }
    return out;
  };
  const pb = points(b);
  for (const [k, p] of points(a)) {
    const q = pb.get(k);
    if (q === undefined) continue;
    const s = Math.min(p.value.scale, q.value.scale);
    for (const x of [p, q]) {
      const v = x.value;
      (x as { value: ExponentialHistogram }).value = {
        ...v,
        positive: lower(v.positive, v.scale, s),
        negative: lower(v.negative, v.scale, s),
        scale: s,
      };
    }
  }
}

/**
 * The (metric, attributes) keys whose histogram points hotmeter exported without min or
 * max. Explicit-bucket histograms know both or neither (the batchers' hasMinMax);
 * exponential ones each separately.
 */
function withoutMinMax(rm: ResourceMetrics): Required<Drop> {
  const out = { min: new Set<string>(), max: new Set<string>() };
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
      for (const p of m.dataPoints) {
        const v = p.value as Histogram;
        const key = `${m.descriptor.name}${attrKey(p.attributes)}`;
        if (m.dataPointType === DataPointType.HISTOGRAM) expect(v.min === undefined, key).toBe(v.max === undefined);
        if (v.min === undefined) out.min.add(key);
        if (v.max === undefined) out.max.add(key);
      }
    }
  }
  return out;
}

/** min/max hotmeter did export equal sdk-metrics'. */
function checkKnownMinMax(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const index = new Map<string, Histogram>();
  for (const sm of sdk.scopeMetrics) for (const m of sm.metrics) for (const p of m.dataPoints) index.set(`${m.descriptor.name}${attrKey(p.attributes)}`, p.value as Histogram);
  for (const sm of hm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
      for (const p of m.dataPoints) {
        const v = p.value as Histogram;
        const s = index.get(`${m.descriptor.name}${attrKey(p.attributes)}`)!;
        if (v.min !== undefined) expect(v.min).toBe(s.min);
        if (v.max !== undefined) expect(v.max).toBe(s.max);
      }
    }
  }
}

/** Histogram sums agree to within the rounding of the cumulative sums they come from. */
function compareSums(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const sums = (rm: ResourceMetrics) => {
    const out = new Map<string, number>();
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
        for (const p of m.dataPoints) out.set(`${m.descriptor.name}${attrKey(p.attributes)}`, (p.value as Histogram).sum!);
      }
    }
    return out;
  };
  const a = sums(hm);
  const b = sums(sdk);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, v] of a) expect(Math.abs(v - b.get(k)!), `${k}: ${v} vs ${b.get(k)}`).toBeLessThanOrEqual(1e-6 + 1e-12 * Math.abs(v));
}

/** Times: start <= end, and hotmeter's end within a second of sdk-metrics'. */
function checkTimes(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const sdkEnd = sdk.scopeMetrics[0].metrics[0].dataPoints[0].endTime;
  const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
  for (const sm of hm.scopeMetrics) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints) {
        expect(ms(p.startTime) <= ms(p.endTime)).toBe(true);
        expect(Math.abs(ms(p.endTime) - ms(sdkEnd))).toBeLessThan(1000);
        expect(Number.isInteger(p.endTime[0]) && Number.isInteger(p.endTime[1]) && p.endTime[1] < 1e9).toBe(true);
      }
    }
  }
}

async function run(temporality: SdkTemporality, rounds: number, hotmeterOptions: { reclamation?: boolean }): Promise<void> {
  const resource = resourceFromAttributes({ 'service.name': 'parity', 'service.version': HOSTILE[0], n: 3 });
  const views = { sdk: [{ instrumentName: 'exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }] };
  const sdkExporter = new InMemoryMetricExporter(temporality);
  const sdkReader = new PeriodicExportingMetricReader({ exporter: sdkExporter, exportIntervalMillis: 3_600_000 });
  const sdk = new SdkMeterProvider({ resource, readers: [sdkReader], views: views.sdk });
  const hmExporter = new InMemoryMetricExporter(temporality);
  const hmReader = new PeriodicExportingMetricReader({ exporter: hmExporter, exportIntervalMillis: 3_600_000 });
  const hm = new MeterProvider({
    resource,
    readers: [hmReader],
    views: [{ instrumentName: 'exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }],
    ...hotmeterOptions,
  });
  const observed = { total: 0, gauge: 0 };
  const both = [sdk, hm].map((p) =>
    instruments(p.getMeter('parity.scope', '2.0.0', { schemaUrl: 'https://opentelemetry.io/schemas/1.24.0' }), p.getMeter('second'), observed),
  );
  // The global provider plays no part; make sure of it.
  expect(apiMetrics.getMeterProvider()).not.toBe(hm);
  try {
    for (let n = 0; n < rounds; n++) {
      // Identical random streams for both providers.
      const rands = [prng(1000 + n), prng(1000 + n)];
      const pick = prng(77 + n);
      for (const attrs of ATTRS) {
        if (n > 0 && pick() < 0.3) continue; // some series sit out some rounds
        const times = randInt(pick, 1, 5);
        for (let k = 0; k < times; k++) both.forEach((inst, i) => inst.record(rands[i], n, attrs));
      }
      observed.total += n === 2 ? 0 : 10 + n;
      observed.gauge = n * 1.5 - 2;
      await sdkReader.forceFlush();
      await hmReader.forceFlush();
      const sdkRm = sdkExporter.getMetrics()[n];
      const hmRm = hmExporter.getMetrics()[n];
      expect(sdkRm, `round ${n}: sdk-metrics exported`).toBeDefined();
      expect(hmRm, `round ${n}: hotmeter exported`).toBeDefined();
      expect(hmRm.resource).toBe(resource); // the user's Resource object, as sdk-metrics passes it
      checkTimes(hmRm, sdkRm);
      checkKnownMinMax(hmRm, sdkRm);
      compareSums(hmRm, sdkRm);
      alignExponential(hmRm, sdkRm);
      const drop = withoutMinMax(hmRm);
      if (temporality === SdkTemporality.CUMULATIVE) expect([...drop.min, ...drop.max]).toEqual([]);
      expect(normalize(hmRm), `round ${n}`).toEqual(normalize(sdkRm, drop));
    }
  } finally {
    await sdk.shutdown();
    await hm.shutdown();
  }
}

describe('hotmeter ResourceMetrics equal @opentelemetry/sdk-metrics\' for the same recordings', () => {
  it('cumulative, every instrument kind, over several exports (reclamation off: sdk-metrics keeps idle series)', async () => {
    await run(SdkTemporality.CUMULATIVE, 5, { reclamation: false });
  });

  it('delta, every instrument kind, over several exports (series sitting out rounds are reclaimed and come back)', async () => {
    await run(SdkTemporality.DELTA, 6, {});
  });
});
