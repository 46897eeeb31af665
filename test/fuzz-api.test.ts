// Fuzzing the public API: a seeded generator of hostile values (Proxies with throwing
// traps, revoked Proxies, throwing and self-mutating getters, getters that record
// re-entrantly, symbols, huge strings, cyclic, frozen and null-prototype objects, class
// instances, Maps, Sets, typed arrays, Buffers, objects that coerce to numbers) thrown at
// every recording call: add / record with any arity, bind + the handle's calls, unbind,
// recordBatch, observations from observable and batch callbacks, and instrument creation.
// Contract (README "Bad input"): none of them ever throws. Measured by values that must
// be dropped, interleaved with valid ones, every collection's totals are exact; and no
// collected value is NaN or otherwise impossible. A DiagLogger that throws is installed
// for part of the run: it must not make a recording call throw either.
//
// HOTMETER_FUZZ_SEED and HOTMETER_FUZZ_API_CALLS override the seed and the count.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diag, DiagLogLevel, ValueType, type Attributes } from '@opentelemetry/api';
import {
  exactSelector,
  exponentialHistogramSelector,
  inexpensiveSelector,
  InstrumentKind,
  MeterProvider,
  sketchSelector,
  type Aggregation,
  type CheckpointSet,
  type Counter,
  type Histogram,
  type Meter,
} from '../src';
import { resetDiagLimits } from '../src/sdk/diag';
import { envInt, findRecord, histOf, installLogger, prng, randInt, recordsOf, sumOf, trap, uninstallLogger } from './helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const SEED = envInt('HOTMETER_FUZZ_SEED', 0x5eedf00d);
const CALLS = envInt('HOTMETER_FUZZ_API_CALLS', 100_000);

type Rand = () => number;
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

function throwingProxy<T extends object>(target: T, only?: keyof ProxyHandler<T>): T {
  const all: ProxyHandler<T> = {
    get: trap, set: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap,
    defineProperty: trap, deleteProperty: trap, isExtensible: trap, preventExtensions: trap, setPrototypeOf: trap,
  };
  return new Proxy(target, only === undefined ? all : { [only]: trap });
}

function revoked(): object {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
}

class Labels {
  route = '/a';
  method = 'GET';
  get computed(): string {
    return 'x';
  }
}
class ThrowingLabels {
  route = '/a';
}
Object.defineProperty(ThrowingLabels.prototype, 'inherited', { get: trap, enumerable: true });

const HUGE = 'h'.repeat(1 << 20);
const LONG_KEY = 'k'.repeat(2000);
const MANY_KEYS: Record<string, string> = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, `v${i}`]));
const VERY_MANY_KEYS: Record<string, number> = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));

/** Values no recording call may accept for a counter or histogram (all must be dropped). */
const INVALID_VALUES: Array<() => unknown> = [
  () => NaN, () => -1, () => -0.5, () => Infinity, () => -Infinity, () => -1e300, () => -Number.MIN_VALUE,
  () => '5', () => '', () => 5n, () => true, () => false, () => null, () => undefined, () => Symbol('v'),
  () => ({ valueOf: () => 5 }), () => ({ [Symbol.toPrimitive]: () => 5 }), () => ({ valueOf: trap, toString: trap }),
  () => new Number(5), () => [5], () => new Date(5), () => throwingProxy({}), () => revoked(), () => () => 5,
  () => Object(5n), () => new Float64Array([5]),
];
/**
 * Anything, valid numbers included. (Not Number.MAX_VALUE: two of those overflow a sum to
 * Infinity, which is float arithmetic on valid input, as in every peer, not a bad value
 * slipping through. 1e300 cannot overflow within this run.)
 */
const ANY_VALUES: Array<() => unknown> = [
  ...INVALID_VALUES,
  () => 0, () => -0, () => 1, () => 1.5, () => 2 ** 53, () => 2 ** 53 + 2, () => 1e300, () => Number.MIN_VALUE,
  () => 1e-320, () => 0.1, () => 7,
];

