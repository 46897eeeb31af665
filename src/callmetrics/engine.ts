// MetricsEngine: duration and count of calls to the APIs an agent depends on, published
// for Prometheus on a local port.
//
// Hot path. Each (api type, call name) gets a CallSeries once: six bound handles (the
// duration sketch, the last-duration gauge, the in-flight up-down counter, and the call
// counter for each outcome), cached in a Map of Maps keyed by the two strings (no key is
// built; a one-entry cache catches repeated names). recordCall() is then the lookup,
// one clock read, one small object and a link into the pending list, and +1 on the
// in-flight cell; end() is a clock read, an unlink, and four typed-array writes
// (duration, last duration, outcome counter, in-flight). instrument() resolves the series
// once, when it wraps, so a wrapped call skips the lookup too.
//
// Timeouts. Pending calls sit in a DeadlineList (./deadlines): in start order, with one
// unref'd timer for the oldest one's deadline. An expired call is unlinked and counted
// (outcome="timeout", in-flight -1); its end() is a no-op, like every end() after the first.
//
// Size: one file on purpose (~560 lines): the engine's public surface, its series cache and
// its publishing are one lifecycle (init, publish, shutdown) that reads best in one place;
// the deadline list, the only part with invariants of its own, is deadlines.ts.
import { performance } from 'node:perf_hooks';
import type { Attributes, MetricAdvice } from '@opentelemetry/api';
import type { BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter } from '../api/handles';
import type { Counter, Gauge, Histogram, UpDownCounter } from '../api/instruments';
import type { MetricProducer, MetricReader } from '../export/reader';
import { PrometheusExporter } from '../exporters/prometheus/exporter';
import { warnLimited } from '../sdk/diag';
import { MeterProvider } from '../sdk/meter-provider';
import { RuntimeMetrics, RuntimeMetricsOptions, startRuntimeMetrics } from '../runtime/runtime-metrics';
import {
  ATTR_API_TYPE,
  ATTR_CALL_NAME,
  ATTR_OUTCOME,
  CALL_METRICS_SCOPE,
  CallMetricNames,
  callMetricNames,
  DEFAULT_CALL_METRICS_PREFIX,
  OUTCOME_ERROR,
  OUTCOME_OK,
  OUTCOME_TIMEOUT,
  validPrefix,
} from './naming';
import { DeadlineList, DeadlineNode, ENDED, MAX_TIMER_MS, PENDING } from './deadlines';
import { callMetricsSelector, DEFAULT_CALL_RELATIVE_ACCURACY, DEFAULT_CALL_SKETCH_BINS } from './selector';

/** Ends a call. The first call counts; later ones do nothing. */
export type EndCall = (error?: unknown) => void;

/** Any function `instrument()` can wrap. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFunction = (...args: any[]) => any;

/** Configuration of {@link MetricsEngine}. */
export interface MetricsEngineConfig {
  /** Record and publish. When false every method is a no-op. Default true. */
  enabled?: boolean;
  /** Interface publishMetrics() listens on. Default '127.0.0.1'. */
  host?: string;
  /** Port publishMetrics() listens on; 0 picks a free one. Default 9464. */
  port?: number;
  /** Path served by publishMetrics(). Default '/metrics'. */
  endpoint?: string;
  /** Namespace of the instrument names: `<prefix>.call.duration` etc. Default 'hotmeter'. */
  prefix?: string;
  /** Quantiles of the duration summary, each in [0, 1]. Default [0.5, 0.9, 0.99]. */
  quantiles?: readonly number[];
  /** Relative accuracy of the duration quantiles, [1e-6, 1). Default 0.01. */
  relativeAccuracy?: number;
  /** Bins of each duration sketch, 2..4096 (8 bytes each). Default 1024. */
  sketchBins?: number;
  /**
   * A call whose end() has not come after this many ms is dropped and counted with
   * outcome="timeout". 0 or Infinity: calls never time out (and are not tracked).
   * Default 120 000 (2 minutes).
   */
  callTimeoutMs?: number;
  /**
   * Distinct (api type, call name) pairs; later pairs share one series with the
   * attribute otel.metric.overflow=true. Default 1000.
   */
  maxCallSeries?: number;
  /**
   * Record into this provider instead of one the engine creates. Build it with
   * `aggregationSelector: callMetricsSelector()` so durations are quantile sketches, and
   * attach your own readers: publishMetrics() is then not available.
   */
  meterProvider?: MeterProvider;
  /** Resource of the engine's own provider (rendered as target_info). */
  resource?: { attributes: Attributes };
  /** More readers for the engine's own provider (an OTLP push controller, ...). */
  readers?: MetricReader[];
  /** Node.js runtime and process metrics into the same provider. Default false. */
  runtimeMetrics?: boolean | RuntimeMetricsOptions;
  /** Monotonic clock in ms. Default performance.now(). */
  clock?: () => number;
}

