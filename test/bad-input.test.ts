// Bad input: recording never throws, good measurements stay exact, and a rate-limited
// diagnostic goes through @opentelemetry/api's diag.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type CheckpointSet } from '../src';
import { resetDiagLimits } from '../src/sdk/diag';
import {
  attrKey,
  CapturingLogger,
  findRecord,
  histOf,
  installLogger,
  lastValueOf,
  OTEL_DEFAULT_BOUNDARIES,
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
  vi.useRealTimers();
  uninstallLogger();
});

const GOOD = { k: 'good' };

/** Every series of `name` must be the good one or the empty set (never garbage attributes). */
function expectOnlySeries(cs: CheckpointSet, name: string, allowed: Attributes[]): void {
  const ok = new Set(allowed.map(attrKey));
  for (const r of recordsOf(cs, name)) {
    expect(ok.has(attrKey(r.attributes)), `unexpected series ${JSON.stringify(r.attributes)}`).toBe(true);
  }
}

const NON_NUMBERS: [string, unknown][] = [
  ['string', '5'],
  ['empty string', ''],
  ['bigint', 5n],
  ['undefined', undefined],
  ['null', null],
  ['object', { valueOf: () => 5 }],
  ['array', [5]],
  ['boolean', true],
  ['symbol', Symbol('v')],
  ['function', () => 5],
  ['Number object', new Number(5)],
];
const NON_FINITE: [string, unknown][] = [
  ['NaN', NaN],
  ['+Infinity', Infinity],
  ['-Infinity', -Infinity],
];
const NEGATIVE: [string, unknown][] = [
  ['-1', -1],
  ['-0.0001', -0.0001],
  ['-MAX_VALUE', -Number.MAX_VALUE],
];

describe('bad values', () => {
  const counterCases = [...NON_NUMBERS, ...NON_FINITE, ...NEGATIVE];
  it.each(counterCases)('Counter.add(%s) is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('ctr');
    const b = c.bind(GOOD);
    expect(() => {
      c.add(1, GOOD);
      c.add(bad as number, GOOD);
      b.add(bad as number);
      p.getMeter('m').recordBatch(GOOD, [[c, bad as number]]);
      b.add(2);
      c.add(bad as number);
    }).not.toThrow();
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'ctr', GOOD))).toBe(3);
    // The rejected c.add(bad) without attributes created no series for the empty set.
    expectOnlySeries(cs, 'ctr', [GOOD]);
    expect(log.warned('ctr', 'dropped')).toBe(true);
  });

  it.each([...NON_NUMBERS, ...NON_FINITE])('UpDownCounter.add(%s) is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const u = p.getMeter('m').createUpDownCounter('udc');
    expect(() => {
      u.add(-1, GOOD);
      u.add(bad as number, GOOD);
      u.bind(GOOD).add(bad as number);
      u.add(-2, GOOD);
    }).not.toThrow();
    expect(sumOf(findRecord(await p.collect(), 'udc', GOOD))).toBe(-3);
    expect(log.warned('udc', 'dropped')).toBe(true);
  });

  it.each(counterCases)('Histogram.record(%s) is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const h = p.getMeter('m').createHistogram('hist');
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    expect(() => {
      h.record(3, GOOD);
      h.record(bad as number, GOOD);
      h.bind(GOOD).record(bad as number);
      p.getMeter('m').recordBatch(GOOD, [[h, bad as number]]);
      h.record(30000, GOOD);
    }).not.toThrow();
    ref.record(3);
    ref.record(30000);
    const agg = histOf(findRecord(await p.collect(), 'hist', GOOD));
    expect(agg.bucketCounts).toEqual(ref.buckets);
    expect(agg.count).toBe(2);
    expect(agg.sum).toBe(30003);
    expect(agg.min).toBe(3);
    expect(agg.max).toBe(30000);
    expect(log.warned('hist', 'dropped')).toBe(true);
  });

  it.each([...NON_NUMBERS, ...NON_FINITE])('Gauge.record(%s) is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const g = p.getMeter('m').createGauge('gge');
    expect(() => {
      g.record(-4.5, GOOD);
      g.record(bad as number, GOOD);
      g.bind(GOOD).record(bad as number);
    }).not.toThrow();
    expect(lastValueOf(findRecord(await p.collect(), 'gge', GOOD))).toBe(-4.5);
    expect(log.warned('gge', 'dropped')).toBe(true);
  });

  it.each([...NON_NUMBERS, ...NON_FINITE])('an observation of %s is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const og = p.getMeter('m').createObservableGauge('og');
    og.addCallback((res) => {
      res.observe(11, GOOD);
      res.observe(bad as number, GOOD);
    });
    expect(lastValueOf(findRecord(await p.collect(), 'og', GOOD))).toBe(11);
    expect(log.warned('og', 'dropped')).toBe(true);
  });

  it('a counter accepts -0 and 0 (non-negative)', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('zero');
    c.add(0);
    c.add(-0);
    c.add(1);
    expect(sumOf(findRecord(await p.collect(), 'zero'))).toBe(1);
    expect(log.warnings).toHaveLength(0);
  });
});

