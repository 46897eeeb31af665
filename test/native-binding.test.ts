// Wrong arguments reaching C++ throw a TypeError (RangeError for a slab index out of
// range) and never crash the process. The binding is loaded the way the SDK loads it.
import { beforeAll, describe, expect, it } from 'vitest';
import { native, type NativeBinding } from '../src/sdk/native';

let b: NativeBinding;
let domain: number;
let sumId: number;
let histId: number;
let dropId: number;
const out4 = () => new Float64Array(4);
type AnyFn = (...args: unknown[]) => unknown;

beforeAll(() => {
  b = native();
  domain = b.registerDomain('');
  sumId = b.registerInstrument(domain, 'native-test\0sum', 'sum', '', '', 0, 1, 1, true, new Float64Array(0))[0];
  histId = b.registerInstrument(domain, 'native-test\0hist', 'hist', '', '', 2, 1, 5, false, new Float64Array([1, 2, 3]))[0];
  dropId = b.registerInstrument(domain, 'native-test\0drop', 'drop', '', '', 0, 1, 0, true, new Float64Array(0))[0];
});

/** Bad values for a parameter that must be an unsigned 32-bit integer. */
const BAD_U32: [string, unknown][] = [
  ['a string', '1'],
  ['a negative number', -1],
  ['a fraction', 1.5],
  ['2^32', 2 ** 32],
  ['Infinity', Infinity],
  ['NaN', NaN],
  ['a bigint', 1n],
  ['null', null],
  ['undefined', undefined],
  ['an object', {}],
  ['a Number object', new Number(1)],
  ['a boolean', true],
];
/** Bad values for a record id (a safe non-negative integer). */
const BAD_ID: [string, unknown][] = [
  ['a string', '1'],
  ['a negative number', -1],
  ['a fraction', 0.5],
  ['2^53', 2 ** 53],
  ['1e300', 1e300],
  ['-Infinity', -Infinity],
  ['NaN', NaN],
  ['a bigint', 1n],
  ['null', null],
  ['an array', [1]],
];
const NOT_STRINGS: unknown[] = [1, null, undefined, {}, ['a'], Symbol('s'), 1n, true, new String('s')];

function expectTypeError(fn: () => unknown): void {
  expect(fn).toThrow(TypeError);
}

describe('the binding', () => {
  it('loads under vitest and works with good arguments', () => {
    const out = out4();
    expect(b.acquire(sumId, ['k', 'sv'], out)).toBe(true);
    const [recordId, slab, offset] = out;
    const view = new Float64Array(b.slab(slab));
    view[offset] += 5;
    const data = b.collect(domain, false);
    expect(data[1]).toBeGreaterThanOrEqual(1);
    expect(b.recordInfo(recordId)).toEqual([sumId, ['k', 'sv']]);
    expect(b.descriptor(histId)).toMatchObject({ id: histId, name: 'hist', kind: 2, aggregation: 5 });
    expect(Array.from(b.descriptor(histId)!.bounds)).toEqual([1, 2, 3]);
    expect(b.release(recordId)).toBe(true);
    expect(b.stats()).toMatchObject({ records: expect.any(Number), arenaBytes: expect.any(Number), arenaId: expect.any(Number) });
  });
});

describe('registerDomain', () => {
  it('rejects missing or non-string names', () => {
    expectTypeError(() => (b.registerDomain as AnyFn)());
    for (const v of NOT_STRINGS) expectTypeError(() => (b.registerDomain as AnyFn)(v));
    expectTypeError(() => b.registerDomain('x'.repeat(70 * 1024)));
  });
  it('returns the same id for the same name, a new one for ""', () => {
    expect(b.registerDomain('native-dom')).toBe(b.registerDomain('native-dom'));
    expect(b.registerDomain('')).not.toBe(b.registerDomain(''));
  });
});

