// A thread's eviction of cached handles (src/sdk/worker-evict.ts, RecordStore.evict) runs
// in slices so a large cache is not walked in one turn of the event loop: a walk stopped
// at its deadline resumes where it stopped, every stale handle goes, and measurements
// written between slices (through the trie, byKey or a new acquisition) all land.
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { sumOf } from './helpers';

interface StoreView {
  evict(stale: ReadonlySet<number>, deadline?: number): number;
  readonly evictionPending: boolean;
  readonly byKey: Map<string, { recordId: number; off: number }>;
}

describe('eviction in slices', () => {
  it('a walk stopped at its deadline resumes; stale handles all go; writes between slices are all counted', async () => {
    const provider = new MeterProvider({ cardinalityLimit: 10_000 });
    try {
      const c = provider.getMeter('m').createCounter('c');
      const N = 3000;
      const attrs = Array.from({ length: N }, (_, i) => ({ k: `v${i}` }));
      // The second use of a label set caches it by key, the third enters the trie.
      for (let r = 0; r < 3; r++) for (const a of attrs) c.add(1, a);
      const store = (c as unknown as { store: StoreView }).store;
      const before = [...store.byKey.values()];
      expect(before.length).toBe(N);
      const stale = new Set(before.filter((_, i) => i % 2 === 0).map((h) => h.recordId));
      let evicted = 0;
      let slices = 0;
      do {
        evicted += store.evict(stale, -Infinity); // past its deadline: one slice
        slices++;
        for (const a of attrs) c.add(1, a); // between slices
      } while (store.evictionPending);
      expect(slices).toBeGreaterThan(1);
      // Handles re-made between slices may be walked (and dropped) again.
      expect(evicted).toBeGreaterThanOrEqual(stale.size);
      for (const h of before) {
        if (stale.has(h.recordId)) expect(h.off, 'a stale handle never writes again').toBeLessThan(0);
        else expect(h.off).toBeGreaterThanOrEqual(0);
      }
      const set = await provider.collect();
      const sums = new Map<string, number>();
      for (const r of set.records) if (r.descriptor.name === 'c') sums.set(String(r.attributes.k), sumOf(r));
      expect(sums.size).toBe(N);
      for (const a of attrs) expect(sums.get(a.k), a.k).toBe(3 + slices);
    } finally {
      await provider.shutdown();
    }
  });
});
