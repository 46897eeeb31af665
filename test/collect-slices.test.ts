// provider.collect() runs its pass on the libuv pool and reads the output in slices
// between which the event loop turns (src/sdk/collection.ts decodeCollection): a large
// registry no longer holds the event loop for the whole collection. The slices must not
// change what is collected, and a series removed while the collection is being read
// never appears without its attributes.
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { setDecodeSliceMillis } from '../src/sdk/collection';
import { native } from '../src/sdk/native';

afterEach(() => setDecodeSliceMillis(8));

const N = 5000;

function setup() {
  const p = new MeterProvider({ cardinalityLimit: N + 10 });
  const m = p.getMeter('slices');
  const c = m.createCounter('c');
  const h = m.createHistogram('h', { advice: { explicitBucketBoundaries: [1, 10] } });
  for (let i = 0; i < N; i++) {
    c.add(i + 1, { k: `v${i}` });
    h.record(i % 20, { k: `v${i}` });
  }
  return { p, c, h };
}

/** Turns of the event loop (setImmediate callbacks) while `f` runs. */
async function turnsDuring<T>(f: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const result = await f();
  done = true;
  return { result, turns };
}

describe('provider.collect() in slices', () => {
  it('the event loop turns between slices; the collection is exactly what one uninterrupted read gives', async () => {
    const { p } = setup();
    try {
      await new Promise((r) => setImmediate(r)); // first-use references go back
      setDecodeSliceMillis(1e9); // one slice
      const whole = await p.collect();
      setDecodeSliceMillis(0); // a slice per 512 records
      const { result: sliced, turns } = await turnsDuring(() => p.collect());
      expect(turns).toBeGreaterThanOrEqual(Math.floor((2 * N) / 512));
      const key = (r: { descriptor: { name: string }; attributes: Record<string, unknown> }) => `${r.descriptor.name}|${String(r.attributes.k)}`;
      const a = new Map<string, unknown>();
      whole.forEach((r) => a.set(key(r), r.aggregation));
      const b = new Map<string, unknown>();
      sliced.forEach((r) => b.set(key(r), r.aggregation));
      expect(a.size).toBe(2 * N);
      expect(b).toEqual(a);
      expect((a.get(`c|v${N - 1}`) as { sum: number }).sum).toBe(N);
    } finally {
      await p.shutdown();
    }
  });

  it('series removed while a collection is read in slices never appear without their attributes', async () => {
    const { p, c } = setup();
    try {
      await new Promise((r) => setImmediate(r)); // first-use references go back: removal frees the records at once
      setDecodeSliceMillis(0);
      let removed = false;
      const remover = (): void => {
        for (let i = 0; i < N; i += 2) c.remove({ k: `v${i}` });
        removed = true;
      };
      // Right after the pass: the removal lands between the walk's first slice and the
      // attribute decoding that follows the walk.
      const n = native() as unknown as { collectAsync: (...a: unknown[]) => Promise<Float64Array> };
      const orig = n.collectAsync;
      n.collectAsync = async (...a: unknown[]) => {
        const out = await orig.apply(n, a);
        setImmediate(remover);
        return out;
      };
      let cs;
      try {
        cs = await p.collect();
      } finally {
        n.collectAsync = orig;
      }
      expect(removed).toBe(true);
      let counters = 0;
      cs.forEach((r) => {
        expect(typeof r.attributes.k, `${r.descriptor.name} ${JSON.stringify(r.attributes)}`).toBe('string');
        if (r.descriptor.name === 'c') {
          counters++;
          expect((r.aggregation as { sum: number }).sum).toBe(Number(String(r.attributes.k).slice(1)) + 1);
        }
      });
      expect(counters).toBeGreaterThanOrEqual(N / 2);
      // The next collection has exactly the series kept.
      const next = await p.collect();
      const left = new Set<string>();
      next.forEach((r) => r.descriptor.name === 'c' && left.add(String(r.attributes.k)));
      expect(left.size).toBe(N / 2);
      expect(left.has('v0')).toBe(false);
      expect(left.has('v1')).toBe(true);
    } finally {
      await p.shutdown();
    }
  });
});

describe('shutdown() while a collection is under way', () => {
  it('the collection completes with every series; shutdown() frees the domain after it', async () => {
    for (const delay of [0, 1, 3]) {
      const { p } = setup();
      setDecodeSliceMillis(0);
      const collected = p.collect();
      await new Promise((r) => setTimeout(r, delay));
      const [cs] = await Promise.all([collected, p.shutdown()]);
      expect(cs.size, `delay ${delay}`).toBe(2 * N);
      let sum = 0;
      cs.forEach((r) => r.descriptor.name === 'c' && (sum += (r.aggregation as { sum: number }).sum));
      expect(sum).toBe((N * (N + 1)) / 2);
      await expect(p.collect()).rejects.toThrow(/after shutdown/);
    }
  });
});
