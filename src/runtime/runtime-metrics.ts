// Node.js runtime and process metrics (opt-in), with OpenTelemetry semantic-convention
// names: what prom-client's collectDefaultMetrics and OpenTelemetry's runtime-node
// instrumentation give. Works with any @opentelemetry/api MeterProvider.
//
// Cost model. Everything but GC is read by observable callbacks, so nothing runs between
// collections except what Node itself runs for the sources: the event-loop delay
// monitor's libuv timer (one wakeup per `eventLoopDelayResolutionMs`) and, per GC, one
// PerformanceObserver entry (a histogram write on a bound handle). A collection reads
// every source once (bench/callmetrics.js measures it).
import type { Attributes, BatchObservableCallback, Histogram, Meter, MeterProvider, Observable } from '@opentelemetry/api';
import { constants as perfConstants, IntervalHistogram, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import * as v8 from 'node:v8';

/** Options of {@link startRuntimeMetrics}. */
export interface RuntimeMetricsOptions {
  /** Meter (instrumentation scope) name. Default 'hotmeter.runtime'. */
  meterName?: string;
  /** nodejs.eventloop.*: delay percentiles, utilization, time. Default true. */
  eventLoop?: boolean;
  /** Sampling interval of the event-loop delay monitor, ms (>= 1). Default 10 (prom-client's). */
  eventLoopDelayResolutionMs?: number;
  /** v8js.gc.duration. Default true. */
  gc?: boolean;
  /**
   * Bucket boundaries of v8js.gc.duration, seconds. Default
   * [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 10]: the semantic conventions' advice
   * [0.01, 0.1, 1, 10] plus finer buckets where minor GCs fall.
   */
  gcDurationBoundaries?: number[];
  /** v8js.memory.heap.* by heap space. Default true. */
  heap?: boolean;
  /** process.cpu.time, process.memory.usage, process.uptime. Default true. */
  process?: boolean;
  /** v8js.resource.active by resource type (process.getActiveResourcesInfo()). Default true. */
  resources?: boolean;
}

/** Running runtime metrics. */
export interface RuntimeMetrics {
  /** Disconnects the GC observer, disables the delay monitor, removes the callbacks. */
  stop(): void;
  readonly running: boolean;
}

/** The instrumentation scope of the runtime metrics. */
export const RUNTIME_METRICS_SCOPE = 'hotmeter.runtime';
/** `v8js.gc.duration` bucket boundaries, seconds. */
export const DEFAULT_GC_DURATION_BOUNDARIES: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 10]);

/** The OpenTelemetry names of the runtime metrics. */
export const RUNTIME_METRIC_NAMES = Object.freeze({
  eventLoopDelayMin: 'nodejs.eventloop.delay.min',
  eventLoopDelayMax: 'nodejs.eventloop.delay.max',
  eventLoopDelayMean: 'nodejs.eventloop.delay.mean',
  eventLoopDelayStddev: 'nodejs.eventloop.delay.stddev',
  eventLoopDelayP50: 'nodejs.eventloop.delay.p50',
  eventLoopDelayP90: 'nodejs.eventloop.delay.p90',
  eventLoopDelayP99: 'nodejs.eventloop.delay.p99',
  eventLoopUtilization: 'nodejs.eventloop.utilization',
  eventLoopTime: 'nodejs.eventloop.time',
  gcDuration: 'v8js.gc.duration',
  heapUsed: 'v8js.memory.heap.used',
  heapLimit: 'v8js.memory.heap.limit',
  heapSpaceAvailable: 'v8js.memory.heap.space.available_size',
  heapSpacePhysical: 'v8js.memory.heap.space.physical_size',
  resourcesActive: 'v8js.resource.active',
  cpuTime: 'process.cpu.time',
  memoryUsage: 'process.memory.usage',
  uptime: 'process.uptime',
});

/** Distinct resource types reported; later ones are counted as 'other'. */
const MAX_RESOURCE_TYPES = 64;

