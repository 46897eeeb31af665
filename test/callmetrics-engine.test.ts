// MetricsEngine through collections of its provider: outcomes, in-flight, idempotent
// end(), timeouts, thousands of concurrent calls, cardinality, disabled and shut-down
// engines. The Prometheus endpoint itself is tested in callmetrics-scrape.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeterProvider, MetricsEngine, callMetricsSelector } from '../src';
import type { CheckpointSet, SketchAggregation } from '../src';
import { findRecord, installLogger, lastValueOf, maybeRecord, prng, sumOf, uninstallLogger, until } from './helpers';

const engines: MetricsEngine[] = [];
function engine(config: ConstructorParameters<typeof MetricsEngine>[0]): MetricsEngine {
  const e = new MetricsEngine(config);
  engines.push(e);
  return e;
}
afterEach(async () => {
  uninstallLogger();
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

async function collect(e: MetricsEngine): Promise<CheckpointSet> {
  const p = e.meterProvider;
  if (p === undefined) throw new Error('engine has no provider');
  return p.collect();
}

/** Counter, summary count, in-flight and last duration of one (api type, call name). */
function stats(cs: CheckpointSet, api: string, name: string) {
  const a = { api_type: api, call_name: name };
  const d = findRecord(cs, 'hotmeter.call.duration', a).aggregation as SketchAggregation;
  expect(d.kind).toBe('sketch');
  const last = maybeRecord(cs, 'hotmeter.call.last_duration', a);
  return {
    ok: sumOf(findRecord(cs, 'hotmeter.calls', { ...a, outcome: 'ok' })),
    error: sumOf(findRecord(cs, 'hotmeter.calls', { ...a, outcome: 'error' })),
    timeout: sumOf(findRecord(cs, 'hotmeter.calls', { ...a, outcome: 'timeout' })),
    active: sumOf(findRecord(cs, 'hotmeter.calls.active', a)),
    count: d.count,
    sum: d.sum,
    duration: d,
    last: last === undefined ? undefined : lastValueOf(last),
  };
}

/** A clock the test moves by hand (ms). */
function manualClock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

describe('recordCall / end', () => {
  it('measures one call: count, duration, last duration, in flight', async () => {
    const clock = manualClock();
    const e = engine({ port: 0, clock: clock.now });
    const end = e.recordCall('http', 'getUser');
    let s = stats(await collect(e), 'http', 'getUser');
    expect(s).toMatchObject({ ok: 0, error: 0, timeout: 0, active: 1, count: 0, last: undefined });
    clock.advance(250);
    end();
    s = stats(await collect(e), 'http', 'getUser');
    expect(s).toMatchObject({ ok: 1, error: 0, timeout: 0, active: 0, count: 1, sum: 0.25, last: 0.25 });
  });

  it('end() is idempotent', async () => {
    const clock = manualClock();
    const e = engine({ port: 0, clock: clock.now });
    const end = e.recordCall('http', 'a');
    clock.advance(10);
    end();
    clock.advance(10);
    end();
    end(new Error('late'));
    const s = stats(await collect(e), 'http', 'a');
    expect(s).toMatchObject({ ok: 1, error: 0, active: 0, count: 1, sum: 0.01 });
    expect(e.pendingCalls).toBe(0);
  });

  it('end(error) counts an error; end(null) and end(false) count ok', async () => {
    const e = engine({ port: 0 });
    e.recordCall('db', 'q')(new Error('boom'));
    e.recordCall('db', 'q')('any truthy reason');
    e.recordCall('db', 'q')(null);
    e.recordCall('db', 'q')(false);
    e.recordCall('db', 'q')();
    const s = stats(await collect(e), 'db', 'q');
    expect(s).toMatchObject({ ok: 3, error: 2, count: 5, active: 0 });
  });

  it('tracks calls in flight per (api type, call name)', async () => {
    const e = engine({ port: 0 });
    const ends = Array.from({ length: 5 }, () => e.recordCall('grpc', 'List'));
    const other = e.recordCall('grpc', 'Get');
    ends[0]();
    ends[3]();
    let cs = await collect(e);
    expect(stats(cs, 'grpc', 'List').active).toBe(3);
    expect(stats(cs, 'grpc', 'Get').active).toBe(1);
    expect(e.pendingCalls).toBe(4);
    for (const end of ends) end();
    other();
    cs = await collect(e);
    expect(stats(cs, 'grpc', 'List')).toMatchObject({ active: 0, ok: 5, count: 5 });
    expect(stats(cs, 'grpc', 'Get')).toMatchObject({ active: 0, ok: 1, count: 1 });
    expect(e.pendingCalls).toBe(0);
  });

  it('quantiles of the duration sketch are within 1% of the exact ones', async () => {
    const clock = manualClock();
    const e = engine({ port: 0, clock: clock.now });
    const rand = prng(7);
    const values: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const ms = 1 + Math.floor(rand() * 2000);
      values.push(ms / 1000);
      const end = e.recordCall('http', 'q');
      clock.advance(ms);
      end();
    }
    values.sort((a, b) => a - b);
    const s = stats(await collect(e), 'http', 'q');
    expect(s.count).toBe(5000);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = values[Math.floor(q * (values.length - 1))];
      expect(Math.abs(s.duration.quantile(q) - exact) / exact).toBeLessThanOrEqual(0.0101);
    }
  });

  it('treats non-string names as their String() and never caches the raw key', async () => {
    const e = engine({ port: 0 });
    e.recordCall(42 as unknown as string, { toString: () => 'obj' } as unknown as string)();
    e.recordCall('42', 'obj')();
    expect(stats(await collect(e), '42', 'obj')).toMatchObject({ ok: 2, count: 2 });
  });
});

