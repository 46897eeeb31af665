// Reclamation (epochs), opted in with reclaimIdleMillis (short sleeps make a series idle
// longer than that): records that no handle holds, idle that long, whose final value
// every reader delivered, are freed, so memory follows the live label sets.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { CheckpointSet } from '../src';
import { MeterProvider } from '../src';
import { native } from '../src/sdk/native';
import { attrKey, findRecord, maybeRecord, prng, randInt, recordsOf, sumOf, ManualReader } from './helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('reclamation', () => {
  it('a series nobody updates or holds goes away; an active one stays', async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 1 });
    const c = p.getMeter('r').createCounter('c');
    c.add(1, { id: 'once' });
    c.add(1, { id: 'busy' });
    const before = native().stats().records;
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'once' }))).toBe(1); // exported
    c.add(1, { id: 'busy' });
    c.add(1, { id: 'busy' });
    await sleep(5);
    const cs = await p.collect(); // idle past reclaimIdleMillis, final value delivered: reclaimed
    expect(maybeRecord(cs, 'c', { id: 'once' })).toBeUndefined();
    expect(sumOf(findRecord(cs, 'c', { id: 'busy' }))).toBe(3);
    expect(native().stats().records).toBe(before - 1);
    // It comes back as a new series starting from zero (a reset).
    c.add(5, { id: 'once' });
    const again = findRecord(await p.collect(), 'c', { id: 'once' });
    expect(sumOf(again)).toBe(5);
  });

  it('reclaimIdleMillis: a burst of collections never reclaims a series idle for less than that', async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 300 });
    const c = p.getMeter('r').createCounter('c');
    c.add(1, { id: 'sparse' });
    const t0 = Date.now();
    let collections = 0;
    // Many collections within the idle time: without the option the third one reclaims.
    while (Date.now() - t0 < 200) {
      const cs = await p.collect();
      collections++;
      expect(sumOf(findRecord(cs, 'c', { id: 'sparse' }))).toBe(1);
    }
    expect(collections).toBeGreaterThan(3);
    c.add(2, { id: 'sparse' }); // written again: the same series, not a reset
    await p.collect();
    await sleep(350);
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'sparse' }))).toBe(3); // exported; idle 350 ms now
    expect(maybeRecord(await p.collect(), 'c', { id: 'sparse' })).toBeUndefined(); // idle past 300 ms: gone
    expect(() => new MeterProvider({ reclaimIdleMillis: -1 })).toThrow(TypeError);
  });

  it('bound handles keep their record alive however long it is idle', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('r').createCounter('c');
    const h = c.bind({ id: 'held' });
    h.add(2);
    for (let i = 0; i < 5; i++) await p.collect();
    h.add(3);
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'held' }))).toBe(5);
    h.unbind();
  });

  it('a record is reclaimed only after every reader has exported its final state', async () => {
    const fast = new ManualReader();
    const slow = new ManualReader();
    const p = new MeterProvider({ readers: [fast, slow], reclaimIdleMillis: 1 });
    const c = p.getMeter('r').createCounter('c');
    c.add(1, { id: 'x' });
    await slow.collect();
    c.add(41, { id: 'x' }); // only `fast` will collect this soon
    for (let i = 0; i < 5; i++) {
      await sleep(5);
      await fast.collect();
    }
    const seen = maybeRecord(await slow.collect(), 'c', { id: 'x' });
    expect(seen && sumOf(seen)).toBe(42); // the slow reader still gets the final value
    await sleep(5);
    await fast.collect();
    await sleep(5);
    expect(maybeRecord(await fast.collect(), 'c', { id: 'x' })).toBeUndefined(); // now gone
  });

  it('use after unbind never writes into a reclaimed, reused cell', async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 1 });
    const c = p.getMeter('r').createCounter('c');
    const h = c.bind({ id: 'old' });
    h.add(1);
    h.unbind();
    for (let i = 0; i < 3; i++) {
      await p.collect(); // exported, then reclaimed
      await sleep(5);
    }
    const fresh = [];
    for (let i = 0; i < 50; i++) {
      c.add(1, { id: `new${i}` }); // reuses freed cells of the same size
      fresh.push(i);
    }
    h.add(1000); // dropped: the handle is unbound
    const cs = await p.collect();
    expect(maybeRecord(cs, 'c', { id: 'old' })).toBeUndefined();
    for (const i of fresh) expect(sumOf(findRecord(cs, 'c', { id: `new${i}` }))).toBe(1);
  });

  it('no update racing reclamation is lost: churning label sets, random collections', async () => {
    const p = new MeterProvider({ cardinalityLimit: 1_000_000, reclaimIdleMillis: 1 });
    const m = p.getMeter('r');
    const c = m.createCounter('c');
    const h = m.createHistogram('h', { advice: { explicitBucketBoundaries: [1, 10] } });
    const rand = prng(20261122);
    const tally = new Map<string, number>(); // label set -> total recorded
    const hTally = new Map<string, number>();
    // Per series (seriesId): the last exported value. Summing the last value of every
    // series a label set ever had gives everything that label set recorded.
    const lastC = new Map<number, { key: string; v: number }>();
    const lastH = new Map<number, { key: string; n: number }>();
    const absorb = (cs: CheckpointSet) => {
      for (const r of recordsOf(cs, 'c')) lastC.set(r.seriesId, { key: attrKey(r.attributes), v: sumOf(r) });
      for (const r of recordsOf(cs, 'h')) {
        if (r.aggregation.kind === 'histogram') lastH.set(r.seriesId, { key: attrKey(r.attributes), n: r.aggregation.count });
      }
    };
    let reclaimedSeen = 0;
    for (let step = 0; step < 400_000; step++) {
      // Hot label sets recur; cold ones appear once or come back after long gaps.
      const hot = rand() < 0.6;
      const attrs = hot ? { k: `hot${randInt(rand, 0, 9)}` } : { k: `cold${randInt(rand, 0, 3000)}`, z: 1 };
      const key = attrKey(attrs);
      const v = randInt(rand, 0, 5);
      if (rand() < 0.2) {
        const b = c.bind(attrs);
        b.add(v);
        b.unbind();
      } else {
        c.add(v, attrs);
      }
      tally.set(key, (tally.get(key) ?? 0) + v);
      if (rand() < 0.5) {
        h.record(v, attrs);
        hTally.set(key, (hTally.get(key) ?? 0) + 1);
      }
      if (rand() < 0.0005) {
        const before = native().stats().records;
        absorb(await p.collect());
        if (native().stats().records < before) reclaimedSeen++;
      }
    }
    absorb(await p.collect());
    const got = new Map<string, number>();
    for (const { key, v } of lastC.values()) got.set(key, (got.get(key) ?? 0) + v);
    const gotH = new Map<string, number>();
    for (const { key, n } of lastH.values()) gotH.set(key, (gotH.get(key) ?? 0) + n);
    expect(reclaimedSeen).toBeGreaterThan(10); // reclamation really happened along the way
    expect(new Set(lastC.keys()).size).toBeGreaterThan(tally.size); // and series came back
    expect(got).toEqual(tally);
    expect(gotH).toEqual(hTally);
  }, 60_000);

  it('memory follows the live label sets after a burst of a million one-off label sets', async () => {
    const p = new MeterProvider({ cardinalityLimit: 2_000_000, reclaimIdleMillis: 1 });
    const c = p.getMeter('burst').createCounter('c');
    const live = c.bind({ id: 'live' });
    await p.collect();
    gc();
    const base = { records: native().stats().records, heap: process.memoryUsage().heapUsed };
    const burst = async (tag: string) => {
      for (let i = 0; i < 1_000_000; i++) {
        c.add(1, { id: `${tag}${i}` });
        // Yield now and then: a loop this long (~40 s under ASan) starves vitest's RPC.
        if (i % 100_000 === 99_999) await new Promise(setImmediate);
      }
      live.add(1);
      const cs = await p.collect();
      expect(recordsOf(cs, 'c').length).toBe(1_000_001);
      await sleep(5);
      await p.collect(); // stale: caches let go
      await sleep(5);
      await p.collect(); // reclaimed
    };
    await burst('a');
    gc();
    const after1 = { records: native().stats().records, heap: process.memoryUsage().heapUsed, arena: native().stats().arenaBytes };
    await burst('b');
    gc();
    const after2 = { records: native().stats().records, heap: process.memoryUsage().heapUsed, arena: native().stats().arenaBytes };
    expect(after1.records).toBe(base.records);
    expect(after2.records).toBe(base.records);
    // Native cells are reused, not grown, by the second burst.
    expect(after2.arena).toBe(after1.arena);
    // The JS side returns to within 16 MB of where it started (the burst held hundreds).
    expect(after1.heap - base.heap).toBeLessThan(16 * 1024 * 1024);
    expect(after2.heap - base.heap).toBeLessThan(16 * 1024 * 1024);
    live.add(1);
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'live' }))).toBe(3);
    live.unbind();
  }, 120_000);
});
