// Label sets: key-order independence, injectivity, hostile strings, array values.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider } from '../src';
import { attrKey, CapturingLogger, findRecord, installLogger, maybeRecord, prng, recordsOf, sumOf, uninstallLogger } from './helpers';

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => {
  uninstallLogger();
});

/** Reverses an object's key order (a different object shape with the same label set). */
function reversed(a: Attributes): Attributes {
  const out: Attributes = {};
  for (const k of Object.keys(a).reverse()) out[k] = a[k];
  return out;
}

describe('key order', () => {
  it('{a, b} and {b, a} are one series, on every path', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('m');
    const c = m.createCounter('c');
    const h = m.createHistogram('h');
    c.add(1, { a: 'x', b: 'y' });
    c.add(2, { b: 'y', a: 'x' });
    c.bind({ b: 'y', a: 'x' }).add(4);
    m.recordBatch({ b: 'y', a: 'x' }, [[c, 8], [h, 3]]);
    h.record(4, { a: 'x', b: 'y' });
    const o = m.createObservableGauge('o');
    let flip = false;
    o.addCallback((res) => {
      flip = !flip;
      res.observe(flip ? 1 : 2, flip ? { a: 'x', b: 'y' } : { b: 'y', a: 'x' });
    });
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(1);
    expect(sumOf(findRecord(cs, 'c', { a: 'x', b: 'y' }))).toBe(15);
    expect(recordsOf(cs, 'h')).toHaveLength(1);
    const cs2 = await p.collect();
    expect(recordsOf(cs2, 'o')).toHaveLength(1);
    expect(findRecord(cs2, 'o', { a: 'x', b: 'y' }).aggregation).toEqual({ kind: 'lastValue', value: 2 });
  });

  it('many keys in random orders are one series per set', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    const rand = prng(11);
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    let total = 0;
    for (let i = 0; i < 2000; i++) {
      const shuffled = [...keys];
      for (let j = shuffled.length - 1; j > 0; j--) {
        const r = Math.floor(rand() * (j + 1));
        [shuffled[j], shuffled[r]] = [shuffled[r], shuffled[j]];
      }
      const attrs: Attributes = {};
      for (const k of shuffled) attrs[k] = `v-${k}`;
      c.add(1, attrs);
      total++;
    }
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(1);
    expect(sumOf(recordsOf(cs, 'c')[0])).toBe(total);
  });
});

describe('injectivity', () => {
  // Every entry must be its own series: no two of these may share storage.
  const sets: Attributes[] = [
    {},
    { a: 'x,b=y' },
    { a: 'x', b: 'y' },
    { a: 'x' },
    { 'a,b': 'c' },
    { a: 'b,c' },
    { 'a=x': 'y' },
    { a: 'x=y' },
    { a: '1' },
    { a: 1 },
    { a: 1.5 },
    { a: '1.5' },
    { a: 'true' },
    { a: true },
    { a: false },
    { a: 'false' },
    { a: 0 },
    { a: '0' },
    { a: '' },
    { a: 'n1' }, // looks like a tagged number
    { a: 'sx' }, // looks like a tagged string
    { a: 'btrue' },
    { a: '["x"]' },
    { a: ['x'] },
    { a: ['x', 'y'] },
    { a: ['y', 'x'] },
    { a: ['x,y'] },
    { a: [1] },
    { a: ['1'] },
    { a: [] },
    { a: '[]' },
    { a: '{"b":1}' },
    { a: '{"a":"x","b":"y"}' },
    { a: '"x"' },
    { a: 'x\u0000b\u0000y' },
    { a: 'x\u0000' },
    { a: '\u0000x' },
    { a: 'x\u0000y' },
    { a: 'x\u0000z' },
    { 'a\u0000b': 'y' },
    { a: '\u0001\u0000\u0000\u0000x' }, // looks like a length prefix
    { a: 'x', 'b\u0000': 'y' },
    { a: 'x\\' },
    { a: 'x\\"' },
    { ab: 'c' },
    { a: 'bc' },
    { A: 'x' }, // keys are case-sensitive
    { a: 'X' },
  ];

  it('distinct label sets never share a series', async () => {
    // Sanity check of the table itself: all entries distinct under the test's own key.
    expect(new Set(sets.map(attrKey)).size).toBe(sets.length);
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    const h = p.getMeter('m').createHistogram('h');
    const bound = c.bind({ a: 'x', b: 'y' });
    // Series i receives 2^i (as a sum) and i+1 records; any merge shows.
    sets.forEach((attrs, i) => {
      c.add(i + 1, attrs);
      c.add(i + 1, reversed(attrs));
      for (let j = 0; j <= i; j++) h.record(j, attrs);
    });
    bound.add(1000);
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(sets.length);
    expect(recordsOf(cs, 'h')).toHaveLength(sets.length);
    sets.forEach((attrs, i) => {
      const extra = attrKey(attrs) === attrKey({ a: 'x', b: 'y' }) ? 1000 : 0;
      expect(sumOf(findRecord(cs, 'c', attrs)), JSON.stringify(attrs)).toBe(2 * (i + 1) + extra);
      const r = findRecord(cs, 'h', attrs);
      expect(r.aggregation.kind === 'histogram' && r.aggregation.count).toBe(i + 1);
      // Attribute values come back with their types.
      expect(r.attributes).toEqual(attrs);
    });
  });

  it('a string value and a number value are different series and keep their types', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    c.add(1, { a: '1' });
    c.add(10, { a: 1 });
    const cs = await p.collect();
    const rs = recordsOf(cs, 'c');
    expect(rs).toHaveLength(2);
    const s = rs.find((r) => typeof r.attributes.a === 'string')!;
    const n = rs.find((r) => typeof r.attributes.a === 'number')!;
    expect(sumOf(s)).toBe(1);
    expect(sumOf(n)).toBe(10);
  });

  it('a getter that returns a new value on every read cannot redirect later measurements', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    let reads = 0;
    const shifty = {
      get a() {
        return ++reads;
      },
    };
    c.add(1, shifty);
    // Plain objects with the values the getter returned on its later reads.
    for (let v = 1; v <= 6; v++) c.add(100 * v, { a: v });
    const cs = await p.collect();
    const total = recordsOf(cs, 'c').reduce((s, r) => s + sumOf(r), 0);
    expect(total).toBe(1 + 100 * (1 + 2 + 3 + 4 + 5 + 6));
    for (let v = 2; v <= 6; v++) {
      // Whatever series the shifty measurement went to, {a: v} holds 100*v, plus 1 at most.
      const got = sumOf(findRecord(cs, 'c', { a: v }));
      expect(got === 100 * v || got === 100 * v + 1, `{a:${v}} = ${got}`).toBe(true);
    }
  });
});

