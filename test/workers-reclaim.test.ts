// Reclamation across threads (expiry opted in with reclaimIdleMillis; short sleeps make each
// series idle longer than that): records a worker cached go away once idle, although the
// worker never collects (the main thread's reclaiming collections queue them into the
// worker's stale queue; the worker drains it on a timer or on its next cache miss and
// lets go); a record is freed only when no thread holds it; totals stay exact.
import { describe, expect, it, beforeAll } from 'vitest';
import { MeterProvider } from '../src';
import type { CheckpointSet } from '../src';
import { native } from '../src/sdk/native';
import { attrKey, findRecord, histOf, maybeRecord, recordsOf, sumOf } from './helpers';
import { requireCompiledPackage, sleep, startWorker, stopWorker } from './fixtures/worker-helpers';

beforeAll(() => requireCompiledPackage());

/** Last exported value per series (seriesId), so totals survive reclamation. */
class Ledger {
  private readonly last = new Map<number, { key: string; v: number; n: number }>();
  absorb(cs: CheckpointSet): void {
    for (const r of recordsOf(cs, 'idle.count')) this.last.set(r.seriesId, { key: attrKey(r.attributes), v: sumOf(r), n: 0 });
    for (const r of recordsOf(cs, 'idle.hist')) this.last.set(-r.seriesId, { key: attrKey(r.attributes), v: 0, n: histOf(r).count });
  }
  sum(k: string): number {
    let s = 0;
    for (const e of this.last.values()) if (e.key === attrKey({ k })) s += e.v;
    return s;
  }
  count(k: string): number {
    let s = 0;
    for (const e of this.last.values()) if (e.key === attrKey({ k })) s += e.n;
    return s;
  }
}

const KEYS = Array.from({ length: 10 }, (_, i) => `key${i}`);