const GC_TYPES: ReadonlyArray<readonly [number, string]> = [
  [perfConstants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
];

type Recorder = (seconds: number) => void;

/** A histogram write for one attribute set: a bound handle where the SDK has bind(). */
function recorderFor(h: Histogram, attrs: Attributes, unbinds: (() => void)[]): Recorder {
  const bindable = h as Histogram & { bind?: (a: Attributes) => { record(v: number): void; unbind(): void } };
  if (typeof bindable.bind === 'function') {
    const handle = bindable.bind(attrs);
    unbinds.push(() => handle.unbind());
    return (v) => handle.record(v);
  }
  return (v) => h.record(v, attrs);
}

function addBatch(meter: Meter, cb: BatchObservableCallback, observables: Observable[], stops: (() => void)[]): void {
  meter.addBatchObservableCallback(cb, observables);
  stops.push(() => meter.removeBatchObservableCallback(cb, observables));
}

/**
 * Starts Node.js runtime and process metrics on `meterProvider` (hotmeter's, or any
 * @opentelemetry/api MeterProvider). Observable instruments are read at each collection;
 * the event-loop delay statistics cover the time since the previous collection (the
 * monitor is reset after each one, as prom-client does).
 */
export function startRuntimeMetrics(meterProvider: MeterProvider, options: RuntimeMetricsOptions = {}): RuntimeMetrics {
  if (meterProvider === null || typeof meterProvider !== 'object' || typeof meterProvider.getMeter !== 'function') {
    throw new TypeError('hotmeter: startRuntimeMetrics needs a MeterProvider');
  }
  const o = options ?? {};
  const resolution = o.eventLoopDelayResolutionMs ?? 10;
  if (!(Number.isInteger(resolution) && resolution >= 1)) throw new TypeError('hotmeter: eventLoopDelayResolutionMs must be an integer >= 1');
  const meter = meterProvider.getMeter(o.meterName ?? RUNTIME_METRICS_SCOPE);
  const N = RUNTIME_METRIC_NAMES;
  const stops: (() => void)[] = [];

  if (o.eventLoop !== false) {
    const h: IntervalHistogram = monitorEventLoopDelay({ resolution });
    h.enable();
    const gauge = (name: string, what: string): Observable =>
      meter.createObservableGauge(name, { unit: 's', description: `Event loop ${what} delay since the previous collection` });
    const min = gauge(N.eventLoopDelayMin, 'minimum');
    const max = gauge(N.eventLoopDelayMax, 'maximum');
    const mean = gauge(N.eventLoopDelayMean, 'mean');
    const stddev = gauge(N.eventLoopDelayStddev, 'standard deviation of the');
    const p50 = gauge(N.eventLoopDelayP50, '50th percentile');
    const p90 = gauge(N.eventLoopDelayP90, '90th percentile');
    const p99 = gauge(N.eventLoopDelayP99, '99th percentile');
    const utilization = meter.createObservableGauge(N.eventLoopUtilization, {
      unit: '1',
      description: 'Event loop utilization since the previous collection',
    });
    const time = meter.createObservableCounter(N.eventLoopTime, {
      unit: 's',
      description: 'Cumulative time the event loop has been active or idle',
    });
    const ACTIVE = Object.freeze({ 'nodejs.eventloop.state': 'active' });
    const IDLE = Object.freeze({ 'nodejs.eventloop.state': 'idle' });
    let lastElu = performance.eventLoopUtilization();
    const cb: BatchObservableCallback = (r) => {
      if (h.count > 0) {
        r.observe(min, h.min / 1e9);
        r.observe(max, h.max / 1e9);
        r.observe(mean, h.mean / 1e9);
        r.observe(stddev, h.stddev / 1e9);
        r.observe(p50, h.percentile(50) / 1e9);
        r.observe(p90, h.percentile(90) / 1e9);
        r.observe(p99, h.percentile(99) / 1e9);
        h.reset();
      }
      const elu = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(elu, lastElu).utilization;
      lastElu = elu;
      if (Number.isFinite(u)) r.observe(utilization, u);
      r.observe(time, elu.active / 1000, ACTIVE);
      r.observe(time, elu.idle / 1000, IDLE);
    };
    addBatch(meter, cb, [min, max, mean, stddev, p50, p90, p99, utilization, time], stops);
    stops.push(() => h.disable());
  }

  if (o.gc !== false) {
    const hist = meter.createHistogram(N.gcDuration, {
      unit: 's',
      description: 'Garbage collection duration',
      advice: { explicitBucketBoundaries: [...(o.gcDurationBoundaries ?? DEFAULT_GC_DURATION_BOUNDARIES)] },
    });
    const unbinds: (() => void)[] = [];
    const byKind = new Map<number, Recorder>();
    for (const [kind, type] of GC_TYPES) byKind.set(kind, recorderFor(hist, Object.freeze({ 'v8js.gc.type': type }), unbinds));
    let other: Recorder | undefined;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? -1;
        let rec = byKind.get(kind);
        if (rec === undefined) rec = other ??= recorderFor(hist, Object.freeze({ 'v8js.gc.type': 'other' }), unbinds);
        rec(e.duration / 1000);
      }
    });
    obs.observe({ entryTypes: ['gc'] });
    stops.push(() => {
      obs.disconnect();
      for (const u of unbinds) u();
    });
  }

  if (o.heap !== false) {
    const used = meter.createObservableUpDownCounter(N.heapUsed, { unit: 'By', description: 'V8 heap memory used, by heap space' });
    const limit = meter.createObservableUpDownCounter(N.heapLimit, { unit: 'By', description: 'V8 heap memory reserved, by heap space' });
    const available = meter.createObservableUpDownCounter(N.heapSpaceAvailable, { unit: 'By', description: 'V8 heap space available size' });
    const physical = meter.createObservableUpDownCounter(N.heapSpacePhysical, { unit: 'By', description: 'V8 heap space committed size' });
    const attrsOf = new Map<string, Attributes>();
    const cb: BatchObservableCallback = (r) => {
      for (const s of v8.getHeapSpaceStatistics()) {
        let a = attrsOf.get(s.space_name);
        if (a === undefined) {
          a = Object.freeze({ 'v8js.heap.space.name': s.space_name });
          attrsOf.set(s.space_name, a);
        }
        r.observe(used, s.space_used_size, a);
        r.observe(limit, s.space_size, a);
        r.observe(available, s.space_available_size, a);
        r.observe(physical, s.physical_space_size, a);
      }
    };
    addBatch(meter, cb, [used, limit, available, physical], stops);
  }

  if (o.process !== false) {
    const cpu = meter.createObservableCounter(N.cpuTime, { unit: 's', description: 'CPU time used by the process, by CPU mode' });
    const rss = meter.createObservableUpDownCounter(N.memoryUsage, { unit: 'By', description: 'Resident set size of the process' });
    const uptime = meter.createObservableGauge(N.uptime, { unit: 's', description: 'Time since the process started' });
    const USER = Object.freeze({ 'cpu.mode': 'user' });
    const SYSTEM = Object.freeze({ 'cpu.mode': 'system' });
    const cb: BatchObservableCallback = (r) => {
      const c = process.cpuUsage();
      r.observe(cpu, c.user / 1e6, USER);
      r.observe(cpu, c.system / 1e6, SYSTEM);
      r.observe(rss, process.memoryUsage.rss());
      r.observe(uptime, process.uptime());
    };
    addBatch(meter, cb, [cpu, rss, uptime], stops);
  }

  if (o.resources !== false && typeof process.getActiveResourcesInfo === 'function') {
    const active = meter.createObservableUpDownCounter(N.resourcesActive, {
      unit: '{resource}',
      description: 'Active resources keeping the event loop alive, by type (process.getActiveResourcesInfo())',
    });
    // Types seen once keep being reported (as 0 when gone), so their series do not vanish.
    const counts = new Map<string, number>();
    const attrsOf = new Map<string, Attributes>();
    const cb: BatchObservableCallback = (r) => {
      for (const k of counts.keys()) counts.set(k, 0);
      for (const t of process.getActiveResourcesInfo()) {
        const key = counts.has(t) || counts.size < MAX_RESOURCE_TYPES ? t : 'other';
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [t, n] of counts) {
        let a = attrsOf.get(t);
        if (a === undefined) {
          a = Object.freeze({ 'v8js.resource.type': t });
          attrsOf.set(t, a);
        }
        r.observe(active, n, a);
      }
    };
    addBatch(meter, cb, [active], stops);
  }

  let running = true;
  return {
    stop(): void {
      if (!running) return;
      running = false;
      for (const s of stops) {
        try {
          s();
        } catch {
          // A provider that already shut down may refuse; nothing else to release.
        }
      }
    },
    get running(): boolean {
      return running;
    },
  };
}