describe('instrument', () => {
  it('wraps a sync function: value, this and arguments pass through, name and length kept', async () => {
    const e = engine({ port: 0 });
    const obj = {
      base: 10,
      add(a: number, b: number): number {
        return this.base + a + b;
      },
    };
    obj.add = e.instrument('calc', 'add', obj.add);
    expect(obj.add(1, 2)).toBe(13);
    expect(obj.add.name).toBe('add');
    expect(obj.add.length).toBe(2);
    expect(stats(await collect(e), 'calc', 'add')).toMatchObject({ ok: 1, error: 0, count: 1, active: 0 });
  });

  it('rethrows what a sync function throws, unchanged, and counts an error', async () => {
    const e = engine({ port: 0 });
    const err = new TypeError('bad');
    const f = e.instrument('calc', 'fail', () => {
      throw err;
    });
    expect(() => f()).toThrow(err);
    let thrown: unknown;
    try {
      f();
    } catch (x) {
      thrown = x;
    }
    expect(thrown).toBe(err);
    expect(stats(await collect(e), 'calc', 'fail')).toMatchObject({ ok: 0, error: 2, count: 2, active: 0 });
  });

  it('measures an async function until its promise settles', async () => {
    const e = engine({ port: 0 });
    const f = e.instrument('http', 'slow', async (ms: number) => {
      await sleep(ms);
      return ms * 2;
    });
    const p = f(60);
    expect(p).toBeInstanceOf(Promise);
    let s = stats(await collect(e), 'http', 'slow');
    expect(s).toMatchObject({ active: 1, ok: 0, count: 0 });
    expect(await p).toBe(120);
    s = stats(await collect(e), 'http', 'slow');
    expect(s).toMatchObject({ active: 0, ok: 1, count: 1 });
    expect(s.sum).toBeGreaterThanOrEqual(0.055);
    expect(s.sum).toBeLessThan(5);
  });

  it('rethrows a rejection unchanged and counts an error', async () => {
    const e = engine({ port: 0 });
    const err = new Error('nope');
    const f = e.instrument('http', 'reject', async () => {
      await sleep(1);
      throw err;
    });
    await expect(f()).rejects.toBe(err);
    const g = e.instrument('http', 'reject', () => Promise.reject(err));
    await expect(g()).rejects.toBe(err);
    expect(stats(await collect(e), 'http', 'reject')).toMatchObject({ ok: 0, error: 2, count: 2, active: 0 });
  });

  it('a rejection nobody handles is still reported as unhandled', async () => {
    const e = engine({ port: 0 });
    const seen: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      seen.push(reason);
    };
    const listeners = process.listeners('unhandledRejection');
    process.removeAllListeners('unhandledRejection');
    process.on('unhandledRejection', onUnhandled);
    try {
      const err = new Error('ignored');
      void e.instrument('x', 'y', () => Promise.reject(err))();
      await sleep(20);
      expect(seen).toContain(err);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      for (const l of listeners) process.on('unhandledRejection', l);
    }
  });

  it('handles thenables that are not native promises', async () => {
    const e = engine({ port: 0 });
    const thenable = { then: (ok: (v: number) => void) => setTimeout(() => ok(5), 5) };
    const f = e.instrument('lib', 'thenable', () => thenable);
    expect(await f()).toBe(5);
    expect(stats(await collect(e), 'lib', 'thenable')).toMatchObject({ ok: 1, active: 0 });
  });

  it('thousands of concurrent async calls: counts agree once all settle', async () => {
    const e = engine({ port: 0 });
    const rand = prng(42);
    const f = e.instrument('http', 'concurrent', async (ms: number, fail: boolean) => {
      await sleep(ms);
      if (fail) throw new Error('fail');
      return ms;
    });
    const N = 5000;
    let failures = 0;
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      const fail = rand() < 0.3;
      if (fail) failures++;
      calls.push(f(Math.floor(rand() * 30), fail).catch(() => 'failed'));
    }
    expect(e.pendingCalls).toBe(N);
    const mid = stats(await collect(e), 'http', 'concurrent');
    expect(mid.active + mid.ok + mid.error).toBe(N);
    await Promise.all(calls);
    const s = stats(await collect(e), 'http', 'concurrent');
    expect(s).toMatchObject({ ok: N - failures, error: failures, timeout: 0, active: 0, count: N });
    expect(s.ok + s.error).toBe(s.count);
    expect(e.pendingCalls).toBe(0);
  });
});

