// The distribution aggregators (quantile sketch, base-2 exponential histogram, exact),
// end to end through the public API: selectors, bound handles, direct calls, collection.
// Merge of per-thread cells is covered by native/test/sketch_test.cc.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValueType } from '@opentelemetry/api';
import {
  AggregationType,
  MeterProvider as OtelMeterProvider,
  MetricReader,
  type ExponentialHistogram as OtelExponentialHistogram,
} from '@opentelemetry/sdk-metrics';
import {
  AggregationKind,
  exactSelector,
  exponentialHistogramSelector,
  histogramSelector,
  MeterProvider,
  sketchSelector,
  toPrometheusText,
  type CheckpointSet,
  type ExactAggregation,
  type ExponentialHistogramAggregation,
  type SketchAggregation,
} from '../src';
import { mapToIndex } from '../src/sdk/exponential-histogram';
import { native } from '../src/sdk/native';
import { CapturingLogger, findRecord, installLogger, prng, uninstallLogger } from './helpers';

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => {
  uninstallLogger();
});

type Dist = 'uniform' | 'lognormal' | 'pareto' | 'exponential';
const DISTS: Dist[] = ['uniform', 'lognormal', 'pareto', 'exponential'];

function sampler(dist: Dist, seed: number): () => number {
  const r = prng(seed);
  switch (dist) {
    case 'uniform':
      return () => r();
    case 'lognormal':
      return () => Math.exp(Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
    case 'pareto':
      return () => Math.pow(1 - r(), -1 / 1.5);
    case 'exponential':
      return () => -Math.log(1 - r());
  }
}

/** The exact lower quantile the sketch estimates: the value of rank floor(q (n - 1)). */
function exactQuantile(sorted: Float64Array, q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))];
}

const QUANTILES = [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];

function sketchOf(cs: CheckpointSet, name: string, attrs = {}): SketchAggregation {
  const a = findRecord(cs, name, attrs).aggregation;
  expect(a.kind).toBe('sketch');
  return a as SketchAggregation;
}
function expOf(cs: CheckpointSet, name: string, attrs = {}): ExponentialHistogramAggregation {
  const a = findRecord(cs, name, attrs).aggregation;
  expect(a.kind).toBe('exponentialHistogram');
  return a as ExponentialHistogramAggregation;
}
function exactOf(cs: CheckpointSet, name: string, attrs = {}): ExactAggregation {
  const a = findRecord(cs, name, attrs).aggregation;
  expect(a.kind).toBe('exact');
  return a as ExactAggregation;
}

/**
 * Checks every quantile against the exact one and returns the worst relative error.
 * Quantiles of values the sketch collapsed (more than gamma^(maxSize-1) below the max)
 * are skipped, as the bound does not cover them.
 */
function worstSketchError(s: SketchAggregation, sorted: Float64Array, alpha: number, maxSize: number): number {
  const lnGamma = Math.log1p((2 * alpha) / (1 - alpha));
  const key = (v: number) => Math.ceil(Math.log(v) / lnGamma);
  const lowestKept = key(sorted[sorted.length - 1]) - maxSize + 1;
  let worst = 0;
  for (const q of QUANTILES) {
    const x = exactQuantile(sorted, q);
    if (q > 0 && x > 0 && key(x) <= lowestKept) continue;
    const e = s.quantile(q);
    const err = x === 0 ? Math.abs(e) : Math.abs(e - x) / x;
    expect(err, `q ${q}: ${e} vs exact ${x}`).toBeLessThanOrEqual(alpha * (1 + 1e-9));
    worst = Math.max(worst, err);
  }
  return worst;
}

