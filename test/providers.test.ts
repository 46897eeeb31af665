// Drop-in use through @opentelemetry/api, and isolation between providers.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { metrics, type MeterProvider as ApiMeterProvider, type Meter as ApiMeter } from '@opentelemetry/api';
import { Meter, MeterProvider } from '../src';
import { findRecord, histOf, installLogger, recordsOf, RefHistogram, sumOf, uninstallLogger } from './helpers';

beforeEach(() => {
  installLogger();
});
afterEach(() => {
  metrics.disable();
  uninstallLogger();
});

describe('drop-in for @opentelemetry/api', () => {
  it('code using only metrics.getMeter() records through the global provider', async () => {
    const provider = new MeterProvider();
    expect(metrics.setGlobalMeterProvider(provider)).toBe(true);

    // "Library" code: knows nothing but the API.
    function instrumentedLibrary(n: number): void {
      const meter = metrics.getMeter('my-lib', '0.1.0');
      const requests = meter.createCounter('lib.requests');
      const latency = meter.createHistogram('lib.latency', { unit: 'ms' });
      const inflight = meter.createUpDownCounter('lib.inflight');
      const gauge = meter.createGauge('lib.temp');
      const obs = meter.createObservableGauge('lib.queue');
      obs.addCallback((r) => r.observe(n * 10, { q: 'main' }));
      for (let i = 0; i < n; i++) {
        inflight.add(1);
        requests.add(1, { route: i % 2 ? '/a' : '/b' });
        latency.record(i, { route: '/a' });
        gauge.record(i);
        inflight.add(-1);
      }
    }
    instrumentedLibrary(10);

    expect(metrics.getMeterProvider()).toBe(provider);
    const cs = await provider.collect();
    expect(sumOf(findRecord(cs, 'lib.requests', { route: '/a' }))).toBe(5);
    expect(sumOf(findRecord(cs, 'lib.requests', { route: '/b' }))).toBe(5);
    expect(sumOf(findRecord(cs, 'lib.inflight'))).toBe(0);
    const ref = new RefHistogram([0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]);
    for (let i = 0; i < 10; i++) ref.record(i);
    expect(histOf(findRecord(cs, 'lib.latency', { route: '/a' })).bucketCounts).toEqual(ref.buckets);
    expect(findRecord(cs, 'lib.temp').aggregation).toEqual({ kind: 'lastValue', value: 9 });
    expect(findRecord(cs, 'lib.queue', { q: 'main' }).aggregation).toEqual({ kind: 'lastValue', value: 100 });
    expect(findRecord(cs, 'lib.requests', { route: '/a' }).scope).toMatchObject({ name: 'my-lib', version: '0.1.0' });
  });

  it('after metrics.disable() the API falls back to its no-op provider', async () => {
    const provider = new MeterProvider();
    metrics.setGlobalMeterProvider(provider);
    metrics.disable();
    metrics.getMeter('x').createCounter('after-disable').add(1);
    expect(recordsOf(await provider.collect(), 'after-disable')).toHaveLength(0);
  });

  it('satisfies the api MeterProvider and Meter interfaces', () => {
    const provider = new MeterProvider();
    const api: ApiMeterProvider = provider; // compile-time check
    const meter: ApiMeter = api.getMeter('s');
    expect(meter).toBeInstanceOf(Meter);
    for (const fn of [
      'createCounter',
      'createUpDownCounter',
      'createHistogram',
      'createGauge',
      'createObservableCounter',
      'createObservableUpDownCounter',
      'createObservableGauge',
      'addBatchObservableCallback',
      'removeBatchObservableCallback',
    ] as const) {
      expect(typeof meter[fn]).toBe('function');
    }
    const c = meter.createCounter('c');
    expect(typeof c.add).toBe('function');
    const o = meter.createObservableCounter('o');
    expect(typeof o.addCallback).toBe('function');
    expect(typeof o.removeCallback).toBe('function');
  });

  it('getMeter returns the same Meter for the same scope and different ones otherwise', () => {
    const provider = new MeterProvider();
    const a = provider.getMeter('lib', '1.0.0');
    expect(provider.getMeter('lib', '1.0.0')).toBe(a);
    expect(provider.getMeter('lib', '1.0.0', {})).toBe(a);
    expect(provider.getMeter('lib', '2.0.0')).not.toBe(a);
    expect(provider.getMeter('lib')).not.toBe(a);
    expect(provider.getMeter('lib', '1.0.0', { schemaUrl: 'https://example.com/s' })).not.toBe(a);
    expect(provider.getMeter('other', '1.0.0')).not.toBe(a);
    expect(provider.getMeter('lib')).toBe(provider.getMeter('lib'));
    expect(new MeterProvider().getMeter('lib', '1.0.0')).not.toBe(a);
  });
});