describe('timeouts', () => {
  it('drops never-ending calls after the timeout, counts them, and ignores late end()', async () => {
    const e = engine({ port: 0, callTimeoutMs: 50 });
    const lost = Array.from({ length: 2000 }, () => e.recordCall('http', 'hang'));
    const kept = Array.from({ length: 10 }, () => e.recordCall('http', 'hang'));
    for (const end of kept) end();
    expect(e.pendingCalls).toBe(2000);
    let s = stats(await collect(e), 'http', 'hang');
    expect(s).toMatchObject({ ok: 10, timeout: 0, active: 2000, count: 10 });
    await until(() => e.pendingCalls === 0, 5000, 'no call pending', 5);
    s = stats(await collect(e), 'http', 'hang');
    expect(s).toMatchObject({ ok: 10, error: 0, timeout: 2000, active: 0, count: 10 });
    for (const end of lost) end();
    for (const end of lost) end(new Error('late'));
    s = stats(await collect(e), 'http', 'hang');
    expect(s).toMatchObject({ ok: 10, error: 0, timeout: 2000, active: 0, count: 10 });
  });

  it('an async call that outlives the timeout counts once, as timed out', async () => {
    const clock = manualClock();
    const e = engine({ port: 0, callTimeoutMs: 30, clock: clock.now });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const f = e.instrument('http', 'slow', async () => {
      await gate;
      return 'late';
    });
    const p = f();
    clock.advance(100);
    await until(() => e.pendingCalls === 0, 5000, 'no call pending', 5);
    release();
    expect(await p).toBe('late');
    const s = stats(await collect(e), 'http', 'slow');
    expect(s).toMatchObject({ ok: 0, error: 0, timeout: 1, active: 0, count: 0 });
  });

  it('expires only calls past their deadline, in start order', async () => {
    const clock = manualClock();
    const e = engine({ port: 0, callTimeoutMs: 300, clock: clock.now });
    const early = e.recordCall('a', 'x');
    clock.advance(200);
    const late = e.recordCall('a', 'x');
    clock.advance(150); // early is 350 ms old, late 150 ms
    await until(() => e.pendingCalls === 1, 5000, 'one call pending', 5);
    let s = stats(await collect(e), 'a', 'x');
    expect(s).toMatchObject({ timeout: 1, active: 1 });
    clock.advance(10);
    late();
    early();
    s = stats(await collect(e), 'a', 'x');
    expect(s).toMatchObject({ timeout: 1, ok: 1, active: 0, count: 1, sum: 0.16 });
    expect(e.pendingCalls).toBe(0);
  });

  it('the expiry timer never keeps the process alive', async () => {
    const timeouts = (): number => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;
    const before = timeouts();
    const e = engine({ port: 0, callTimeoutMs: 10_000 });
    const end = e.recordCall('a', 'b');
    expect(e.pendingCalls).toBe(1);
    expect(timeouts()).toBe(before); // unref'd timers are not listed
    end();
  });

  it('callTimeoutMs 0: calls are not tracked and never time out', async () => {
    const e = engine({ port: 0, callTimeoutMs: 0 });
    const end = e.recordCall('a', 'b');
    expect(e.pendingCalls).toBe(0);
    await sleep(20);
    end();
    expect(stats(await collect(e), 'a', 'b')).toMatchObject({ ok: 1, timeout: 0, active: 0, count: 1 });
  });
});