describe('sketch aggregator (DDSketch)', () => {
  it('quantiles within the relative accuracy of the exact ones, counts exact (100k values per distribution)', async () => {
    const p = new MeterProvider({ aggregationSelector: sketchSelector });
    const h = p.getMeter('m').createHistogram('latency');
    const values = new Map<Dist, Float64Array>();
    for (const [i, dist] of DISTS.entries()) {
      const draw = sampler(dist, 100 + i);
      const v = new Float64Array(100_000);
      const bound = h.bind({ dist });
      for (let k = 0; k < v.length; k++) {
        v[k] = draw();
        bound.record(v[k]);
      }
      values.set(dist, v.slice().sort());
    }
    const cs = await p.collect();
    const measured: Record<string, number> = {};
    for (const dist of DISTS) {
      const s = sketchOf(cs, 'latency', { dist });
      const sorted = values.get(dist)!;
      expect(s.count).toBe(100_000);
      expect(s.relativeAccuracy).toBe(0.01);
      expect(s.min).toBe(sorted[0]);
      expect(s.max).toBe(sorted[sorted.length - 1]);
      expect(s.sum).toBeCloseTo(sorted.reduce((a, b) => a + b, 0), 6);
      measured[dist] = worstSketchError(s, sorted, 0.01, 512);
    }
    // The worst relative error over the quantiles, per distribution (all <= alpha).
    console.log(`sketch worst relative error (alpha 0.01): ${JSON.stringify(measured)}`);
    await p.shutdown();
  });

  it('honours relativeAccuracy and maxSize options; low values collapse, upper quantiles stay accurate', async () => {
    const p = new MeterProvider({
      aggregationSelector: histogramSelector(AggregationKind.SKETCH, { relativeAccuracy: 0.05, maxSize: 60 }),
    });
    const h = p.getMeter('m').createHistogram('size');
    const draw = sampler('lognormal', 7);
    const v = new Float64Array(50_000);
    for (let k = 0; k < v.length; k++) h.record((v[k] = draw()));
    v.sort();
    const s = sketchOf(await p.collect(), 'size');
    expect(s.relativeAccuracy).toBe(0.05);
    expect(s.count).toBe(v.length);
    worstSketchError(s, v, 0.05, 60);
    // 60 bins at 5% cover a ratio of ~365 below the max (~67): the upper quantiles are
    // within 5%, the 1% quantile (~0.1) collapsed (over-estimated).
    for (const q of [0.5, 0.9, 0.99]) {
      expect(Math.abs(s.quantile(q) - exactQuantile(v, q)) / exactQuantile(v, q)).toBeLessThanOrEqual(0.05);
    }
    expect(s.quantile(0.01)).toBeGreaterThan(exactQuantile(v, 0.01) * 1.05);
    await p.shutdown();
  });

  it('zeros, empty series and quantile edge cases', async () => {
    const p = new MeterProvider({ aggregationSelector: sketchSelector });
    const h = p.getMeter('m').createHistogram('h');
    const empty = h.bind({ e: 1 });
    for (let i = 0; i < 10; i++) h.record(0, { z: 1 });
    h.record(5, { z: 1 });
    const cs = await p.collect();
    const z = sketchOf(cs, 'h', { z: 1 });
    expect(z.count).toBe(11);
    expect(z.zeroCount).toBe(10);
    expect(z.quantile(0.5)).toBe(0);
    expect(z.quantile(1)).toBe(5);
    expect(z.quantile(0.9)).toBe(0); // rank floor(0.9 * 10) = 9: still a zero
    expect(z.quantile(-0.1)).toBeNaN();
    expect(z.quantile(1.1)).toBeNaN();
    expect(z.quantile(NaN)).toBeNaN();
    const e = sketchOf(cs, 'h', { e: 1 });
    expect(e).toMatchObject({ count: 0, sum: 0, min: Infinity, max: -Infinity, zeroCount: 0 });
    expect(e.quantile(0.5)).toBeNaN();
    empty.unbind();
    await p.shutdown();
  });

  it('a window moving up and down many times keeps every value (in-place slow path)', async () => {
    const p = new MeterProvider({ aggregationSelector: histogramSelector(AggregationKind.SKETCH, { maxSize: 16 }) });
    const h = p.getMeter('m').createHistogram('h');
    const r = prng(3);
    let n = 0;
    for (let round = 0; round < 200; round++) {
      const center = Math.exp((r() - 0.5) * 40);
      for (let k = 0; k < 20; k++) {
        h.record(center * (1 + r() * 0.2));
        n++;
      }
    }
    const s = sketchOf(await p.collect(), 'h');
    expect(s.count).toBe(n);
    expect(s.quantile(1)).toBe(s.max);
    await p.shutdown();
  });
});

