// One label set written with its keys in many orders: the direct calls' trie keeps a few
// paths per label set, then looks it up in canonical (sorted) key order, so its memory
// stays bounded by the live series, not by the orders their attribute objects use.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { LabelTrie } from '../src/sdk/label-trie';
import { installLogger, recordsOf, sumOf, uninstallLogger } from './helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

beforeEach(() => installLogger());
afterEach(() => uninstallLogger());

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

const KEYS = ['method', 'route', 'status', 'region', 'zone'];
const ORDERS = permutations(KEYS); // 120

/** The attributes of series `s` with their keys in `order` (a fresh object). */
function attrsOf(s: number, order: string[]): Record<string, string | number> {
  const o: Record<string, string | number> = {};
  for (const k of order) o[k] = k === 'status' ? 200 + s : `${k}-${s % 7}`;
  return o;
}

function heapUsed(): number {
  gc();
  gc();
  return v8.getHeapStatistics().used_heap_size;
}

describe('label sets written in many key orders', () => {
  it('100 series x 120 key orders hold a bounded heap, and every write counts', async () => {
    const p = new MeterProvider({ reclamation: false });
    const c = p.getMeter('orders').createCounter('c');
    const h = p.getMeter('orders').createHistogram('h');
    // Warm up the code paths and the first order of every series.
    for (let s = 0; s < 100; s++) for (let i = 0; i < 3; i++) c.add(1, attrsOf(s, KEYS));
    const before = heapUsed();
    let written = 0;
    for (let round = 0; round < 3; round++) {
      for (const order of ORDERS) {
        for (let s = 0; s < 100; s++) {
          c.add(1, attrsOf(s, order));
          h.record(1, attrsOf(s, order));
          written++;
        }
      }
    }
    const grown = heapUsed() - before;
    // A trie path per order: 100 x 120 paths of up to 5 nodes (~7 MB here); a few paths
    // per label set: well under 1 MB.
    expect(grown).toBeLessThan(2 * 1024 * 1024);
    const records = recordsOf(await p.collect(), 'c');
    expect(records.length).toBe(100);
    let total = 0;
    for (const r of records) total += sumOf(r);
    expect(total).toBe(300 + written);
    await p.shutdown();
  });

  it('a few orders of one label set each keep their own trie path (no sorting on their hits)', () => {
    const p = new MeterProvider({ reclamation: false });
    const c = p.getMeter('orders').createCounter('c');
    const trie = (c as unknown as { trie: { get(a: object, o: object): unknown } }).trie;
    const store = (c as unknown as { store: object }).store;
    const few = ORDERS.slice(0, 3);
    for (let i = 0; i < 3; i++) for (const order of few) c.add(1, attrsOf(1, order));
    for (const order of few) expect(trie.get(attrsOf(1, order), store)).toBeDefined();
  });
});

describe('LabelTrie.getSorted', () => {
  it('finds the canonical path from any key order, and only that owner\'s value', () => {
    const t = new LabelTrie<string>();
    const owner = {};
    expect(t.setSorted({ b: 2, a: 'x', c: true }, owner, 'v')).toBe(true);
    expect(t.getSorted({ c: true, a: 'x', b: 2 }, owner)).toBe('v');
    expect(t.getSorted({ a: 'x', b: 2, c: true }, owner)).toBe('v');
    expect(t.getSorted({ a: 'x', b: 2, c: false }, owner)).toBeUndefined();
    expect(t.getSorted({ a: 'x', b: 2 }, owner)).toBeUndefined();
    expect(t.getSorted({ a: 'x', b: 2, c: true }, {})).toBeUndefined();
    expect(t.get({ c: true, a: 'x', b: 2 }, owner)).toBeUndefined(); // get() walks the object's order
  });

  it('a getter that walks the trie again (re-entrant) does not disturb the outer walk', () => {
    const t = new LabelTrie<string>();
    const owner = {};
    t.setSorted({ a: 1, b: 2 }, owner, 'ab');
    t.setSorted({ x: 1, y: 2, z: 3 }, owner, 'xyz');
    let inner: string | undefined;
    const attrs = {
      b: 2,
      get a() {
        inner = t.getSorted({ z: 3, y: 2, x: 1 }, owner);
        return 1;
      },
    };
    expect(t.getSorted(attrs, owner)).toBe('ab');
    expect(inner).toBe('xyz');
  });
});