describe('releaseDomain', () => {
  it('rejects missing, non-integer and zero domains', () => {
    expectTypeError(() => (b.releaseDomain as AnyFn)());
    for (const v of ['1', null, undefined, {}, -1, 1.5, NaN, 2 ** 32, 0]) expectTypeError(() => (b.releaseDomain as AnyFn)(v));
  });
  it('ends this thread\'s uses one at a time; the last one frees the domain and its name', () => {
    const d = b.registerDomain('native-release');
    expect(b.registerDomain('native-release')).toBe(d);
    const [id] = b.registerInstrument(d, 'rd', 'rd', '', '', 0, 1, 1, true, new Float64Array(0));
    const out = new Float64Array(6);
    expect(b.acquire(id, ['k', 'sv'], out)).toBe(true);
    const records = b.stats().records;
    expect(b.releaseDomain(d)).toBe(false); // one use left
    expect(b.descriptor(id)).not.toBeNull();
    expect(b.releaseDomain(d)).toBe(true);
    expect(b.stats().records).toBe(records - 1);
    expect(b.descriptor(id)).toBeNull();
    expect(b.acquire(id, ['k', 'sv'], out)).toBe(false);
    expect(b.release(out[0])).toBe(false);
    expect(b.releaseDomain(d)).toBe(false); // unknown now
    expect(b.registerDomain('native-release')).not.toBe(d);
  });
});

describe('processShared functions', () => {
  it('registerDomain(name, processShared): a non-boolean flag or an empty shared name is a TypeError', () => {
    for (const v of ['1', 1, null, {}]) expectTypeError(() => (b.registerDomain as AnyFn)('x', v));
    expectTypeError(() => b.registerDomain('', true));
  });
  it('sharedStats rejects bad domains and is null for a domain that is not shared', () => {
    expectTypeError(() => (b.sharedStats as AnyFn)());
    for (const v of ['1', null, undefined, {}, -1, 1.5, NaN, 2 ** 32, 0]) expectTypeError(() => (b.sharedStats as AnyFn)(v));
    expect(b.sharedStats(domain)).toBeNull();
  });
  it('cleanupProcessShared rejects a non-string name and is 0 for a name with no segment', () => {
    expectTypeError(() => (b.cleanupProcessShared as AnyFn)());
    for (const v of [1, null, undefined, {}]) expectTypeError(() => (b.cleanupProcessShared as AnyFn)(v));
    expect(b.cleanupProcessShared(`native-no-such-segment-${process.pid}`)).toBe(0);
    const name = `native-in-use-${process.pid}`;
    const d = b.registerDomain(name, true);
    expect(b.cleanupProcessShared(name)).toBe(-1); // this process uses it
    expect(b.sharedStats(d)).toEqual([1, 0, 0, 0, 0]); // processes, slabs, series, nodes, live series
    expect(b.releaseDomain(d)).toBe(true);
    expect(b.cleanupProcessShared(name)).toBe(1);
  });
});

describe('registerInstrument', () => {
  const good = (): unknown[] => [domain, 'ri\0id', 'name', 'desc', 'unit', 0, 1, 1, true, new Float64Array(0)];
  const call = (args: unknown[]) => (b.registerInstrument as AnyFn)(...args);

  it('accepts good arguments', () => {
    const [id, existed] = call(good()) as [number, boolean];
    expect(id).toBeGreaterThan(0);
    expect(typeof existed).toBe('boolean');
    expect(call(good())).toEqual([id, true]);
  });

  it('rejects too few arguments', () => {
    for (let n = 0; n < 10; n++) expectTypeError(() => call(good().slice(0, n)));
  });

  it.each(BAD_U32)('rejects %s as the domain', (_w, v) => {
    const a = good();
    a[0] = v;
    expectTypeError(() => call(a));
  });

  it('rejects domain 0', () => {
    const a = good();
    a[0] = 0;
    expectTypeError(() => call(a));
  });

  it('rejects non-strings for identity, name, description and unit', () => {
    for (const i of [1, 2, 3, 4]) {
      for (const v of NOT_STRINGS) {
        const a = good();
        a[i] = v;
        expectTypeError(() => call(a));
      }
      const a = good();
      a[i] = 'x'.repeat(70 * 1024);
      expectTypeError(() => call(a));
    }
  });

  it('rejects bad or out-of-range kind, valueType and aggregation', () => {
    for (const i of [5, 6, 7]) {
      for (const [, v] of BAD_U32) {
        const a = good();
        a[i] = v;
        expectTypeError(() => call(a));
      }
    }
    for (const [i, v] of [[5, 7], [5, 255], [6, 2], [7, 9], [7, 100]] as const) {
      const a = good();
      a[i] = v;
      expectTypeError(() => call(a));
    }
  });

  it('rejects a non-boolean monotonic flag', () => {
    for (const v of [1, 0, 'true', null, undefined, {}]) {
      const a = good();
      a[8] = v;
      expectTypeError(() => call(a));
    }
  });

  it('rejects bounds that are not a Float64Array or not finite and strictly increasing', () => {
    const bad: unknown[] = [
      [1, 2, 3],
      new Float32Array([1, 2]),
      new Int32Array([1]),
      new BigInt64Array([1n]),
      new DataView(new ArrayBuffer(8)),
      new ArrayBuffer(8),
      null,
      undefined,
      'bounds',
      new Float64Array([2, 1]),
      new Float64Array([1, 1]),
      new Float64Array([NaN]),
      new Float64Array([0, Infinity]),
      new Float64Array([-Infinity, 0]),
      new Float64Array(5000).map((_, i) => i),
    ];
    for (const v of bad) {
      const a = good();
      a[1] = 'ri\0bounds';
      a[7] = 5;
      a[9] = v;
      expectTypeError(() => call(a));
    }
  });
});