// ---------------------------------------------------------------------------------------

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** Records `values` in @opentelemetry/sdk-metrics' exponential histogram. */
async function otelExponential(values: ArrayLike<number>, maxSize: number, maxScale = 20): Promise<OtelExponentialHistogram> {
  const reader = new TestReader();
  const mp = new OtelMeterProvider({
    readers: [reader],
    views: [{ instrumentName: 'x', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize } } }],
  });
  const h = mp.getMeter('m').createHistogram('x');
  for (let i = 0; i < values.length; i++) h.record(values[i]);
  const { resourceMetrics } = await reader.collect();
  await mp.shutdown();
  void maxScale;
  return resourceMetrics.scopeMetrics[0].metrics[0].dataPoints[0].value as OtelExponentialHistogram;
}

describe('exponential histogram aggregator', () => {
  it('maps values as @opentelemetry/sdk-metrics does, at every scale', async () => {
    const { getMapping } = (await import(
      '@opentelemetry/sdk-metrics/build/src/aggregator/exponential-histogram/mapping/getMapping' as string
    )) as { getMapping(scale: number): { mapToIndex(v: number): number } };
    const r = prng(11);
    for (let scale = -10; scale <= 20; scale++) {
      const m = getMapping(scale);
      for (let e = -1022; e <= 1023; e += 7) {
        const v = 2 ** e;
        expect(mapToIndex(v, scale)).toBe(m.mapToIndex(v));
      }
      for (let k = 0; k < 2000; k++) {
        const v = Math.exp((r() - 0.5) * 1400);
        expect(mapToIndex(v, scale)).toBe(m.mapToIndex(v));
      }
      for (const v of [Number.MIN_VALUE, 1e-310, 2.2250738585072014e-308, Number.MAX_VALUE, 1, 1.5, 3]) {
        expect(mapToIndex(v, scale)).toBe(m.mapToIndex(v));
      }
    }
  });

  it('produces the same data point as @opentelemetry/sdk-metrics (100k values per distribution)', async () => {
    const p = new MeterProvider({ aggregationSelector: exponentialHistogramSelector });
    const h = p.getMeter('m').createHistogram('latency');
    const values = new Map<Dist, Float64Array>();
    for (const [i, dist] of DISTS.entries()) {
      const draw = sampler(dist, 200 + i);
      const v = new Float64Array(100_000);
      for (let k = 0; k < v.length; k++) {
        v[k] = k % 1000 === 0 ? 0 : draw();
        h.record(v[k], { dist });
      }
      values.set(dist, v);
    }
    const cs = await p.collect();
    for (const dist of DISTS) {
      const a = expOf(cs, 'latency', { dist });
      const ref = await otelExponential(values.get(dist)!, 160);
      expect(a.count).toBe(100_000);
      expect(a.zeroCount).toBe(100);
      expect(a.zeroCount + a.positive.bucketCounts.reduce((x, y) => x + y, 0)).toBe(a.count);
      expect(a.negative.bucketCounts).toEqual([]);
      expect(a.positive.bucketCounts.length).toBeLessThanOrEqual(160);
      expect(a.scale).toBe(ref.scale);
      expect(a.positive.offset).toBe(ref.positive.offset);
      expect(a.positive.bucketCounts).toEqual(ref.positive.bucketCounts);
      expect(a.zeroCount).toBe(ref.zeroCount);
      expect(a.count).toBe(ref.count);
      expect(a.min).toBe(ref.min);
      expect(a.max).toBe(ref.max);
      expect(a.sum).toBeCloseTo(ref.sum, 6);
    }
    await p.shutdown();
  });

  it('starts at the max scale and lowers the scale when the range is wide', async () => {
    const p = new MeterProvider({ aggregationSelector: exponentialHistogramSelector });
    const h = p.getMeter('m').createHistogram('h');
    const narrow = h.bind({ range: 'narrow' });
    for (let k = 0; k < 100; k++) narrow.record(1 + k * 1e-6);
    const wide = h.bind({ range: 'wide' });
    let n = 0;
    for (let v = 1e-6; v < 1e6; v *= 1.01) {
      wide.record(v);
      n++;
    }
    const cs = await p.collect();
    const a = expOf(cs, 'h', { range: 'narrow' });
    expect(a.scale).toBe(20);
    const b = expOf(cs, 'h', { range: 'wide' });
    expect(b.scale).toBeLessThan(20);
    expect(b.scale).toBeGreaterThanOrEqual(0);
    expect(b.positive.bucketCounts.length).toBeLessThanOrEqual(160);
    expect(b.count).toBe(n);
    expect(b.positive.bucketCounts.reduce((x, y) => x + y, 0)).toBe(n);
    // Every value lies in its bucket at the reported scale.
    expect(mapToIndex(1e-6, b.scale)).toBe(b.positive.offset);
    expect(mapToIndex(b.max, b.scale)).toBe(b.positive.offset + b.positive.bucketCounts.length - 1);
    narrow.unbind();
    wide.unbind();
    await p.shutdown();
  });

  it('honours maxSize and maxScale, and reports the max scale while only zeros were recorded', async () => {
    const p = new MeterProvider({
      aggregationSelector: histogramSelector(AggregationKind.EXPONENTIAL_HISTOGRAM, { maxSize: 8, maxScale: 3 }),
    });
    const h = p.getMeter('m').createHistogram('h');
    h.record(0, { only: 'zeros' });
    const draw = sampler('lognormal', 5);
    const v = new Float64Array(10_000);
    for (let k = 0; k < v.length; k++) h.record((v[k] = draw()));
    const cs = await p.collect();
    expect(expOf(cs, 'h', { only: 'zeros' })).toMatchObject({ count: 1, zeroCount: 1, scale: 3, positive: { offset: 0, bucketCounts: [] } });
    const a = expOf(cs, 'h');
    expect(a.scale).toBeLessThanOrEqual(3);
    expect(a.positive.bucketCounts.length).toBeLessThanOrEqual(8);
    const ref = await otelExponential(v, 8);
    // OpenTelemetry starts at scale 20; with max scale 3 the result is the same once the
    // data needs a scale <= 3.
    expect(a.scale).toBe(ref.scale);
    expect(a.positive).toEqual(ref.positive);
    await p.shutdown();
  });
});

