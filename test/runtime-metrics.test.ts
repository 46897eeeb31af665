// startRuntimeMetrics: every metric appears with sane values, the event-loop delay
// reflects a blocked loop, GC pauses are recorded by kind, stop() disconnects
// everything, and any @opentelemetry/api MeterProvider works.
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import * as otel from '@opentelemetry/sdk-metrics';
import { MeterProvider, RUNTIME_METRIC_NAMES as N, startRuntimeMetrics } from '../src';
import type { CheckpointSet, HistogramAggregation, RuntimeMetrics } from '../src';
import { findRecord, installLogger, lastValueOf, maybeRecord, recordsOf, uninstallLogger } from './helpers';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  uninstallLogger();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(options?: Parameters<typeof startRuntimeMetrics>[1]): { provider: MeterProvider; rt: RuntimeMetrics } {
  const provider = new MeterProvider();
  const rt = startRuntimeMetrics(provider, options);
  cleanups.push(() => provider.shutdown(), () => rt.stop());
  return { provider, rt };
}

/** Value of an observable series (observable sums and gauges are both cells [value, seq]). */
function observed(cs: CheckpointSet, name: string, attrs: Record<string, string> = {}): number {
  const r = findRecord(cs, name, attrs);
  return r.aggregation.kind === 'sum' ? r.aggregation.sum : lastValueOf(r);
}

function makeGarbage(n: number): number {
  let keep: { i: number; s: string }[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 10_000) {
      total += keep.length;
      keep = [];
    }
  }
  return total + keep.length;
}

function gcCount(cs: CheckpointSet, type: string): number {
  const r = maybeRecord(cs, N.gcDuration, { 'v8js.gc.type': type });
  return r === undefined ? 0 : (r.aggregation as HistogramAggregation).count;
}

