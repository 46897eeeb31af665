// bind()/unbind() handles and recordBatch().
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { native } from '../src/sdk/native';
import {
  CapturingLogger,
  findRecord,
  histOf,
  installLogger,
  lastValueOf,
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

describe('bind / unbind', () => {
  it('bound handles of every synchronous kind record into their label set', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('c').bind({ k: 'c' });
    const u = m.createUpDownCounter('u').bind({ k: 'u' });
    const h = m.createHistogram('h').bind({ k: 'h' });
    const g = m.createGauge('g').bind({ k: 'g' });
    const rand = prng(21);
    let cs = 0;
    let us = 0;
    let last = 0;
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    for (let i = 0; i < 1000; i++) {
      const v = randInt(rand, 0, 2000) / 8;
      c.add(v);
      cs += v;
      u.add(-v);
      us -= v;
      h.record(v);
      ref.record(v);
      g.record(v);
      last = v;
    }
    const set = await p.collect();
    expect(sumOf(findRecord(set, 'c', { k: 'c' }))).toBe(cs);
    expect(sumOf(findRecord(set, 'u', { k: 'u' }))).toBe(us);
    const agg = histOf(findRecord(set, 'h', { k: 'h' }));
    expect(agg.bucketCounts).toEqual(ref.buckets);
    expect(agg.sum).toBe(ref.sum);
    expect(agg.min).toBe(ref.min);
    expect(agg.max).toBe(ref.max);
    expect(lastValueOf(findRecord(set, 'g', { k: 'g' }))).toBe(last);
  });

  it('bind() without attributes is the empty label set', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    c.bind().add(1);
    c.bind({}).add(2);
    c.add(4);
    c.add(8, {});
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(1);
    expect(sumOf(findRecord(cs, 'c', {}))).toBe(15);
  });

  it('after unbind() the handle drops measurements with a diagnostic; the series keeps its total', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('unbound-counter');
    const h = c.bind({ a: 1 });
    h.add(5);
    h.unbind();
    h.unbind(); // idempotent
    expect(() => h.add(100)).not.toThrow();
    expect(log.warned('unbound-counter', 'unbound')).toBe(true);
    c.add(1, { a: 1 }); // direct calls still work
    const h2 = c.bind({ a: 1 }); // so does binding again
    h2.add(10);
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'unbound-counter', { a: 1 }))).toBe(16);
    h2.unbind();
  });

  it('many bind/unbind cycles on one label set create no new records', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('cycle');
    const h = p.getMeter('m').createHistogram('cycle-h');
    c.bind({ x: 'y' }).add(0);
    h.bind({ x: 'y' }).record(0);
    const before = native().stats().records;
    for (let i = 0; i < 10_000; i++) {
      const b = c.bind({ x: 'y' });
      b.add(1);
      b.unbind();
      const bh = h.bind({ x: 'y' });
      bh.record(i % 20);
      bh.unbind();
    }
    expect(native().stats().records).toBe(before);
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'cycle', { x: 'y' }))).toBe(10_000);
    expect(histOf(findRecord(cs, 'cycle-h', { x: 'y' })).count).toBe(10_001);
  });

  it('handles bound to different label sets are independent', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    const handles = Array.from({ length: 50 }, (_, i) => c.bind({ shard: i }));
    handles.forEach((h, i) => {
      for (let j = 0; j <= i; j++) h.add(1);
    });
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(50);
    for (let i = 0; i < 50; i++) expect(sumOf(findRecord(cs, 'c', { shard: i }))).toBe(i + 1);
    for (const h of handles) h.unbind();
  });
});

describe('recordBatch', () => {
  it('records several instruments under one label set', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('c');
    const u = m.createUpDownCounter('u');
    const h = m.createHistogram('h');
    const g = m.createGauge('g');
    const attrs = { route: '/x', method: 'POST' };
    const ref = new RefHistogram(OTEL_DEFAULT_BOUNDARIES);
    let cs = 0;
    let us = 0;
    const rand = prng(22);
    let last = 0;
    for (let i = 0; i < 500; i++) {
      const v = randInt(rand, 0, 1000);
      m.recordBatch(i % 2 ? attrs : { method: 'POST', route: '/x' }, [[c, v], [u, -v], [h, v], [g, v]]);
      cs += v;
      us -= v;
      ref.record(v);
      last = v;
    }
    m.recordBatch(undefined, [[c, 3]]);
    const set = await p.collect();
    expect(sumOf(findRecord(set, 'c', attrs))).toBe(cs);
    expect(sumOf(findRecord(set, 'c', {}))).toBe(3);
    expect(sumOf(findRecord(set, 'u', attrs))).toBe(us);
    expect(histOf(findRecord(set, 'h', attrs)).bucketCounts).toEqual(ref.buckets);
    expect(lastValueOf(findRecord(set, 'g', attrs))).toBe(last);
  });

  it('drops bad entries with a diagnostic and keeps the good ones', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('c');
    const obs = m.createObservableCounter('obs');
    const entries = [
      [c, 1],
      [obs, 5], // observable: not recordable
      'junk',
      null,
      [],
      [{ add: () => { throw new Error('fake instrument'); } }, 1],
      [c, NaN],
      [c, -1],
      [c, 2],
    ];
    expect(() => m.recordBatch({ k: 'v' }, entries as never)).not.toThrow();
    expect(() => m.recordBatch({ k: 'v' }, 'nope' as never)).not.toThrow();
    expect(() => m.recordBatch({ k: 'v' }, undefined as never)).not.toThrow();
    expect(() => m.recordBatch(42 as never, [[c, 100]])).not.toThrow();
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c', { k: 'v' }))).toBe(3);
    expect(recordsOf(cs, 'c')).toHaveLength(1);
    expect(recordsOf(cs, 'obs')).toHaveLength(0);
    expect(log.warned('recordBatch')).toBe(true);
    expect(log.warned('c', 'attributes must be an object')).toBe(true);
  });
});
