// Each aggregator's Update / Checkpoint / Merge, observed through the public API only.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValueType } from '@opentelemetry/api';
import { InstrumentKind, MeterProvider } from '../src';
import {
  CapturingLogger,
  findRecord,
  histOf,
  installLogger,
  lastValueOf,
  maybeRecord,
  OTEL_DEFAULT_BOUNDARIES,
  prng,
  randInt,
  recordsOf,
  RefHistogram,
  sumOf,
  uninstallLogger,
} from './helpers';

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => {
  uninstallLogger();
});

function expectHistogram(actual: ReturnType<typeof histOf>, ref: RefHistogram): void {
  expect(actual.boundaries).toEqual(ref.boundaries);
  expect(actual.bucketCounts).toEqual(ref.buckets);
  expect(actual.count).toBe(ref.count);
  expect(actual.sum).toBe(ref.sum);
  expect(actual.min).toBe(ref.min);
  expect(actual.max).toBe(ref.max);
  expect(actual.bucketCounts.reduce((a, b) => a + b, 0)).toBe(actual.count);
}

describe('Counter (monotonic Sum)', () => {
  it('sums increments per attribute set and describes itself', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('scope-a', '1.2.3').createCounter('requests', { description: 'how many', unit: '{request}' });
    const rand = prng(1);
    const expected = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const route = `r${randInt(rand, 0, 4)}`;
      const v = randInt(rand, 0, 40) / 4; // exact binary fractions
      c.add(v, { route });
      expected.set(route, (expected.get(route) ?? 0) + v);
    }
    const cs = await p.collect();
    expect(recordsOf(cs, 'requests')).toHaveLength(expected.size);
    for (const [route, sum] of expected) {
      const r = findRecord(cs, 'requests', { route });
      expect(r.aggregation).toEqual({ kind: 'sum', sum, monotonic: true });
      expect(r.descriptor).toMatchObject({
        name: 'requests',
        description: 'how many',
        unit: '{request}',
        kind: InstrumentKind.COUNTER,
        valueType: ValueType.DOUBLE,
        monotonic: true,
      });
      expect(r.scope).toMatchObject({ name: 'scope-a', version: '1.2.3' });
      expect(r.updated).toBe(true);
    }
  });

  it('is cumulative across collections; `updated` is false when nothing changed', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    c.add(3, { k: 'a' });
    c.add(4, { k: 'b' });
    const first = await p.collect();
    expect(sumOf(findRecord(first, 'c', { k: 'a' }))).toBe(3);
    expect(findRecord(first, 'c', { k: 'a' }).updated).toBe(true);

    c.add(10, { k: 'a' });
    const second = await p.collect();
    const a2 = findRecord(second, 'c', { k: 'a' });
    const b2 = findRecord(second, 'c', { k: 'b' });
    expect(sumOf(a2)).toBe(13);
    expect(a2.updated).toBe(true);
    expect(sumOf(b2)).toBe(4); // still exported (cumulative), but not updated
    expect(b2.updated).toBe(false);

    const third = await p.collect();
    expect(findRecord(third, 'c', { k: 'a' }).updated).toBe(false);
    expect(sumOf(findRecord(third, 'c', { k: 'a' }))).toBe(13);
    // Cumulative series keep their start time; the end time never goes backwards.
    expect(findRecord(third, 'c', { k: 'a' }).startTime).toBe(findRecord(first, 'c', { k: 'a' }).startTime);
    expect(third.time).toBeGreaterThanOrEqual(first.time);
    expect(third.epoch).toBeGreaterThan(first.epoch);
  });

  it('startTime <= endTime for a series created and collected at once', async () => {
    let bad = 0;
    for (let i = 0; i < 100; i++) {
      const p = new MeterProvider();
      p.getMeter('m').createCounter('c').add(1);
      const r = findRecord(await p.collect(), 'c');
      if (!(r.startTime <= r.endTime)) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('UpDownCounter (non-monotonic Sum)', () => {
  it('accepts negative values and reports monotonic: false', async () => {
    const p = new MeterProvider();
    const u = p.getMeter('m').createUpDownCounter('queue');
    const rand = prng(2);
    let expected = 0;
    for (let i = 0; i < 500; i++) {
      const v = randInt(rand, -100, 100) / 2;
      u.add(v, { q: 'x' });
      expected += v;
    }
    u.add(-7.5, { q: 'neg' });
    const cs = await p.collect();
    expect(findRecord(cs, 'queue', { q: 'x' }).aggregation).toEqual({ kind: 'sum', sum: expected, monotonic: false });
    expect(sumOf(findRecord(cs, 'queue', { q: 'neg' }))).toBe(-7.5);
    expect(findRecord(cs, 'queue', { q: 'neg' }).descriptor.kind).toBe(InstrumentKind.UP_DOWN_COUNTER);

    u.add(2.5, { q: 'neg' });
    const cs2 = await p.collect();
    expect(sumOf(findRecord(cs2, 'queue', { q: 'neg' }))).toBe(-5);
    expect(findRecord(cs2, 'queue', { q: 'x' }).updated).toBe(false);
  });
});

describe('Histogram (explicit buckets)', () => {
  it('uses the OpenTelemetry default boundaries with upper-inclusive buckets', async () => {
    const p = new MeterProvider();
    const h = p.getMeter('m').createHistogram('latency');
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    // Every boundary exactly, just above each boundary, values in between, and beyond the last.
    const values: number[] = [];
    for (const b of OTEL_DEFAULT_BOUNDARIES) values.push(b, b + 0.5, b + 1);
    values.push(0, 1e6, 10000.000001, 7499.99, 3);
    const rand = prng(3);
    for (let i = 0; i < 2000; i++) values.push(randInt(rand, 0, 24000) / 2);
    for (const v of values) {
      h.record(v, { path: '/x' });
      ref.record(v);
    }
    const r = findRecord(await p.collect(), 'latency', { path: '/x' });
    expect(r.descriptor.kind).toBe(InstrumentKind.HISTOGRAM);
    const agg = histOf(r);
    expect(agg.boundaries).toEqual(OTEL_DEFAULT_BOUNDARIES);
    expect(agg.bucketCounts).toHaveLength(OTEL_DEFAULT_BOUNDARIES.length + 1);
    expectHistogram(agg, ref);
  });

  it('puts a value equal to a boundary in the bucket that ends there', async () => {
    const p = new MeterProvider();
    const h = p.getMeter('m').createHistogram('h');
    h.record(5, { v: '5' });
    h.record(0, { v: '0' });
    h.record(5.5, { v: '5.5' });
    h.record(10001, { v: 'big' });
    const cs = await p.collect();
    const at = (label: string) => histOf(findRecord(cs, 'h', { v: label })).bucketCounts.indexOf(1);
    expect(at('0')).toBe(0);
    expect(at('5')).toBe(1);
    expect(at('5.5')).toBe(2);
    expect(at('big')).toBe(15);
  });

  it('honours advice.explicitBucketBoundaries', async () => {
    const p = new MeterProvider();
    const bounds = [1, 2.5, 10, 100];
    const h = p.getMeter('m').createHistogram('sized', { advice: { explicitBucketBoundaries: bounds } });
    const ref = new RefHistogram(bounds);
    const rand = prng(4);
    for (let i = 0; i < 1000; i++) {
      const v = randInt(rand, 0, 400) / 2;
      h.record(v);
      ref.record(v);
    }
    for (const b of bounds) {
      h.record(b);
      ref.record(b);
    }
    const r = findRecord(await p.collect(), 'sized');
    expectHistogram(histOf(r), ref);
    expect(r.descriptor.adviceBoundaries).toEqual(bounds);
  });

  it('accepts an empty boundary list (a single +Inf bucket)', async () => {
    const p = new MeterProvider();
    const h = p.getMeter('m').createHistogram('one-bucket', { advice: { explicitBucketBoundaries: [] } });
    h.record(1);
    h.record(1e9);
    const agg = histOf(findRecord(await p.collect(), 'one-bucket'));
    expect(agg.boundaries).toEqual([]);
    expect(agg.bucketCounts).toEqual([2]);
    expect(agg.sum).toBe(1e9 + 1);
  });

  it('finds the right bucket for every count of bounds, on and between them, bound and direct', async () => {
    // Search tables (handles.ts searchTable) of 1 to 128 entries: every step count of the
    // branchless search, and every padding of the bounds to a power of two.
    const p = new MeterProvider();
    const meter = p.getMeter('m');
    const refs = new Map<string, RefHistogram>();
    for (let nb = 0; nb <= 70; nb++) {
      const bounds = Array.from({ length: nb }, (_, k) => k * 3 + (k % 2 ? 0.5 : 0));
      const h = meter.createHistogram(`search-${nb}`, { advice: { explicitBucketBoundaries: bounds } });
      const bound = h.bind({ path: 'bound' });
      const ref = new RefHistogram(bounds);
      const refDirect = new RefHistogram(bounds);
      for (let v = 0; v <= nb * 3 + 3; v += 0.25) {
        bound.record(v);
        ref.record(v);
        h.record(v, { path: 'direct' });
        refDirect.record(v);
      }
      refs.set(`search-${nb}/bound`, ref);
      refs.set(`search-${nb}/direct`, refDirect);
    }
    const cs = await p.collect();
    let seen = 0;
    for (const r of cs.records) {
      const ref = refs.get(`${r.descriptor.name}/${String(r.attributes.path)}`);
      if (ref === undefined) continue;
      expectHistogram(histOf(r), ref);
      seen++;
    }
    expect(seen).toBe(refs.size);
  });

  it.each([
    ['decreasing', [10, 5, 1]],
    ['duplicates', [1, 1, 2]],
    ['NaN', [1, NaN, 3]],
    ['Infinity', [1, 2, Infinity]],
    ['-Infinity', [-Infinity, 1]],
    ['strings', [1, '2', 3]],
    ['not an array', 'abc'],
    ['an object', { 0: 1, length: 1 }],
    ['too many', Array.from({ length: 5000 }, (_, i) => i)],
  ])('falls back to the default boundaries when advice is invalid (%s)', async (what, bad) => {
    const p = new MeterProvider();
    const name = `bad-bounds-${what.replace(/[^a-z]/gi, '')}`;
    const h = p.getMeter('m').createHistogram(name, { advice: { explicitBucketBoundaries: bad as number[] } });
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    for (const v of [0, 3, 5, 77, 100000]) {
      h.record(v);
      ref.record(v);
    }
    expectHistogram(histOf(findRecord(await p.collect(), name)), ref);
    expect(log.warned(name, 'explicitBucketBoundaries')).toBe(true);
  });

  it('is cumulative; min/max are kept; `updated` follows new records', async () => {
    const p = new MeterProvider();
    const h = p.getMeter('m').createHistogram('h');
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    for (const v of [7, 70, 700]) {
      h.record(v);
      ref.record(v);
    }
    expectHistogram(histOf(findRecord(await p.collect(), 'h')), ref);
    for (const v of [2, 20000]) {
      h.record(v);
      ref.record(v);
    }
    const r2 = findRecord(await p.collect(), 'h');
    expectHistogram(histOf(r2), ref);
    expect(r2.updated).toBe(true);
    const r3 = findRecord(await p.collect(), 'h');
    expect(r3.updated).toBe(false);
    expectHistogram(histOf(r3), ref);
  });
});

describe('Gauge (last value)', () => {
  it('keeps the last recorded value per attribute set', async () => {
    const p = new MeterProvider();
    const g = p.getMeter('m').createGauge('temp');
    const rand = prng(5);
    const last = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const room = `room${randInt(rand, 0, 3)}`;
      const v = randInt(rand, -500, 500) / 4;
      g.record(v, { room });
      last.set(room, v);
    }
    const cs = await p.collect();
    for (const [room, v] of last) {
      const r = findRecord(cs, 'temp', { room });
      expect(r.aggregation).toEqual({ kind: 'lastValue', value: v });
      expect(r.descriptor.kind).toBe(InstrumentKind.GAUGE);
    }
  });

  it('marks a series updated when the same value is recorded again, not when nothing is recorded', async () => {
    const p = new MeterProvider();
    const g = p.getMeter('m').createGauge('g');
    g.record(42);
    expect(findRecord(await p.collect(), 'g').updated).toBe(true);
    const idle = findRecord(await p.collect(), 'g');
    expect(idle.updated).toBe(false);
    expect(lastValueOf(idle)).toBe(42);
    g.record(42);
    const again = findRecord(await p.collect(), 'g');
    expect(again.updated).toBe(true);
    expect(lastValueOf(again)).toBe(42);
    g.record(-1);
    expect(lastValueOf(findRecord(await p.collect(), 'g'))).toBe(-1);
  });
});

describe('Observable instruments', () => {
  it('ObservableCounter reports the observed cumulative value (monotonic sum)', async () => {
    const p = new MeterProvider();
    const oc = p.getMeter('m').createObservableCounter('bytes');
    let total = 0;
    oc.addCallback((res) => {
      res.observe(total, { dir: 'in' });
      res.observe(total * 2, { dir: 'out' });
    });
    total = 10;
    const cs1 = await p.collect();
    expect(findRecord(cs1, 'bytes', { dir: 'in' }).aggregation).toEqual({ kind: 'sum', sum: 10, monotonic: true });
    expect(sumOf(findRecord(cs1, 'bytes', { dir: 'out' }))).toBe(20);
    expect(findRecord(cs1, 'bytes', { dir: 'in' }).descriptor.kind).toBe(InstrumentKind.OBSERVABLE_COUNTER);
    total = 25;
    const cs2 = await p.collect();
    // The observation replaces the value: 25, not 10 + 25.
    expect(sumOf(findRecord(cs2, 'bytes', { dir: 'in' }))).toBe(25);
    expect(sumOf(findRecord(cs2, 'bytes', { dir: 'out' }))).toBe(50);
    expect(findRecord(cs2, 'bytes', { dir: 'in' }).updated).toBe(true);
  });

  it('ObservableUpDownCounter accepts negative observations (non-monotonic sum)', async () => {
    const p = new MeterProvider();
    const o = p.getMeter('m').createObservableUpDownCounter('delta');
    let v = -3;
    o.addCallback((res) => res.observe(v));
    expect(findRecord(await p.collect(), 'delta').aggregation).toEqual({ kind: 'sum', sum: -3, monotonic: false });
    v = 8.5;
    expect(sumOf(findRecord(await p.collect(), 'delta'))).toBe(8.5);
  });

  it('ObservableGauge reports the last observation; removeCallback stops reporting', async () => {
    const p = new MeterProvider();
    const o = p.getMeter('m').createObservableGauge('load');
    let calls = 0;
    const cb = (res: { observe(v: number, a?: Record<string, string>): void }) => {
      calls++;
      res.observe(calls * 1.5, { cpu: '0' });
    };
    o.addCallback(cb);
    o.addCallback(cb); // registering the same callback twice runs it once
    const cs1 = await p.collect();
    expect(calls).toBe(1);
    expect(findRecord(cs1, 'load', { cpu: '0' }).aggregation).toEqual({ kind: 'lastValue', value: 1.5 });
    const cs2 = await p.collect();
    expect(calls).toBe(2);
    expect(lastValueOf(findRecord(cs2, 'load', { cpu: '0' }))).toBe(3);
    o.removeCallback(cb);
    const cs3 = await p.collect();
    expect(calls).toBe(2);
    expect(recordsOf(cs3, 'load')).toHaveLength(0); // not observed in this collection
  });

  it('only reports the series observed in this collection', async () => {
    const p = new MeterProvider();
    const o = p.getMeter('m').createObservableGauge('g');
    let n = 0;
    o.addCallback((res) => {
      n++;
      res.observe(n, { which: n % 2 === 0 ? 'even' : 'odd' });
    });
    const cs1 = await p.collect();
    expect(recordsOf(cs1, 'g').map((r) => r.attributes)).toEqual([{ which: 'odd' }]);
    const cs2 = await p.collect();
    expect(recordsOf(cs2, 'g').map((r) => r.attributes)).toEqual([{ which: 'even' }]);
  });

  it('awaits async callbacks', async () => {
    const p = new MeterProvider();
    const o = p.getMeter('m').createObservableGauge('slow');
    o.addCallback(async (res) => {
      await new Promise((r) => setTimeout(r, 20));
      res.observe(99, { late: true });
    });
    const cs = await p.collect();
    expect(lastValueOf(findRecord(cs, 'slow', { late: true }))).toBe(99);
  });

  it('a throwing or rejecting callback does not break collection or other callbacks', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const bad1 = m.createObservableGauge('bad1');
    const bad2 = m.createObservableGauge('bad2');
    const bad3 = m.createObservableGauge('bad3');
    const bad4 = m.createObservableCounter('bad4');
    const good = m.createObservableGauge('good');
    bad1.addCallback(() => {
      throw new Error('boom');
    });
    bad2.addCallback(async () => {
      throw new Error('async boom');
    });
    // Thrown values that cannot even be turned into a string.
    bad3.addCallback(() => {
      throw Object.create(null);
    });
    bad4.addCallback(() => Promise.reject(Object.create(null)));
    bad1.addCallback((res) => res.observe(5)); // a second callback on the same instrument still runs
    good.addCallback((res) => res.observe(7));
    const cs = await p.collect();
    expect(lastValueOf(findRecord(cs, 'good'))).toBe(7);
    expect(lastValueOf(findRecord(cs, 'bad1'))).toBe(5);
    expect(log.warned('bad1', 'boom')).toBe(true);
    expect(log.warned('bad2', 'async boom')).toBe(true);
    expect(log.warned('bad3')).toBe(true);
    expect(log.warned('bad4')).toBe(true);
    // And collection keeps working afterwards.
    expect(lastValueOf(findRecord(await p.collect(), 'good'))).toBe(7);
  });

  it('a callback that never settles is abandoned after callbackTimeoutMillis', async () => {
    const p = new MeterProvider({ callbackTimeoutMillis: 50 });
    const m = p.getMeter('m');
    m.createObservableGauge('stuck').addCallback(() => new Promise<void>(() => {}));
    m.createObservableGauge('ok').addCallback((res) => res.observe(1));
    const t0 = Date.now();
    const cs = await p.collect();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(lastValueOf(findRecord(cs, 'ok'))).toBe(1);
    expect(log.warned('did not settle')).toBe(true);
  });

  it('batch callbacks observe several instruments; remove stops them; foreign instruments are refused', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const a = m.createObservableCounter('a');
    const b = m.createObservableGauge('b');
    const foreign = m.createObservableGauge('foreign');
    let calls = 0;
    const batch = (res: { observe(o: unknown, v: number, attrs?: Record<string, string>): void }) => {
      calls++;
      res.observe(a, 100 * calls, { x: '1' });
      res.observe(b, -calls);
      res.observe(foreign, 123); // not registered with this batch: dropped
    };
    m.addBatchObservableCallback(batch as never, [a, b]);
    const cs1 = await p.collect();
    expect(sumOf(findRecord(cs1, 'a', { x: '1' }))).toBe(100);
    expect(lastValueOf(findRecord(cs1, 'b'))).toBe(-1);
    expect(recordsOf(cs1, 'foreign')).toHaveLength(0);
    expect(log.warned('batch callback observed an instrument it was not registered with')).toBe(true);
    const cs2 = await p.collect();
    expect(sumOf(findRecord(cs2, 'a', { x: '1' }))).toBe(200);
    expect(lastValueOf(findRecord(cs2, 'b'))).toBe(-2);
    // Removal matches the callback and the same set of observables (order does not matter).
    m.removeBatchObservableCallback(batch as never, [b, a]);
    const cs3 = await p.collect();
    expect(calls).toBe(2);
    expect(recordsOf(cs3, 'a')).toHaveLength(0);
    expect(recordsOf(cs3, 'b')).toHaveLength(0);
  });

  it('a throwing batch callback does not break collection', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const a = m.createObservableGauge('a');
    m.addBatchObservableCallback(() => {
      throw new TypeError('batch boom');
    }, [a]);
    m.addBatchObservableCallback((res) => res.observe(a, 3), [a]);
    const cs = await p.collect();
    expect(lastValueOf(findRecord(cs, 'a'))).toBe(3);
    expect(log.warned('batch boom')).toBe(true);
  });
});

