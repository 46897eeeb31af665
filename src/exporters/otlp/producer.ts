// The bridge to OpenTelemetry JS readers: a hotmeter reader (it is given to a MeterProvider
// and collects from it under its own reader epoch) that is also an OpenTelemetry JS
// `MetricProducer` (sdk-metrics' readers call its `collect()` and get `ResourceMetrics`).
//
//   new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter })] })
//
// works because the provider wraps every OpenTelemetry JS reader it is given in a
// HotmeterMetricProducer (see isOtelMetricReader): the producer asks the reader for its
// temporality per instrument type (its aggregation and series limit per instrument type
// become streams of its own at the provider: streamSettings), collects and converts. From a
// MeterProvider (which offers collectChanges) it converts incrementally (./incremental.ts:
// only what changed since its previous collection); from any other source it collects a
// CheckpointSet and batches it (an UngroupedBatcher of its own for sums, gauges and
// histograms; ExponentialDeltaState for exponential histograms) before converting. The
// provider's forceFlush() and shutdown() reach the reader through it, and a
// reader's shutdown (which collects and exports one last time) runs before the provider
// stops recording.
//
// Invariants:
//  * Collections reach the batcher in order, each once: concurrent collect() calls are
//    queued, each one collects afresh.
//  * One producer serves one provider (setMetricProducer throws the second time), as one
//    sdk-metrics reader serves one MeterProvider.
//  * hotmeter needs no OpenTelemetry SDK package: the reader is recognised by its methods,
//    and the data is built from the structural types in ./types.
import { Batcher, UngroupedBatcher } from '../../export/batchers';
import { Aggregation, CheckpointRecord, CheckpointSet, ExponentialHistogramAggregation } from '../../export/checkpoint-set';
import type { MetricProducer, MetricReader } from '../../export/reader';
import { registerReaderAdapter } from '../../export/reader-adapters';
import { AggregationTemporality, TemporalityPreference, temporalitySelector } from '../../export/temporality';
import { compatible } from '../../export/aggregation-selector';
import { AggregationKind } from '../../sdk/aggregation';
import { InstrumentKind } from '../../sdk/descriptor';
import { fromSdkAggregation, SdkAggregationOption, StreamSettings } from '../../sdk/view';
import { otelInstrumentType, OtelPointSource, toOtelResource, toOtelResourceMetrics } from './convert';
import { ExponentialDeltaState } from './exponential-delta';
import { IncrementalConverter } from './incremental';
import type {
  OtelCollectionResult,
  OtelInstrumentType,
  OtelMetricCollectOptions,
  OtelMetricProducer,
  OtelMetricReader,
  OtelResource,
  OtelResourceMetrics,
} from './types';

/** Options of {@link HotmeterMetricProducer}. */
export interface HotmeterMetricProducerOptions {
  /**
   * An OpenTelemetry JS reader (`PeriodicExportingMetricReader`, any sdk-metrics
   * `MetricReader`) to feed: the producer calls its `setMetricProducer(this)` when the
   * provider attaches the producer, takes its temporality from the reader's
   * `selectAggregationTemporality`, and forwards the provider's `forceFlush()` and
   * `shutdown()` to it. Giving the reader itself to the provider does the same.
   */
  reader?: OtelMetricReader;
  /**
   * Without a reader: the temporality of the points, one value or per instrument kind.
   * Default CUMULATIVE.
   */
  temporality?: TemporalityPreference;
  /** Drop delta state of series unseen for this many collections. Default 10. */
  maxIdleCollections?: number;
}

/**
 * Whether `reader` is an OpenTelemetry JS metric reader (sdk-metrics' `IMetricReader`:
 * `setMetricProducer`, `collect`, `selectAggregationTemporality`, `selectAggregation`,
 * `forceFlush` and `shutdown` are functions) rather than a hotmeter reader. hotmeter's
 * own readers (PushController, PullController, PrometheusExporter, HotmeterMetricProducer)
 * have no `selectAggregation`.
 */
export function isOtelMetricReader(reader: unknown): reader is OtelMetricReader {
  if (reader === null || (typeof reader !== 'object' && typeof reader !== 'function')) return false;
  if (reader instanceof HotmeterMetricProducer) return false;
  const r = reader as Record<string, unknown>;
  try {
    return (
      typeof r.setMetricProducer === 'function' &&
      typeof r.collect === 'function' &&
      typeof r.selectAggregationTemporality === 'function' &&
      typeof r.selectAggregation === 'function' &&
      typeof r.forceFlush === 'function' &&
      typeof r.shutdown === 'function'
    );
  } catch {
    return false;
  }
}