describe('hostile strings', () => {
  const hostile = [
    'double "quotes"',
    "single 'quotes'",
    'new\nline',
    'carriage\r\nreturn',
    'tab\there',
    'back\\slash',
    'trailing backslash\\',
    '\\"escaped quote\\"',
    '{"json":"lookalike"}',
    '</script><script>alert(1)</script>',
    'label="x",other="y"',
    'emoji 🎉 and ü and 中文',
    'nul\u0000inside',
    '\u2028line separators\u2029',
    'lone high \uD800 surrogate',
    'lone low \uDC00 surrogate',
    '\uDBFF',
    'reversed pair \uDC00\uD800',
    'x'.repeat(4000),
  ];

  it('values round-trip into attributes (lone surrogates become U+FFFD) and the output is well-formed', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    hostile.forEach((v, i) => c.add(i + 1, { v }));
    const cs = await p.collect();
    const byValue = new Map<string, number>();
    for (const r of recordsOf(cs, 'c')) {
      const v = r.attributes.v;
      expect(typeof v).toBe('string');
      expect((v as string).isWellFormed()).toBe(true);
      byValue.set(v as string, sumOf(r));
    }
    const expected = new Map<string, number>();
    hostile.forEach((v, i) => {
      const w = v.toWellFormed();
      expected.set(w, (expected.get(w) ?? 0) + i + 1);
    });
    expect(byValue).toEqual(expected);
  });

  it('keys round-trip too', async () => {
    const p = new MeterProvider();
    const g = p.getMeter('m').createGauge('g');
    hostile.slice(0, 14).forEach((k, i) => g.record(i, { [k]: k }));
    const cs = await p.collect();
    const rs = recordsOf(cs, 'g');
    expect(rs).toHaveLength(14);
    hostile.slice(0, 14).forEach((k, i) => {
      expect(findRecord(cs, 'g', { [k]: k }).aggregation).toEqual({ kind: 'lastValue', value: i });
    });
  });

  it('well-formed values inside arrays too', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    c.add(1, { tags: ['ok', 'bad \uD800', 'quote"', 'nl\n'] });
    const r = recordsOf(await p.collect(), 'c')[0];
    expect(r.attributes.tags).toEqual(['ok', 'bad \uFFFD', 'quote"', 'nl\n']);
  });
});

