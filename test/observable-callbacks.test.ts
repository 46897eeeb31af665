// Observable callbacks that change the callback lists or collect while a collection runs
// them: no other callback is skipped, and no observation is lost to the outer collection.
import type { ObservableCallback } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AggregationTemporality, MeterProvider, PullController } from '../src';
import { findRecord, installLogger, maybeRecord, lastValueOf, sumOf, uninstallLogger } from './helpers';

beforeEach(() => installLogger());
afterEach(() => uninstallLogger());

describe('a callback that removes itself', () => {
  it('does not make the next callback of the instrument skip the collection', async () => {
    const p = new MeterProvider();
    const g = p.getMeter('cb').createObservableGauge('g');
    const once: ObservableCallback = (r) => {
      r.observe(1, { by: 'once' });
      g.removeCallback(once);
    };
    g.addCallback(once);
    g.addCallback((r) => r.observe(2, { by: 'second' }));
    g.addCallback((r) => r.observe(3, { by: 'third' }));
    const first = await p.collect();
    expect(lastValueOf(maybeRecord(first, 'g', { by: 'once' })!)).toBe(1);
    expect(maybeRecord(first, 'g', { by: 'second' })).toBeDefined();
    expect(maybeRecord(first, 'g', { by: 'third' })).toBeDefined();
    const second = await p.collect();
    expect(maybeRecord(second, 'g', { by: 'once' })).toBeUndefined(); // removed
    expect(lastValueOf(maybeRecord(second, 'g', { by: 'second' })!)).toBe(2);
    expect(lastValueOf(maybeRecord(second, 'g', { by: 'third' })!)).toBe(3);
    await p.shutdown();
  });

  it('a batch callback that removes itself does not make the next batch callback skip', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('cb');
    const a = m.createObservableGauge('a');
    const b = m.createObservableGauge('b');
    const once = (r: { observe(o: typeof a, v: number): void }) => {
      r.observe(a, 1);
      m.removeBatchObservableCallback(once, [a]);
    };
    m.addBatchObservableCallback(once, [a]);
    m.addBatchObservableCallback((r) => r.observe(b, 5), [b]);
    const cs = await p.collect();
    expect(lastValueOf(maybeRecord(cs, 'a')!)).toBe(1);
    expect(lastValueOf(maybeRecord(cs, 'b')!)).toBe(5);
    await p.shutdown();
  });
});

describe('a collection nested in a callback', () => {
  it('leaves the outer collection (same reader) every observation made before it', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('cb');
    let nested = 0;
    const g = m.createObservableGauge('g');
    g.addCallback(async (r) => {
      r.observe(7, { k: 'before' });
      if (nested++ === 0) await p.collect();
      r.observe(8, { k: 'after' });
    });
    const c = m.createObservableCounter('c');
    c.addCallback((r) => r.observe(11));
    const outer = await p.collect();
    expect(lastValueOf(maybeRecord(outer, 'g', { k: 'before' })!)).toBe(7);
    expect(lastValueOf(maybeRecord(outer, 'g', { k: 'after' })!)).toBe(8);
    expect(maybeRecord(outer, 'c')).toBeDefined();
    await p.shutdown();
  });

  it("leaves another reader's collection every observation made before it", async () => {
    const pull = new PullController({ batcher: 'ungrouped', temporality: AggregationTemporality.DELTA });
    const p = new MeterProvider({ readers: [pull] });
    const m = p.getMeter('cb');
    let nested = 0;
    const g = m.createObservableGauge('g');
    g.addCallback((r) => r.observe(4));
    const c = m.createObservableCounter('c');
    c.addCallback(async (r) => {
      r.observe(10);
      if (nested++ === 0) await p.collect();
    });
    const set = await pull.collect();
    expect(maybeRecord(set, 'g')).toBeDefined();
    expect(maybeRecord(set, 'c')).toBeDefined();
    await p.shutdown();
  });
});

describe('observations of several attribute sets that land in one series', () => {
  const OVERFLOW = { 'otel.metric.overflow': true };

  it('an observable counter past its cardinality limit: the overflow series holds the sum of the sets it takes', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'c', cardinalityLimit: 3 }] });
    const values = new Map<number, number>([[1, 1], [2, 2], [3, 10], [4, 0]]);
    p.getMeter('m').createObservableCounter('c').addCallback((r) => {
      for (const [k, v] of values) r.observe(v, { k });
    });
    let cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c', { k: 1 }))).toBe(1);
    expect(sumOf(findRecord(cs, 'c', { k: 2 }))).toBe(2);
    // {k: 3} and {k: 4} overflow: 10 + 0, not the last observation (0).
    expect(sumOf(findRecord(cs, 'c', OVERFLOW))).toBe(10);
    values.set(4, 5);
    cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c', OVERFLOW))).toBe(15); // a counter: never down
    await p.shutdown();
  });

  it('an observable up-down counter whose view keeps one attribute: the series is the sum of the sets', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'u', attributeKeys: ['pool'] }] });
    const g = p.getMeter('m').createObservableUpDownCounter('u');
    g.addCallback((r) => {
      r.observe(3, { pool: 'a', pid: 1 });
      r.observe(-1, { pool: 'a', pid: 2 });
      r.observe(4, { pool: 'b', pid: 1 });
    });
    for (let i = 0; i < 2; i++) {
      const cs = await p.collect();
      expect(sumOf(findRecord(cs, 'u', { pool: 'a' }))).toBe(2);
      expect(sumOf(findRecord(cs, 'u', { pool: 'b' }))).toBe(4);
    }
    await p.shutdown();
  });

  it('another provider collecting while an asynchronous callback waits does not restart the sum', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: 'c', cardinalityLimit: 2 }] });
    const other = new MeterProvider();
    other.getMeter('m').createObservableGauge('g').addCallback((r) => r.observe(1));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    p.getMeter('m').createObservableCounter('c').addCallback(async (r) => {
      r.observe(1, { k: 1 });
      r.observe(2, { k: 2 }); // overflow
      await gate;
      r.observe(3, { k: 3 }); // overflow
    });
    const collecting = p.collect();
    await other.collect();
    release();
    expect(sumOf(findRecord(await collecting, 'c', OVERFLOW))).toBe(5);
    await p.shutdown();
    await other.shutdown();
  });

  it('the same attribute set observed twice keeps the later value; gauges keep the last observation', async () => {
    const p = new MeterProvider({ views: [{ instrumentName: '*', attributeKeys: ['pool'] }] });
    const m = p.getMeter('m');
    m.createObservableCounter('c').addCallback((r) => {
      r.observe(3, { pool: 'a', pid: 1 });
      r.observe(5, { pool: 'a', pid: 1 });
    });
    m.createObservableGauge('g').addCallback((r) => {
      r.observe(3, { pool: 'a', pid: 1 });
      r.observe(7, { pool: 'a', pid: 2 });
    });
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'c', { pool: 'a' }))).toBe(5);
    expect(lastValueOf(findRecord(cs, 'g', { pool: 'a' }))).toBe(7);
    await p.shutdown();
  });
});