/** How long a call may run before it counts as `timeout` (`callTimeoutMs`), ms. */
export const DEFAULT_CALL_TIMEOUT_MS = 120_000;
/** At most this many (api type, call name) series by default (`maxCallSeries`). */
export const DEFAULT_MAX_CALL_SERIES = 1000;
/** The call duration summary's quantiles by default. */
export const DEFAULT_QUANTILES: readonly number[] = Object.freeze([0.5, 0.9, 0.99]);
/** The port `publishMetrics()` listens on by default. */
export const DEFAULT_METRICS_PORT = 9464;

/** The shared end() of a disabled engine. */
const NOOP_END: EndCall = () => {};
const disabledRecordCall = (_apiType: string, _callName: string): EndCall => NOOP_END;
const disabledInstrument = <F extends AnyFunction>(_apiType: string, _callName: string, fn: F): F => fn;

/**
 * The handles of one (api type, call name). The last-duration gauge is bound when the
 * first call ends, so a series never shows a last duration of 0 that no call had.
 */
class CallSeries {
  lastDuration: BoundGauge | null = null;

  constructor(
    readonly attrs: Attributes,
    readonly lastDurationGauge: Gauge,
    readonly duration: BoundHistogram,
    readonly active: BoundUpDownCounter,
    readonly ok: BoundCounter,
    readonly error: BoundCounter,
    readonly timeout: BoundCounter,
  ) {}

  bindLastDuration(): BoundGauge {
    const g = this.lastDurationGauge.bind(this.attrs);
    this.lastDuration = g;
    return g;
  }

  unbind(): void {
    this.duration.unbind();
    this.lastDuration?.unbind();
    this.active.unbind();
    this.ok.unbind();
    this.error.unbind();
    this.timeout.unbind();
  }
}

/** A started call: a node of the deadline list while it is pending. */
class PendingCall implements DeadlineNode<PendingCall> {
  prev: PendingCall | null = null;
  next: PendingCall | null = null;
  state = PENDING;
  constructor(
    readonly series: CallSeries,
    readonly start: number,
  ) {}
}

/**
 * The engine's reader on its own provider: readers must be given when a provider is
 * built, the Prometheus endpoint only comes with publishMetrics(). Hands the provider's
 * producer to the exporter then.
 */
class EngineReader implements MetricReader {
  private producer: MetricProducer | undefined;
  private readonly targets: MetricReader[] = [];

  setMetricProducer(producer: MetricProducer): void {
    this.producer = producer;
  }

  attach(reader: MetricReader): void {
    if (this.producer === undefined) throw new Error('hotmeter: the engine reader is not attached');
    reader.setMetricProducer(this.producer);
    this.targets.push(reader);
  }

  detach(reader: MetricReader): void {
    const i = this.targets.indexOf(reader);
    if (i >= 0) this.targets.splice(i, 1);
  }

  async forceFlush(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.forceFlush?.()));
  }

  async shutdown(): Promise<void> {
    const targets = this.targets.splice(0);
    await Promise.all(targets.map((t) => t.shutdown?.()));
  }
}

interface ResolvedConfig {
  host: string;
  port: number;
  endpoint: string;
  names: CallMetricNames;
  quantiles: readonly number[];
  timeoutMs: number;
  maxCallSeries: number;
}

/**
 * Measures calls to the APIs an agent depends on: per (api type, call name) a duration
 * summary with quantiles, a call counter by outcome, the last duration and the calls in
 * flight. See the README's "Call metrics" section.
 */