// ---------------------------------------------------------------------------------------

describe('exact aggregator', () => {
  it('returns every value since the previous collection, sorted; count/sum/min/max are cumulative', async () => {
    const p = new MeterProvider({ aggregationSelector: exactSelector });
    const h = p.getMeter('m').createHistogram('h');
    const r = prng(9);
    const first: number[] = [];
    const bound = h.bind({ a: 1 });
    const bound2 = h.bind({ a: 1 }); // a second handle on the same series
    for (let k = 0; k < 10_000; k++) {
      const v = Math.floor(r() * 1000) / 8;
      first.push(v);
      if (k % 3 === 0) bound.record(v);
      else if (k % 3 === 1) bound2.record(v);
      else h.record(v, { a: 1 });
    }
    let a = exactOf(await p.collect(), 'h', { a: 1 });
    expect(a.values).toEqual([...first].sort((x, y) => x - y));
    expect(a.count).toBe(10_000);
    expect(a.sum).toBe(first.reduce((x, y) => x + y, 0));
    expect(a.min).toBe(Math.min(...first));
    expect(a.max).toBe(Math.max(...first));

    // Nothing new: no values, the cumulative fields unchanged.
    a = exactOf(await p.collect(), 'h', { a: 1 });
    expect(a.values).toEqual([]);
    expect(a.count).toBe(10_000);

    bound.record(3);
    h.record(1, { a: 1 });
    bound2.record(2);
    a = exactOf(await p.collect(), 'h', { a: 1 });
    expect(a.values).toEqual([1, 2, 3]);
    expect(a.count).toBe(10_003);
    bound.unbind();
    bound2.unbind();
    await p.shutdown();
  });

  it('keeps values recorded through an unreferenced handle until collected', async () => {
    const p = new MeterProvider({ aggregationSelector: exactSelector });
    const h = p.getMeter('m').createHistogram('h');
    const b = h.bind({ k: 'v' });
    b.record(2.5);
    b.record(0.5);
    b.unbind();
    b.record(9); // dropped: unbound
    expect(exactOf(await p.collect(), 'h', { k: 'v' }).values).toEqual([0.5, 2.5]);
    await p.shutdown();
  });
});