describe('bad attributes', () => {
  it.each([
    ['number', 5],
    ['string', 'abc'],
    ['null', null],
    ['boolean', true],
    ['symbol', Symbol('s')],
    ['function', () => ({ a: 1 })],
    ['array', ['a', 'b']],
  ])('non-object attributes (%s): the measurement is dropped with a diagnostic', async (_what, bad) => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('cnt');
    const h = m.createHistogram('hst');
    const g = m.createGauge('gau');
    expect(() => {
      c.add(1, GOOD);
      c.add(100, bad as never);
      h.record(100, bad as never);
      g.record(100, bad as never);
      m.recordBatch(bad as never, [[c, 100]]);
      c.bind(bad as never).add(100);
      c.add(2, GOOD);
      h.record(5, GOOD);
      g.record(6, GOOD);
    }).not.toThrow();
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'cnt', GOOD))).toBe(3);
    expect(histOf(findRecord(cs, 'hst', GOOD)).count).toBe(1);
    expect(lastValueOf(findRecord(cs, 'gau', GOOD))).toBe(6);
    // No garbage series (e.g. a string indexed as {0:'a',1:'b',2:'c'}).
    expectOnlySeries(cs, 'cnt', [GOOD, {}]);
    expectOnlySeries(cs, 'hst', [GOOD]);
    expectOnlySeries(cs, 'gau', [GOOD]);
    expect(log.warned('cnt', 'attributes')).toBe(true);
    expect(log.warned('hst', 'attributes')).toBe(true);
  });

  it.each([
    ['object', { nested: true }],
    ['function', () => 1],
    ['symbol', Symbol('x')],
    ['Map', new Map([['a', 1]])],
    ['Date', new Date(0)],
    ['array of objects', [{}]],
  ])('an attribute whose value is a %s is dropped; the measurement is kept', async (_what, bad) => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('attrval');
    const attrs = { k: 'good', bad } as unknown as Attributes;
    expect(() => {
      c.add(1, attrs);
      c.add(2, { bad, k: 'good' } as unknown as Attributes);
      c.bind(attrs).add(4);
      p.getMeter('m').recordBatch(attrs, [[c, 8]]);
    }).not.toThrow();
    const cs = await p.collect();
    expect(recordsOf(cs, 'attrval')).toHaveLength(1);
    expect(sumOf(findRecord(cs, 'attrval', GOOD))).toBe(15);
    expect(log.warned('attrval', 'bad')).toBe(true);
  });

  const throwing = (thrown: () => unknown): [string, () => object][] => [
    ['a Proxy whose ownKeys trap throws', () => new Proxy({}, { ownKeys() { throw thrown(); } })],
    ['a Proxy whose get trap throws', () => new Proxy({ a: 1 }, { get() { throw thrown(); } })],
    ['a Proxy whose getOwnPropertyDescriptor trap throws', () => new Proxy({ a: 1 }, { getOwnPropertyDescriptor() { throw thrown(); } })],
    ['a revoked Proxy', () => { const r = Proxy.revocable({ a: 1 }, {}); r.revoke(); return r.proxy; }],
    ['a getter that throws', () => ({ ok: 'x', get boom() { throw thrown(); } })],
  ];
  const cases: [string, () => object][] = [
    ...throwing(() => new Error('trap!')),
    ...throwing(() => Object.create(null)).map(([w, f]) => [`${w} (a value with no string form)`, f] as [string, () => object]),
    ...throwing(() => ({ toString() { throw new Error('toString too'); } })).map(([w, f]) => [`${w} (toString throws)`, f] as [string, () => object]),
  ];

  it.each(cases)('%s: recording does not throw, a diagnostic is logged, good data is exact', async (_what, make) => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('trap');
    const h = m.createHistogram('trap-h');
    const og = m.createObservableGauge('trap-og');
    og.addCallback((res) => {
      res.observe(9, make() as Attributes);
      res.observe(3, GOOD);
    });
    expect(() => {
      c.add(1, GOOD);
      c.add(100, make() as Attributes);
      h.record(100, make() as Attributes);
      c.bind(make() as Attributes).add(100);
      m.recordBatch(make() as Attributes, [[c, 100], [h, 100]]);
      c.add(2, GOOD);
      h.record(7, GOOD);
    }).not.toThrow();
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'trap', GOOD))).toBe(3);
    expect(histOf(findRecord(cs, 'trap-h', GOOD)).sum).toBe(7);
    expect(lastValueOf(findRecord(cs, 'trap-og', GOOD))).toBe(3);
    for (const r of cs.records) {
      // Whatever happened to the hostile measurement, no series holds a garbage value.
      if (r.aggregation.kind === 'sum') expect(Number.isFinite(r.aggregation.sum)).toBe(true);
    }
    expect(log.warned('trap')).toBe(true);
  });

  it('huge keys are dropped and huge values truncated; the measurement is kept', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('huge');
    const MB = 1 << 20;
    const bigKey = 'k'.repeat(MB);
    const bigValue = 'v'.repeat(MB);
    expect(() => {
      c.add(1, { [bigKey]: 'x', k: 'good' });
      c.add(2, { k: 'good', [bigKey]: 'y' });
      c.add(4, { big: bigValue });
      c.add(8, { big: bigValue + 'different tail' });
      c.bind({ [bigKey]: bigValue, k: 'good' }).add(16);
    }).not.toThrow();
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'huge', GOOD))).toBe(19);
    const big = recordsOf(cs, 'huge').filter((r) => 'big' in r.attributes);
    expect(big.length).toBeGreaterThanOrEqual(1);
    let bigTotal = 0;
    for (const r of big) {
      const v = r.attributes.big as string;
      expect(v.length).toBeLessThanOrEqual(64 * 1024);
      expect(bigValue.startsWith(v)).toBe(true);
      bigTotal += sumOf(r);
    }
    expect(bigTotal).toBe(12);
    for (const r of recordsOf(cs, 'huge')) {
      for (const k of Object.keys(r.attributes)) expect(k.length).toBeLessThan(MB);
    }
    expect(log.warned('huge')).toBe(true);
  });

  it('10,000 attributes in one set: recorded under a limited set, with a diagnostic', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('wide');
    const attrs: Attributes = {};
    for (let i = 0; i < 10_000; i++) attrs[`key${String(i).padStart(5, '0')}`] = i;
    expect(() => {
      c.add(1, attrs);
      c.add(2, attrs);
      c.bind(attrs).add(4);
    }).not.toThrow();
    const cs = await p.collect();
    const rs = recordsOf(cs, 'wide');
    expect(rs).toHaveLength(1);
    expect(sumOf(rs[0])).toBe(7);
    const keys = Object.keys(rs[0].attributes);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.length).toBeLessThan(10_000);
    for (const k of keys) expect(rs[0].attributes[k]).toBe(attrs[k]);
    expect(log.warned('wide', 'attributes')).toBe(true);
  });
});