describe('configuration and lifecycle', () => {
  it('a disabled engine is a set of no-ops', async () => {
    const e = engine({ enabled: false, port: 0 });
    expect(e.enabled).toBe(false);
    expect(e.meterProvider).toBeUndefined();
    const end1 = e.recordCall('a', 'b');
    const end2 = e.recordCall('c', 'd');
    expect(end1).toBe(end2);
    expect(end1()).toBeUndefined();
    const fn = (x: number): number => x + 1;
    expect(e.instrument('a', 'b', fn)).toBe(fn);
    expect(await e.publishMetrics()).toBeUndefined();
    expect(e.url).toBeUndefined();
    await e.shutdown();
  });

  it('an engine constructed without config is disabled until init()', async () => {
    const e = new MetricsEngine();
    engines.push(e);
    const fn = (): number => 1;
    expect(e.instrument('a', 'b', fn)).toBe(fn);
    e.init({ port: 0 });
    expect(e.enabled).toBe(true);
    expect(e.instrument('a', 'b', fn)).not.toBe(fn);
    expect(() => e.init({ port: 0 })).toThrow(/once/);
  });

  it('rejects invalid configuration', () => {
    expect(() => new MetricsEngine({ port: -1 })).toThrow(TypeError);
    expect(() => new MetricsEngine({ port: 1.5 })).toThrow(TypeError);
    expect(() => new MetricsEngine({ quantiles: [] })).toThrow(TypeError);
    expect(() => new MetricsEngine({ quantiles: [1.5] })).toThrow(TypeError);
    expect(() => new MetricsEngine({ callTimeoutMs: -5 })).toThrow(TypeError);
    expect(() => new MetricsEngine({ prefix: '1bad' })).toThrow(TypeError);
    expect(() => new MetricsEngine({ maxCallSeries: 0 })).toThrow(TypeError);
    expect(() => new MetricsEngine({ endpoint: 'metrics' })).toThrow(TypeError);
    expect(() => new MetricsEngine({ sketchBins: 1 })).toThrow(TypeError);
    expect(() => new MetricsEngine({ meterProvider: {} as MeterProvider })).toThrow(TypeError);
    expect(() => new MetricsEngine({ runtimeMetrics: { eventLoopDelayResolutionMs: 0 } })).toThrow(TypeError);
    // A failed init() leaves the engine uninitialised: it can be initialised again.
    const e = new MetricsEngine();
    expect(() => e.init({ port: 70000 })).toThrow(TypeError);
    e.init({ enabled: false });
    expect(e.enabled).toBe(false);
  });

  it('instrument() needs a function', () => {
    const e = engine({ port: 0 });
    expect(() => e.instrument('a', 'b', 42 as unknown as () => void)).toThrow(TypeError);
  });

  it('past maxCallSeries pairs, calls go to one overflow series', async () => {
    const log = installLogger();
    const e = engine({ port: 0, maxCallSeries: 3 });
    for (let i = 0; i < 10; i++) e.recordCall('api', `call${i}`)();
    const cs = await collect(e);
    for (let i = 0; i < 3; i++) expect(stats(cs, 'api', `call${i}`).ok).toBe(1);
    expect(maybeRecord(cs, 'hotmeter.calls', { api_type: 'api', call_name: 'call3', outcome: 'ok' })).toBeUndefined();
    expect(sumOf(findRecord(cs, 'hotmeter.calls', { 'otel.metric.overflow': true, outcome: 'ok' }))).toBe(7);
    expect(log.warned('more than 3')).toBe(true);
  });

  it('a custom prefix renames every instrument', async () => {
    const e = engine({ port: 0, prefix: 'agent' });
    e.recordCall('a', 'b')();
    const cs = await collect(e);
    expect(cs.records.map((r) => r.descriptor.name).sort()).toEqual(
      ['agent.call.duration', 'agent.call.last_duration', 'agent.calls', 'agent.calls', 'agent.calls', 'agent.calls.active'].sort(),
    );
  });

  it('records into a provider passed in; publishMetrics() is then refused', async () => {
    const provider = new MeterProvider({ aggregationSelector: callMetricsSelector() });
    const e = engine({ meterProvider: provider });
    e.recordCall('a', 'b')();
    e.recordCall('a', 'b'); // still in flight at shutdown
    const s = stats(await provider.collect(), 'a', 'b');
    expect(s).toMatchObject({ ok: 1, count: 1, active: 1 });
    await expect(e.publishMetrics()).rejects.toThrow(/meterProvider/);
    await e.shutdown();
    // The provider keeps running; the engine left nothing in flight behind.
    expect(sumOf(findRecord(await provider.collect(), 'hotmeter.calls.active', { api_type: 'a', call_name: 'b' }))).toBe(0);
    await provider.shutdown();
  });

  it('after shutdown(), calls and wrappers pass through and pending end() does nothing', async () => {
    const log = installLogger();
    const e = engine({ port: 0 });
    const pending = e.recordCall('a', 'b');
    const f = e.instrument('a', 'b', (x: number) => x * 3);
    await e.shutdown();
    expect(f(2)).toBe(6);
    pending();
    expect(e.recordCall('a', 'b')).toBe(e.recordCall('c', 'd'));
    expect(e.pendingCalls).toBe(0);
    await expect(e.publishMetrics()).rejects.toThrow(/shutdown/);
    expect(log.warnings).toEqual([]);
  });
});