/**
 * Hostile attribute sets. `reenter` records again from inside a getter (bounded).
 * `light`: none of the few that cost milliseconds per call to encode (20,000 keys, a
 * MiB-long value): recordBatch encodes them once per measurement, and a 1000-entry batch
 * with one would take seconds (a cost, not a fault).
 */
function hostileAttrs(rand: Rand, reenter: (attrs: Attributes) => void, light = false): unknown {
  const r = light ? 1 : rand();
  if (r < 0.002) return { big: HUGE };
  if (r < 0.004) return { [HUGE.slice(0, 5000)]: 'v' };
  if (r < 0.005) return VERY_MANY_KEYS;
  if (r < 0.006) return new Float64Array(20_000); // 20,000 enumerable index keys
  const makers: Array<() => unknown> = [
    () => undefined, () => null, () => 1, () => 'route=/a', () => true, () => Symbol('a'), () => 1n, () => () => 1,
    () => ({}), () => ({ route: '/a' }), () => ({ route: '/b', method: 'GET', status: 200 }),
    () => ({ route: '/a', n: NaN, z: -0, inf: Infinity, big: 1n, sym: Symbol('v'), fn: () => 1, o: {}, d: new Date() }),
    () => ({ arr: [1, 'a', true, null, undefined], nested: [[1]], objs: [{}], holes: [1, , 3], long: Array(300).fill(1) }), // eslint-disable-line no-sparse-arrays
    () => ({ [Symbol('k')]: 'v', route: '/a' }),
    () => ({ '': 'empty key', [LONG_KEY]: 'long key', ok: 'kept' }),
    () => ({ '\uD800': '\uDFFF', 'a\0b': 'c\0d', 'é': 'ü', '\uD83D\uDE00': 'emoji' }),
    () => JSON.parse('{"__proto__": "p", "constructor": "c", "toString": "t", "hasOwnProperty": "h"}'),
    () => ({ 1: 'one', '01': 'zero-one', '-1': 'minus' }),
    () => ({ route: 'x'.repeat(5000) }),
    () => MANY_KEYS,
    () => Object.freeze({ route: '/frozen' }), () => Object.seal({ route: '/sealed' }),
    () => Object.assign(Object.create(null), { route: '/null-proto' }),
    () => Object.create({ inherited: '/proto' }),
    () => new Labels(), () => new ThrowingLabels(),
    () => new Map([['route', '/a']]), () => new Set(['route']), () => new WeakMap(), () => new Date(), () => /re/,
    () => new Error('e'), () => Promise.resolve(), () => Buffer.from('route'), () => new Uint8Array(4), () => new Float64Array(3),
    () => new ArrayBuffer(8), () => [], () => ['route', '/a'], () => new String('route'), () => new Number(1),
    () => throwingProxy({ route: '/a' }), () => throwingProxy({ route: '/a' }, 'ownKeys'),
    () => throwingProxy({ route: '/a' }, 'getOwnPropertyDescriptor'), () => throwingProxy({ route: '/a' }, 'get'),
    () => throwingProxy({ route: '/a' }, 'getPrototypeOf'), () => throwingProxy({ route: '/a' }, 'has'),
    () => new Proxy({ route: '/a' }, {}), () => throwingProxy([], 'get'), revoked,
    () => ({ route: '/a', get boom() { return trap(); } }),
    () => {
      let n = 0;
      return { get route() { return `/flip${n++ % 2}`; } }; // a different value on every read
    },
    () => {
      const o: Record<string, unknown> = { a: '1' };
      Object.defineProperty(o, 'b', {
        enumerable: true,
        get() {
          delete o.a; // mutates the object while it is enumerated
          o.c = 'added';
          return '2';
        },
      });
      return o;
    },
    () => {
      const o: Record<string, unknown> = { route: '/cyc' };
      o.self = o;
      o.list = [o];
      return o;
    },
    () => {
      const o = { route: '/re' } as Record<string, unknown>;
      Object.defineProperty(o, 'again', {
        enumerable: true,
        get() {
          reenter({ route: '/re', nested: 'yes' });
          return 'v';
        },
      });
      return o;
    },
    () => ({ toJSON: trap, route: '/tojson' }),
    () => ({ valueOf: trap, toString: trap, [Symbol.toPrimitive]: trap, route: '/prim' }),
  ];
  return pick(rand, makers)();
}

