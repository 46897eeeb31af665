// Fuzzing the native boundary: a seeded storm of a million calls to every entry point of
// the raw binding (native() from src/sdk/native.ts) with wrong types, wrong arity, empty,
// huge and over-long strings, lone surrogates, NUL bytes, Buffers, typed arrays of every
// kind, detached and resizable buffers, Proxies with throwing traps, revoked Proxies,
// getters that detach the output buffer or re-enter the binding, NaN, negative zero,
// 2^32, 2^53, bigints, symbols, and huge label sets. Plausible arguments are mixed in, so
// the storm reaches past the first check of each function.
//
// Contract: the process survives, and every failure is a JS exception: a TypeError or
// RangeError whose message starts with 'hotmeter native:', or, when a getter or Proxy
// trap of ours threw while the binding read an argument, that very error, untouched.
// Valid calls interleaved keep working: a MeterProvider records throughout the storm and
// its collections stay exact, and so does a provider created after it.
//
// HOTMETER_FUZZ_SEED and HOTMETER_FUZZ_CALLS override the seed and the number of calls.
// Exports the binding gains later are fuzzed too (with hostile arguments only).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native, type NativeBinding } from '../src/sdk/native';
import { MeterProvider } from '../src';
import * as fs from 'node:fs';
import { envInt, findRecord, histOf, HostileError, installLogger, prng, processSharedSegmentPath, randInt, recordsOf, sumOf, trap, uninstallLogger } from './helpers';

const SEED = envInt('HOTMETER_FUZZ_SEED', 0x5eedf00d);
const CALLS = envInt('HOTMETER_FUZZ_CALLS', 1_000_000);


const KNOWN = [
  'registerDomain',
  'registerInstrument',
  'descriptor',
  'acquire',
  'release',
  'drainStale',
  'slab',
  'collect',
  'recordInfo',
  'stats',
] as const;
type Known = (typeof KNOWN)[number];
type AnyFn = (...args: unknown[]) => unknown;

// ---------------------------------------------------------------------------------------
// Hostile values. Factories, so values with state (detached buffers, getters) are fresh.
// No small positive integers among them: those are ids, and the storm must not release
// records or register instruments in the domain of the provider that checks totals.

const LONE = ['\uD800', '\uDFFF', 'a\uDC00b', '\uDBFF\uD800\uD800', 'x\uD800'];
const STRINGS = ['', 'a', 'k', 'v', '\0', 'x\0y', 'é', '\uD83D\uDE00', ' ', '{', '"', '\n', ...LONE];
const NUMBERS = [
  0, -0, NaN, Infinity, -Infinity, 0.5, -1, -0.5, 1.5, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1,
  2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e300, -1e300, Number.MIN_VALUE, Number.MAX_VALUE, Number.EPSILON,
];
const LIMIT_BYTES = 64 * 1024; // kMaxStringBytes in native/binding/record_map_js.cc
// Built once: large strings cost their conversion on each call, not their allocation.
const STR_64K = 'x'.repeat(LIMIT_BYTES); // exactly at the limit: accepted
const STR_64K_1 = 'x'.repeat(LIMIT_BYTES + 1);
const STR_EURO = '€'.repeat(Math.ceil((LIMIT_BYTES + 1) / 3)); // under the limit in UTF-16, over in UTF-8
const STR_LONE = '\uD800'.repeat(Math.ceil((LIMIT_BYTES + 1) / 3)); // each becomes 3 bytes of U+FFFD
const STR_1M = 'y'.repeat(1 << 20);

function cyclic(): object {
  const o: Record<string, unknown> = { k: 'v' };
  o.self = o;
  return o;
}

function throwingProxy<T extends object>(target: T): T {
  return new Proxy(target, {
    get: trap, set: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap,
    getPrototypeOf: trap, defineProperty: trap, deleteProperty: trap, apply: trap, construct: trap,
  });
}

function revoked(): object {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
}