export class MetricsEngine {
  /**
   * Starts measuring one call; returns its end(). `end()` or `end(null)` counts it as ok,
   * `end(error)` (anything but undefined, null or false) as an error. Only the first
   * end() counts; an end() after the call timed out does nothing.
   */
  recordCall: (apiType: string, callName: string) => EndCall = disabledRecordCall;

  /**
   * Wraps `fn`: each call of the wrapper is measured until `fn` returns or throws, or,
   * when it returns a promise (a thenable), until it settles. Throws and rejections count
   * as errors and are rethrown unchanged. A disabled engine returns `fn` itself.
   */
  instrument: <F extends AnyFunction>(apiType: string, callName: string, fn: F) => F = disabledInstrument;

  private initialised = false;
  private enabledFlag = false;
  /** Recording (enabled and not shut down). Read by wrappers on every call. */
  private live = false;
  private cfg: ResolvedConfig | undefined;
  private provider: MeterProvider | undefined;
  private ownsProvider = false;
  private reader: EngineReader | undefined;
  private exporter: PrometheusExporter | undefined;
  private publishing: Promise<string> | undefined;
  private publishedUrl: string | undefined;
  private runtime: RuntimeMetrics | undefined;

  private durationHistogram: Histogram | undefined;
  private lastDurationGauge: Gauge | undefined;
  private activeCounter: UpDownCounter | undefined;
  private callsCounter: Counter | undefined;

  private readonly seriesByApi = new Map<string, Map<string, CallSeries>>();
  private seriesCount = 0;
  private overflowSeries: CallSeries | undefined;
  private lastApi: string | undefined;
  private lastName: string | undefined;
  private lastSeries: CallSeries | undefined;

  private now: () => number = () => performance.now();
  /** The pending calls; undefined when calls never time out (and are not tracked). */
  private deadlines: DeadlineList<PendingCall> | undefined;

  constructor(config?: MetricsEngineConfig) {
    if (config !== undefined) this.init(config);
  }

  /**
   * Configures the engine (once). Throws a TypeError on an invalid configuration. With
   * `enabled: false` nothing is created and every method stays a no-op.
   */
  init(config: MetricsEngineConfig = {}): this {
    if (this.initialised) throw new Error('hotmeter: MetricsEngine.init() may be called once');
    if (config === null || typeof config !== 'object') throw new TypeError('hotmeter: MetricsEngine config must be an object');
    if (config.enabled === false) {
      this.initialised = true;
      return this;
    }
    const cfg = resolveConfig(config);
    if (config.clock !== undefined && typeof config.clock !== 'function') throw new TypeError('hotmeter: clock must be a function returning ms');
    if (config.meterProvider !== undefined && !(config.meterProvider instanceof MeterProvider)) {
      throw new TypeError('hotmeter: meterProvider must be a hotmeter MeterProvider');
    }
    this.initialised = true;
    this.cfg = cfg;
    if (config.clock !== undefined) this.now = config.clock;
    if (cfg.timeoutMs > 0 && cfg.timeoutMs < Infinity) {
      this.deadlines = new DeadlineList<PendingCall>(cfg.timeoutMs, this.now, (c) => {
        c.series.timeout.add(1);
        c.series.active.add(-1);
      });
    }

    if (config.meterProvider !== undefined) {
      this.provider = config.meterProvider;
    } else {
      this.reader = new EngineReader();
      this.provider = new MeterProvider({
        resource: config.resource,
        readers: [this.reader, ...(config.readers ?? [])],
        aggregationSelector: callMetricsSelector({
          prefix: config.prefix ?? DEFAULT_CALL_METRICS_PREFIX,
          relativeAccuracy: config.relativeAccuracy ?? DEFAULT_CALL_RELATIVE_ACCURACY,
          maxSize: config.sketchBins ?? DEFAULT_CALL_SKETCH_BINS,
        }),
        // Three outcome series per call series, and the overflow series.
        cardinalityLimit: 3 * (cfg.maxCallSeries + 1) + 1,
      });
      this.ownsProvider = true;
    }

    const meter = this.provider.getMeter(CALL_METRICS_SCOPE);
    const n = cfg.names;
    this.durationHistogram = meter.createHistogram(n.duration, {
      unit: 's',
      description:
        'Duration of calls to dependent APIs, from start to end() or until the returned promise settles; ' +
        'ok and error calls (timed-out calls are not included)',
      // hotmeter extension: the quantiles a summary of this stream shows.
      advice: { quantiles: cfg.quantiles } as MetricAdvice,
    });
    this.callsCounter = meter.createCounter(n.calls, {
      unit: '{call}',
      description: 'Calls to dependent APIs by outcome: ok, error (threw, rejected or end(error)), timeout (no end() within the timeout)',
    });
    this.lastDurationGauge = meter.createGauge(n.lastDuration, {
      unit: 's',
      description: 'Duration of the latest call that ended',
    });
    this.activeCounter = meter.createUpDownCounter(n.active, {
      unit: '{call}',
      description: 'Calls started and not yet ended or timed out',
    });

    if (config.runtimeMetrics !== undefined && config.runtimeMetrics !== false) {
      this.runtime = startRuntimeMetrics(this.provider, config.runtimeMetrics === true ? {} : config.runtimeMetrics);
    }

    this.enabledFlag = true;
    this.live = true;
    this.recordCall = (apiType, callName) => this.recordCallEnabled(apiType, callName);
    this.instrument = (apiType, callName, fn) => this.instrumentEnabled(apiType, callName, fn);
    return this;
  }

