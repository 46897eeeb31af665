// Views and the cardinality limit: selection (name wildcards, kind, meter), stream
// changes (name, description, aggregation, attribute allow/deny), and overflow.
import { afterEach, describe, expect, it } from 'vitest';
import { AggregationKind, BoundCounter, BoundHistogram, InstrumentKind, MeterProvider } from '../src';
import { findRecord, histOf, installLogger, maybeRecord, recordsOf, sumOf, uninstallLogger } from './helpers';

afterEach(() => uninstallLogger());

describe('views', () => {
  it('rename and describe one instrument; others untouched', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'requests', name: 'http.requests', description: 'renamed' }] });
    const m = p.getMeter('v');
    m.createCounter('requests').add(2);
    m.createCounter('other').add(3);
    const cs = await p.collect();
    expect(recordsOf(cs, 'requests')).toHaveLength(0);
    const r = findRecord(cs, 'http.requests');
    expect(sumOf(r)).toBe(2);
    expect(r.descriptor.description).toBe('renamed');
    expect(sumOf(findRecord(cs, 'other'))).toBe(3);
  });

  it('wildcards select by name, case-insensitively; instrumentType and meterName narrow', async () => {
    const p = new MeterProvider({
      views: [
        { instrumentName: 'http.*', instrumentType: 'HISTOGRAM', aggregation: AggregationKind.MIN_MAX_SUM_COUNT },
        { meterName: 'quiet', aggregation: AggregationKind.DROP },
      ],
    });
    const m = p.getMeter('loud');
    m.createHistogram('HTTP.duration').record(7);
    m.createHistogram('db.duration').record(7);
    m.createCounter('http.count').add(1); // a counter: the histogram-only view does not apply
    p.getMeter('quiet').createCounter('dropped').add(5);
    const cs = await p.collect();
    expect(findRecord(cs, 'HTTP.duration').aggregation).toEqual({ kind: 'minMaxSumCount', count: 1, sum: 7, min: 7, max: 7 });
    expect(histOf(findRecord(cs, 'db.duration')).count).toBe(1);
    expect(sumOf(findRecord(cs, 'http.count'))).toBe(1);
    expect(recordsOf(cs, 'dropped')).toHaveLength(0);
  });

  it('attribute allow and deny lists merge the series they reduce to', async () => {
    const p = new MeterProvider({
      views: [
        { instrumentName: 'allow', attributeKeys: ['route'] },
        { instrumentName: 'deny', excludedAttributeKeys: ['user'] },
      ],
    });
    const m = p.getMeter('v');
    const allow = m.createCounter('allow');
    const deny = m.createCounter('deny');
    for (let i = 0; i < 100; i++) {
      const attrs = { route: i % 2 ? '/a' : '/b', user: `u${i}`, method: 'GET' };
      allow.add(1, attrs);
      deny.add(1, attrs);
    }
    allow.bind({ route: '/a', user: 'x' }).add(10);
    const cs = await p.collect();
    expect(recordsOf(cs, 'allow')).toHaveLength(2);
    expect(sumOf(findRecord(cs, 'allow', { route: '/a' }))).toBe(60);
    expect(sumOf(findRecord(cs, 'allow', { route: '/b' }))).toBe(50);
    expect(recordsOf(cs, 'deny')).toHaveLength(2);
    expect(sumOf(findRecord(cs, 'deny', { route: '/a', method: 'GET' }))).toBe(50);
  });

  it('explicitBucketBoundaries on a view override advice', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'lat', explicitBucketBoundaries: [1, 2] }] });
    const h = p.getMeter('v').createHistogram('lat', { advice: { explicitBucketBoundaries: [10, 20, 30] } });
    h.record(1.5);
    h.record(100);
    const a = histOf(findRecord(await p.collect(), 'lat'));
    expect(a.boundaries).toEqual([1, 2]);
    expect(a.bucketCounts).toEqual([0, 1, 1]);
  });

  it('several matching views: one stream each (OpenTelemetry), each with its own name', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'x', name: 'first' }, { instrumentType: InstrumentKind.COUNTER, name: undefined }] });
    p.getMeter('v').createCounter('x').add(1);
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'first'))).toBe(1);
    expect(sumOf(findRecord(cs, 'x'))).toBe(1);
  });

  it('several streams: bind, recordBatch, remove and observables reach every stream', async () => {
    const p = new MeterProvider({
      views: [
        { instrumentName: 'c', name: 'c.all' },
        { instrumentName: 'c', name: 'c.route', attributeKeys: ['route'] },
        { instrumentName: 'h', name: 'h.fine', explicitBucketBoundaries: [1, 2] },
        { instrumentName: 'h', name: 'h.coarse', explicitBucketBoundaries: [10] },
        { instrumentName: 'o', name: 'o.a' },
        { instrumentName: 'o', name: 'o.b', attributeKeys: [] },
      ],
    });
    const m = p.getMeter('v');
    const c = m.createCounter('c');
    const h = m.createHistogram('h');
    const b = c.bind({ route: '/a', user: 'u' });
    expect(b).toBeInstanceOf(BoundCounter);
    expect(h.bind({})).toBeInstanceOf(BoundHistogram);
    b.add(2);
    b.add(3);
    m.recordBatch({ route: '/a', user: 'v' }, [[c, 10], [h, 1.5]]);
    h.bind({ route: '/a', user: 'v' }).record(20);
    m.createObservableGauge('o').addCallback((r) => r.observe(7, { k: 'x' }));
    let cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c.all', { route: '/a', user: 'u' }))).toBe(5);
    expect(sumOf(findRecord(cs, 'c.all', { route: '/a', user: 'v' }))).toBe(10);
    expect(sumOf(findRecord(cs, 'c.route', { route: '/a' }))).toBe(15);
    expect(histOf(findRecord(cs, 'h.fine', { route: '/a', user: 'v' })).bucketCounts).toEqual([0, 1, 1]);
    expect(histOf(findRecord(cs, 'h.coarse', { route: '/a', user: 'v' })).bucketCounts).toEqual([1, 1]);
    expect(findRecord(cs, 'o.a', { k: 'x' }).aggregation).toMatchObject({ value: 7 });
    expect(findRecord(cs, 'o.b', {}).aggregation).toMatchObject({ value: 7 });
    b.unbind();
    c.remove({ route: '/a', user: 'v' });
    cs = await p.collect();
    expect(maybeRecord(cs, 'c.all', { route: '/a', user: 'v' })).toBeUndefined();
    await p.shutdown();
  });

  it('attributesProcessors run when a label set is resolved, not per measurement', async () => {
    let calls = 0;
    const processor = {
      process(a: Record<string, unknown>) {
        calls++;
        return { route: String(a.route).toUpperCase() };
      },
    };
    const p = new MeterProvider({ views: [{ instrumentName: 'c', attributesProcessors: [processor] }] });
    const c = p.getMeter('v').createCounter('c');
    for (let i = 0; i < 1000; i++) c.add(1, { route: '/a', user: 'u' });
    const b = c.bind({ route: '/b' });
    for (let i = 0; i < 1000; i++) b.add(1);
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c', { route: '/A' }))).toBe(1000);
    expect(sumOf(findRecord(cs, 'c', { route: '/B' }))).toBe(1000);
    // The first uses of a label set resolve it (the third enters the cache), bind once.
    expect(calls).toBeLessThanOrEqual(4);
    await p.shutdown();
  });

  it('an attributes processor that throws drops the measurement with a diagnostic', async () => {
    const log = installLogger();
    const p = new MeterProvider({ views: [{ instrumentName: 'c', attributesProcessors: [{ process: () => { throw new Error('boom'); } }] }] });
    p.getMeter('v').createCounter('c').add(1, { a: 1 });
    expect(recordsOf(await p.collect(), 'c')).toHaveLength(0);
    expect(log.warned('attributes processor threw', 'boom')).toBe(true);
    await p.shutdown();
  });

  it('sdk-metrics Aggregation instances (the 1.x public classes) are taken for the option they stand for', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const agg = require('@opentelemetry/sdk-metrics/build/src/view/Aggregation');
    const p = new MeterProvider({
      views: [
        { instrumentName: 'h', aggregation: new agg.ExplicitBucketHistogramAggregation([1, 5]) },
        { instrumentName: 'e', aggregation: new agg.ExponentialHistogramAggregation(20) },
        { instrumentName: 'd', aggregation: new agg.DropAggregation() },
      ],
    });
    const m = p.getMeter('v');
    for (const v of [0.5, 3, 9]) m.createHistogram('h').record(v);
    m.createHistogram('e').record(3);
    m.createCounter('d').add(1);
    const cs = await p.collect();
    expect(histOf(findRecord(cs, 'h')).boundaries).toEqual([1, 5]);
    expect(histOf(findRecord(cs, 'h')).bucketCounts).toEqual([1, 1, 1]);
    expect(findRecord(cs, 'e').aggregation.kind).toBe('exponentialHistogram');
    expect(recordsOf(cs, 'd')).toHaveLength(0);
    expect(() => new MeterProvider({ views: [{ instrumentName: 'x', aggregation: { createAggregator() {} } as never }] })).toThrow(/aggregation class/);
    await p.shutdown();
  });

  it('rejects views that select nothing, rename through a wildcard, or set a bad limit', () => {
    expect(() => new MeterProvider({ views: [{ name: 'x' }] })).toThrow(TypeError);
    expect(() => new MeterProvider({ views: [{ instrumentName: 'a*', name: 'x' }] })).toThrow(TypeError);
    expect(() => new MeterProvider({ views: [{ instrumentName: 'a', cardinalityLimit: 0 }] })).toThrow(TypeError);
    expect(() => new MeterProvider({ views: [{ instrumentType: 'NOPE' as never }] })).toThrow(TypeError);
    expect(() => new MeterProvider({ cardinalityLimit: -1 })).toThrow(TypeError);
  });
});