describe('startRuntimeMetrics', () => {
  it('reports every metric with sane values', async () => {
    const log = installLogger();
    const { provider } = setup();
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    makeGarbage(2_000_000);
    await sleep(30); // GC entries are delivered asynchronously; lets the delay monitor sample
    const cs = await provider.collect();

    for (const name of [N.eventLoopDelayMin, N.eventLoopDelayMax, N.eventLoopDelayMean, N.eventLoopDelayP50, N.eventLoopDelayP90, N.eventLoopDelayP99]) {
      const v = observed(cs, name);
      expect(v, name).toBeGreaterThan(0);
      expect(v, name).toBeLessThan(10);
    }
    expect(observed(cs, N.eventLoopDelayStddev)).toBeGreaterThanOrEqual(0);
    expect(observed(cs, N.eventLoopDelayP50)).toBeLessThanOrEqual(observed(cs, N.eventLoopDelayP99));
    const u = observed(cs, N.eventLoopUtilization);
    expect(u).toBeGreaterThan(0);
    expect(u).toBeLessThanOrEqual(1);
    expect(observed(cs, N.eventLoopTime, { 'nodejs.eventloop.state': 'active' })).toBeGreaterThan(0);
    expect(observed(cs, N.eventLoopTime, { 'nodejs.eventloop.state': 'idle' })).toBeGreaterThanOrEqual(0);

    expect(gcCount(cs, 'minor')).toBeGreaterThan(0);
    const minor = findRecord(cs, N.gcDuration, { 'v8js.gc.type': 'minor' }).aggregation as HistogramAggregation;
    expect(minor.boundaries).toEqual([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 10]);
    expect(minor.sum).toBeGreaterThan(0);
    expect(minor.max).toBeLessThan(5);

    for (const space of ['new_space', 'old_space', 'code_space']) {
      const a = { 'v8js.heap.space.name': space };
      expect(observed(cs, N.heapUsed, a), space).toBeGreaterThan(0);
      expect(observed(cs, N.heapLimit, a), space).toBeGreaterThanOrEqual(observed(cs, N.heapUsed, a));
      expect(observed(cs, N.heapSpacePhysical, a), space).toBeGreaterThan(0);
      expect(observed(cs, N.heapSpaceAvailable, a), space).toBeGreaterThanOrEqual(0);
    }

    const user = observed(cs, N.cpuTime, { 'cpu.mode': 'user' });
    expect(user).toBeGreaterThan(0);
    expect(user).toBeLessThan(process.uptime() * 64);
    expect(observed(cs, N.cpuTime, { 'cpu.mode': 'system' })).toBeGreaterThanOrEqual(0);
    expect(observed(cs, N.memoryUsage)).toBeGreaterThan(10 * 1024 * 1024);
    expect(Math.abs(observed(cs, N.uptime) - process.uptime())).toBeLessThan(1);

    expect(observed(cs, N.resourcesActive, { 'v8js.resource.type': 'TCPServerWrap' })).toBeGreaterThanOrEqual(1);
    expect(log.warnings).toEqual([]);
  });

  it('event-loop delay shows a blocked loop, and covers only the time since the previous collection', async () => {
    const { provider } = setup({ eventLoopDelayResolutionMs: 5 });
    await sleep(20);
    const t0 = Date.now();
    while (Date.now() - t0 < 400) {
      // block the event loop
    }
    await sleep(20);
    let cs = await provider.collect();
    expect(observed(cs, N.eventLoopDelayMax)).toBeGreaterThan(0.35);
    await sleep(50);
    cs = await provider.collect();
    expect(observed(cs, N.eventLoopDelayMax)).toBeLessThan(0.35);
  });

  it('v8js.resource.active follows resources, and keeps reporting a type that went away', async () => {
    const { provider } = setup({ eventLoop: false, gc: false, heap: false, process: false });
    const type = { 'v8js.resource.type': 'TCPServerWrap' };
    const servers = (): number => process.getActiveResourcesInfo().filter((t) => t === 'TCPServerWrap').length;
    // (A server an earlier test closed may linger in the list for a moment.)
    for (let i = 0; i < 100 && servers() > 0; i++) await sleep(10);
    const baseline = servers();
    expect(baseline).toBe(0);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    let cs = await provider.collect();
    expect(observed(cs, N.resourcesActive, type)).toBe(baseline + 1);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // A closed handle leaves the list a little after its close callback.
    for (let i = 0; i < 100 && servers() > baseline; i++) await sleep(10);
    expect(servers()).toBe(baseline);
    cs = await provider.collect();
    expect(observed(cs, N.resourcesActive, type)).toBe(baseline);
  });

  it('options turn groups off', async () => {
    const { provider } = setup({ eventLoop: false, gc: false, resources: false });
    const cs = await provider.collect();
    const names = new Set(cs.records.map((r) => r.descriptor.name));
    expect(names.has(N.eventLoopDelayP99)).toBe(false);
    expect(names.has(N.gcDuration)).toBe(false);
    expect(names.has(N.resourcesActive)).toBe(false);
    expect(names.has(N.heapUsed)).toBe(true);
    expect(names.has(N.cpuTime)).toBe(true);
    expect(() => startRuntimeMetrics(provider, { eventLoopDelayResolutionMs: 0 })).toThrow(TypeError);
    expect(() => startRuntimeMetrics({} as never)).toThrow(TypeError);
  });

  it('stop() removes the callbacks and disconnects the GC observer', async () => {
    const { provider, rt } = setup();
    makeGarbage(1_000_000);
    await sleep(20);
    let cs = await provider.collect();
    expect(recordsOf(cs, N.heapUsed).length).toBeGreaterThan(0);
    expect(rt.running).toBe(true);
    rt.stop();
    rt.stop();
    expect(rt.running).toBe(false);
    cs = await provider.collect();
    const before = gcCount(cs, 'minor');
    makeGarbage(2_000_000);
    await sleep(20);
    cs = await provider.collect();
    for (const name of [N.heapUsed, N.cpuTime, N.memoryUsage, N.eventLoopDelayP99, N.resourcesActive]) {
      expect(recordsOf(cs, name), name).toEqual([]);
    }
    // stop() unbinds the GC series: idle from here, it may be reclaimed (gone), but it
    // never counts another collection (a still-connected observer would update it, or
    // bring it back as a new, updated series).
    const minor = maybeRecord(cs, N.gcDuration, { 'v8js.gc.type': 'minor' });
    if (minor !== undefined) {
      expect(minor.updated).toBe(false);
      expect(gcCount(cs, 'minor')).toBe(before);
    }
  });

  it('works with @opentelemetry/sdk-metrics', async () => {
    class Reader extends otel.MetricReader {
      protected async onShutdown(): Promise<void> {}
      protected async onForceFlush(): Promise<void> {}
    }
    const reader = new Reader();
    const provider = new otel.MeterProvider({ readers: [reader] });
    const rt = startRuntimeMetrics(provider);
    cleanups.push(() => provider.shutdown(), () => rt.stop());
    makeGarbage(2_000_000);
    await sleep(30);
    const { resourceMetrics } = await reader.collect();
    const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const byName = new Map(metrics.map((m) => [m.descriptor.name, m]));
    for (const name of [N.eventLoopDelayP99, N.gcDuration, N.heapUsed, N.cpuTime, N.memoryUsage, N.resourcesActive]) {
      expect(byName.has(name), name).toBe(true);
    }
    const gc = byName.get(N.gcDuration);
    expect(gc?.dataPoints.some((p) => p.attributes['v8js.gc.type'] === 'minor')).toBe(true);
  });
});