describe('Merge: one label set, many paths, one series', () => {
  it('counter: bound handle + direct calls + recordBatch + a second instrument with the same identity', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('svc');
    const c1 = m.createCounter('hits', { unit: '1', description: 'd' });
    const c2 = m.createCounter('HITS', { unit: '1', description: 'd' }); // names are case-insensitive
    const c3 = m.createCounter('hits', { unit: '1', description: 'd' });
    const attrs = { method: 'GET', code: 200 };
    const bound = c1.bind({ code: 200, method: 'GET' });
    const rand = prng(6);
    let expected = 0;
    for (let i = 0; i < 5000; i++) {
      const v = randInt(rand, 0, 10);
      expected += v;
      switch (i % 5) {
        case 0: bound.add(v); break;
        case 1: c1.add(v, attrs); break;
        case 2: c2.add(v, { code: 200, method: 'GET' }); break;
        case 3: m.recordBatch({ method: 'GET', code: 200 }, [[c3, v]]); break;
        default: c3.add(v, { ...attrs }); break;
      }
    }
    const cs = await p.collect();
    const rs = recordsOf(cs, 'hits');
    expect(rs).toHaveLength(1);
    expect(rs[0].attributes).toEqual(attrs);
    expect(sumOf(rs[0])).toBe(expected);
    expect(cs.byName('HITS')).toHaveLength(1);
    bound.unbind();
  });

  it('histogram and gauge: every path lands in the same series', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('svc');
    const h = m.createHistogram('dur');
    const h2 = m.createHistogram('dur');
    const g = m.createGauge('level');
    const attrs = { a: 'x', b: 'y' };
    const bound = h.bind({ b: 'y', a: 'x' });
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    const rand = prng(7);
    let lastGauge = NaN;
    for (let i = 0; i < 3000; i++) {
      const v = randInt(rand, 0, 30000) / 4;
      ref.record(v);
      lastGauge = -v;
      switch (i % 4) {
        case 0: bound.record(v); g.record(-v, attrs); break;
        case 1: h.record(v, attrs); g.bind({ b: 'y', a: 'x' }).record(-v); break;
        case 2: m.recordBatch(attrs, [[h2, v], [g, -v]]); break;
        default: h2.record(v, { b: 'y', a: 'x' }); m.recordBatch({ b: 'y', a: 'x' }, [[g, -v]]); break;
      }
    }
    const cs = await p.collect();
    expect(recordsOf(cs, 'dur')).toHaveLength(1);
    expectHistogram(histOf(findRecord(cs, 'dur', attrs)), ref);
    expect(recordsOf(cs, 'level')).toHaveLength(1);
    expect(lastValueOf(findRecord(cs, 'level', attrs))).toBe(lastGauge);
  });

  it('different scopes, kinds or units are different series', async () => {
    const p = new MeterProvider();
    p.getMeter('one').createCounter('x').add(1);
    p.getMeter('two').createCounter('x').add(2);
    p.getMeter('one', '2.0').createCounter('x').add(4);
    p.getMeter('one').createCounter('x', { unit: 'ms' }).add(8);
    p.getMeter('one').createUpDownCounter('x').add(16);
    const cs = await p.collect();
    const sums = recordsOf(cs, 'x').map(sumOf).sort((a, b) => a - b);
    expect(sums).toEqual([1, 2, 4, 8, 16]);
    expect(log.warned('duplicate instrument registration', 'x')).toBe(true);
  });
});

