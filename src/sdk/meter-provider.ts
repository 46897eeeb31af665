// MeterProvider: the drop-in @opentelemetry/api MeterProvider. It owns a domain in the
// native record map (its instruments and records), the per-thread record stores, the
// observable callbacks, and collection into a CheckpointSet.
import {
  Attributes,
  BatchObservableCallback,
  MeterOptions,
  MeterProvider as ApiMeterProvider,
  MetricOptions,
  Observable,
  ObservableResult,
  ValueType,
} from '@opentelemetry/api';
import { BoundHandle } from '../api/handles';
import { InstrumentObservableResult, BatchRegistration, ObservableInstrument } from '../api/instruments';
import { Meter } from '../api/meter';
import { Aggregation, CheckpointRecord, CheckpointSet } from '../export/checkpoint-set';
import type { ForeignMetricReader, MetricReader } from '../export/reader';
import { adaptReader } from '../export/reader-adapters';
import { AggregationSelector, compatible, defaultSelector } from '../export/aggregation-selector';
import { AggregationKind, cellSize, DEFAULT_HISTOGRAM_BOUNDARIES, defaultAggregation, validBoundaries } from './aggregation';
import { AggregatorOptions, AggregatorParams, resolveAggregatorParams } from './aggregation';
import { pendingExactRecords, takeExactValues } from '../api/handles-sketch';
import type { PrometheusCollectOptions, PrometheusPassNotes, PrometheusPayload, PrometheusStream } from '../export/reader';
import { exponentialHistogramView } from './exponential-histogram';
import type { NativeDescriptor, NativePrometheusOptions, NativePrometheusPass } from './native';
import { sketchView } from './sketch';
import {
  Descriptor,
  InstrumentationScope,
  InstrumentKind,
  isMonotonic,
  isObservable,
  isValidInstrumentName,
  isValidUnit,
} from './descriptor';
import { describeValue, warnLimited } from './diag';
import { decodeLabels, DEFAULT_LABEL_LIMITS, LabelLimits } from './labels';
import { LabelTrie } from './label-trie';
import { native } from './native';
import { DEFAULT_CARDINALITY_LIMIT, RecordStore } from './record-store';
import { untrackStore } from './worker-evict';
import { View, ViewOptions } from './view';

/** Options of {@link MeterProvider}. */
export interface MeterProviderOptions {
  /** Describes the entity producing telemetry; exported with every collection. */
  resource?: { attributes: Attributes };
  /**
   * Share records with every other provider (in any worker thread) created with the
   * same domain name. By default each provider has a domain of its own.
   */
  domain?: string;
  /** Limits applied to attribute sets. */
  labelLimits?: Partial<LabelLimits>;
  /** How long observable callbacks may run in one collection, ms. Default 30 000. */
  callbackTimeoutMillis?: number;
  /**
   * Readers (pull endpoints, push controllers) that collect from this provider. OpenTelemetry
   * JS readers (e.g. sdk-metrics' PeriodicExportingMetricReader with an OTLP exporter) work
   * too: each is fed through a HotmeterMetricProducer (src/exporters/otlp).
   */
  readers?: (MetricReader | ForeignMetricReader)[];
  /** Chooses each instrument's aggregator; `null` disables an instrument. */
  aggregationSelector?: AggregationSelector;
  /** Views: select instruments and change their name, aggregation, attributes, limit. */
  views?: ViewOptions[];
  /**
   * Series per instrument (the last is `otel.metric.overflow=true`, which takes every
   * measurement past the limit). Default 2000; views may override per instrument.
   */
  cardinalityLimit?: number;
  /**
   * `false`: idle series are never expired, and this provider's collections never ask
   * threads to give back cached references of idle series. Default true: caches of idle
   * series are given back (the series and its value stay exported), and series expire as
   * `reclaimIdleMillis` says.
   */
  reclamation?: boolean;
  /**
   * Opt-in expiry, ms: a series no handle holds that was not written for at least this long
   * is dropped from every later export, once every reader has delivered its final value (a
   * push reader's export succeeded, a Prometheus scrape's response was fully written). A
   * series that comes back is a new series (new start time: a counter reset). Never applies
   * to up-down counters (their value is a level). Default undefined/0: series never expire;
   * cumulative exports show every series recorded, with its value, for the life of the
   * provider (as prom-client and @opentelemetry/sdk-metrics do).
   */
  reclaimIdleMillis?: number;
}

/**
 * The key under which direct `provider.collect()` calls are tracked as a reader, only
 * while the provider has no registered reader (they then decide expiry alone).
 */