  /** Whether the engine records (initialised with enabled !== false). */
  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** The provider the engine records into (undefined when disabled). */
  get meterProvider(): MeterProvider | undefined {
    return this.provider;
  }

  /** Calls started and neither ended nor timed out (tracked only with a timeout). */
  get pendingCalls(): number {
    return this.deadlines?.size ?? 0;
  }

  /** The URL of /metrics once publishMetrics() resolved. */
  get url(): string | undefined {
    return this.publishedUrl;
  }

  /** The OpenTelemetry names of the engine's instruments (the README maps them to Prometheus names). */
  get metricNames(): CallMetricNames | undefined {
    return this.cfg?.names;
  }

  /**
   * Serves the metrics for Prometheus on the configured host, port and endpoint
   * (`http://127.0.0.1:9464/metrics` by default). Resolves with the URL once listening;
   * a second call returns the same promise. A disabled engine resolves with undefined.
   * Rejects when the engine records into a provider passed in `meterProvider`.
   */
  publishMetrics(): Promise<string | undefined> {
    if (!this.enabledFlag) return Promise.resolve(undefined);
    if (!this.live) return Promise.reject(new Error('hotmeter: publishMetrics() after shutdown()'));
    if (this.publishing !== undefined) return this.publishing;
    const reader = this.reader;
    if (!this.ownsProvider || reader === undefined) {
      return Promise.reject(new Error('hotmeter: the engine records into your meterProvider; attach a PrometheusExporter to it instead'));
    }
    const cfg = this.cfg as ResolvedConfig;
    let exporter: PrometheusExporter;
    try {
      exporter = new PrometheusExporter({ host: cfg.host, port: cfg.port, endpoint: cfg.endpoint });
      reader.attach(exporter);
    } catch (e) {
      return Promise.reject(e);
    }
    this.exporter = exporter;
    const p = exporter.ready().then(
      () => (this.publishedUrl = exporter.url),
      async (e: unknown) => {
        reader.detach(exporter);
        if (this.exporter === exporter) this.exporter = undefined;
        this.publishing = undefined;
        await exporter.shutdown().catch(() => undefined);
        throw e;
      },
    );
    this.publishing = p;
    return p;
  }