describe('cardinality limit', () => {
  it('default 2000: 1999 series plus otel.metric.overflow=true, nothing dropped', async () => {
    const log = installLogger();
    const p = new MeterProvider();
    const c = p.getMeter('v').createCounter('c');
    let total = 0;
    for (let i = 0; i < 5000; i++) {
      c.add(i % 7, { id: i });
      total += i % 7;
    }
    const cs = await p.collect();
    const rs = recordsOf(cs, 'c');
    expect(rs).toHaveLength(2000);
    const overflow = findRecord(cs, 'c', { 'otel.metric.overflow': true });
    let expectedOverflow = 0;
    for (let i = 1999; i < 5000; i++) expectedOverflow += i % 7;
    expect(sumOf(overflow)).toBe(expectedOverflow);
    expect(rs.reduce((s, r) => s + sumOf(r), 0)).toBe(total);
    expect(log.warned('cardinality limit 2000')).toBe(true);
    // Series admitted before the limit keep taking their own measurements.
    c.add(100, { id: 5 });
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 5 }))).toBe(5 % 7 + 100);
  });

  it('per view limit; bound handles past the limit write the overflow series', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'h', cardinalityLimit: 3 }] });
    const h = p.getMeter('v').createHistogram('h');
    h.record(1, { a: 1 });
    h.record(1, { a: 2 });
    h.record(1, { a: 3 });
    const b = h.bind({ a: 4 });
    b.record(5);
    b.unbind();
    const cs = await p.collect();
    expect(recordsOf(cs, 'h')).toHaveLength(3);
    expect(histOf(findRecord(cs, 'h', { 'otel.metric.overflow': true })).count).toBe(2);
    expect(maybeRecord(cs, 'h', { a: 3 })).toBeUndefined();
  });

  it('limit 1: every measurement goes to the overflow series', async () => {
    const p = new MeterProvider({ cardinalityLimit: 1 });
    const c = p.getMeter('v').createCounter('c');
    c.add(1, { a: 1 });
    c.add(2);
    const rs = recordsOf(await p.collect(), 'c');
    expect(rs).toHaveLength(1);
    expect(rs[0].attributes).toEqual({ 'otel.metric.overflow': true });
    expect(sumOf(rs[0])).toBe(3);
  });
});

describe('disabled streams cost nothing', () => {
  it('a DROP selector or view yields instruments that never touch their arguments', async () => {
    const log = installLogger();
    const p = new MeterProvider({
      aggregationSelector: { aggregatorFor: (d) => (d.name === 'off' ? null : AggregationKind.SUM) },
      views: [{ instrumentName: 'off.hist', aggregation: AggregationKind.DROP }],
    });
    const m = p.getMeter('v');
    const c = m.createCounter('off');
    const h = m.createHistogram('off.hist');
    let reads = 0;
    const spy = { get route() { reads++; return '/'; } } as unknown as Record<string, string>;
    for (let i = 0; i < 1000; i++) {
      c.add(1, spy);
      c.add(Number.NaN, spy); // not even validated: nothing is read or diagnosed
      h.record(5, spy);
    }
    expect(reads).toBe(0);
    expect(log.warnings).toEqual([]);
    c.bind({ a: 1 }).add(1); // bind still works and drops
    expect(recordsOf(await p.collect(), 'off')).toHaveLength(0);
    expect(recordsOf(await p.collect(), 'off.hist')).toHaveLength(0);
  });
});
