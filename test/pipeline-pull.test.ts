// PullController: on-demand collection, caching within minimumIntervalMillis, shared
// in-flight collections, delta pulls, failures and shutdown.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AggregationTemporality,
  CheckpointSet,
  MeterProvider,
  PullController,
  type MetricProducer,
} from '../src';
import { findRecord, sumOf } from './helpers';

afterEach(() => {
  vi.useRealTimers();
});

describe('PullController', () => {
  it('collects on demand; within minimumIntervalMillis the cached set is returned (fake clock)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const pull = new PullController({ minimumIntervalMillis: 1_000 });
    const p = new MeterProvider({ readers: [pull] });
    const c = p.getMeter('pull').createCounter('c');
    c.add(1);
    const a = await pull.collect();
    c.add(1);
    vi.setSystemTime(Date.now() + 999);
    const b = await pull.collect();
    expect(b).toBe(a); // cached: the new measurement is not in it yet
    expect(sumOf(findRecord(b, 'c'))).toBe(1);
    expect(pull.collectionCount).toBe(1);
    vi.setSystemTime(Date.now() + 1);
    const d = await pull.collect();
    expect(d).not.toBe(a);
    expect(sumOf(findRecord(d, 'c'))).toBe(2);
    expect(pull.collectionCount).toBe(2);
    expect(d.time).toBe(new Date('2030-01-01T00:00:01Z').getTime());
  });

  it('without minimumIntervalMillis every call collects', async () => {
    const pull = new PullController();
    const p = new MeterProvider({ readers: [pull] });
    const c = p.getMeter('pull').createCounter('c');
    for (let i = 1; i <= 3; i++) {
      c.add(1);
      expect(sumOf(findRecord(await pull.collect(), 'c'))).toBe(i);
    }
    expect(pull.collectionCount).toBe(3);
  });

  it('concurrent calls while a collection is in flight share it', async () => {
    const pull = new PullController();
    const p = new MeterProvider({ readers: [pull] });
    let callbacks = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    p.getMeter('pull').createObservableGauge('slow').addCallback(async (r) => {
      callbacks++;
      await gate;
      r.observe(1);
    });
    const calls = Array.from({ length: 5 }, () => pull.collect());
    release();
    const sets = await Promise.all(calls);
    expect(new Set(sets).size).toBe(1);
    expect(callbacks).toBe(1);
    expect(pull.collectionCount).toBe(1);
    // The next call after it settled collects again.
    expect(await pull.collect()).not.toBe(sets[0]);
    expect(callbacks).toBe(2);
  });

  it('delta pulls: each pull reports what changed since the previous one', async () => {
    const pull = new PullController({ batcher: 'ungrouped', temporality: AggregationTemporality.DELTA });
    const p = new MeterProvider({ readers: [pull] });
    const c = p.getMeter('pull').createCounter('c');
    c.add(5);
    expect(sumOf(findRecord(await pull.collect(), 'c'))).toBe(5);
    expect((await pull.collect()).records).toHaveLength(0);
    c.add(2);
    expect(sumOf(findRecord(await pull.collect(), 'c'))).toBe(2);
  });

  it('a failed collection is not cached; shutdown and detachment reject', async () => {
    const detached = new PullController();
    await expect(detached.collect()).rejects.toThrow(/not attached/);
    const pull = new PullController({ minimumIntervalMillis: 60_000 });
    let fail = true;
    const real = new MeterProvider();
    const producer: MetricProducer = {
      resource: { attributes: { r: 1 } },
      collect: async (): Promise<CheckpointSet> => {
        if (fail) throw new Error('collection broke');
        return real.collect();
      },
    };
    pull.setMetricProducer(producer);
    expect(pull.resource.attributes).toEqual({ r: 1 });
    await expect(pull.collect()).rejects.toThrow('collection broke');
    fail = false;
    const ok = await pull.collect();
    expect(ok).toBeInstanceOf(CheckpointSet);
    expect(await pull.collect()).toBe(ok);
    await pull.shutdown();
    await expect(pull.collect()).rejects.toThrow(/after shutdown/);
    expect(() => new PullController({ minimumIntervalMillis: -1 })).toThrow(TypeError);
  });
});