describe('multiple providers', () => {
  it('are isolated: records of one never show in the collect of another', async () => {
    const p1 = new MeterProvider();
    const p2 = new MeterProvider();
    const c1 = p1.getMeter('m').createCounter('same');
    const c2 = p2.getMeter('m').createCounter('same');
    const h1 = p1.getMeter('m').createHistogram('only1');
    const b1 = c1.bind({ k: 'v' });
    const b2 = c2.bind({ k: 'v' });
    for (let i = 0; i < 100; i++) {
      c1.add(1, { k: 'v' });
      b1.add(2);
      c2.add(10, { k: 'v' });
      b2.add(20);
      h1.record(i);
    }
    c2.add(5, { k: 'only-in-2' });
    const cs1 = await p1.collect();
    const cs2 = await p2.collect();
    expect(sumOf(findRecord(cs1, 'same', { k: 'v' }))).toBe(300);
    expect(sumOf(findRecord(cs2, 'same', { k: 'v' }))).toBe(3000);
    expect(recordsOf(cs1, 'same')).toHaveLength(1);
    expect(recordsOf(cs2, 'same')).toHaveLength(2);
    expect(recordsOf(cs2, 'only1')).toHaveLength(0);
    expect(cs1.size).toBe(2);
    expect(cs2.size).toBe(2);
  });

  it('shutting one down leaves the other working', async () => {
    const p1 = new MeterProvider();
    const p2 = new MeterProvider();
    const c1 = p1.getMeter('m').createCounter('c');
    const c2 = p2.getMeter('m').createCounter('c');
    c1.add(1);
    c2.add(2);
    await p1.shutdown();
    c1.add(100);
    c2.add(3);
    await expect(p1.collect()).rejects.toThrow();
    expect(sumOf(findRecord(await p2.collect(), 'c'))).toBe(5);
  });

  describe('sharing a domain by name', () => {
    it('share the records of an instrument both register', async () => {
      const a = new MeterProvider({ domain: 'shared-1' });
      const b = new MeterProvider({ domain: 'shared-1' });
      const ca = a.getMeter('m').createCounter('c');
      const cb = b.getMeter('m').createCounter('c');
      ca.add(1, { from: 'a' });
      cb.add(10, { from: 'b' });
      cb.add(100, { from: 'a' });
      for (const cs of [await a.collect(), await b.collect()]) {
        // Each provider sees both series, with their own attributes.
        expect(recordsOf(cs, 'c')).toHaveLength(2);
        expect(sumOf(findRecord(cs, 'c', { from: 'a' }))).toBe(101);
        expect(sumOf(findRecord(cs, 'c', { from: 'b' }))).toBe(10);
      }
    });

    it('an instrument only the other provider knows does not corrupt this one\'s collection', async () => {
      const a = new MeterProvider({ domain: 'shared-2' });
      const b = new MeterProvider({ domain: 'shared-2' });
      // b registers first, so its records come first in the native collection.
      const onlyB = b.getMeter('m').createHistogram('only-b');
      const ca = a.getMeter('m').createCounter('mine');
      onlyB.record(3, { x: 1 });
      ca.add(7, { y: 'a' });
      ca.add(8, { y: 'b' });
      const cs = await a.collect();
      expect(sumOf(findRecord(cs, 'mine', { y: 'a' }))).toBe(7);
      expect(sumOf(findRecord(cs, 'mine', { y: 'b' }))).toBe(8);
      for (const r of cs.records) {
        expect(r.descriptor).toBeDefined();
        expect(Number.isFinite(r.startTime)).toBe(true);
      }
    });

    it('one histogram identity registered with different advice keeps one cell layout', async () => {
      const a = new MeterProvider({ domain: 'shared-3' });
      const b = new MeterProvider({ domain: 'shared-3' });
      const ha = a.getMeter('m').createHistogram('h', { advice: { explicitBucketBoundaries: [1, 2, 3] } });
      const hb = b.getMeter('m').createHistogram('h'); // default boundaries: 15 of them
      const neighbour = b.getMeter('m').createCounter('neighbour');
      const nb = neighbour.bind({ n: 1 });
      nb.add(1);
      const values = [0.5, 2, 2.5, 4, 100, 20000];
      for (const v of values) {
        hb.record(v, { s: 'b' });
        ha.record(v, { s: 'a' });
      }
      nb.add(1);
      const csA = await a.collect();
      const csB = await b.collect();
      for (const cs of [csA, csB]) {
        for (const s of ['a', 'b']) {
          const agg = histOf(findRecord(cs, 'h', { s }));
          const ref = new RefHistogram(agg.boundaries);
          for (const v of values) ref.record(v);
          expect(agg.bucketCounts).toEqual(ref.buckets);
          expect(agg.sum).toBe(ref.sum);
          expect(agg.min).toBe(ref.min);
          expect(agg.max).toBe(ref.max);
        }
      }
      expect(sumOf(findRecord(csB, 'neighbour', { n: 1 }))).toBe(2);
      // Both providers agree on the one layout.
      expect(histOf(findRecord(csA, 'h', { s: 'a' })).boundaries).toEqual(histOf(findRecord(csB, 'h', { s: 'a' })).boundaries);
    });
  });
});