describe('descriptor', () => {
  it.each(BAD_U32)('rejects %s', (_w, v) => {
    expectTypeError(() => (b.descriptor as AnyFn)(v));
  });
  it('rejects a missing argument; unknown ids are null', () => {
    expectTypeError(() => (b.descriptor as AnyFn)());
    expect(b.descriptor(0)).toBeNull();
    expect(b.descriptor(4294967295)).toBeNull();
  });
});

describe('acquire', () => {
  const call = (...args: unknown[]) => (b.acquire as AnyFn)(...args);

  it('rejects too few arguments', () => {
    expectTypeError(() => call());
    expectTypeError(() => call(sumId));
    expectTypeError(() => call(sumId, []));
  });

  it.each(BAD_U32)('rejects %s as the instrument id', (_w, v) => {
    expectTypeError(() => call(v, [], out4()));
  });

  it('rejects label parts that are not an array of strings in pairs', () => {
    const badParts: unknown[] = [
      'k=v',
      { 0: 'k', 1: 'v', length: 2 },
      null,
      undefined,
      42,
      new Set(['k', 'v']),
      ['k'], // odd length
      ['k', 'v', 'k2'],
      ['k', 1],
      [1, 'v'],
      ['k', null],
      ['k', undefined],
      ['k', {}],
      ['k', ['v']],
      ['k', Symbol('v')],
      ['k', new String('v')],
      ['k', 1n],
      // eslint-disable-next-line no-sparse-arrays
      ['k', , 'k2', 'v2'], // a hole
      ['k', 'x'.repeat(70 * 1024)],
      Array.from({ length: 4096 }, (_, i) => `p${i}`), // too many labels
    ];
    for (const parts of badParts) expectTypeError(() => call(sumId, parts, out4()));
  });

  it('propagates (without crashing) an exception thrown while reading the label array', () => {
    const parts = ['k', 'v'];
    Object.defineProperty(parts, 1, {
      get() {
        throw new RangeError('getter');
      },
    });
    expect(() => call(sumId, parts, out4())).toThrow();
  });

  it('rejects an out buffer that is not a Float64Array of at least 4', () => {
    const badOut: unknown[] = [
      new Float64Array(3),
      new Float64Array(0),
      new Float32Array(4),
      new Uint8Array(32),
      new BigInt64Array(4),
      new DataView(new ArrayBuffer(32)),
      new ArrayBuffer(32),
      [0, 0, 0, 0],
      null,
      undefined,
      {},
    ];
    for (const o of badOut) expectTypeError(() => call(sumId, ['k', 'sv'], o));
  });

  it('writes through an offset view of a larger buffer; unknown or dropped instruments give false', () => {
    const big = new Float64Array(10).fill(-1);
    const view = new Float64Array(big.buffer, 16, 4);
    expect(call(sumId, ['k', 'sv'], view)).toBe(true);
    expect(big[0]).toBe(-1);
    expect(big[1]).toBe(-1);
    expect(big[6]).toBe(-1);
    expect(call(0, [], out4())).toBe(false);
    expect(call(4294967295, [], out4())).toBe(false);
    expect(call(dropId, [], out4())).toBe(false);
  });
});