  /**
   * Stops recording (later calls are no-ops, pending calls are dropped uncounted), stops
   * the runtime metrics and the endpoint, and shuts the engine's own provider down. A
   * provider passed in is left running; the engine's handles on it are released.
   */
  async shutdown(): Promise<void> {
    if (!this.live) return;
    this.live = false;
    this.recordCall = disabledRecordCall;
    this.instrument = disabledInstrument;
    // A provider passed in keeps running: leave no phantom in flight.
    this.deadlines?.close((c) => c.series.active.add(-1));
    this.runtime?.stop();
    this.runtime = undefined;
    for (const byName of this.seriesByApi.values()) for (const s of byName.values()) s.unbind();
    this.overflowSeries?.unbind();
    this.seriesByApi.clear();
    this.overflowSeries = this.lastSeries = undefined;
    this.lastApi = this.lastName = undefined;
    const publishing = this.publishing;
    if (publishing !== undefined) await publishing.catch(() => undefined);
    if (this.ownsProvider) await this.provider?.shutdown();
    else await this.exporter?.shutdown();
    this.exporter = undefined;
    this.publishing = undefined;
    this.publishedUrl = undefined;
  }

  // ---------------------------------------------------------------------------------
  // The hot path.

  private recordCallEnabled(apiType: string, callName: string): EndCall {
    const call = this.begin(this.seriesFor(apiType, callName));
    return (error?: unknown) => this.finish(call, error !== undefined && error !== null && error !== false);
  }

  private instrumentEnabled<F extends AnyFunction>(apiType: string, callName: string, fn: F): F {
    if (typeof fn !== 'function') throw new TypeError('hotmeter: instrument() needs a function');
    const series = this.seriesFor(apiType, callName);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const engine = this;
    const wrapped = function (this: unknown): unknown {
      // eslint-disable-next-line prefer-rest-params -- forwards the call without building a rest array
      if (!engine.live) return fn.apply(this, arguments as never);
      const call = engine.begin(series);
      let result: unknown;
      try {
        // eslint-disable-next-line prefer-rest-params -- as above
        result = fn.apply(this, arguments as never);
      } catch (e) {
        engine.finish(call, true);
        throw e;
      }
      if (result !== null && (typeof result === 'object' || typeof result === 'function')) {
        // A promise: measured until it settles; the caller gets the derived promise, so
        // a rejection nobody handles is still reported as unhandled. Other thenables
        // are adopted by a native promise (their then() may return anything).
        const isPromise = result instanceof Promise;
        if (isPromise || typeof (result as PromiseLike<unknown>).then === 'function') {
          return (isPromise ? (result as Promise<unknown>) : Promise.resolve(result)).then(
            (v: unknown) => {
              engine.finish(call, false);
              return v;
            },
            (e: unknown) => {
              engine.finish(call, true);
              throw e;
            },
          );
        }
      }
      engine.finish(call, false);
      return result;
    };
    Object.defineProperty(wrapped, 'name', { value: fn.name, configurable: true });
    Object.defineProperty(wrapped, 'length', { value: fn.length, configurable: true });
    return wrapped as unknown as F;
  }

  /** Starts a call on a series. */
  private begin(series: CallSeries): PendingCall {
    const call = new PendingCall(series, this.now());
    this.deadlines?.add(call);
    series.active.add(1);
    return call;
  }

  /** Ends a call (the first time only). */
  private finish(call: PendingCall, failed: boolean): void {
    if (call.state !== PENDING) return;
    call.state = ENDED;
    const elapsed = this.now() - call.start;
    const seconds = elapsed > 0 ? elapsed / 1000 : 0;
    this.deadlines?.remove(call);
    const s = call.series;
    s.duration.record(seconds);
    (s.lastDuration ?? s.bindLastDuration()).record(seconds);
    (failed ? s.error : s.ok).add(1);
    s.active.add(-1);
  }

  private seriesFor(apiType: string, callName: string): CallSeries {
    if (apiType === this.lastApi && callName === this.lastName) return this.lastSeries as CallSeries;
    if (typeof apiType !== 'string' || typeof callName !== 'string') {
      // Not cached under the raw key: arbitrary objects must not accumulate in the map.
      return this.lookupSeries(String(apiType), String(callName));
    }
    const s = this.lookupSeries(apiType, callName);
    this.lastApi = apiType;
    this.lastName = callName;
    this.lastSeries = s;
    return s;
  }