describe('valueType: ValueType.INT', () => {
  it('truncates fractional values with Math.trunc semantics for every kind', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const INT = { valueType: ValueType.INT };
    const c = m.createCounter('ci', INT);
    const u = m.createUpDownCounter('ui', INT);
    const h = m.createHistogram('hi', INT);
    const g = m.createGauge('gi', INT);
    const og = m.createObservableGauge('ogi', INT);
    const oc = m.createObservableCounter('oci', INT);
    const cd = m.createCounter('cd'); // DOUBLE keeps fractions

    const rand = prng(8);
    let cSum = 0;
    let uSum = 0;
    let dSum = 0;
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    let gLast = 0;
    for (let i = 0; i < 500; i++) {
      const pos = rand() * 20;
      const any = (rand() - 0.5) * 20;
      c.add(pos);
      cSum += Math.trunc(pos);
      cd.add(0.5);
      dSum += 0.5;
      u.add(any);
      uSum += Math.trunc(any);
      h.record(pos);
      ref.record(Math.trunc(pos));
      g.record(any);
      gLast = Math.trunc(any);
    }
    // Boundary-sensitive cases: 5.5 truncates to 5, which belongs to (0, 5].
    h.record(5.5, { edge: true });
    c.add(0.99, { edge: true });
    og.addCallback((res) => res.observe(-7.8));
    oc.addCallback((res) => res.observe(12.9));

    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'ci'))).toBe(cSum);
    expect(sumOf(findRecord(cs, 'ui'))).toBe(uSum);
    expect(sumOf(findRecord(cs, 'cd'))).toBe(dSum);
    expectHistogram(histOf(findRecord(cs, 'hi')), ref);
    expect(lastValueOf(findRecord(cs, 'gi'))).toBe(gLast);
    const edge = histOf(findRecord(cs, 'hi', { edge: true }));
    expect(edge.sum).toBe(5);
    expect(edge.bucketCounts[1]).toBe(1);
    expect(sumOf(findRecord(cs, 'ci', { edge: true }))).toBe(0);
    expect(lastValueOf(findRecord(cs, 'ogi'))).toBe(-7);
    expect(sumOf(findRecord(cs, 'oci'))).toBe(12);
    expect(findRecord(cs, 'ci').descriptor.valueType).toBe(ValueType.INT);
    expect(log.warned('INT')).toBe(true);
    expect(maybeRecord(cs, 'cd')?.descriptor.valueType).toBe(ValueType.DOUBLE);
  });
});