const DIRECT: object = Object.freeze({ reader: 'direct provider.collect()' });

/** The longest string registerInstrument takes, in UTF-8 bytes (kMaxStringBytes natively). */
const MAX_IDENTITY_BYTES = 64 * 1024;

/** Record::kMaxEpoch: a record's epochs saturate there (native/core/record.h). */
const MAX_RECORD_EPOCH = 4294967294;

const EMPTY_BOUNDS = new Float64Array(0);
const NO_ATTRIBUTES: Attributes = Object.freeze({});

/**
 * The SDK: a drop-in `MeterProvider` for `@opentelemetry/api`
 * (`metrics.setGlobalMeterProvider(provider)`). It owns the native records of its
 * instruments, runs the observable callbacks, and feeds its `readers` (hotmeter's
 * PrometheusExporter and controllers, or OpenTelemetry JS readers such as
 * `PeriodicExportingMetricReader`). `shutdown()` exports a last time and stops recording.
 */
// It is the MeterHost of its meters (structurally: MeterHost is internal).
export class MeterProvider implements ApiMeterProvider {
  /** The resource exported with every collection. */
  readonly resource: { attributes: Attributes };
  private readonly domain: number;
  private readonly limits: LabelLimits;
  private readonly callbackTimeoutMillis: number;
  private readonly meters = new Map<string, Meter>();
  private readonly stores = new Map<string, RecordStore<BoundHandle>>();
  private readonly storeByInstrument = new Map<number, RecordStore<BoundHandle>>();
  private readonly nameKinds = new Map<string, string>();
  private readonly attributesOf = new Map<number, Attributes>();
  /** The direct calls' index for all this provider's stores (see LabelTrie). */
  private readonly trie = new LabelTrie<BoundHandle>();
  private readonly observables: ObservableInstrument[] = [];
  private readonly batches: BatchRegistration[] = [];
  private readonly readers: MetricReader[];
  private readonly selector: AggregationSelector;
  private readonly views: View[];
  private readonly cardinalityLimit: number;
  private readonly reclamation: boolean;
  /**
   * Per registered reader (or DIRECT when there is none): the latest epoch whose
   * collection it delivered (0 before its first). Expiry waits for the oldest.
   */
  private readonly readerEpochs = new Map<object, number>();
  private readonly reclaimIdleMillis: number;
  /** Epoch and time of this provider's recent passes, oldest first (reclaimIdleMillis). */
  private readonly passTimes: { epoch: number; time: number }[] = [];
  private shutdownDone = false;
  private domainReleased = false;

  constructor(options: MeterProviderOptions = {}) {
    this.resource = options.resource ?? { attributes: {} };
    this.limits = { ...DEFAULT_LABEL_LIMITS, ...(options.labelLimits ?? {}) };
    this.callbackTimeoutMillis = options.callbackTimeoutMillis ?? 30_000;
    this.domain = native().registerDomain(typeof options.domain === 'string' ? options.domain : '');
    this.selector = options.aggregationSelector ?? defaultSelector;
    this.views = (options.views ?? []).map((v) => new View(v));
    const limit = options.cardinalityLimit ?? DEFAULT_CARDINALITY_LIMIT;
    if (!(Number.isInteger(limit) && limit > 0)) throw new TypeError('hotmeter: cardinalityLimit must be a positive integer');
    this.cardinalityLimit = limit;
    this.reclamation = options.reclamation !== false;
    const idle = options.reclaimIdleMillis ?? 0;
    if (!(typeof idle === 'number' && idle >= 0 && idle <= 2 ** 31)) {
      throw new TypeError('hotmeter: reclaimIdleMillis must be a number of milliseconds >= 0');
    }
    this.reclaimIdleMillis = idle;
    this.readers = Array.isArray(options.readers) ? options.readers.map(adaptReader) : [];
    if (this.readers.length === 0) this.readerEpochs.set(DIRECT, 0);
    for (const r of this.readers) {
      this.readerEpochs.set(r, 0);
      const resource = this.resource;
      r.setMetricProducer({
        resource,
        collect: () => this.collectFor(r),
        collectPrometheus: (o) => this.collectPrometheusFor(r, o),
        streamPrometheus: (o, partBytes) => this.streamPrometheusFor(r, o, partBytes),
        delivered: (epoch) => this.delivered(r, epoch),
      });
    }
  }