describe('invalid instrument names', () => {
  const invalid: unknown[] = ['', '1abc', '_x', '-x', 'a b', 'a:b', 'caf\u00e9', 'a'.repeat(256), 'x\n', 42, undefined, null];
  it.each(invalid.map((n) => [typeof n === 'string' ? JSON.stringify(n.length > 20 ? n.slice(0, 8) + '…' : n) : String(n), n]))(
    'name %s returns instruments that record nothing, with a diagnostic',
    async (_label, name) => {
      const p = new MeterProvider();
      const m = p.getMeter('m');
      const n = name as string;
      const good = m.createCounter('good');
      expect(() => {
        m.createCounter(n).add(1, GOOD);
        m.createCounter(n).bind(GOOD).add(1);
        m.createUpDownCounter(n).add(1);
        m.createHistogram(n).record(1);
        m.createGauge(n).record(1);
        m.createObservableGauge(n).addCallback((r) => r.observe(1));
        m.createObservableCounter(n).addCallback((r) => r.observe(1));
        m.recordBatch(GOOD, [[m.createCounter(n), 1], [good, 5]]);
      }).not.toThrow();
      const cs = await p.collect();
      expect(cs.records.map((r) => r.descriptor.name)).toEqual(['good']);
      expect(sumOf(findRecord(cs, 'good', GOOD))).toBe(5);
      expect(log.warned('invalid instrument name')).toBe(true);
    },
  );

  it('edge-valid names record', async () => {
    const p = new MeterProvider();
    const names = ['a'.repeat(255), 'a/b.c-d_e', 'A9', 'x'];
    for (const n of names) p.getMeter('m').createCounter(n).add(1);
    const cs = await p.collect();
    expect(cs.records.map((r) => r.descriptor.name).sort()).toEqual([...names].sort());
    expect(log.warned('invalid instrument name')).toBe(false);
  });
});