  private lookupSeries(apiType: string, callName: string): CallSeries {
    let byName = this.seriesByApi.get(apiType);
    const found = byName?.get(callName);
    if (found !== undefined) return found;
    const cfg = this.cfg as ResolvedConfig;
    if (this.seriesCount >= cfg.maxCallSeries) {
      warnLimited('callmetrics-overflow', `call metrics: more than ${cfg.maxCallSeries} (api type, call name) pairs; later ones are counted in the otel.metric.overflow series`);
      if (this.overflowSeries === undefined) this.overflowSeries = this.createSeries({ 'otel.metric.overflow': true });
      return this.overflowSeries;
    }
    const s = this.createSeries({ [ATTR_API_TYPE]: apiType, [ATTR_CALL_NAME]: callName });
    if (byName === undefined) {
      byName = new Map();
      this.seriesByApi.set(apiType, byName);
    }
    byName.set(callName, s);
    this.seriesCount++;
    return s;
  }

  private createSeries(attrs: Attributes): CallSeries {
    const calls = this.callsCounter as Counter;
    return new CallSeries(
      attrs,
      this.lastDurationGauge as Gauge,
      (this.durationHistogram as Histogram).bind(attrs),
      (this.activeCounter as UpDownCounter).bind(attrs),
      calls.bind({ ...attrs, [ATTR_OUTCOME]: OUTCOME_OK }),
      calls.bind({ ...attrs, [ATTR_OUTCOME]: OUTCOME_ERROR }),
      calls.bind({ ...attrs, [ATTR_OUTCOME]: OUTCOME_TIMEOUT }),
    );
  }
}

function resolveConfig(config: MetricsEngineConfig): ResolvedConfig {
  const host = config.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw new TypeError('hotmeter: host must be a non-empty string');
  const port = config.port ?? DEFAULT_METRICS_PORT;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new TypeError('hotmeter: port must be an integer in [0, 65535]');
  const endpoint = config.endpoint ?? '/metrics';
  if (typeof endpoint !== 'string' || !endpoint.startsWith('/')) throw new TypeError("hotmeter: endpoint must be a path starting with '/'");
  const prefix = config.prefix ?? DEFAULT_CALL_METRICS_PREFIX;
  if (typeof prefix !== 'string' || !validPrefix(prefix)) {
    throw new TypeError('hotmeter: prefix must start with a letter and contain only [A-Za-z0-9_.-] (no trailing dot)');
  }
  const q = config.quantiles ?? DEFAULT_QUANTILES;
  if (!Array.isArray(q) || q.length === 0 || !q.every((x) => typeof x === 'number' && x >= 0 && x <= 1)) {
    throw new TypeError('hotmeter: quantiles must be a non-empty array of numbers in [0, 1]');
  }
  const quantiles = Object.freeze([...new Set(q as number[])].sort((a, b) => a - b));
  const timeoutMs = config.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  if (!(typeof timeoutMs === 'number' && (timeoutMs === Infinity || (timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)))) {
    throw new TypeError(`hotmeter: callTimeoutMs must be 0, Infinity or a number of ms in [0, ${MAX_TIMER_MS}]`);
  }
  const maxCallSeries = config.maxCallSeries ?? DEFAULT_MAX_CALL_SERIES;
  if (!(Number.isInteger(maxCallSeries) && maxCallSeries > 0)) throw new TypeError('hotmeter: maxCallSeries must be a positive integer');
  const a = config.relativeAccuracy;
  if (a !== undefined && !(typeof a === 'number' && a >= 1e-6 && a < 1)) throw new TypeError('hotmeter: relativeAccuracy must be in [1e-6, 1)');
  const rt = config.runtimeMetrics;
  if (rt !== undefined && typeof rt !== 'boolean' && (rt === null || typeof rt !== 'object')) {
    throw new TypeError('hotmeter: runtimeMetrics must be a boolean or an options object');
  }
  const res = typeof rt === 'object' ? rt.eventLoopDelayResolutionMs : undefined;
  if (res !== undefined && !(Number.isInteger(res) && res >= 1)) throw new TypeError('hotmeter: eventLoopDelayResolutionMs must be an integer >= 1');
  const m = config.sketchBins;
  if (m !== undefined && !(Number.isInteger(m) && m >= 2 && m <= 4096)) throw new TypeError('hotmeter: sketchBins must be an integer in [2, 4096]');
  return { host, port, endpoint, names: callMetricNames(prefix), quantiles, timeoutMs, maxCallSeries };
}
