// The Merge algebra of the batchers (associative, commutative: property tests with a
// seeded PRNG), the delta between cumulative checkpoints, and the label encoders.
import { describe, expect, it } from 'vitest';
import type { Aggregation, Attributes } from '../src';
import { DefaultLabelEncoder, defaultLabelEncoder } from '../src';
import {
  deltaOf,
  hasMinMax,
  isReset,
  mergeAggregations,
  mergeOrdered,
  type Ordered,
} from '../src/export/batchers';
import { encodedLabels } from '../src/export/label-encoder';
import { prometheusLabelEncoder } from '../src/exporters/prometheus/label-encoder';
import { prng, randInt } from './helpers';

const BOUNDS = [0, 10, 100];
type Kind = Aggregation['kind'];
const KINDS: Kind[] = ['sum', 'lastValue', 'minMaxSumCount', 'histogram'];

/** A random aggregation of `kind` with integer values (so float addition is exact). */
function randomAggregation(rand: () => number, kind: Kind): Aggregation {
  switch (kind) {
    case 'sum':
      return { kind: 'sum', sum: randInt(rand, -1000, 1000), monotonic: rand() < 0.5 };
    case 'lastValue':
      return { kind: 'lastValue', value: randInt(rand, -50, 50) };
    case 'minMaxSumCount':
    case 'histogram': {
      const buckets = BOUNDS.map(() => randInt(rand, 0, 5)).concat([randInt(rand, 0, 5)]);
      const count = kind === 'histogram' ? buckets.reduce((a, b) => a + b, 0) : randInt(rand, 0, 20);
      const empty = count === 0;
      const lo = randInt(rand, -100, 100);
      const unknown = !empty && rand() < 0.15;
      const base = {
        count,
        sum: empty ? 0 : randInt(rand, -1000, 1000),
        min: empty || unknown ? Infinity : lo,
        max: empty || unknown ? -Infinity : lo + randInt(rand, 0, 100),
        ...(unknown ? { hasMinMax: false } : {}),
      };
      return kind === 'histogram'
        ? { kind: 'histogram', ...base, boundaries: BOUNDS, bucketCounts: buckets }
        : { kind: 'minMaxSumCount', ...base };
    }
  }
}

function randomItems(rand: () => number, kind: Kind, n: number): Ordered[] {
  // Distinct positions, in random order.
  const orders = Array.from({ length: n }, (_, i) => i * 3 + randInt(rand, 0, 2));
  for (let i = orders.length - 1; i > 0; i--) {
    const j = randInt(rand, 0, i);
    [orders[i], orders[j]] = [orders[j], orders[i]];
  }
  return orders.map((order) => ({ aggregation: randomAggregation(rand, kind), order }));
}

/** Merges `items` along a random binary tree over a random permutation. */
function randomTreeMerge(rand: () => number, items: Ordered[]): Ordered {
  let pool = [...items];
  while (pool.length > 1) {
    const i = randInt(rand, 0, pool.length - 1);
    let j = randInt(rand, 0, pool.length - 2);
    if (j >= i) j++;
    const merged = mergeOrdered(pool[i], pool[j]);
    pool = pool.filter((_, k) => k !== i && k !== j);
    pool.push(merged);
  }
  return pool[0];
}