/** sdk-metrics' default series limit per stream (MetricReader.selectCardinalityLimit without a selector). */
const SDK_DEFAULT_CARDINALITY_LIMIT = 2000;

/**
 * A hotmeter reader that is an OpenTelemetry JS `MetricProducer`: `collect()` resolves
 * to `{ resourceMetrics, errors }` with sdk-metrics' `ResourceMetrics`, so OpenTelemetry
 * JS readers and exporters (OTLP over HTTP/JSON, HTTP/protobuf, gRPC, console, in-memory)
 * work unchanged. Usually you do not create one: give the OpenTelemetry reader to the
 * MeterProvider. To wire one by hand (for example as an additional producer of an
 * sdk-metrics reader):
 *
 *     const producer = new HotmeterMetricProducer({ temporality: AggregationTemporality.DELTA });
 *     const provider = new MeterProvider({ readers: [producer] });
 *     const reader = new PeriodicExportingMetricReader({ exporter, metricProducers: [producer] });
 *
 * Each producer collects under its own reader epoch (expiry, `reclaimIdleMillis`, waits
 * for it), so one that is never collected keeps every series alive: shut it down (with
 * the provider) when it is no longer read.
 *
 * Delivery (what expiry waits for): when the OpenTelemetry reader has a push exporter
 * (`PeriodicExportingMetricReader`'s `_exporter`, an object with `export(metrics,
 * callback)`), the producer wraps that exporter's `export` and counts a collection as
 * delivered when an export of its metrics calls back SUCCESS (a failed export delivered
 * nothing; a collection split into batches by `maxExportBatchSize` may never be
 * recognised, and then keeps its series from expiring). Any other reader (a pull reader,
 * a reader without such an exporter, or no reader) gives no way to learn the export's
 * result: each collection counts as delivered when it is taken.
 */
export class HotmeterMetricProducer implements MetricReader, OtelMetricProducer {
  /** The OpenTelemetry JS reader this producer feeds, if any. */
  readonly reader: OtelMetricReader | undefined;
  /** The batcher that applies temporality to sums, gauges and histograms. */
  readonly batcher: Batcher;
  private readonly exponential = new ExponentialDeltaState();
  private readonly temporalityOf: (kind: InstrumentKind) => AggregationTemporality;
  /** Conversions kept across collections (when the provider offers collectChanges). */
  private readonly incremental: IncrementalConverter;
  private source: MetricProducer | undefined;
  private resource: OtelResource | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Set once the reader's exporter is wrapped (see the class comment). */
  private tracksDelivery = false;
  /** The collection epoch of each ScopeMetrics object handed out (a batch split builds new ones: not recognised). */
  private readonly epochOf = new WeakMap<object, number>();

  /** Every collection builds attribute objects (MetricReader.decodesAttributes). */
  readonly decodesAttributes = true;

  /** True once the reader's exporter reports export results (MetricReader.reportsDelivery). */
  get reportsDelivery(): boolean {
    return this.tracksDelivery;
  }

  /** @param options the OpenTelemetry reader to feed, or a temporality. */
  constructor(options: HotmeterMetricProducerOptions = {}) {
    const opts = options !== null && typeof options === 'object' ? options : {};
    if (opts.reader !== undefined && !isOtelMetricReader(opts.reader)) {
      throw new TypeError('hotmeter: HotmeterMetricProducer reader must be an OpenTelemetry JS MetricReader');
    }
    this.reader = opts.reader;
    const reader = this.reader;
    const preference: TemporalityPreference | undefined =
      reader !== undefined
        ? (kind: InstrumentKind) => reader.selectAggregationTemporality(otelInstrumentType(kind)) as AggregationTemporality
        : opts.temporality;
    this.batcher = new UngroupedBatcher({ temporality: preference, maxIdleCollections: opts.maxIdleCollections });
    this.temporalityOf = temporalitySelector(preference);
    this.incremental = new IncrementalConverter(this.temporalityOf, this.batcher.maxIdleCollections);
  }

  /**
   * Called once by the MeterProvider this producer is given to. Hands the producer to
   * its OpenTelemetry reader, which may start its export timer.
   */
  setMetricProducer(source: MetricProducer): void {
    if (this.source !== undefined) throw new Error('hotmeter: a HotmeterMetricProducer serves one MeterProvider');
    this.source = source;
    this.resource = toOtelResource(source.resource);
    if (this.reader !== undefined) {
      this.tracksDelivery = this.wrapExporter(this.reader);
      this.reader.setMetricProducer(this);
    }
  }