describe('array values', () => {
  it('arrays of strings, numbers and booleans are label values of their own', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    const sets: Attributes[] = [
      { tags: ['a', 'b'] },
      { tags: ['b', 'a'] },
      { tags: ['a'] },
      { tags: [1, 2, 3] },
      { tags: [1.5, -2] },
      { tags: [true, false] },
      { tags: [] },
      { tags: ['a', 'b'], other: 'x' },
    ];
    sets.forEach((a, i) => {
      c.add(i + 1, a);
      c.bind(a).add(i + 1);
      c.add(i + 1, { ...a, tags: (Array.isArray(a.tags) ? [...a.tags] : a.tags) as Attributes[string] }); // a fresh array each call
    });
    const cs = await p.collect();
    expect(recordsOf(cs, 'c')).toHaveLength(sets.length);
    sets.forEach((a, i) => {
      const r = findRecord(cs, 'c', a);
      expect(sumOf(r)).toBe(3 * (i + 1));
      expect(r.attributes).toEqual(a);
    });
  });

  it('an array holding objects or nested arrays is dropped as an attribute, with a diagnostic', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('nested');
    c.add(5, { bad: [['x']] as never, ok: 'y' });
    c.add(6, { bad: [{ a: 1 }] as never, ok: 'y' });
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'nested', { ok: 'y' }))).toBe(11);
    expect(log.warned('nested', 'bad')).toBe(true);
  });
});

// The direct calls' index (LabelTrie) is one per provider: every instrument walks the same
// nodes and finds its own handle at the leaf.
describe('one attribute index for all instruments', () => {
  it('instruments sharing label sets each keep their own series, past the inline slots', async () => {
    const p = new MeterProvider({ reclamation: false });
    const m = p.getMeter('m');
    const counters = [0, 1, 2, 3].map((i) => m.createCounter(`c${i}`));
    const upDown = m.createUpDownCounter('u');
    const hist = m.createHistogram('h', { advice: { explicitBucketBoundaries: [10, 100] } });
    // 20 routes x 3 statuses: more values under a key than the node holds inline (4) and
    // than its small array holds (8); six owners per leaf, more than the inline two.
    const routes = Array.from({ length: 20 }, (_, i) => `/r${i}`);
    const statuses = [200, 404, 500];
    const rand = prng(5);
    const ROUNDS = 6;
    for (let round = 0; round < ROUNDS; round++) {
      for (const route of routes) {
        for (const status of statuses) {
          // A different instrument order each time: which owner sits in which slot varies.
          const calls = [0, 1, 2, 3, 4, 5].sort(() => rand() - 0.5);
          for (const i of calls) {
            const r = routes.indexOf(route);
            if (i < 4) counters[i].add(1000 * (i + 1) + r, { route, status });
            else if (i === 4) upDown.add(-(r + 1), { route, status });
            else hist.record(r, { route, status });
          }
        }
      }
    }
    const cs = await p.collect();
    for (const [r, route] of routes.entries()) {
      for (const status of statuses) {
        for (let i = 0; i < 4; i++) expect(sumOf(findRecord(cs, `c${i}`, { route, status }))).toBe(ROUNDS * (1000 * (i + 1) + r));
        expect(sumOf(findRecord(cs, 'u', { route, status }))).toBe(-ROUNDS * (r + 1));
        const h = findRecord(cs, 'h', { route, status }).aggregation as { count: number; sum: number };
        expect([h.count, h.sum]).toEqual([ROUNDS, ROUNDS * r]);
      }
    }
    for (let i = 0; i < 4; i++) expect(recordsOf(cs, `c${i}`)).toHaveLength(routes.length * statuses.length);
  });

  it("one instrument's reclaimed series leaves no stale handle in the shared index", async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 1 }); // expiry on
    const m = p.getMeter('m');
    const a = m.createCounter('a');
    const b = m.createCounter('b');
    // Both enter the index for {id: 'x'} (the third use of a label set does).
    for (let i = 0; i < 4; i++) {
      a.add(1, { id: 'x' });
      b.add(1, { id: 'x' });
    }
    expect(sumOf(findRecord(await p.collect(), 'a', { id: 'x' }))).toBe(4);
    // `a` goes idle; `b` keeps recording through the same leaf.
    b.add(1, { id: 'x' });
    await new Promise((r) => setTimeout(r, 5)); // idle longer than reclaimIdleMillis
    await p.collect();
    b.add(1, { id: 'x' });
    await new Promise((r) => setTimeout(r, 5));
    const cs = await p.collect();
    expect(maybeRecord(cs, 'a', { id: 'x' })).toBeUndefined(); // reclaimed
    for (let i = 0; i < 3; i++) b.add(1, { id: 'x' });
    // `a` comes back: a new series from zero, every measurement counted (a handle left
    // in the index from before would drop them silently).
    for (let i = 0; i < 5; i++) a.add(2, { id: 'x' });
    const after = await p.collect();
    expect(sumOf(findRecord(after, 'a', { id: 'x' }))).toBe(10);
    expect(sumOf(findRecord(after, 'b', { id: 'x' }))).toBe(9);
  });
});