describe('release', () => {
  it.each(BAD_ID)('rejects %s', (_w, v) => {
    expectTypeError(() => (b.release as AnyFn)(v));
  });
  it('rejects a missing argument; unknown ids or zero refcounts give false', () => {
    expectTypeError(() => (b.release as AnyFn)());
    expect(b.release(2 ** 53 - 1)).toBe(false);
    expect(b.release(0)).toBe(false);
    const out = out4();
    b.acquire(histId, ['once', 'sx'], out);
    expect(b.release(out[0])).toBe(true);
    expect(b.release(out[0])).toBe(false);
  });
});

describe('releaseMany', () => {
  it('rejects what is not a Float64Array of safe ids, releasing nothing', () => {
    const out = out4();
    b.acquire(histId, ['many', 'bad'], out);
    expectTypeError(() => (b.releaseMany as AnyFn)());
    expectTypeError(() => (b.releaseMany as AnyFn)([out[0]]));
    expectTypeError(() => (b.releaseMany as AnyFn)(new Uint32Array([1])));
    for (const bad of [-1, 0.5, NaN, Infinity, 2 ** 53]) expectTypeError(() => b.releaseMany(Float64Array.of(out[0], bad)));
    expect(b.release(out[0])).toBe(true); // the reference was still held
  });
  it('releases each held reference once and counts them; unknown ids and zero refcounts count nothing', () => {
    const a = out4();
    const c = out4();
    b.acquire(histId, ['many', 'a'], a);
    b.acquire(histId, ['many', 'c'], c);
    b.acquire(histId, ['many', 'c'], c); // two references
    expect(b.releaseMany(Float64Array.of(a[0], c[0], 2 ** 53 - 1, 0))).toBe(2);
    expect(b.releaseMany(Float64Array.of(a[0], c[0]))).toBe(1);
    expect(b.releaseMany(new Float64Array(0))).toBe(0);
    expect(b.release(c[0])).toBe(false);
  });
});

describe('slab', () => {
  it.each(BAD_U32)('rejects %s with a TypeError', (_w, v) => {
    expectTypeError(() => (b.slab as AnyFn)(v));
  });
  it('rejects a missing argument; an index past the end is a RangeError', () => {
    expectTypeError(() => (b.slab as AnyFn)());
    expect(() => b.slab(100000)).toThrow(RangeError);
    expect(() => b.slab(4294967295)).toThrow(RangeError);
  });
  it('slab 0 can be mapped more than once', () => {
    const a = new Float64Array(b.slab(0));
    const c = new Float64Array(b.slab(0));
    expect(a.length).toBe(c.length);
  });
});

describe('collect', () => {
  const call = (...args: unknown[]) => (b.collect as AnyFn)(...args);
  it.each(BAD_U32)('rejects %s as the domain', (_w, v) => {
    expectTypeError(() => call(v, false));
  });
  it('rejects domain 0, a missing or non-boolean reclaim flag', () => {
    expectTypeError(() => call());
    expectTypeError(() => call(domain));
    expectTypeError(() => call(0, false));
    for (const v of [0, 1, 'false', null, undefined, {}]) expectTypeError(() => call(domain, v));
  });
  it('an unknown domain collects nothing', () => {
    const data = b.collect(4294967295, false);
    expect(data[1]).toBe(0);
    expect(data[2]).toBe(0);
    expect(data.length).toBe(3);
  });
});

describe('recordInfo', () => {
  it.each(BAD_ID)('rejects %s', (_w, v) => {
    expectTypeError(() => (b.recordInfo as AnyFn)(v));
  });
  it('rejects a missing argument; unknown ids are null', () => {
    expectTypeError(() => (b.recordInfo as AnyFn)());
    expect(b.recordInfo(2 ** 53 - 1)).toBeNull();
  });
  it('round-trips label parts with NUL bytes and lone surrogates (as U+FFFD)', () => {
    const out = out4();
    expect(b.acquire(sumId, ['k\0ey', 's\0v\uD800'], out)).toBe(true);
    expect(b.recordInfo(out[0])).toEqual([sumId, ['k\0ey', 's\0v\uFFFD']]);
    b.release(out[0]);
  });
});

describe('stats', () => {
  it('ignores extra arguments', () => {
    expect(() => (b.stats as AnyFn)(1, 'x', {})).not.toThrow();
  });
});