function hostileMeasurements(rand: Rand, instruments: unknown[]): unknown {
  const r = rand();
  const inst = () => pick(rand, instruments);
  const makers: Array<() => unknown> = [
    () => undefined, () => null, () => 'x', () => 1, () => ({}), () => [], () => [null], () => [[]],
    () => [[inst(), pick(rand, ANY_VALUES)()]],
    () => [[inst(), pick(rand, ANY_VALUES)()], [inst(), pick(rand, ANY_VALUES)()], [inst(), 1, 'extra']],
    () => [throwingProxy([inst(), 1])], () => [[throwingProxy({}), 1]], () => [[revoked(), 1]],
    () => throwingProxy([[inst(), 1]]), () => throwingProxy([[inst(), 1]], 'get'), revoked,
    () => new Proxy([[inst(), 1]], {}),
    () => {
      const m: unknown[] = [inst(), 1];
      Object.defineProperty(m, 1, { get: trap });
      return [m];
    },
    () => {
      const a: unknown[] = [];
      Object.defineProperty(a, 'length', { value: 3 }); // holes
      return a;
    },
    () => Array.from({ length: 1000 }, () => [inst(), 1]),
    () => new Set([[inst(), 1]]), () => new Map([[inst(), 1]]),
    () => ({ 0: [inst(), 1], length: 1 }),
  ];
  void r;
  return pick(rand, makers)();
}

/** Checks that every collected aggregation is possible: finite, ordered, consistent. */
function impossible(cs: CheckpointSet): string[] {
  const bad: string[] = [];
  const finite = (x: number) => Number.isFinite(x);
  for (const r of cs.records) {
    const a: Aggregation = r.aggregation;
    const where = `${r.descriptor.name} ${JSON.stringify(r.attributes)}`;
    switch (a.kind) {
      case 'sum':
        // A synchronous counter only adds non-negative values. (An observable counter
        // exports what its callback observed, negative included, as sdk-metrics does.)
        if (!finite(a.sum) || (r.descriptor.kind === InstrumentKind.COUNTER && a.sum < 0)) bad.push(`${where}: sum ${a.sum}`);
        break;
      case 'lastValue':
        if (!finite(a.value)) bad.push(`${where}: value ${a.value}`);
        break;
      case 'histogram': {
        const n = a.bucketCounts.reduce((x, y) => x + y, 0);
        if (n !== a.count || !finite(a.sum) || a.sum < 0 || (a.count > 0 && !(a.min <= a.max && a.min >= 0))) {
          bad.push(`${where}: histogram count ${a.count} (buckets ${n}) sum ${a.sum} min ${a.min} max ${a.max}`);
        }
        break;
      }
      default: {
        const x = a as { count: number; sum: number; min: number; max: number };
        if (!finite(x.sum) || !Number.isInteger(x.count) || x.count < 0 || (x.count > 0 && !(x.min <= x.max && x.min >= 0))) {
          bad.push(`${where}: ${a.kind} count ${x.count} sum ${x.sum} min ${x.min} max ${x.max}`);
        }
      }
    }
  }
  return bad;
}