describe('merge: property tests (seeded)', () => {
  for (const kind of KINDS) {
    it(`${kind}: commutative and associative over random values`, () => {
      const rand = prng(0xc0ffee + kind.length);
      for (let trial = 0; trial < 500; trial++) {
        const [a, b, c] = randomItems(rand, kind, 3);
        expect(mergeOrdered(a, b)).toEqual(mergeOrdered(b, a));
        expect(mergeOrdered(mergeOrdered(a, b), c)).toEqual(mergeOrdered(a, mergeOrdered(b, c)));
      }
    });

    it(`${kind}: any grouping and order of a batch gives the same result as a left fold`, () => {
      const rand = prng(0xbee5 + kind.length * 7);
      for (let trial = 0; trial < 200; trial++) {
        const items = randomItems(rand, kind, randInt(rand, 1, 12));
        const fold = items.reduce((acc, x) => mergeOrdered(acc, x));
        expect(randomTreeMerge(rand, items)).toEqual(fold);
        // And the fold is what the kind's rule says, computed independently.
        const aggs = items.map((x) => x.aggregation);
        const f = fold.aggregation;
        if (f.kind === 'sum') expect(f.sum).toBe(aggs.reduce((s, a) => s + (a as { sum: number }).sum, 0));
        if (f.kind === 'lastValue') {
          const latest = items.reduce((p, x) => (x.order > p.order ? x : p));
          expect(f).toBe(latest.aggregation);
        }
        if (f.kind === 'histogram' || f.kind === 'minMaxSumCount') {
          const xs = aggs as { count: number; min: number; max: number; hasMinMax?: boolean }[];
          expect(f.count).toBe(xs.reduce((s, a) => s + a.count, 0));
          const known = xs.every((a) => a.hasMinMax !== false);
          expect(hasMinMax(f)).toBe(known);
          if (known) {
            expect(f.min).toBe(Math.min(...xs.map((a) => a.min)));
            expect(f.max).toBe(Math.max(...xs.map((a) => a.max)));
          } else {
            expect([f.min, f.max]).toEqual([Infinity, -Infinity]);
          }
        }
        if (f.kind === 'histogram') {
          const want = BOUNDS.map(() => 0).concat([0]);
          for (const a of aggs) (a as { bucketCounts: number[] }).bucketCounts.forEach((c, i) => (want[i] += c));
          expect(f.bucketCounts).toEqual(want);
        }
      }
    });
  }

  it('never mutates its inputs', () => {
    const rand = prng(7);
    for (const kind of KINDS) {
      const [a, b] = randomItems(rand, kind, 2);
      const snap = JSON.stringify([a, b]);
      mergeOrdered(a, b);
      expect(JSON.stringify([a, b])).toBe(snap);
    }
  });

  it('refuses different kinds and different boundaries', () => {
    const h = (boundaries: number[]): Aggregation => ({ kind: 'histogram', count: 0, sum: 0, min: Infinity, max: -Infinity, boundaries, bucketCounts: boundaries.map(() => 0).concat([0]) });
    expect(() => mergeAggregations({ kind: 'sum', sum: 1, monotonic: true }, { kind: 'lastValue', value: 1 })).toThrow(TypeError);
    expect(() => mergeAggregations(h([1, 2]), h([1, 3]))).toThrow(TypeError);
  });

  it('mergeAggregations: the second argument is the later record (its last value wins)', () => {
    expect(mergeAggregations({ kind: 'lastValue', value: 1 }, { kind: 'lastValue', value: 2 })).toEqual({ kind: 'lastValue', value: 2 });
    expect(mergeAggregations({ kind: 'lastValue', value: 2 }, { kind: 'lastValue', value: 1 })).toEqual({ kind: 'lastValue', value: 1 });
    expect(mergeAggregations({ kind: 'sum', sum: 2, monotonic: true }, { kind: 'sum', sum: 3, monotonic: false })).toEqual({ kind: 'sum', sum: 5, monotonic: false });
  });
});

describe('delta between cumulative checkpoints', () => {
  const hist = (buckets: number[], sum: number, min: number, max: number): Aggregation => ({
    kind: 'histogram', count: buckets.reduce((a, b) => a + b, 0), sum, min, max, boundaries: BOUNDS, bucketCounts: buckets,
  });

  it('sums and buckets subtract; min/max only when derivable', () => {
    const a = hist([0, 1, 1, 0], 60, 5, 55);
    const b = hist([0, 2, 1, 0], 67, 5, 55); // a 7 was recorded: extremes unchanged
    const d1 = deltaOf(a, b);
    expect(d1).toMatchObject({ count: 1, sum: 7, bucketCounts: [0, 1, 0, 0], hasMinMax: false, min: Infinity, max: -Infinity });
    const c = hist([1, 2, 1, 1], 67 + 500 - 1, -1, 500); // -1 and 500: both extremes moved
    const d2 = deltaOf(b, c);
    expect(d2).toMatchObject({ count: 2, sum: 499, bucketCounts: [1, 0, 0, 1], min: -1, max: 500 });
    expect(hasMinMax(d2)).toBe(true);
    const d3 = deltaOf(c, c); // nothing recorded: empty, and that is known
    expect(d3).toMatchObject({ count: 0, sum: 0, min: Infinity, max: -Infinity });
    expect(hasMinMax(d3)).toBe(true);
  });

  it('minMaxSumCount and sums', () => {
    expect(deltaOf({ kind: 'sum', sum: 3, monotonic: false }, { kind: 'sum', sum: -2, monotonic: false })).toEqual({ kind: 'sum', sum: -5, monotonic: false });
    const d = deltaOf(
      { kind: 'minMaxSumCount', count: 2, sum: 10, min: 4, max: 6 },
      { kind: 'minMaxSumCount', count: 3, sum: 15, min: 4, max: 6 },
    );
    expect(d).toMatchObject({ count: 1, sum: 5, hasMinMax: false });
  });

  it('resets: a monotonic sum or a count that went down, another layout', () => {
    expect(isReset({ kind: 'sum', sum: 5, monotonic: true }, { kind: 'sum', sum: 4, monotonic: true })).toBe(true);
    expect(isReset({ kind: 'sum', sum: 5, monotonic: false }, { kind: 'sum', sum: 4, monotonic: false })).toBe(false);
    expect(isReset(hist([1, 1, 0, 0], 1, 1, 1), hist([0, 3, 0, 0], 1, 1, 1))).toBe(true); // a bucket went down
    expect(isReset(hist([1, 1, 0, 0], 1, 1, 1), hist([1, 2, 0, 0], 1, 1, 1))).toBe(false);
    expect(isReset({ kind: 'lastValue', value: 1 }, { kind: 'sum', sum: 1, monotonic: true })).toBe(true);
  });
});