// ---------------------------------------------------------------------------------------

describe('bound handle and direct calls into one series give the state of one stream', () => {
  for (const [name, selector] of [
    ['sketch', sketchSelector],
    ['exponential histogram', exponentialHistogramSelector],
    ['exact', exactSelector],
  ] as const) {
    it(name, async () => {
      const split = new MeterProvider({ aggregationSelector: selector });
      const whole = new MeterProvider({ aggregationSelector: selector });
      const hs = split.getMeter('m').createHistogram('h');
      const hw = whole.getMeter('m').createHistogram('h');
      const attrs = { route: '/x' };
      const bound = hs.bind(attrs);
      const r = prng(21);
      for (let k = 0; k < 20_000; k++) {
        // integers and binary fractions: sums are exact in any order
        const v = k % 97 === 0 ? 0 : Math.floor(Math.exp(r() * 20)) / 4;
        if (r() < 0.5) bound.record(v);
        else hs.record(v, attrs);
        hw.record(v, attrs);
      }
      const a = findRecord(await split.collect(), 'h', attrs).aggregation;
      const b = findRecord(await whole.collect(), 'h', attrs).aggregation;
      if (a.kind === 'sketch' && b.kind === 'sketch') {
        const { quantile: qa, ...ra } = a;
        const { quantile: qb, ...rb } = b;
        expect(ra).toEqual(rb);
        for (let q = 0; q <= 1; q += 0.01) expect(qa(q)).toBe(qb(q));
      } else {
        expect(a).toEqual(b);
      }
      bound.unbind();
      await split.shutdown();
      await whole.shutdown();
    });
  }
});