describe('reclamation across threads', () => {
  it('an idle worker lets go on its timer: its records are reclaimed while it lives; totals exact', async () => {
    const main = new MeterProvider({ domain: 'wr-timer', reclaimIdleMillis: 1 });
    const ledger = new Ledger();
    const base = native().stats().records;
    const w = startWorker({ mode: 'idle', domain: 'wr-timer', evictIntervalMillis: 10 });
    await w.next('ready');
    w.worker.postMessage({ type: 'record', keys: KEYS, value: 2, rounds: 3, bind: true });
    await w.next('recorded');
    let cs = await main.collect();
    ledger.absorb(cs);
    expect(recordsOf(cs, 'idle.count')).toHaveLength(KEYS.length + 1);
    expect(native().stats().records - base).toBe(2 * KEYS.length + 1);
    // Collections mark them idle; the worker drains on its timer and releases; a later
    // collection reclaims them. The bound handle keeps its record.
    let gone = false;
    for (let i = 0; i < 200 && !gone; i++) {
      await sleep(15);
      cs = await main.collect();
      ledger.absorb(cs);
      gone = KEYS.every((k) => maybeRecord(cs, 'idle.count', { k }) === undefined);
    }
    expect(gone).toBe(true);
    expect(native().stats().records - base).toBe(1);
    expect(sumOf(recordsOf(cs, 'idle.count').find((r) => r.attributes.k === 'bound')!)).toBe(2);
    w.worker.postMessage('stats');
    const stats = (await w.next('stats')).eviction as { evicted: number; drains: number };
    expect(stats.evicted).toBe(2 * KEYS.length);
    for (const k of KEYS) {
      expect(ledger.sum(k)).toBe(6);
      expect(ledger.count(k)).toBe(3);
    }
    // The same label sets come back: new series from zero; the ledger stays exact.
    w.worker.postMessage({ type: 'record', keys: KEYS, value: 5, rounds: 1 });
    await w.next('recorded');
    ledger.absorb(await main.collect());
    for (const k of KEYS) {
      expect(ledger.sum(k)).toBe(11);
      expect(ledger.count(k)).toBe(4);
    }
    expect(await stopWorker(w)).toBe(0);
    // The worker's exit drops its bound reference: everything goes.
    for (let i = 0; i < 3; i++) {
      await sleep(5);
      ledger.absorb(await main.collect());
    }
    expect(native().stats().records - base).toBe(0);
  }, 60_000);

  it('a worker that keeps recording keeps its records; only the idle ones go', async () => {
    const main = new MeterProvider({ domain: 'wr-busy', reclaimIdleMillis: 1 });
    const ledger = new Ledger();
    const w = startWorker({ mode: 'idle', domain: 'wr-busy', evictIntervalMillis: 5 });
    await w.next('ready');
    w.worker.postMessage({ type: 'record', keys: ['cold', 'hot'], value: 1, rounds: 1 });
    await w.next('recorded');
    let hotSeries: number | undefined;
    let coldGone = false;
    for (let i = 0; i < 60; i++) {
      w.worker.postMessage({ type: 'record', keys: ['hot'], value: 1, rounds: 1 });
      await w.next('recorded');
      await sleep(10);
      const cs = await main.collect();
      ledger.absorb(cs);
      const hot = maybeRecord(cs, 'idle.count', { k: 'hot' });
      expect(hot).toBeDefined();
      hotSeries ??= hot!.seriesId;
      expect(hot!.seriesId).toBe(hotSeries); // never reclaimed while in use
      coldGone ||= maybeRecord(cs, 'idle.count', { k: 'cold' }) === undefined;
    }
    expect(coldGone).toBe(true);
    expect(ledger.sum('hot')).toBe(61);
    expect(ledger.sum('cold')).toBe(1);
    await stopWorker(w);
  }, 60_000);

  it('without the timer, the next cache miss drains: a busy worker with new label sets lets go of old ones', async () => {
    const main = new MeterProvider({ domain: 'wr-miss', reclaimIdleMillis: 1 });
    const ledger = new Ledger();
    const w = startWorker({ mode: 'idle', domain: 'wr-miss', evictIntervalMillis: 1e9 });
    await w.next('ready');
    // Two rounds: a label set used twice is cached (holds a reference); once would not be.
    w.worker.postMessage({ type: 'record', keys: ['a0', 'a1', 'a2'], value: 1, rounds: 2 });
    await w.next('recorded');
    for (let i = 0; i < 4; i++) {
      await sleep(5);
      ledger.absorb(await main.collect());
    }
    // Queued, but the worker neither records nor runs its timer: still held.
    expect(maybeRecord(await main.collect(), 'idle.count', { k: 'a0' })).toBeDefined();
    // New label sets: the first miss learns there is work, the next one drains.
    w.worker.postMessage({ type: 'record', keys: ['b0', 'b1'], value: 1, rounds: 2 });
    await w.next('recorded');
    let cs: CheckpointSet | undefined;
    for (let i = 0; i < 3; i++) {
      await sleep(5);
      ledger.absorb((cs = await main.collect()));
    }
    for (const k of ['a0', 'a1', 'a2']) {
      expect(maybeRecord(cs!, 'idle.count', { k })).toBeUndefined();
      expect(ledger.sum(k)).toBe(2);
    }
    w.worker.postMessage('stats');
    const stats = (await w.next('stats')).eviction as { evicted: number };
    expect(stats.evicted).toBeGreaterThanOrEqual(6);
    await stopWorker(w);
  }, 60_000);

  it('remove() in the main thread: a worker\'s cached handle of the series goes too; its next write starts the new series', async () => {
    const main = new MeterProvider({ domain: 'wr-remove' }); // defaults: no expiry
    const c = main.getMeter('workers-test').createCounter('idle.count'); // the worker's instrument
    const w = startWorker({ mode: 'idle', domain: 'wr-remove', evictIntervalMillis: 5 });
    await w.next('ready');
    // Three rounds: the worker caches its handle of {k: 'a'} (and of 'b').
    w.worker.postMessage({ type: 'record', keys: ['a', 'b'], value: 2, rounds: 3 });
    await w.next('recorded');
    expect(sumOf(recordsOf(await main.collect(), 'idle.count').find((r) => r.attributes.k === 'a')!)).toBe(6);
    c.remove({ k: 'a' });
    expect(maybeRecord(await main.collect(), 'idle.count', { k: 'a' })).toBeUndefined();
    // The worker drains its stale queue on its timer and lets go of its cached handle.
    let evicted = 0;
    for (let i = 0; i < 200 && evicted < 1; i++) {
      await sleep(10);
      w.worker.postMessage('stats');
      evicted = ((await w.next('stats')).eviction as { evicted: number }).evicted;
    }
    expect(evicted).toBeGreaterThanOrEqual(1);
    w.worker.postMessage({ type: 'record', keys: ['a', 'b'], value: 5, rounds: 1 });
    await w.next('recorded');
    const cs = await main.collect();
    expect(sumOf(findRecord(cs, 'idle.count', { k: 'a' }))).toBe(5); // a new series, from zero
    expect(sumOf(findRecord(cs, 'idle.count', { k: 'b' }))).toBe(11); // untouched
    expect(await stopWorker(w)).toBe(0);
  }, 60_000);

  it('a record two threads hold is freed only when both let go', async () => {
    const main = new MeterProvider({ domain: 'wr-shared', reclaimIdleMillis: 1 });
    const c = main.getMeter('workers-test').createCounter('idle.count');
    const mainHold = c.bind({ k: 'both' });
    mainHold.add(1);
    const w = startWorker({ mode: 'idle', domain: 'wr-shared', evictIntervalMillis: 5 });
    await w.next('ready');
    w.worker.postMessage({ type: 'record', keys: ['both'], value: 1, rounds: 1 });
    await w.next('recorded');
    for (let i = 0; i < 10; i++) {
      await sleep(10);
      const cs = await main.collect();
      expect(sumOf(recordsOf(cs, 'idle.count').find((r) => r.attributes.k === 'both')!)).toBe(2);
    }
    // The worker let go long ago (idle); the main thread's bound handle still holds it.
    mainHold.add(1);
    mainHold.unbind();
    const ledger = new Ledger();
    let gone = false;
    for (let i = 0; i < 10 && !gone; i++) {
      await sleep(5);
      const cs = await main.collect();
      ledger.absorb(cs);
      gone = maybeRecord(cs, 'idle.count', { k: 'both' }) === undefined;
    }
    expect(gone).toBe(true);
    expect(ledger.sum('both')).toBe(3);
    await stopWorker(w);
  }, 60_000);
});