  /**
   * @internal The reader's own stream settings for instruments of `kind` that no view
   * matches, from sdk-metrics' `selectAggregation` and `selectCardinalityLimit` (as
   * sdk-metrics applies them); undefined: the provider's. A limit of 2000 (sdk-metrics'
   * default, which every PeriodicExportingMetricReader reports) is no preference: the
   * provider's cardinalityLimit applies. Throws a TypeError when the reader asks for what
   * hotmeter cannot do (the provider's constructor calls this).
   */
  streamSettings(kind: InstrumentKind): StreamSettings | undefined {
    const r = this.reader;
    if (r === undefined) return undefined;
    const type = otelInstrumentType(kind);
    const wanted = r.selectAggregation(type) as unknown;
    const agg = wanted === undefined || wanted === null ? { recordMinMax: true } : fromSdkAggregation(wanted as SdkAggregationOption, `reader.selectAggregation(${type})`);
    if (agg.aggregation !== undefined && !compatible(kind, agg.aggregation)) {
      throw new TypeError(`hotmeter: reader.selectAggregation(${type}) asks for ${AggregationKind[agg.aggregation]}, which cannot aggregate ${type} instruments`);
    }
    let cardinalityLimit: number | undefined;
    const sel = (r as { selectCardinalityLimit?: (t: OtelInstrumentType) => unknown }).selectCardinalityLimit;
    if (typeof sel === 'function') {
      const l = sel.call(r, type);
      if (!(Number.isInteger(l) && (l as number) > 0)) throw new TypeError(`hotmeter: reader.selectCardinalityLimit(${type}) must return a positive integer`);
      if (l !== SDK_DEFAULT_CARDINALITY_LIMIT) cardinalityLimit = l as number;
    }
    if (agg.aggregation === undefined && agg.boundaries === undefined && agg.params === undefined && agg.recordMinMax && cardinalityLimit === undefined) return undefined;
    return { ...agg, cardinalityLimit };
  }