describe('after shutdown', () => {
  it('recording never throws and logs a diagnostic; collect() and forceFlush() reject', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('sd');
    const h = m.createHistogram('sd-h');
    const bound = c.bind(GOOD);
    c.add(1, GOOD);
    bound.add(2);
    h.record(1, GOOD);
    const before = sumOf(findRecord(await p.collect(), 'sd', GOOD));
    expect(before).toBe(3);
    await p.forceFlush();
    await p.shutdown();

    log.clear();
    resetDiagLimits();
    expect(() => bound.add(1)).not.toThrow();
    expect(log.warned('sd', 'after shutdown')).toBe(true);

    log.clear();
    resetDiagLimits();
    expect(() => c.add(1, GOOD)).not.toThrow(); // a series that existed
    expect(log.warned('sd', 'after shutdown')).toBe(true);

    log.clear();
    resetDiagLimits();
    expect(() => c.add(1, { brand: 'new' })).not.toThrow(); // a new series
    expect(log.warned('sd', 'after shutdown')).toBe(true);

    log.clear();
    resetDiagLimits();
    expect(() => c.bind({ k: 'late' }).add(1)).not.toThrow(); // bind after shutdown
    expect(log.warned('sd')).toBe(true);

    log.clear();
    resetDiagLimits();
    expect(() => m.createCounter('created-late').add(1)).not.toThrow();
    expect(() => h.bind(GOOD).record(1)).not.toThrow();
    expect(() => m.recordBatch(GOOD, [[c, 1], [h, 1]])).not.toThrow();
    expect(log.warned('created-late', 'after shutdown')).toBe(true);

    await expect(p.collect()).rejects.toThrow(/shutdown/);
    await expect(p.forceFlush()).rejects.toThrow(/shutdown/);
    await expect(p.shutdown()).resolves.toBeUndefined(); // idempotent
  });

  it('a measurement after unbind() logs a diagnostic (unbind after shutdown is harmless)', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('ub');
    const b = c.bind(GOOD);
    b.unbind();
    expect(() => b.add(1)).not.toThrow();
    expect(log.warned('ub', 'unbound')).toBe(true);
    const b2 = c.bind(GOOD);
    await p.shutdown();
    expect(() => b2.unbind()).not.toThrow();
    expect(() => b2.add(1)).not.toThrow();
  });
});

describe('diagnostics are rate-limited', () => {
  it('10,000 bad calls produce only a handful of log lines', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('flood');
    const h = m.createHistogram('flood-h');
    const bound = c.bind(GOOD);
    bound.unbind();
    for (let i = 0; i < 10_000; i++) {
      c.add(NaN, GOOD);
      c.add(-1);
      c.add('x' as never);
      h.record(-5, GOOD);
      c.add(1, 5 as never);
      c.add(1, { o: {} } as never);
      bound.add(1);
      c.add(1, GOOD);
    }
    expect(sumOf(findRecord(await p.collect(), 'flood', GOOD))).toBe(10_000);
    const lines = log.warnings.length;
    expect(lines).toBeGreaterThanOrEqual(1);
    expect(lines).toBeLessThanOrEqual(10);
  });

  it('after the window, the next diagnostic reports how many were suppressed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('window');
    for (let i = 0; i < 1000; i++) c.add(NaN);
    expect(log.warnings.filter((w) => w.includes('window'))).toHaveLength(1);
    vi.setSystemTime(new Date('2030-01-01T00:01:00Z'));
    c.add(NaN);
    const lines = log.warnings.filter((w) => w.includes('window'));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(String(1000 - 1));
  });
});