describe('label encoders', () => {
  it('default: key-sorted, typed, escaped', () => {
    const e = defaultLabelEncoder;
    expect(e.encode({ status: 200, method: 'GET' })).toBe('method="GET",status=200');
    expect(e.encode({})).toBe('');
    expect(e.encode({ 'a,b=c\\': 'x"y', n: NaN, i: -Infinity, t: true, arr: ['a', 1, false] })).toBe(
      'a\\,b\\=c\\\\="x\\"y",arr=["a",1,false],i=-Infinity,n=NaN,t=true',
    );
    expect(e.encode({ a: undefined, b: null as unknown as string, c: 1 })).toBe('c=1');
  });

  it('default: injective over random label sets, independent of key order (seeded)', () => {
    const rand = prng(424242);
    const pieces = ['', 'a', 'b', ',', '=', '\\', '"', 'a=b', 'a,b', '1', 'true', '[', ']', '\n', '\u{1F600}'];
    const word = (): string => Array.from({ length: randInt(rand, 0, 3) }, () => pieces[randInt(rand, 0, pieces.length - 1)]).join('');
    const value = (): Attributes[string] => {
      switch (randInt(rand, 0, 4)) {
        case 0: return word();
        case 1: return randInt(rand, -3, 3) / 2;
        case 2: return rand() < 0.5;
        case 3: return [word(), randInt(rand, 0, 2)];
        default: return String(randInt(rand, -3, 3) / 2); // the string twin of a number
      }
    };
    const canon = (a: Attributes): string => JSON.stringify(Object.keys(a).sort().map((k) => [k, typeof a[k], a[k]]));
    const seen = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      const attrs: Attributes = {};
      for (let k = randInt(rand, 0, 3); k > 0; k--) attrs[word() || 'k'] = value();
      const enc = new DefaultLabelEncoder().encode(attrs);
      const c = canon(attrs);
      const prior = seen.get(enc);
      if (prior !== undefined) expect(prior).toBe(c);
      seen.set(enc, c);
      const shuffled: Attributes = {};
      for (const k of Object.keys(attrs).reverse()) shuffled[k] = attrs[k];
      expect(defaultLabelEncoder.encode(shuffled)).toBe(enc);
    }
    expect(seen.size).toBeGreaterThan(2000);
  });

  it('prometheus: the label block', () => {
    expect(prometheusLabelEncoder.encode({ 'http.route': '/a"b', code: 200 })).toBe('{code="200",http_route="/a\\"b"}');
    expect(prometheusLabelEncoder.encode({})).toBe('');
  });

  it('encodedLabels caches per attribute object and encoder id; a throwing encoder falls back', () => {
    let calls = 0;
    const counting = { id: 'test.counting', encode: (a: Attributes) => (calls++, defaultLabelEncoder.encode(a)) };
    const attrs = { a: 1 };
    for (let i = 0; i < 10; i++) expect(encodedLabels(attrs, counting)).toBe('a=1');
    expect(calls).toBe(1);
    expect(encodedLabels(attrs)).toBe('a=1');
    expect(encodedLabels({ a: 1 }, counting)).toBe('a=1');
    expect(calls).toBe(2); // another object: encoded again
    const bad = { id: 'test.bad', encode: (): string => { throw new Error('no'); } };
    expect(encodedLabels({ z: 'q' }, bad)).toBe('\u0000z="q"');
  });
});