function detachedF64(n: number): Float64Array {
  const a = new Float64Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

function resizableF64(n: number, max: number): Float64Array {
  // A length-tracking view over a resizable buffer (Node 20).
  const Ctor = ArrayBuffer as unknown as new (len: number, opts: { maxByteLength: number }) => ArrayBuffer;
  return new Float64Array(new Ctor(n * 8, { maxByteLength: max * 8 }));
}

/** An array whose element `i` is an accessor (the binding reads it with a [[Get]]). */
function withGetter(values: unknown[], i: number, get: () => unknown): unknown[] {
  const a = [...values];
  Object.defineProperty(a, i, { get, enumerable: true, configurable: true });
  return a;
}

class Point {
  constructor(public x = 1, public y = 2) {}
  get z(): never {
    return trap();
  }
}

const LIGHT: Array<() => unknown> = [
  ...NUMBERS.map((n) => () => n),
  ...STRINGS.map((s) => () => s),
  () => undefined, () => null, () => true, () => false,
  () => 1n, () => -1n, () => 2n ** 64n, () => Symbol('s'), () => Symbol.iterator,
  () => ({}), () => [], () => Object.create(null), () => new String('k'), () => new Number(1),
  () => new Boolean(false), () => Object(1n), () => Object(Symbol('o')), () => new Date(NaN), () => /re/g,
  () => () => 1, () => function named() {}, () => class K {}, () => new Map([['k', 'v']]), () => new Set(['k', 'v']),
  () => new WeakMap(), () => Promise.resolve(1), () => new Error('e'), () => new Point(),
  () => Object.freeze({ k: 'v' }), () => Object.seal(['k', 'v']), () => Object.freeze(['k', 'v']), cyclic,
  () => throwingProxy({}), () => throwingProxy(['k', 'v']), () => throwingProxy(new Float64Array(6)),
  () => new Proxy(['k', 'v'], {}), () => new Proxy(new Float64Array(6), {}), revoked,
  () => ({ valueOf: trap, toString: trap, [Symbol.toPrimitive]: trap }),
  () => ({ get length() { return trap(); } }),
  () => ({ 0: 'k', 1: 'v', length: 2 }),
  () => Buffer.from('k'), () => Buffer.alloc(0), () => Buffer.from([0xff, 0xfe, 0xc3]),
  () => new ArrayBuffer(48), () => new SharedArrayBuffer(48),
  () => new Float64Array(0), () => new Float64Array(3), () => new Float64Array(4), () => new Float64Array(6),
  () => new Float64Array([1, 2, 3]), () => new Float64Array([3, 2]), () => new Float64Array([NaN]),
  () => new Float64Array([-0, 0]), () => new Float64Array([-Infinity]), () => new Float64Array(new SharedArrayBuffer(48)),
  () => new Float64Array(new ArrayBuffer(56), 8, 6), () => new Float32Array(6), () => new BigInt64Array(6),
  () => new Uint8Array(48), () => new Int32Array(12), () => new DataView(new ArrayBuffer(48)),
  () => detachedF64(6), () => resizableF64(6, 16), () => resizableF64(0, 16),
  () => ['k'], () => ['k', 'v'], () => ['k', 'v', 'k2'], () => ['k', 1], () => [1, 'v'], () => ['k', null],
  () => ['k', undefined], () => ['k', new String('v')], () => ['k', Symbol('v')], () => ['k', ['v']],
  () => ['k', 1n], () => [Buffer.from('k'), 'v'],
  // eslint-disable-next-line no-sparse-arrays
  () => [, 'v'], () => new Array(2), () => new Array(2048),
  () => withGetter(['k', 'v'], 1, trap),
  () => withGetter(['k', 'v'], 0, () => 1),
  () => {
    const a: unknown[] = [];
    a.length = 2 ** 32 - 1;
    return a;
  },
  () => {
    const a: unknown[] = [];
    a.length = 2 ** 32 - 2;
    return a;
  },
  () => ({ relativeAccuracy: NaN }), () => ({ maxSize: 1e9 }), () => ({ maxScale: -11 }), () => ({ maxScale: 20.5 }),
  () => ({ scopeName: 1 }), () => ({ scopeVersion: 'x'.repeat(70_000) }), () => ({ get maxSize() { return trap(); } }),
];

// Expensive to convert or to walk: used about once per thousand values. Built once (the
// binding only reads them, or writes the first slots of an `out`).
const BIG_LABELS = Array.from({ length: 2048 }, (_, i) => (i % 2 === 0 ? `k${String(i).padStart(5, '0')}` : `v${i}`));
const HEAVY_VALUES: unknown[] = [
  STR_64K, // exactly at the limit: accepted
  STR_64K_1,
  STR_EURO,
  STR_LONE,
  ['k', STR_64K],
  [STR_64K_1, 'v'],
  ['k', STR_EURO],
  ['k', STR_LONE],
  STR_1M,
  ['k', STR_1M],
  BIG_LABELS, // 1024 labels: the maximum, accepted
  [...BIG_LABELS, 'k', 'v'], // 1025: too many
  Array.from({ length: 4096 }, () => 'p'),
  new Float64Array(4096).map((_, i) => i), // the most bounds allowed
  new Float64Array(4097).map((_, i) => i),
  new Float64Array(1 << 16).map((_, i) => i),
  new Float64Array(1 << 20),
];
const HEAVY: Array<() => unknown> = HEAVY_VALUES.map((v) => () => v);

function hostile(rand: () => number): unknown {
  if (rand() < 0.001) return HEAVY[Math.floor(rand() * HEAVY.length)]();
  return LIGHT[Math.floor(rand() * LIGHT.length)]();
}

// ---------------------------------------------------------------------------------------
// The storm's state: its own domains, instruments and acquired references.

interface Outcome {
  calls: number;
  ok: number;
  typeError: number;
  rangeError: number;
  hostile: number;
  ms: number;
}

interface Storm {
  b: NativeBinding;
  rand: () => number;
  domains: number[];
  /** Ids never to touch: the checking provider's domain. */
  protectedDomains: Set<number>;
  instruments: number[];
  held: number[];
  unknown: string[];
  outcomes: Map<string, Outcome>;
  bad: string[];
}

const IDENTITIES = 16;
const HELD_MAX = 256;
const KEYS = ['k', 'route', 'a\uD800', 'x\0y', '', 'é'];
const VALUES = ['sv', 's', 's\uDFFF', 's\0', 'n1', 'btrue', 'a[1]', 's' + 'z'.repeat(300)];

function pickOf<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

function plausibleParts(s: Storm): unknown {
  const r = s.rand();
  if (r < 0.02) return withGetter(['k', 'v'], 1, () => reenter(s)); // re-enters the binding
  const pairs = r < 0.3 ? 0 : r < 0.8 ? 1 : 2;
  const parts: string[] = [];
  for (let i = 0; i < pairs; i++) parts.push(pickOf(s.rand, KEYS), pickOf(s.rand, VALUES));
  return parts;
}

/** Called from a getter while acquire reads its label parts: valid calls, re-entrant. */
function reenter(s: Storm): string {
  const out = new Float64Array(6);
  const inst = pickOf(s.rand, s.instruments);
  if (s.b.acquire(inst, ['re', 'sentrant'], out, 8)) s.b.release(out[0]);
  s.b.collect(pickOf(s.rand, s.domains), true);
  s.b.drainStale();
  return 'v';
}

function plausibleU32(s: Storm, pool: readonly number[]): unknown {
  const r = s.rand();
  if (r < 0.8 && pool.length > 0) return pickOf(s.rand, pool);
  return hostile(s.rand);
}

function plausibleBounds(s: Storm): unknown {
  const n = randInt(s.rand, 0, 6);
  const b = new Float64Array(n);
  let x = s.rand() < 0.5 ? -10 : 0;
  for (let i = 0; i < n; i++) b[i] = x += 0.5 + s.rand() * 10;
  return b;
}

function plausibleOptions(s: Storm): unknown {
  const r = s.rand();
  if (r < 0.4) return undefined;
  if (r < 0.5) return hostile(s.rand);
  const o: Record<string, unknown> = {};
  if (s.rand() < 0.5) o.relativeAccuracy = pickOf(s.rand, [0.01, 1e-6, 0.5, 0.999, 0, 1, -0.1, NaN]);
  if (s.rand() < 0.5) o.maxSize = pickOf(s.rand, [2, 16, 160, 512, 4096, 4097, 1, 0, 2.5, -3]);
  if (s.rand() < 0.5) o.maxScale = pickOf(s.rand, [20, 0, -10, -11, 21, 3.5]);
  if (s.rand() < 0.3) o.scopeName = pickOf(s.rand, STRINGS);
  if (s.rand() < 0.1) o.scopeVersion = pickOf(s.rand, [1, null, STR_64K_1, '1.0']);
  if (s.rand() < 0.05) Object.defineProperty(o, 'scopeSchemaUrl', { get: trap, enumerable: true });
  return o;
}

function plausibleOut(s: Storm): unknown {
  const r = s.rand();
  if (r < 0.1) return hostile(s.rand);
  if (r < 0.15) return new Float64Array(4);
  if (r < 0.18) return new Float64Array(new SharedArrayBuffer(48));
  if (r < 0.2) return new Float64Array(new ArrayBuffer(80), 16, 6);
  if (r < 0.22) return resizableF64(6, 8);
  return new Float64Array(6);
}

/** [plausible arguments, its arity] for a known entry point. */
function plausibleArgs(s: Storm, fn: Known): unknown[] {
  const { rand } = s;
  const maybe = (p: number, good: () => unknown): unknown => (rand() < p ? good() : hostile(rand));
  switch (fn) {
    case 'registerDomain':
      return [maybe(0.7, () => (rand() < 0.05 ? '' : pickOf(rand, ['fuzz-a', 'fuzz-\uD800', 'fuzz-\0'])))];
    case 'registerInstrument':
      return [
        plausibleU32(s, s.domains),
        maybe(0.9, () => `fuzz\0${randInt(rand, 0, IDENTITIES - 1)}`),
        maybe(0.9, () => pickOf(rand, ['fuzz.i', '', 'ü', 'x\uD800'])),
        maybe(0.9, () => pickOf(rand, ['', 'd'])),
        maybe(0.9, () => pickOf(rand, ['', 'ms', '{req}'])),
        maybe(0.9, () => randInt(rand, 0, 7)),
        maybe(0.9, () => randInt(rand, 0, 2)),
        maybe(0.9, () => randInt(rand, 0, 9)),
        maybe(0.9, () => rand() < 0.5),
        maybe(0.8, () => plausibleBounds(s)),
        plausibleOptions(s),
      ];
    case 'descriptor':
      return [maybe(0.7, () => randInt(rand, 0, s.instruments.length + 64))];
    case 'acquire': {
      const limit = rand() < 0.95 ? randInt(rand, 1, 8) : rand() < 0.5 ? undefined : hostile(rand);
      if (rand() < 0.01) {
        // A getter that detaches or shrinks `out` while the binding reads the parts.
        const resizable = rand() < 0.5;
        const out = resizable ? resizableF64(6, 8) : new Float64Array(6);
        const parts = withGetter(['k', 'v'], 1, () => {
          if (resizable) (out.buffer as unknown as { resize(n: number): void }).resize(randInt(rand, 0, 3) * 8);
          else structuredClone(out.buffer, { transfer: [out.buffer] });
          return 'v';
        });
        return [plausibleU32(s, s.instruments), parts, out, limit];
      }
      return [plausibleU32(s, s.instruments), maybe(0.85, () => plausibleParts(s)), plausibleOut(s), limit];
    }
    case 'release': {
      if (rand() < 0.7 && s.held.length > 0) return [s.held.splice(randInt(rand, 0, s.held.length - 1), 1)[0]];
      return [hostile(rand)];
    }
    case 'drainStale':
      return [];
    case 'slab':
      return [maybe(0.7, () => randInt(rand, 0, 3))];
    case 'collect':
      return [plausibleU32(s, s.domains), maybe(0.9, () => rand() < 0.7), rand() < 0.7 ? undefined : maybe(0.5, () => randInt(rand, 0, 1e6))];
    case 'recordInfo':
      return [maybe(0.7, () => (s.held.length > 0 && rand() < 0.5 ? pickOf(rand, s.held) : randInt(rand, 0, 1e6)))];
    case 'stats':
      return [];
  }
}

/** Arguments for one call: plausible, or mangled (arity, a hostile value in one slot). */
function argsFor(s: Storm, fn: string): unknown[] {
  const { rand } = s;
  if (!(KNOWN as readonly string[]).includes(fn)) {
    const n = randInt(rand, 0, 5);
    return Array.from({ length: n }, () => hostile(rand));
  }
  let args = plausibleArgs(s, fn as Known);
  const r = rand();
  if (r < 0.1) {
    args = args.slice(0, randInt(rand, 0, args.length)); // too few (or all)
  } else if (r < 0.15) {
    args = [...args, ...Array.from({ length: randInt(rand, 1, 3) }, () => hostile(rand))]; // too many
  } else if (r < 0.35 && args.length > 0) {
    args[randInt(rand, 0, args.length - 1)] = hostile(rand);
  }
  return args;
}

function isNativeError(e: unknown): e is TypeError | RangeError {
  return (e instanceof TypeError || e instanceof RangeError) && e.message.startsWith('hotmeter native:');
}

/** V8's own error for touching a revoked Proxy: like a throwing trap, the argument's doing. */
function isRevokedProxyError(e: unknown): boolean {
  return e instanceof TypeError && /on a proxy that has been revoked/.test(e.message);
}

function describe_(e: unknown): string {
  try {
    return e instanceof Error ? `${e.constructor.name}: ${e.message}` : `${typeof e}: ${String(e)}`;
  } catch {
    return 'unprintable';
  }
}

/** Checks a successful call's result; returns a problem or undefined. */
function checkResult(s: Storm, fn: string, args: unknown[], r: unknown): string | undefined {
  const isUint = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  switch (fn) {
    case 'registerDomain':
      if (!isUint(r) || r === 0) return `returned ${String(r)}`;
      if (typeof args[0] === 'string' && /^fuzz-/.test(args[0]) && !s.domains.includes(r as number)) s.domains.push(r as number);
      if (s.protectedDomains.has(r as number) && args[0] === '') return `'' returned a protected domain ${String(r)}`;
      return undefined;
    case 'registerInstrument': {
      if (!Array.isArray(r) || r.length !== 2 || !isUint(r[0]) || r[0] === 0 || typeof r[1] !== 'boolean') return `returned ${String(r)}`;
      if (s.domains.includes(args[0] as number) && !s.instruments.includes(r[0])) s.instruments.push(r[0]);
      return undefined;
    }
    case 'descriptor':
      if (r === null) return undefined;
      if (typeof r !== 'object' || (r as { id: unknown }).id !== args[0] || !((r as { bounds: unknown }).bounds instanceof Float64Array)) {
        return 'bad descriptor object';
      }
      return undefined;
    case 'acquire': {
      if (typeof r !== 'boolean') return `returned ${String(r)}`;
      if (r) {
        const out = args[2] as Float64Array;
        if (!(out.length >= 4) || !isUint(out[0]) || out[0] === 0 || !isUint(out[1]) || !isUint(out[2])) return `out = ${String(Array.from(out))}`;
        if (s.rand() < 0.01) {
          const slab = s.b.slab(out[1]);
          if (!(out[2] * 8 < slab.byteLength)) return `offset ${out[2]} outside slab ${out[1]} of ${slab.byteLength} bytes`;
        }
        s.held.push(out[0]);
        if (s.held.length > HELD_MAX) s.b.release(s.held.shift()!);
      }
      return undefined;
    }
    case 'release':
      return typeof r === 'boolean' ? undefined : `returned ${String(r)}`;
    case 'drainStale':
      return r instanceof Float64Array ? undefined : 'not a Float64Array';
    case 'slab':
      return r instanceof ArrayBuffer && r.byteLength > 0 && r.byteLength % 8 === 0 ? undefined : 'not an ArrayBuffer of doubles';
    case 'collect': {
      if (!(r instanceof Float64Array) || r.length < 3) return 'not a collection';
      if (!isUint(r[0]) || !isUint(r[1]) || !isUint(r[2])) return `bad header ${Array.from(r.subarray(0, 3)).join(',')}`;
      return undefined;
    }
    case 'recordInfo':
      if (r === null) return undefined;
      if (!Array.isArray(r) || !isUint(r[0]) || !Array.isArray(r[1]) || r[1].length % 2 !== 0 || !r[1].every((x: unknown) => typeof x === 'string')) {
        return 'bad record info';
      }
      return undefined;
    case 'stats': {
      const o = r as { records?: unknown; arenaBytes?: unknown };
      return isUint(o?.records) && isUint(o?.arenaBytes) ? undefined : 'bad stats';
    }
    default:
      return undefined;
  }
}

function oneCall(s: Storm, fn: string): void {
  const args = argsFor(s, fn);
  let o = s.outcomes.get(fn);
  if (o === undefined) s.outcomes.set(fn, (o = { calls: 0, ok: 0, typeError: 0, rangeError: 0, hostile: 0, ms: 0 }));
  o.calls++;
  let r: unknown;
  const t0 = performance.now();
  try {
    r = (s.b as unknown as Record<string, AnyFn>)[fn](...args);
  } catch (e) {
    o.ms += performance.now() - t0;
    if (e instanceof HostileError || isRevokedProxyError(e)) o.hostile++;
    else if (isNativeError(e)) {
      if (e instanceof RangeError) o.rangeError++;
      else o.typeError++;
    } else if (s.bad.length < 20) {
      s.bad.push(`${fn}: threw ${describe_(e)}`);
    }
    return;
  }
  o.ms += performance.now() - t0;
  o.ok++;
  const problem = checkResult(s, fn, args, r);
  if (problem !== undefined && s.bad.length < 20) s.bad.push(`${fn}: ${problem}`);
}

// ---------------------------------------------------------------------------------------

describe('fuzzing the native binding', () => {
  let b: NativeBinding;
  beforeAll(() => {
    installLogger(); // the checking provider's diagnostics stay out of the output
    b = native();
  });
  afterAll(() => uninstallLogger());
  // registerDomain with a surplus truthy argument joins a processShared segment of that
  // name: remove the files the storm made (names it can pass; made after it started).
  const stormStarted = Date.now();
  afterAll(() => {
    for (const name of [...STRINGS, 'fuzz-a', 'fuzz-b', 'fuzz-\uD800', 'fuzz-\0', STR_64K]) {
      const file = processSharedSegmentPath(name);
      try {
        if (fs.statSync(file).ctimeMs >= stormStarted - 1000) fs.unlinkSync(file);
      } catch {
        // none
      }
    }
  });

  it(`${CALLS.toLocaleString('en-US')} seeded calls (seed ${SEED}): no crash, every failure a JS exception, valid calls keep working`, async () => {
    // The provider whose totals must stay exact while the storm runs in the same process.
    const provider = new MeterProvider({ cardinalityLimit: 100, reclamation: false }); // exact cumulative totals
    const meter = provider.getMeter('fuzz-check');
    const counter = meter.createCounter('truth.requests');
    const hist = meter.createHistogram('truth.latency', { advice: { explicitBucketBoundaries: [1, 10, 100] } });
    const bound = counter.bind({ route: '/bound' });
    const protectedDomain = (provider as unknown as { domain: number }).domain;
    expect(Number.isInteger(protectedDomain) && protectedDomain > 0).toBe(true);
    const want = new Map<string, number>();
    let boundTotal = 0;
    let histCount = 0;
    let histSum = 0;

    const rand = prng(SEED);
    const s: Storm = {
      b, rand,
      domains: [b.registerDomain('fuzz-a'), b.registerDomain('fuzz-b'), b.registerDomain('')],
      protectedDomains: new Set([protectedDomain]),
      instruments: [],
      held: [],
      unknown: Object.keys(b).filter((k) => typeof (b as unknown as Record<string, unknown>)[k] === 'function' && !(KNOWN as readonly string[]).includes(k)),
      outcomes: new Map(),
      bad: [],
    };
    expect(s.domains.some((d) => s.protectedDomains.has(d))).toBe(false);
    // A few valid instruments of every aggregation, so acquire and collect reach deep.
    for (let agg = 0; agg <= 8; agg++) {
      const [id] = b.registerInstrument(s.domains[agg % 3], `fuzz\0seed${agg}`, 'seed', '', '', agg === 5 ? 2 : 0, 1, agg, agg === 1, agg === 5 ? new Float64Array([1, 2]) : new Float64Array(0));
      s.instruments.push(id);
    }

    // Entry points and their weights: the cold paths that parse arguments most often.
    const weights: [string, number][] = [
      ['acquire', 30], ['release', 12], ['registerInstrument', 14], ['registerDomain', 4], ['descriptor', 8],
      ['recordInfo', 8], ['slab', 6], ['collect', 1], ['drainStale', 2], ['stats', 2],
      ...s.unknown.map((k): [string, number] => [k, 5]),
    ];
    const total = weights.reduce((a, [, w]) => a + w, 0);
    const pickFn = (): string => {
      let x = rand() * total;
      for (const [k, w] of weights) if ((x -= w) < 0) return k;
      return weights[0][0];
    };

    const started = performance.now();
    const checkEvery = Math.max(1, Math.floor(CALLS / 20));
    for (let i = 1; i <= CALLS; i++) {
      oneCall(s, pickFn());
      if (i % 20_000 === 0) await new Promise(setImmediate); // let vitest's RPC breathe
      if (i % 1000 === 0) {
        // Valid recording through the SDK, interleaved with the storm.
        const route = `/r${(i / 1000) % 7}`;
        const v = (i / 1000) % 5;
        counter.add(v, { route });
        want.set(route, (want.get(route) ?? 0) + v);
        bound.add(2);
        boundTotal += 2;
        hist.record(v * 10, { route });
        histCount++;
        histSum += v * 10;
      }
      if (i % checkEvery === 0) {
        const cs = await provider.collect();
        for (const [route, total] of want) expect(sumOf(findRecord(cs, 'truth.requests', { route }))).toBe(total);
        expect(sumOf(findRecord(cs, 'truth.requests', { route: '/bound' }))).toBe(boundTotal);
        const hs = recordsOf(cs, 'truth.latency').map(histOf);
        expect(hs.reduce((a, h) => a + h.count, 0)).toBe(histCount);
        expect(hs.reduce((a, h) => a + h.sum, 0)).toBe(histSum);
      }
    }
    const seconds = (performance.now() - started) / 1000;

    const rows = [...s.outcomes.entries()].sort((a, z) => z[1].calls - a[1].calls);
    const pad = (x: unknown, n: number) => String(x).padStart(n);
    console.log(
      [
        `[fuzz-native] seed ${SEED}: ${CALLS.toLocaleString('en-US')} calls in ${seconds.toFixed(1)} s; ` +
          `${s.domains.length} domains, ${s.instruments.length} instruments, ${s.held.length} references held; stats ${JSON.stringify(b.stats())}`,
        `  ${'entry point'.padEnd(20)}${pad('calls', 9)}${pad('returned', 10)}${pad('TypeError', 11)}${pad('RangeError', 12)}${pad('our trap', 10)}${pad('ms', 8)}`,
        ...rows.map(([k, o]) => `  ${k.padEnd(20)}${pad(o.calls, 9)}${pad(o.ok, 10)}${pad(o.typeError, 11)}${pad(o.rangeError, 12)}${pad(o.hostile, 10)}${pad(o.ms.toFixed(0), 8)}`),
      ].join('\n'),
    );
    expect(s.bad, `seed ${SEED}`).toEqual([]);
    // Every known entry point was reached, and both ways: returning and rejecting.
    for (const k of KNOWN) {
      const o = s.outcomes.get(k);
      expect(o, k).toBeDefined();
      expect(o!.ok, `${k} returned`).toBeGreaterThan(0);
      if (k !== 'drainStale' && k !== 'stats') expect(o!.typeError, `${k} rejected`).toBeGreaterThan(0);
    }

    // Give the storm's references back; the storm's domains collect and reclaim.
    for (const id of s.held.splice(0)) b.release(id);
    for (const d of s.domains) b.collect(d, true);
    for (const d of s.domains) b.collect(d, true);

    // After the storm: the provider still records exactly, and so does a new one.
    const cs = await provider.collect();
    for (const [route, total] of want) expect(sumOf(findRecord(cs, 'truth.requests', { route }))).toBe(total);
    expect(sumOf(findRecord(cs, 'truth.requests', { route: '/bound' }))).toBe(boundTotal);
    await provider.shutdown();

    const after = new MeterProvider();
    const c = after.getMeter('after').createCounter('after.requests');
    const h = after.getMeter('after').createHistogram('after.latency', { advice: { explicitBucketBoundaries: [1, 2] } });
    for (let i = 0; i < 1000; i++) {
      c.add(1, { method: i % 2 ? 'GET' : 'POST' });
      h.record(i % 3, { method: 'GET' });
    }
    const cs2 = await after.collect();
    expect(sumOf(findRecord(cs2, 'after.requests', { method: 'GET' }))).toBe(500);
    expect(sumOf(findRecord(cs2, 'after.requests', { method: 'POST' }))).toBe(500);
    expect(histOf(findRecord(cs2, 'after.latency', { method: 'GET' })).bucketCounts).toEqual([667, 333, 0]);
    await after.shutdown();
  }, 300_000);

  it('acquire: a getter that detaches or shrinks the out buffer while labels are read is a TypeError, not a crash', () => {
    const d = b.registerDomain('');
    const [id] = b.registerInstrument(d, 'detach', 'detach', '', '', 0, 1, 1, true, new Float64Array(0));
    const detach = new Float64Array(6);
    const parts1 = withGetter(['k', 'v'], 1, () => {
      structuredClone(detach.buffer, { transfer: [detach.buffer] });
      return 'v';
    });
    expect(() => b.acquire(id, parts1 as string[], detach)).toThrow(/hotmeter native: out was detached or shrunk/);
    const shrink = resizableF64(6, 6);
    const parts2 = withGetter(['k', 'v'], 1, () => {
      (shrink.buffer as unknown as { resize(n: number): void }).resize(8);
      return 'v';
    });
    expect(() => b.acquire(id, parts2 as string[], shrink)).toThrow(TypeError);
    // Nothing was acquired by the failed calls: the record, if any, is reclaimable.
    const data = b.collect(d, true);
    expect(data[1]).toBe(0);
    // A growing buffer is fine.
    const grow = resizableF64(4, 8);
    const parts3 = withGetter(['k', 'v'], 1, () => {
      (grow.buffer as unknown as { resize(n: number): void }).resize(64);
      return 'v';
    });
    expect(b.acquire(id, parts3 as string[], grow)).toBe(true);
    expect(b.release(grow[0])).toBe(true);
  });

  it('a getter in the label parts may re-enter the binding (acquire, release, collect) safely', () => {
    const d = b.registerDomain('');
    const [id] = b.registerInstrument(d, 're', 're', '', '', 0, 1, 1, true, new Float64Array(0));
    let depth = 0;
    const parts = withGetter(['k', 'v'], 1, () => {
      if (depth++ < 50) {
        const inner = new Float64Array(6);
        expect(b.acquire(id, parts as string[], inner)).toBe(true);
        expect(b.release(inner[0])).toBe(true);
      }
      b.collect(d, true);
      return 'v';
    });
    const out = new Float64Array(6);
    expect(b.acquire(id, parts as string[], out)).toBe(true);
    expect(b.recordInfo(out[0])).toEqual([id, ['k', 'v']]);
    expect(b.release(out[0])).toBe(true);
  });
});