  /**
   * Collects from the provider and resolves to OpenTelemetry JS `ResourceMetrics` in the
   * temporality the reader selects. Rejects when the producer is not attached to a
   * provider or the provider was shut down. `options.timeoutMillis` is not used: the
   * provider's `callbackTimeoutMillis` bounds observable callbacks. `errors` is always
   * empty: failing callbacks are reported through `diag`, as every hotmeter diagnostic.
   */
  collect(_options?: OtelMetricCollectOptions): Promise<OtelCollectionResult> {
    const run = this.queue.then(() => this.collectNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Asks the OpenTelemetry reader, if any, to collect and export now. */
  async forceFlush(): Promise<void> {
    if (this.reader !== undefined && !this.closed) await this.reader.forceFlush();
  }

  /**
   * Shuts the OpenTelemetry reader, if any, down: a PeriodicExportingMetricReader
   * collects and exports one last time, then shuts its exporter down. Idempotent. The
   * provider calls this before it stops recording.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reader !== undefined) await this.reader.shutdown();
  }

  private async collectNow(): Promise<OtelCollectionResult> {
    const source = this.source;
    if (source === undefined) {
      throw new Error('hotmeter: HotmeterMetricProducer is not attached to a MeterProvider (give it, or the OpenTelemetry reader, to the provider as one of its readers)');
    }
    let resourceMetrics: OtelResourceMetrics;
    let epoch: number;
    if (source.collectChanges !== undefined) {
      const mode = this.incremental.nextMode();
      const c = await source.collectChanges(mode);
      try {
        resourceMetrics = await this.incremental.convert(c, mode, this.resource!);
      } finally {
        c.done();
      }
      epoch = c.epoch;
    } else {
      const set = await source.collect();
      resourceMetrics = toOtelResourceMetrics(this.prepare(set), { resource: this.resource, temporality: this.temporalityOf });
      epoch = set.epoch;
    }
    // A push reader of a processShared fleet exports only from the process that holds
    // the push lease (MetricProducer.pushes); the others still convert each collection,
    // so a delta reader that takes over starts from its own last collection.
    // Its empty exports are not delivered: this reader keeps this process from expiring
    // the fleet's series (the pushing process's delivered exports let it expire them).
    const passive = this.tracksDelivery && source.pushes !== undefined && !source.pushes();
    if (passive) resourceMetrics = { resource: resourceMetrics.resource, scopeMetrics: [] };
    if (this.tracksDelivery) {
      const scopes = resourceMetrics.scopeMetrics as unknown as object[];
      // Nothing to export (a PeriodicExportingMetricReader then calls no exporter): delivered.
      if (scopes.length === 0 && !passive) source.delivered?.(epoch);
      for (const sm of scopes) this.epochOf.set(sm, epoch);
    }
    return { resourceMetrics, errors: [] };
  }

  /**
   * Replaces the reader's push exporter (`_exporter`) by one that forwards everything to
   * it and reports successful exports of this producer's collections as delivered. False
   * (nothing changed) when the reader has no such exporter.
   */
  private wrapExporter(reader: OtelMetricReader): boolean {
    type Exp = {
      export(metrics: unknown, callback: (result: { code?: unknown }) => void): void;
      forceFlush?(): Promise<void>;
      shutdown?(): Promise<void>;
      selectAggregationTemporality?(t: unknown): unknown;
      selectAggregation?(t: unknown): unknown;
    };
    const holder = reader as unknown as { _exporter?: unknown };
    let inner: Exp;
    try {
      const e = holder._exporter as Exp | undefined;
      if (e === null || typeof e !== 'object' || typeof e.export !== 'function') return false;
      inner = e;
    } catch {
      return false;
    }
    const wrapper: Exp = {
      export: (metrics, callback) => {
        const epoch = this.epochIn(metrics);
        inner.export(metrics, (result) => {
          // ExportResultCode.SUCCESS is 0.
          if (epoch !== undefined && result !== null && typeof result === 'object' && result.code === 0) this.source?.delivered?.(epoch);
          callback(result);
        });
      },
      forceFlush: () => (typeof inner.forceFlush === 'function' ? inner.forceFlush() : Promise.resolve()),
      shutdown: () => (typeof inner.shutdown === 'function' ? inner.shutdown() : Promise.resolve()),
    };
    if (typeof inner.selectAggregationTemporality === 'function') wrapper.selectAggregationTemporality = (t) => inner.selectAggregationTemporality!(t);
    if (typeof inner.selectAggregation === 'function') wrapper.selectAggregation = (t) => inner.selectAggregation!(t);
    try {
      holder._exporter = wrapper;
      return holder._exporter === wrapper;
    } catch {
      return false;
    }
  }

  /** The latest collection epoch of this producer's ScopeMetrics objects among `metrics`' scopes. */
  private epochIn(metrics: unknown): number | undefined {
    let epoch: number | undefined;
    const scopes = (metrics as { scopeMetrics?: unknown } | null)?.scopeMetrics;
    if (!Array.isArray(scopes)) return undefined;
    const note = (o: unknown): void => {
      const e = o !== null && typeof o === 'object' ? this.epochOf.get(o) : undefined;
      if (e !== undefined && (epoch === undefined || e > epoch)) epoch = e;
    };
    for (const sm of scopes) note(sm);
    return epoch;
  }

  /**
   * Batches one collection: temporality for every kind. Metrics keep their registration
   * order, except that exponential histograms come after the others.
   */
  private prepare(set: CheckpointSet): OtelPointSource[] {
    const batchable: CheckpointRecord[] = [];
    const exponential: CheckpointRecord[] = [];
    for (const r of set) {
      const a = r.aggregation;
      if (a.kind === 'exponentialHistogram') exponential.push(r);
      else if (a.kind === 'sketch' || a.kind === 'exact') {
        // Exported as a bucketless histogram (count, sum, min, max): batch it as one.
        const mmsc: Aggregation = { kind: 'minMaxSumCount', count: a.count, sum: a.sum, min: a.min, max: a.max };
        batchable.push({ ...r, aggregation: mmsc });
      } else batchable.push(r);
    }
    const out: OtelPointSource[] = [...this.batcher.process(new CheckpointSet(batchable, set.time, set.epoch))];
    this.exponential.begin();
    for (const r of exponential) {
      if (this.temporalityOf(r.descriptor.kind) !== AggregationTemporality.DELTA) {
        out.push(r);
        continue;
      }
      const p = this.exponential.next(r.seriesId, r.aggregation as ExponentialHistogramAggregation, r.startTime, r.endTime);
      if (!p.changed && !r.updated) continue;
      out.push({
        descriptor: r.descriptor,
        scope: r.scope,
        attributes: r.attributes,
        startTime: p.startTime,
        endTime: r.endTime,
        aggregation: { kind: 'exponentialHistogramDelta', ...p.value },
      });
    }
    this.exponential.end();
    return out;
  }
}

// Loading this module lets every MeterProvider take OpenTelemetry JS readers.
registerReaderAdapter((reader) => (isOtelMetricReader(reader) ? new HotmeterMetricProducer({ reader }) : undefined));