  /** A Meter for an instrumentation scope; the same scope returns the same Meter. */
  getMeter(name: string, version = '', options: MeterOptions = {}): Meter {
    const scope: InstrumentationScope = { name: String(name ?? ''), version: version || undefined, schemaUrl: options.schemaUrl };
    const key = `${scope.name}\0${scope.version ?? ''}\0${scope.schemaUrl ?? ''}`;
    let m = this.meters.get(key);
    if (m === undefined) {
      m = new Meter(this, scope);
      this.meters.set(key, m);
    }
    return m;
  }

  /** @internal */
  storeFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options: MetricOptions = {}): RecordStore<BoundHandle> {
    const nameText = typeof name === 'string' ? name : describeValue(name);
    const opts = options !== null && typeof options === 'object' ? options : {};
    const valueType = opts.valueType === ValueType.INT ? ValueType.INT : ValueType.DOUBLE;
    const description = typeof opts.description === 'string' ? opts.description : '';
    let unit = typeof opts.unit === 'string' ? opts.unit : '';
    if (!isValidUnit(unit)) {
      warnLimited(`unit:${nameText}`, `invalid unit for ${nameText} ignored (ASCII, at most 63 characters)`);
      unit = '';
    }
    const advice = opts.advice ?? {};
    let adviceBoundaries: readonly number[] | undefined;
    if (advice.explicitBucketBoundaries !== undefined) {
      if (validBoundaries(advice.explicitBucketBoundaries)) adviceBoundaries = [...advice.explicitBucketBoundaries];
      else warnLimited(`bounds:${nameText}`, `${nameText}: explicitBucketBoundaries must be finite and strictly increasing; defaults used`);
    }
    const adviceAttributes = Array.isArray((advice as { attributes?: unknown }).attributes)
      ? ((advice as { attributes: unknown[] }).attributes.filter((a) => typeof a === 'string') as string[])
      : undefined;
    const adviceQuantiles = summaryQuantilesAdvice((advice as { quantiles?: unknown }).quantiles, nameText);
    const instrument: Descriptor = Object.freeze({
      name: nameText,
      description,
      unit,
      kind,
      valueType,
      monotonic: isMonotonic(kind),
      adviceBoundaries,
      adviceAttributes,
      adviceQuantiles,
    });
    const view = this.views.find((v) => v.matches(instrument, scope));
    if (view !== undefined && this.views.filter((v) => v.matches(instrument, scope)).length > 1) {
      warnLimited(`views:${nameText}`, `several views match ${nameText}; the first one is used`);
    }
    const vo = view?.options;
    const descriptor: Descriptor =
      vo === undefined || (vo.name === undefined && vo.description === undefined)
        ? instrument
        : Object.freeze({ ...instrument, name: vo.name ?? instrument.name, description: vo.description ?? instrument.description });

    const scopeKey = `${scope.name}\0${scope.version ?? ''}\0${scope.schemaUrl ?? ''}`;
    const valid = isValidInstrumentName(name);
    const identity = `${scopeKey}\0${descriptor.name.toLowerCase()}\0${kind}\0${unit}\0${valueType}\0${descriptor.description}`;
    if (this.shutdownDone) {
      // The domain is released: nothing is registered any more. Its measurements are
      // dropped with the after-shutdown diagnostic.
      const dead = new RecordStore<BoundHandle>(descriptor, scope, 0, AggregationKind.DROP, EMPTY_BOUNDS, this.limits, this.attributesOf, undefined, undefined, this.trie);
      dead.shutdown();
      return dead;
    }
    const existing = this.stores.get(identity);
    if (existing !== undefined) return existing;

    if (!valid) {
      warnLimited(`name:${nameText.slice(0, 300)}`, `invalid instrument name "${nameText.slice(0, 300)}": a letter then up to 254 of [A-Za-z0-9_.-/]; the instrument records nothing`);
      return new RecordStore(descriptor, scope, 0, AggregationKind.DROP, EMPTY_BOUNDS, this.limits, this.attributesOf, undefined, undefined, this.trie);
    }
    // The native registry takes at most MAX_IDENTITY_BYTES of UTF-8 per string, the
    // identity included (it holds every other piece): longer ones make a no-op instrument.
    if (Buffer.byteLength(identity, 'utf8') > MAX_IDENTITY_BYTES) {
      warnLimited(
        `identity:${nameText}`,
        `instrument ${nameText}: its meter name, version and schema URL, description and unit together exceed ${MAX_IDENTITY_BYTES} bytes; the instrument records nothing`,
      );
      return new RecordStore(descriptor, scope, 0, AggregationKind.DROP, EMPTY_BOUNDS, this.limits, this.attributesOf, undefined, undefined, this.trie);
    }
    const nameKey = `${scopeKey}\0${descriptor.name.toLowerCase()}`;
    const prior = this.nameKinds.get(nameKey);
    if (prior !== undefined && prior !== identity) {
      warnLimited(
        `dup:${nameKey}`,
        `duplicate instrument registration for "${descriptor.name}" with a different kind, unit, description or value type; both are exported ` +
          '(in Prometheus as one family where their types agree, with the first description and their series of the same labels merged; else the later one is left out)',
      );
    }
    this.nameKinds.set(nameKey, identity);

    let aggregation: AggregationKind;
    try {
      aggregation = vo?.aggregation ?? this.selector.aggregatorFor(descriptor) ?? AggregationKind.DROP;
    } catch (e) {
      warnLimited(`selector:${descriptor.name}`, `aggregationSelector threw for ${descriptor.name}: ${describeValue(e)}; default used`);
      aggregation = defaultAggregation(kind);
    }
    if (!compatible(kind, aggregation)) {
      warnLimited(`selector-fit:${descriptor.name}`, `aggregation ${String(AggregationKind[aggregation])} does not fit ${InstrumentKind[kind]} ${descriptor.name}; default used`);
      aggregation = defaultAggregation(kind);
    }
    const bounds =
      aggregation === AggregationKind.HISTOGRAM
        ? new Float64Array(
            (vo?.explicitBucketBoundaries !== undefined && validBoundaries(vo.explicitBucketBoundaries) ? vo.explicitBucketBoundaries : undefined) ??
              adviceBoundaries ??
              DEFAULT_HISTOGRAM_BOUNDARIES,
          )
        : EMPTY_BOUNDS;
    const params = aggregatorParams(this.selector, descriptor, aggregation);
    let id: number;
    let existed: boolean;
    try {
      [id, existed] = native().registerInstrument(
        this.domain, identity, descriptor.name, descriptor.description, unit, kind, valueType, aggregation, descriptor.monotonic, bounds,
        {
          ...(params.maxSize > 0 ? params : {}),
          scopeName: scope.name,
          scopeVersion: scope.version ?? '',
          scopeSchemaUrl: scope.schemaUrl ?? '',
        },
      );
    } catch (e) {
      // Every argument is checked above; this is the last guard of "creation never throws".
      warnLimited(`register:${nameText}`, `instrument ${nameText} could not be registered (${describeValue(e)}); it records nothing`);
      return new RecordStore(descriptor, scope, 0, AggregationKind.DROP, EMPTY_BOUNDS, this.limits, this.attributesOf, undefined, undefined, this.trie);
    }
    // In a domain shared by name, another provider (or thread) may have registered this
    // identity first with other advice or another selector: the cells in native memory
    // have its layout, so this store must use it.
    const reg = existed ? native().descriptor(id) : null;
    const store = new RecordStore<BoundHandle>(
      descriptor, scope, id,
      reg !== null ? (reg.aggregation as AggregationKind) : aggregation,
      reg !== null ? reg.bounds : bounds,
      this.limits, this.attributesOf,
      { cardinalityLimit: vo?.cardinalityLimit ?? this.cardinalityLimit, keep: view?.keep },
      reg !== null ? registeredParams(reg) : params,
      this.trie,
    );
    this.stores.set(identity, store);
    this.storeByInstrument.set(id, store);
    return store;
  }

  /** @internal */
  registerObservable(o: ObservableInstrument): void {
    if (this.shutdownDone) return; // never collected again
    if (!this.observables.includes(o)) this.observables.push(o);
  }

  /** @internal */
  registerBatch(reg: BatchRegistration): void {
    if (this.shutdownDone) return; // never collected again
    this.batches.push(reg);
  }

  /** @internal */
  unregisterBatch(callback: BatchObservableCallback, observables: Observable[]): void {
    const set = new Set(observables);
    const i = this.batches.findIndex(
      (b) => b.callback === callback && b.observables.size === set.size && [...set].every((o) => b.observables.has(o)),
    );
    if (i >= 0) this.batches.splice(i, 1);
  }

  /**
   * Runs the observable callbacks, then checkpoints every record of this provider in
   * one native pass. Synchronous instruments report every live series (cumulative);
   * observable instruments report the series observed in this collection.
   */
  async collect(): Promise<CheckpointSet> {
    // With registered readers, a direct collection holds no expiry back (DIRECT is not
    // in readerEpochs); without any, direct collections decide alone.
    return this.collectFor(DIRECT);
  }

  private async collectFor(reader: object): Promise<CheckpointSet> {
    if (this.shutdownDone) throw new Error('hotmeter: collect() after shutdown()');
    // Taken before the callbacks run: a collection nested in a callback (of this reader
    // or another) may pass over this collection's observations first; they stay fresh.
    const since = this.readerEpochs.get(reader) ?? 0;
    await this.runCallbacks();
    return this.checkpoint(reader, since);
  }

  /** Asks every reader to export what it has. Rejects after shutdown. */
  async forceFlush(): Promise<void> {
    if (this.shutdownDone) throw new Error('hotmeter: forceFlush() after shutdown()');
    await Promise.all(this.readers.map((r) => r.forceFlush?.()));
  }

  /**
   * Shuts the readers down (a push controller exports its last collection first), then
   * stops recording: later measurements are dropped with one diagnostic per kind, and
   * instruments created later record nothing.
   *
   * Then it frees what it holds: its caches, and its domain in the native record map
   * (instruments, records, their memory) once no other provider uses the domain. A domain
   * shared by name stays while any provider of it, in any thread, has not shut down (a
   * worker's attached provider counts until it shuts down or its thread exits); the last
   * one frees it. Bound handles the user still holds drop every measurement.
   */
  async shutdown(): Promise<void> {
    if (this.shutdownDone) return;
    const results = await Promise.allSettled(this.readers.map((r) => r.shutdown?.()));
    this.shutdownDone = true;
    for (const s of this.stores.values()) s.shutdown();
    this.releaseAll();
    for (const r of results) {
      if (r.status === 'rejected') warnLimited('reader-shutdown', `reader shutdown failed: ${describeValue(r.reason)}`);
    }
  }

  /**
   * After shutdown (every store is shut down: no handle of this provider writes again):
   * drops the caches and ends this provider's use of its native domain, which frees the
   * domain's instruments and records if no other provider (in any thread) uses it.
   */
  private releaseAll(): void {
    if (this.domainReleased) return;
    this.domainReleased = true;
    for (const s of this.stores.values()) untrackStore(s);
    this.stores.clear();
    this.storeByInstrument.clear();
    this.nameKinds.clear();
    this.attributesOf.clear();
    this.observables.length = 0;
    this.batches.length = 0;
    this.meters.clear();
    this.passTimes.length = 0;
    try {
      native().releaseDomain(this.domain);
    } catch {
      // the environment is shutting down: its exit ends this thread's uses of the domain
    }
  }

  private async runCallbacks(): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const guard = (what: string, fn: () => unknown): void => {
      try {
        const r = fn();
        if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
          pending.push(Promise.resolve(r).catch((e) => warnLimited(`cb:${what}`, `observable callback for ${what} rejected: ${describeValue(e)}`)));
        }
      } catch (e) {
        warnLimited(`cb:${what}`, `observable callback for ${what} threw: ${describeValue(e)}`);
      }
    };
    // Over copies: a callback may add or remove callbacks (its own included) or
    // instruments; those changes apply from the next collection, and no callback
    // registered when this one started is skipped.
    for (const o of this.observables.slice()) {
      if (o.callbacks.length === 0) continue;
      const result = new InstrumentObservableResult(o);
      for (const cb of o.callbacks.slice()) guard(o.store.name, () => cb(result));
    }
    for (const b of this.batches.slice()) {
      const result = {
        observe: (observable: Observable, value: number, attributes?: Attributes) => {
          let registered = false;
          try {
            registered = observable instanceof ObservableInstrument && b.observables.has(observable);
          } catch {
            // a Proxy whose getPrototypeOf trap throws (or a revoked one): not ours
          }
          if (registered) (observable as ObservableInstrument).observe(value, attributes);
          else warnLimited('batch-observe', 'batch callback observed an instrument it was not registered with; dropped');
        },
      };
      guard('batch', () => b.callback(result));
    }
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        warnLimited('cb-timeout', `observable callbacks did not settle within ${this.callbackTimeoutMillis} ms; collecting without them`);
        resolve();
      }, this.callbackTimeoutMillis);
      timer.unref?.();
    });
    await Promise.race([Promise.all(pending), timeout]);
    clearTimeout(timer);
  }

  /**
   * A passive store (never records) for an instrument only another provider sharing this
   * domain registered, possibly in another thread: its records are exported with the
   * descriptor, scope and cell layout it was registered with.
   */
  private foreignStore(instrumentId: number): RecordStore<BoundHandle> | undefined {
    const d = native().descriptor(instrumentId);
    if (d === null) return undefined;
    const descriptor: Descriptor = Object.freeze({
      name: d.name,
      description: d.description,
      unit: d.unit,
      kind: d.kind as InstrumentKind,
      valueType: d.valueType === ValueType.INT ? ValueType.INT : ValueType.DOUBLE,
      monotonic: d.monotonic,
    });
    const scope: InstrumentationScope = Object.freeze({
      name: d.scopeName,
      version: d.scopeVersion === '' ? undefined : d.scopeVersion,
      schemaUrl: d.scopeSchemaUrl === '' ? undefined : d.scopeSchemaUrl,
    });
    const store = new RecordStore<BoundHandle>(
      descriptor, scope, instrumentId, d.aggregation as AggregationKind, d.bounds, this.limits, this.attributesOf,
      undefined, registeredParams(d), this.trie,
    );
    this.storeByInstrument.set(instrumentId, store); // replaced if this provider registers it later
    return store;
  }


  /**
   * The epoch records must have been last updated before to be expired by the next pass:
   * 0 when nothing may expire (the pass only asks threads to give back cached references
   * of idle records), undefined when the pass must not even do that (reclamation: false).
   * Every reader delivered each record's state as of the epoch it last delivered: a record
   * last updated at or before the oldest of those was delivered by every reader, and
   * (reclaimIdleMillis) a record whose last update was first seen by a pass at least
   * reclaimIdleMillis ago has been idle at least that long.
   */
  private reclaimBefore(): number | undefined {
    if (!this.reclamation) return undefined;
    if (!(this.reclaimIdleMillis > 0)) return 0;
    let before = Infinity;
    for (const e of this.readerEpochs.values()) before = Math.min(before, e + 1);
    const cutoff = Date.now() - this.reclaimIdleMillis;
    const t = this.passTimes;
    while (t.length > 1 && t[1].time <= cutoff) t.shift();
    before = Math.min(before, t.length > 0 && t[0].time <= cutoff ? t[0].epoch + 1 : 0);
    return Number.isFinite(before) ? before : 0;
  }

  /** A reader delivered its collection of `epoch` (MetricProducer.delivered). */
  private delivered(reader: object, epoch: number): void {
    if (typeof epoch !== 'number' || !(epoch >= 0)) return;
    const prev = this.readerEpochs.get(reader);
    if (prev !== undefined && epoch > prev) this.readerEpochs.set(reader, epoch);
  }

  /**
   * After a native collection pass (checkpoint() or collectPrometheusFor()): forgets the
   * reclaimed records, gives back the cached references of records the pass saw idle, and,
   * for a reader that does not report delivery (and for direct collections when there is
   * no reader), counts the collection as delivered.
   */
  private finishPass(reader: object, epoch: number, stale: ReadonlySet<number>, reclaimed: ArrayLike<number>): void {
    for (let n = 0; n < reclaimed.length; n++) this.attributesOf.delete(reclaimed[n]);
    if (this.reclamation && stale.size > 0) {
      for (const store of this.stores.values()) store.evict(stale);
    }
    if ((reader as MetricReader).reportsDelivery !== true) this.delivered(reader, epoch);
    if (this.reclaimIdleMillis > 0) this.passTimes.push({ epoch, time: Date.now() });
  }

  /**
   * One collection written as Prometheus text by the native serializer on a libuv pool
   * thread from a snapshot taken on this thread when it is called (the record map's lock is
   * held only while the checkpoints are copied: one consistent cut), with the
   * same pass and bookkeeping as checkpoint(): callbacks first, then epoch, update
   * detection, reclamation, eviction.
   */
  private async collectPrometheusFor(reader: object, o: PrometheusCollectOptions): Promise<PrometheusPayload> {
    const readerEpoch = this.readerEpochs.get(reader) ?? 0; // before the callbacks (collectFor)
    const options = await this.preparePrometheus(o);
    const before = this.reclaimBefore();
    const r = await native().serializePrometheus(this.domain, before !== undefined, before, null, { ...options, readerEpoch });
    const notes = this.finishPrometheusPass(reader, r);
    const chunks = r.chunks;
    return { chunks, byteLength: r.bytes, epoch: r.epoch, notes, release: () => void native().releaseOutput(chunks) };
  }

  /** As collectPrometheusFor, the text written a part at a time as the stream is read. */
  private async streamPrometheusFor(reader: object, o: PrometheusCollectOptions, partBytes?: number): Promise<PrometheusStream> {
    const readerEpoch = this.readerEpochs.get(reader) ?? 0; // before the callbacks (collectFor)
    const options = await this.preparePrometheus(o);
    const before = this.reclaimBefore();
    const r = native().openPrometheusStream(this.domain, before !== undefined, before, null, {
      ...options,
      partBytes,
      readerEpoch,
    });
    const notes = this.finishPrometheusPass(reader, r);
    const handle = r.stream;
    let closed = false;
    return {
      parts: r.parts,
      notes,
      epoch: r.epoch,
      next: async () => {
        const p = await native().readPrometheusStream(handle);
        return p === null ? undefined : { chunks: p.chunks, byteLength: p.bytes };
      },
      release: (part) => void native().releaseOutput(part.chunks),
      close: () => {
        if (closed) return;
        closed = true;
        native().closePrometheusStream(handle);
      },
    };
  }

  /**
   * Before a Prometheus pass: runs the callbacks; the native options for it (summary
   * quantiles of instruments with their own, the quantiles of the values this thread's
   * Exact handles hold, the exporter's prefix).
   */
  private async preparePrometheus(o: PrometheusCollectOptions): Promise<NativePrometheusOptions> {
    if (this.shutdownDone) throw new Error('hotmeter: collect() after shutdown()');
    await this.runCallbacks();
    const perInstrument: number[] = [];
    const exact: number[] = [];
    for (const [id, store] of this.storeByInstrument) {
      const qs = store.descriptor.adviceQuantiles;
      if (qs !== undefined) perInstrument.push(id, qs.length, ...qs);
      if (store.aggregation !== AggregationKind.EXACT) continue;
      const list = qs ?? o.summaryQuantiles;
      for (const recordId of pendingExactRecords(store)) {
        const values = takeExactValues(store, recordId);
        if (values.length === 0) continue;
        exact.push(recordId, list.length);
        for (const q of list) exact.push(values[Math.floor(q * (values.length - 1))]);
      }
    }
    return {
      openMetrics: o.openMetrics,
      scopeLabels: !o.withoutScopeInfo,
      quantiles: Float64Array.from(o.summaryQuantiles),
      instrumentQuantiles: Float64Array.from(perInstrument),
      exact: Float64Array.from(exact),
      prefix: o.prefix ?? '',
      reservedNames: [...(o.reservedNames ?? [])],
    };
  }

  /**
   * After a Prometheus pass: finishPass; the instruments left out and the pairs of
   * instruments whose records were written as one series, by name (the exporter reports them).
   */
  private finishPrometheusPass(reader: object, r: NativePrometheusPass): PrometheusPassNotes {
    this.finishPass(reader, r.epoch, new Set(r.stale), r.reclaimed);
    const nameOf = (id: number): string => (this.storeByInstrument.get(id) ?? this.foreignStore(id))?.descriptor.name ?? `#${id}`;
    const dropped = Array.from(r.dropped, nameOf);
    const merged: [string, string | undefined, number][] = [];
    const m = r.merged;
    for (let k = 0; k + 2 < m.length; k += 3) merged.push([nameOf(m[k]), m[k + 1] === m[k] ? undefined : nameOf(m[k + 1]), m[k + 2]]);
    return { dropped, merged };
  }

  /**
   * Decodes the attributes of records[k] for each k of `at` from their native records (one
   * call), and keeps them while the records live: the record stores do not keep attribute
   * objects (a Prometheus scrape never needs them).
   */
  private decodeAttributes(records: { seriesId: number; attributes: Attributes }[], at: readonly number[]): void {
    const ids = new Float64Array(at.length);
    for (let k = 0; k < at.length; k++) ids[k] = records[at[k]].seriesId;
    const parts = JSON.parse(native().recordLabels(ids)) as (string[] | null)[];
    for (let k = 0; k < at.length; k++) {
      const p = parts[k];
      const attrs = p === null ? {} : decodeLabels(p);
      this.attributesOf.set(ids[k], attrs);
      records[at[k]].attributes = attrs;
    }
  }

  /** @param since the epoch of the reader's previous pass, read before its callbacks ran. */
  private checkpoint(reader: object, since: number): CheckpointSet {
    const before = this.reclaimBefore();
    const data = before !== undefined ? native().collect(this.domain, true, before) : native().collect(this.domain, false);
    const stale = new Set<number>();
    const epoch = data[0];
    const count = data[1];
    // Per record, the pass that first saw its last update: this pass's epoch (saturated
    // as natively) when it was updated in this pass, later than the reader's previous
    // pass when it was updated since then, whichever reader's pass (another reader's,
    // another provider's of the domain) saw it first. Each reader gets every update.
    const passEpoch = Math.min(epoch, MAX_RECORD_EPOCH);
    const now = Date.now();
    const records: { -readonly [K in keyof CheckpointRecord]: CheckpointRecord[K] }[] = [];
    const undecoded: number[] = []; // indices into records of attributes to decode
    let i = 3;
    for (let n = 0; n < count; n++) {
      const recordId = data[i];
      const instrumentId = data[i + 1];
      const store = this.storeByInstrument.get(instrumentId) ?? this.foreignStore(instrumentId);
      const lastUpdate = data[i + 2];
      const updated = lastUpdate > since;
      // Whole milliseconds, like endTime (Date.now()): a series created and collected
      // within one millisecond must not start after it ends.
      const startTime = Math.floor(data[i + 3]);
      i += 4;
      if (store === undefined) continue; // not registered natively: cannot happen
      const size = cellSize(store.aggregation, store.bounds.length, store.params.maxSize);
      const st = data.subarray(i, i + size);
      i += size;
      if (lastUpdate !== passEpoch) stale.add(recordId); // idle in this pass (reclamation)
      if (isObservable(store.descriptor.kind) && !updated) continue; // not observed since this reader's last pass
      const attributes = this.attributesOf.get(recordId);
      if (attributes === undefined) undecoded.push(records.length);
      records.push({
        seriesId: recordId,
        descriptor: store.descriptor,
        scope: store.scope,
        attributes: attributes ?? NO_ATTRIBUTES,
        aggregation: toAggregation(store, st, recordId),
        startTime,
        endTime: now,
        updated,
      });
    }
    if (undecoded.length > 0) this.decodeAttributes(records, undecoded);
    this.finishPass(reader, epoch, stale, data.subarray(i, i + data[2]));
    return new CheckpointSet(records, now, epoch);
  }
}