describe('validation, options, shared domains and export', () => {
  it('drops negative, NaN and non-number values with a diagnostic; INT truncates', async () => {
    for (const selector of [sketchSelector, exponentialHistogramSelector, exactSelector]) {
      log = installLogger(); // also forgets the rate limits
      const p = new MeterProvider({ aggregationSelector: selector });
      const h = p.getMeter('m').createHistogram('h', { valueType: ValueType.INT });
      const b = h.bind();
      b.record(-1);
      b.record(NaN);
      b.record(Infinity);
      b.record('3' as unknown as number);
      h.record(-5);
      b.record(2.75);
      const a = findRecord(await p.collect(), 'h').aggregation as { count: number; sum: number };
      expect(a.count).toBe(1);
      expect(a.sum).toBe(2);
      expect(log.warned('h', 'non-negative')).toBe(true);
      expect(log.warned('h', 'INT')).toBe(true);
      b.unbind();
      await p.shutdown();
    }
  });

  it('invalid aggregator options fall back to the defaults with a diagnostic', async () => {
    const p = new MeterProvider({
      aggregationSelector: histogramSelector(AggregationKind.SKETCH, { relativeAccuracy: 2, maxSize: 3.5 }),
    });
    const h = p.getMeter('m').createHistogram('h');
    h.record(1);
    const s = sketchOf(await p.collect(), 'h');
    expect(s.relativeAccuracy).toBe(0.01);
    expect(log.warned('h', 'relativeAccuracy')).toBe(true);
    await p.shutdown();
  });

  it('other kinds ignore the selector for non-histograms; counters stay sums', async () => {
    const p = new MeterProvider({ aggregationSelector: sketchSelector });
    const m = p.getMeter('m');
    m.createCounter('c').add(3);
    m.createHistogram('h').record(3);
    const cs = await p.collect();
    expect(findRecord(cs, 'c').aggregation).toEqual({ kind: 'sum', sum: 3, monotonic: true });
    expect(findRecord(cs, 'h').aggregation.kind).toBe('sketch');
    await p.shutdown();
  });

  it('a shared domain uses the registered parameters, and skips foreign sketch states correctly', async () => {
    const a = new MeterProvider({
      domain: 'sketch-shared',
      aggregationSelector: histogramSelector(AggregationKind.SKETCH, { maxSize: 64, relativeAccuracy: 0.02 }),
    });
    const b = new MeterProvider({ domain: 'sketch-shared', aggregationSelector: sketchSelector });
    a.getMeter('m').createHistogram('lat').record(10, { k: 1 });
    a.getMeter('m').createHistogram('only-a').record(7);
    b.getMeter('m').createCounter('only-b').add(5);
    // Same identity in b: registered by a with 64 bins at 2%; b must use that layout.
    b.getMeter('m').createHistogram('lat').record(20, { k: 1 });
    const fromB = await b.collect();
    const s = sketchOf(fromB, 'lat', { k: 1 });
    expect(s.count).toBe(2);
    expect(s.relativeAccuracy).toBe(0.02);
    expect(Math.abs(s.quantile(1) - 20)).toBeLessThanOrEqual(0.4);
    expect(findRecord(fromB, 'only-b').aggregation).toEqual({ kind: 'sum', sum: 5, monotonic: true });
    const fromA = await a.collect();
    expect(sketchOf(fromA, 'only-a').count).toBe(1);
    await a.shutdown();
    await b.shutdown();
  });

  it('Prometheus text: sketch and exact as summaries, exponential as a histogram', async () => {
    for (const [selector, type] of [
      [sketchSelector, 'summary'],
      [exactSelector, 'summary'],
      [exponentialHistogramSelector, 'histogram'],
    ] as const) {
      const p = new MeterProvider({ aggregationSelector: selector });
      const h = p.getMeter('m').createHistogram('req_seconds');
      for (let i = 1; i <= 100; i++) h.record(i / 100);
      const text = toPrometheusText(await p.collect());
      expect(text).toContain(`# TYPE req_seconds ${type}`);
      expect(text).toContain('req_seconds_count 100');
      if (type === 'summary') {
        expect(text).toMatch(/req_seconds\{quantile="0.5"\} 0.5\d*\n/);
      } else {
        expect(text).toContain('req_seconds_bucket{le="+Inf"} 100');
        expect(text).toContain('req_seconds_bucket{le="1"} 100');
      }
      await p.shutdown();
    }
  });

  it('native registerInstrument validates the aggregator options and keeps the old signature', () => {
    const n = native();
    const domain = n.registerDomain('');
    const reg = (agg: number, options?: unknown) =>
      n.registerInstrument(domain, `id-${Math.random()}`, 'x', '', '', 2, 1, agg, false, new Float64Array(0), options as undefined);
    const [id] = reg(AggregationKind.SKETCH);
    expect(n.descriptor(id)).toMatchObject({ aggregation: AggregationKind.SKETCH, relativeAccuracy: 0.01, maxSize: 512, maxScale: 20 });
    const [id2] = reg(AggregationKind.EXPONENTIAL_HISTOGRAM, { maxSize: 32, maxScale: -2 });
    expect(n.descriptor(id2)).toMatchObject({ maxSize: 32, maxScale: -2 });
    const [id3] = reg(AggregationKind.EXACT);
    expect(n.descriptor(id3)).toMatchObject({ aggregation: AggregationKind.EXACT });
    for (const bad of [
      { relativeAccuracy: 0 },
      { relativeAccuracy: 1 },
      { relativeAccuracy: '0.1' },
      { maxSize: 1 },
      { maxSize: 4097 },
      { maxSize: 10.5 },
      { maxScale: 21 },
      { maxScale: -11 },
      'options',
      [1],
      null,
    ]) {
      expect(() => reg(AggregationKind.SKETCH, bad)).toThrow(TypeError);
    }
    expect(() => reg(9)).toThrow(TypeError);
  });
});