describe('fuzzing the public API', () => {
  beforeAll(() => {
    installLogger();
  });
  afterAll(() => uninstallLogger());

  it(`${CALLS.toLocaleString('en-US')} hostile recording calls (seed ${SEED}) never throw; totals stay exact`, async () => {
    const rand = prng(SEED ^ 0xa91);
    const thrown: string[] = [];
    const problems: string[] = [];
    const seen = new Set<string>();
    let branch = '';
    const note = (what: string, e: unknown) => {
      const msg = `${branch || what}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`;
      const at = e instanceof Error ? (e.stack ?? '').split('\n').filter((l) => l.includes('/src/'))[0]?.trim() ?? '' : '';
      if (seen.has(msg + at) || thrown.length >= 20) return;
      seen.add(msg + at);
      thrown.push(`${msg} ${at}`);
    };

    // Providers covering every handle class: explicit buckets, min/max/sum/count, sketch,
    // exponential histogram, exact; a view with an attribute allow-list; a tight limit.
    const providers = [
      new MeterProvider({ cardinalityLimit: 200, reclamation: false, views: [{ instrumentName: 'viewed', attributeKeys: ['route'] }] }),
      new MeterProvider({ aggregationSelector: inexpensiveSelector, cardinalityLimit: 20 }),
      new MeterProvider({ aggregationSelector: sketchSelector, labelLimits: { maxAttributes: 3, maxKeyLength: 8, maxValueLength: 16 } }),
      new MeterProvider({ aggregationSelector: exponentialHistogramSelector }),
      new MeterProvider({ aggregationSelector: exactSelector }),
    ];
    const meters: Meter[] = providers.map((p, i) => p.getMeter(`fuzz-api-${i}`));
    type Recorder = { add?: (...a: unknown[]) => void; record?: (...a: unknown[]) => void; bind: (a?: unknown) => unknown };
    const instruments: Recorder[] = [];
    const observables: unknown[] = [];
    for (const m of meters) {
      instruments.push(
        m.createCounter('c') as unknown as Recorder,
        m.createCounter('c-int', { valueType: ValueType.INT }) as unknown as Recorder,
        m.createUpDownCounter('ud') as unknown as Recorder,
        m.createHistogram('h', { advice: { explicitBucketBoundaries: [0, 1, 10, 100] } }) as unknown as Recorder,
        m.createHistogram('h-int', { valueType: ValueType.INT }) as unknown as Recorder,
        m.createGauge('g') as unknown as Recorder,
        m.createCounter('viewed') as unknown as Recorder,
      );
      const oc = m.createObservableCounter('oc');
      const og = m.createObservableGauge('og');
      const oud = m.createObservableUpDownCounter('oud');
      observables.push(oc, og, oud);
      for (const o of [oc, og, oud]) {
        o.addCallback((result) => {
          for (let i = 0; i < 20; i++) {
            try {
              result.observe(pick(rand, ANY_VALUES)() as number, hostileAttrs(rand, () => undefined) as Attributes);
            } catch (e) {
              note('observe', e);
            }
          }
        });
      }
      m.addBatchObservableCallback((result) => {
        for (let i = 0; i < 20; i++) {
          try {
            const target = rand() < 0.7 ? pick(rand, [oc, og, oud]) : pick(rand, [throwingProxy({}), revoked(), {}, null, undefined, instruments[0]]);
            result.observe(target as never, pick(rand, ANY_VALUES)() as number, hostileAttrs(rand, () => undefined) as Attributes);
          } catch (e) {
            note('batch observe', e);
          }
        }
      }, [oc, og, oud]);
    }

    // The truth: the first provider's counter and histogram get valid values (tracked)
    // and invalid values (which must all be dropped) on the same series.
    const truthMeter = meters[0];
    const truth = truthMeter.createCounter('truth') as Counter;
    const truthH = truthMeter.createHistogram('truth-h', { advice: { explicitBucketBoundaries: [1, 5] } }) as Histogram;
    const truthBound = truth.bind({ route: '/bound' });
    const want = new Map<string, number>();
    let boundWant = 0;
    const hist = { count: 0, sum: 0 };
    const ROUTES = ['/a', '/b', '/c'];

    let depth = 0;
    const reenter = (attrs: Attributes) => {
      if (depth > 2) return;
      depth++;
      try {
        (pick(rand, instruments).add ?? pick(rand, instruments).record)?.(1, attrs);
      } finally {
        depth--;
      }
    };

    const throwingLogger = { error: trap, warn: trap, info: trap, debug: trap, verbose: trap };
    const counts = { direct: 0, bind: 0, batch: 0, create: 0, callbacks: 0, truth: 0 };
    const started = performance.now();
    const chunks: number[] = [];
    for (let i = 1; i <= CALLS; i++) {
      if (i === Math.floor(CALLS / 2)) {
        // Second half: a DiagLogger whose every method throws.
        diag.disable();
        resetDiagLimits();
        diag.setLogger(throwingLogger, DiagLogLevel.WARN); // (at ALL, the API itself calls debug() and throws)
      }
      const r = rand();
      const inst = pick(rand, instruments);
      const fn = (inst.add ?? inst.record)!;
      try {
        if (r < 0.45) {
          counts.direct++;
          branch = 'direct';
          const n = randInt(rand, 0, 4);
          const args = [pick(rand, ANY_VALUES)(), hostileAttrs(rand, reenter), pick(rand, [undefined, {}, null, trap]), 'extra'].slice(0, n);
          fn.apply(inst, args);
        } else if (r < 0.6) {
          counts.bind++;
          branch = 'bind';
          const h = inst.bind(rand() < 0.1 ? undefined : hostileAttrs(rand, reenter)) as Record<string, (...a: unknown[]) => void>;
          const op = h.add ?? h.record;
          for (let k = randInt(rand, 0, 3); k > 0; k--) op.call(h, pick(rand, ANY_VALUES)());
          if (rand() < 0.7) h.unbind();
          if (rand() < 0.2) {
            h.unbind();
            op.call(h, 1); // after unbind: dropped
          }
        } else if (r < 0.68) {
          counts.batch++;
          branch = 'batch';
          pick(rand, meters).recordBatch(hostileAttrs(rand, reenter, true) as Attributes, hostileMeasurements(rand, [...instruments, ...observables]) as never);
        } else if (r < 0.7) {
          counts.create++;
          branch = 'create';
          const m = pick(rand, meters) as unknown as Record<string, (...a: unknown[]) => unknown>;
          const create = pick(rand, ['createCounter', 'createUpDownCounter', 'createHistogram', 'createGauge', 'createObservableGauge']);
          const name = pick(rand, ['ok', '', '1bad', 'x'.repeat(300), 'a\uD800', Symbol('n'), null, undefined, 1, throwingProxy({}), { toString: trap }]);
          const options = pick(rand, [
            undefined, null, 'opts', {}, { valueType: 99 }, { unit: '\u00ff'.repeat(70) }, { unit: 5 }, { description: {} },
            { advice: null }, { advice: { explicitBucketBoundaries: [3, 1, NaN] } }, { advice: { explicitBucketBoundaries: 'x' } },
            { advice: { attributes: [1, 'route'] } }, throwingProxy({}), revoked(), { get valueType() { return trap(); } },
            { advice: { get explicitBucketBoundaries() { return trap(); } } }, { advice: throwingProxy({}) },
          ]);
          const made = m[create](name, options) as Recorder;
          if (made && typeof made.bind === 'function') (made.add ?? made.record)!.call(made, 1, { route: '/made' });
          else if (made && typeof (made as unknown as { addCallback?: unknown }).addCallback === 'function') {
            const o = made as unknown as { addCallback(cb: unknown): void; removeCallback(cb: unknown): void };
            o.addCallback(pick(rand, [null, 'cb', trap, (res: { observe(v: unknown): void }) => res.observe(1)]));
            o.removeCallback(pick(rand, [null, trap, {}]));
          }
        } else if (r < 0.702) {
          counts.callbacks++;
          branch = 'callbacks';
          const m = pick(rand, meters);
          m.addBatchObservableCallback(pick(rand, [null, 'x', trap, () => trap()]) as never, pick(rand, [null, 'x', [null], [throwingProxy({})], observables]) as never);
          m.removeBatchObservableCallback(pick(rand, [null, trap]) as never, pick(rand, [null, 'x', [throwingProxy({})], revoked()]) as never);
        } else {
          counts.truth++;
          branch = 'truth';
          const route = pick(rand, ROUTES);
          const kind = rand();
          if (kind < 0.25) {
            const v = randInt(rand, 0, 9);
            truth.add(v, { route });
            want.set(route, (want.get(route) ?? 0) + v);
          } else if (kind < 0.35) {
            truthBound.add(3);
            boundWant += 3;
          } else if (kind < 0.45) {
            const v = randInt(rand, 0, 9);
            truthH.record(v, { route });
            hist.count++;
            hist.sum += v;
          } else if (kind < 0.6) {
            truthBound.add(pick(rand, INVALID_VALUES)() as number);
          } else if (kind < 0.8) {
            truth.add(pick(rand, INVALID_VALUES)() as number, { route });
          } else if (kind < 0.9) {
            truthH.record(pick(rand, INVALID_VALUES)() as number, { route });
          } else {
            truthMeter.recordBatch({ route }, [[truth, pick(rand, INVALID_VALUES)() as number], [truthH, pick(rand, INVALID_VALUES)() as number]]);
          }
        }
      } catch (e) {
        note(`call ${i}`, e);
      }
      if (i % 5000 === 0) await new Promise(setImmediate);
      if (i % Math.max(1, Math.floor(CALLS / 10)) === 0 || i === CALLS) {
        chunks.push(Math.round(performance.now() - started));
        for (const p of providers) {
          const cs = await p.collect();
          for (const x of impossible(cs)) if (problems.length < 20) problems.push(x);
          if (p === providers[0]) {
            for (const [route, total] of want) expect(sumOf(findRecord(cs, 'truth', { route })), route).toBe(total);
            expect(sumOf(findRecord(cs, 'truth', { route: '/bound' }))).toBe(boundWant);
            const hs = recordsOf(cs, 'truth-h').map(histOf);
            expect(hs.reduce((a, h) => a + h.count, 0)).toBe(hist.count);
            expect(hs.reduce((a, h) => a + h.sum, 0)).toBe(hist.sum);
          }
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    diag.disable();
    installLogger();
    console.log(
      `[fuzz-api] seed ${SEED}: ${CALLS.toLocaleString('en-US')} calls in ${seconds.toFixed(1)} s: ${JSON.stringify(counts)}; ` +
        `(ms at each tenth: ${chunks.join(' ')}); truth ${[...want].map(([k, v]) => `${k}=${v}`).join(' ')} /bound=${boundWant} hist ${hist.count}/${hist.sum}`,
    );
    expect(thrown, `seed ${SEED}`).toEqual([]);
    expect(problems, `seed ${SEED}`).toEqual([]);
    for (const p of providers) await p.shutdown();
  }, 300_000);

  it('bound handles dropped without unbind() leave nothing behind (no reference, no bookkeeping)', async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 1 }); // expiry on: unreferenced series can go
    const c = p.getMeter('forgetful').createCounter('forgotten');
    const store = (c as unknown as { store: { bound: Set<unknown> } }).store;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20_000; i++) c.bind({ route: `/r${i % 4}` }).add(1); // never unbound
      for (let i = 0; i < 5 && store.bound.size > 0; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20)); // FinalizationRegistry callbacks run later
      }
      expect(store.bound.size, `round ${round}`).toBe(0);
    }
    // Their references went back: idle, the series are exported once more, then reclaimed.
    expect(sumOf(findRecord(await p.collect(), 'forgotten', { route: '/r0' }))).toBe(15_000);
    await new Promise((r) => setTimeout(r, 5)); // idle longer than reclaimIdleMillis
    await p.collect();
    await new Promise((r) => setTimeout(r, 5));
    expect((await p.collect()).records).toHaveLength(0);
    await p.shutdown();
  });

  it('recording after shutdown, with hostile arguments, never throws either', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('late');
    const c = m.createCounter('late');
    const h = m.createHistogram('late-h');
    const b = c.bind({ route: '/a' });
    await p.shutdown();
    const rand = prng(SEED);
    const thrown = new Set<string>();
    const attempt = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        thrown.add(`${what}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
      }
    };
    for (let i = 0; i < 5000; i++) {
      const v = pick(rand, ANY_VALUES)() as number;
      const a = hostileAttrs(rand, () => undefined) as Attributes;
      attempt('add', () => c.add(v, a));
      attempt('record', () => h.record(v, a));
      attempt('bound add', () => b.add(v));
      attempt('bind', () => c.bind(a).add(v));
      attempt('recordBatch', () => m.recordBatch(a, hostileMeasurements(rand, [c, h]) as never));
    }
    expect([...thrown]).toEqual([]);
  });
});