/** `advice.quantiles` if valid (1 to 64 numbers in [0, 1]; a diagnostic otherwise). */
function summaryQuantilesAdvice(q: unknown, name: string): readonly number[] | undefined {
  if (q === undefined) return undefined;
  if (Array.isArray(q) && q.length > 0 && q.length <= 64 && q.every((x) => typeof x === 'number' && x >= 0 && x <= 1)) {
    return Object.freeze([...(q as number[])]);
  }
  warnLimited(`quantiles:${name}`, `${name}: advice.quantiles must be 1 to 64 numbers in [0, 1]; ignored`);
  return undefined;
}

/** The selector's options for the chosen aggregation, validated (diagnostic, defaults). */
function aggregatorParams(selector: AggregationSelector, d: Descriptor, aggregation: AggregationKind): AggregatorParams {
  let options: AggregatorOptions | undefined;
  try {
    options = selector.aggregatorOptions?.(d) ?? undefined;
  } catch (e) {
    warnLimited(`selector-options:${d.name}`, `aggregationSelector.aggregatorOptions threw for ${d.name}: ${describeValue(e)}; defaults used`);
  }
  const { params, problem } = resolveAggregatorParams(aggregation, options);
  if (problem !== undefined) warnLimited(`selector-options:${d.name}`, `${d.name}: ${problem}; default used`);
  return params;
}

