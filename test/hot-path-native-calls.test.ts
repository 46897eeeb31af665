// The hot path's promise: once a label set is in use on this thread, recording through
// a bound handle or a direct call with attributes never enters the addon (no Node-API
// call per measurement). Every function of the addon is wrapped with a counter here.
// A label set enters the addon on its first two uses on a thread (the first is not
// cached, so one-off label sets cost no cache entry; the second is cached by key, the
// third enters the trie): the check starts after three uses of each.
import { describe, expect, it } from 'vitest';
import { MeterProvider, PullController } from '../src';
import { native } from '../src/sdk/native';

describe('the hot path does not call the addon', () => {
  it('no native call per measurement: bound handles, reused and fresh attribute objects, no attributes', async () => {
    const addon = native() as unknown as Record<string, unknown>;
    const calls = new Map<string, number>();
    for (const name of Object.keys(addon)) {
      const fn = addon[name];
      if (typeof fn !== 'function') continue;
      addon[name] = function (this: unknown, ...args: unknown[]) {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return (fn as (...a: unknown[]) => unknown).apply(this, args);
      };
    }
    const total = (): number => [...calls.values()].reduce((a, b) => a + b, 0);
    const pull = new PullController();
    const provider = new MeterProvider({ readers: [pull], reclamation: false });
    const meter = provider.getMeter('hot');
    const counter = meter.createCounter('hot.requests');
    const histogram = meter.createHistogram('hot.duration', { advice: { explicitBucketBoundaries: [0.1, 1, 10] } });
    const routes = ['/a', '/b', '/c'];
    const bound = counter.bind({ route: '/a' });
    for (let use = 0; use < 3; use++) {
      for (const route of routes) {
        counter.add(1, { method: 'GET', route, status: 200 });
        histogram.record(0.5, { method: 'GET', route, status: 200 });
      }
      counter.add(1);
      histogram.record(1);
    }
    expect(calls.get('acquire')).toBeGreaterThan(0); // the wrapping sees the addon's calls
    const before = new Map(calls);
    const reused = { method: 'GET', route: '/b', status: 200 };
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      bound.add(1);
      counter.add(1, reused);
      counter.add(1, { method: 'GET', route: routes[i % 3], status: 200 });
      histogram.record(i % 20, { method: 'GET', route: routes[i % 3], status: 200 });
      counter.add(1);
      histogram.record(2);
    }
    const during = Object.fromEntries([...calls].map(([k, c]) => [k, c - (before.get(k) ?? 0)]).filter(([, c]) => c !== 0));
    expect(during).toEqual({});
    expect(total()).toBe([...before.values()].reduce((a, b) => a + b, 0));
    // Nothing was dropped: every measurement is in the collection.
    const got = new Map<string, number>();
    for (const r of (await pull.collect()).records) {
      const a = r.attributes;
      const key = `${r.descriptor.name} ${String(a.method)} ${String(a.route)}`;
      got.set(key, r.aggregation.kind === 'sum' ? r.aggregation.sum : r.aggregation.count);
    }
    const third = Math.floor(n / 3);
    expect(got.get('hot.requests undefined /a')).toBe(n); // bound
    expect(got.get('hot.requests GET /a')).toBe(3 + (n - 2 * third));
    expect(got.get('hot.requests GET /b')).toBe(3 + n + third);
    expect(got.get('hot.requests GET /c')).toBe(3 + third);
    expect(got.get('hot.requests undefined undefined')).toBe(3 + n);
    expect(got.get('hot.duration GET /a')).toBe(3 + (n - 2 * third));
    expect(got.get('hot.duration undefined undefined')).toBe(3 + n);
    await provider.shutdown();
  });
});