/** The parameters an instrument was registered with (possibly by another provider). */
function registeredParams(reg: NativeDescriptor): AggregatorParams {
  return { relativeAccuracy: reg.relativeAccuracy, maxSize: reg.maxSize, maxScale: reg.maxScale };
}

function toAggregation(store: RecordStore<BoundHandle>, st: Float64Array, recordId: number): Aggregation {
  const monotonic = store.descriptor.monotonic;
  switch (store.aggregation) {
    case AggregationKind.SKETCH:
      return sketchView(st, store.params);
    case AggregationKind.EXPONENTIAL_HISTOGRAM:
      return exponentialHistogramView(st, store.params);
    case AggregationKind.EXACT:
      return { kind: 'exact', count: st[0], sum: st[1], min: st[2], max: st[3], values: takeExactValues(store, recordId) };
    case AggregationKind.SUM:
      return { kind: 'sum', sum: st[0], monotonic };
    case AggregationKind.PRECOMPUTED_SUM:
      return { kind: 'sum', sum: st[0], monotonic };
    case AggregationKind.LAST_VALUE:
      return { kind: 'lastValue', value: st[0] };
    case AggregationKind.MIN_MAX_SUM_COUNT:
      return { kind: 'minMaxSumCount', count: st[0], sum: st[1], min: st[2], max: st[3] };
    default: {
      const bucketCounts = Array.from(st.subarray(3));
      let count = 0;
      for (const c of bucketCounts) count += c;
      return {
        kind: 'histogram',
        count,
        sum: st[0],
        min: st[1],
        max: st[2],
        boundaries: Array.from(store.bounds),
        bucketCounts,
      };
    }
  }
}

// Keep the type import used for declaration output.
export type { ObservableResult };
