// MeterProvider: the drop-in @opentelemetry/api MeterProvider. It owns a domain in the
// native record map (its instruments and records), the per-thread record stores, the
// observable callbacks, and collection into a CheckpointSet.
import { ExemplarFilter, ExemplarFilterCode, exemplarFilterCode, exemplarProviderAdded, exemplarProviderRemoved } from './exemplars';
import {
  Attributes,
  BatchObservableCallback,
  diag,
  MeterOptions,
  MeterProvider as ApiMeterProvider,
  MetricOptions,
  Observable,
  ObservableResult,
} from '@opentelemetry/api';
import { BoundHandle } from '../api/handles';
import { pendingExactRecords, takeExactValues } from '../api/handles-sketch';
import { BatchRegistration, ObservableInstrument } from '../api/instruments';
import { Meter } from '../api/meter';
import { AggregationSelector, defaultSelector } from '../export/aggregation-selector';
import { CheckpointSet } from '../export/checkpoint-set';
import type {
  ForeignMetricReader,
  MetricProducer,
  MetricReader,
  PrometheusCollectOptions,
  PrometheusPassNotes,
  PrometheusPayload,
  PrometheusStream,
} from '../export/reader';
import { adaptReader } from '../export/reader-adapters';
import { AggregationKind } from './aggregation';
import { AttributeTable } from './attribute-table';
import { ChangedCollection, decodeCollection, DEFAULT_CACHE_IDLE_MILLIS, ReaderEpochs, recordAttributes } from './collection';
import { InstrumentationScope, InstrumentKind } from './descriptor';
import { describeValue, warnLimited } from './diag';
import { InstrumentRegistry, ReaderPreference } from './instrument-registry';
import { DEFAULT_LABEL_LIMITS, LabelLimits } from './labels';
import { LabelTrie } from './label-trie';
import type { NativePrometheusOptions, NativePrometheusPass } from './native';
import { native } from './native';
import { ObservableCallbacks } from './observable-callbacks';
import { DEFAULT_CARDINALITY_LIMIT, RecordStore } from './record-store';
import { StreamSettings, View, ViewOptions } from './view';
import { drainStale } from './worker-evict';

/** Options of {@link MeterProvider}. */
export interface MeterProviderOptions {
  /** Describes the entity producing telemetry; exported with every collection. */
  resource?: { attributes: Attributes };
  /**
   * Share records with every other provider (in any worker thread) created with the
   * same domain name. By default each provider has a domain of its own.
   */
  domain?: string;
  /**
   * Process-shared records (Linux): every process of this user on the host whose provider
   * has the same `processShared` name records into one set of records in shared memory
   * (/dev/shm/hotmeter-<uid>-<hash>, mode 0600), and a collection in any of them exports
   * the whole fleet's series, of every instrument any of them created (node:cluster, PM2).
   * An instrument's first registration decides its aggregation and buckets for all (a
   * process asking for others gets them, with a diagnostic; one registering the name with
   * another kind, unit or value type records nothing). Measurements stay writes into this
   * process's own cells; a process that dies, even killed, keeps what it wrote. With
   * `reclaimIdleMillis`, a series expires fleet-wide, in a collection of a process whose
   * own rule holds (see `reclaimIdleMillis`: the fleet's value unchanged in that process's
   * collections for that long and delivered by its readers), once no thread of any process
   * holds a bound handle or cached reference to it (a process that never collects never
   * gives its cached references back, so its caches keep series alive); it is then removed
   * as by `remove()`. Up-down counters and observable series never expire (levels).
   * `remove()`/`clear()` in any process removes them from every process's exports (other
   * processes' cached references go at their next stale-queue drain; a write through one
   * before it goes nowhere). Observable callbacks
   * run in the process that registered them, when it collects; every process exports every
   * observable series any process observed, in each collection (a counter adds every
   * process's last observation, a dead process's included; an up-down counter adds the live
   * processes' last observations; a gauge is the latest observation of any process).
   * Push readers (a PeriodicExportingMetricReader, a PushController) export the fleet's
   * series from one process at a time, so a backend receives them once: the first process
   * whose push reader collects holds the push lease until it exits or shuts down (then the
   * next one's takes over); the others' push exports are empty meanwhile. Pull readers
   * (Prometheus) and `collect()` see the fleet in every process.
   * Worker threads of such a process create a provider with the same name (no readers).
   * Throws a TypeError on other platforms or if the segment cannot be joined.
   * Not with `domain`. See docs/design.md, "Processes".
   */
  processShared?: string;
  /** Limits applied to attribute sets. */
  labelLimits?: Partial<LabelLimits>;
  /** How long observable callbacks may run in one collection, ms. Default 30 000. */
  callbackTimeoutMillis?: number;
  /**
   * Readers (pull endpoints, push controllers) that collect from this provider. OpenTelemetry
   * JS readers (e.g. sdk-metrics' PeriodicExportingMetricReader with an OTLP exporter) work
   * too: each is fed through a HotmeterMetricProducer (src/exporters/otlp). Such a reader's
   * `aggregationSelector` and `cardinalitySelector` apply to its own export, for instruments
   * no view matches (as in sdk-metrics): where they differ from the provider's, the
   * instrument gets a stream for that reader (each measurement is written to both), and
   * Prometheus readers of the provider are then served from CheckpointSets.
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
   * to up-down counters (their value is a level). With `processShared`: the series
   * expires for the whole fleet (every process's exports drop it; a later write anywhere
   * makes a new series from zero), in a collection of this process when this rule holds
   * here (the fleet's summed value unchanged) and no thread of any process holds a bound
   * handle or cached reference to it (checked under the segment's lock at the removal);
   * shared observable series (levels of the fleet) never expire either. Default undefined/0: series never expire;
   * cumulative exports show every series recorded, with its value, for the life of the
   * provider (as prom-client and @opentelemetry/sdk-metrics do).
   */
  reclaimIdleMillis?: number;
  /**
   * With reclamation: a thread gives back its cached references of a series not written
   * for at least this long, ms (the series and its value stay exported; its next write
   * looks it up natively again). Default 60,000; never longer than `reclaimIdleMillis`
   * when that is set; 0 gives them back after one collection that saw the series idle.
   */
  cacheIdleMillis?: number;
  /**
   * sdk-metrics' option: only `false` (the default) is accepted; hotmeter does not export
   * sdk-metrics' self-observability metrics.
   */
  sdkMetricsEnabled?: boolean;
  /**
   * Which measurements are offered as exemplars (OpenTelemetry's exemplar filter):
   * `'trace_based'` (default) those made inside a sampled span (the active context of
   * @opentelemetry/api, so a context manager must be registered), `'always_on'` every one,
   * `'always_off'` none. Explicit-bucket histograms keep the last exemplar of each bucket,
   * counters the last one; they are exported in OpenMetrics and protobuf scrapes.
   */
  exemplarFilter?: ExemplarFilter;
}

function registerDomainOf(options: MeterProviderOptions): number {
  const shared = options.processShared;
  if (shared === undefined) return native().registerDomain(typeof options.domain === 'string' ? options.domain : '');
  if (typeof shared !== 'string' || shared === '') throw new TypeError('hotmeter: processShared must be a non-empty name');
  if (options.domain !== undefined) throw new TypeError('hotmeter: processShared and domain are exclusive');
  if (process.platform !== 'linux') {
    throw new TypeError(`hotmeter: processShared needs Linux (POSIX shared memory); this is ${process.platform}`);
  }
  return native().registerDomain(shared, true);
}

const PROVIDER_KEYS: readonly string[] = [
  'resource', 'domain', 'processShared', 'labelLimits', 'callbackTimeoutMillis', 'readers', 'aggregationSelector', 'views',
  'cardinalityLimit', 'reclamation', 'reclaimIdleMillis', 'cacheIdleMillis', 'sdkMetricsEnabled', 'exemplarFilter',
];

/** A reader's own stream settings, when it has a `streamSettings(kind)` (HotmeterMetricProducer) and they say something. */
function readerPreference(r: MetricReader): ReaderPreference | undefined {
  const f = (r as { streamSettings?: (kind: InstrumentKind) => StreamSettings | undefined }).streamSettings;
  if (typeof f !== 'function') return undefined;
  const table = new Map<InstrumentKind, StreamSettings | undefined>();
  for (const kind of ALL_KINDS) table.set(kind, f.call(r, kind));
  if ([...table.values()].every((x) => x === undefined)) return undefined;
  return { reader: r, settingsFor: (kind) => table.get(kind) };
}

const ALL_KINDS: readonly InstrumentKind[] = [
  InstrumentKind.COUNTER,
  InstrumentKind.UP_DOWN_COUNTER,
  InstrumentKind.HISTOGRAM,
  InstrumentKind.GAUGE,
  InstrumentKind.OBSERVABLE_COUNTER,
  InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER,
  InstrumentKind.OBSERVABLE_GAUGE,
];

/**
 * The key under which direct `provider.collect()` calls are tracked as a reader, only
 * while the provider has no registered reader (they then decide expiry alone).
 */
const DIRECT: object = Object.freeze({ reader: 'direct provider.collect()' });

/** Records per part a streamed pass hands on (collectStream): ~64-160 KB of output. */
let streamPartRecords = 4096;

/** @internal For tests: records per part of a streamed pass (collectStream). */
export function setStreamPartRecords(n: number): void {
  streamPartRecords = n;
}
const NO_IDS: ArrayLike<number> = new Float64Array(0);
const NOTHING_STALE: ReadonlySet<number> = new Set();


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
  private readonly callbackTimeoutMillis: number;
  private readonly meters = new Map<string, Meter>();
  /** Decoded attributes by record id, kept while the record lives (collect() and OTLP). */
  private readonly attributesOf = new AttributeTable();
  private readonly registry: InstrumentRegistry;
  private readonly callbacks = new ObservableCallbacks();
  private readonly readers: MetricReader[];
  private readonly reclamation: boolean;
  /** Delivered epochs per registered reader (or DIRECT when there is none): expiry waits for the oldest. */
  private readonly epochs: ReaderEpochs;
  private shutdownDone = false;
  private readonly exemplarFilter: ExemplarFilterCode;
  private domainReleased = false;
  /** Collections whose output is being read in slices (reclaimBefore holds expiry off). */
  private decoding = 0;
  /** Collections under way (shutdown() waits for them before it frees the domain). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Some reader has streams of its own (its aggregation or series limit): collections are filtered per reader. */
  private readonly readerStreams: boolean;
  /** processShared: the last pushLease() answer (undefined before the first). */
  private leadsPush: boolean | undefined = undefined;
  /** processShared: observable series are levels of the fleet, in every collection (collection.ts). */
  private readonly sharedObservables: boolean;

  constructor(options: MeterProviderOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('hotmeter: MeterProvider options must be an object');
    for (const k of Object.keys(options)) {
      if (!PROVIDER_KEYS.includes(k)) throw new TypeError(`hotmeter: unknown MeterProvider option ${k} (known: ${PROVIDER_KEYS.join(', ')})`);
    }
    if (options.sdkMetricsEnabled !== undefined && options.sdkMetricsEnabled !== false) {
      throw new TypeError('hotmeter: MeterProvider option sdkMetricsEnabled is not supported (hotmeter does not export sdk-metrics\' self-observability metrics)');
    }
    const res = options.resource;
    if (res !== undefined && (res === null || typeof res !== 'object' || res.attributes === null || typeof res.attributes !== 'object')) {
      throw new TypeError('hotmeter: MeterProvider option resource must be a Resource (an object with attributes)');
    }
    this.resource = res ?? { attributes: {} };
    const limits = { ...DEFAULT_LABEL_LIMITS, ...(options.labelLimits ?? {}) };
    this.callbackTimeoutMillis = options.callbackTimeoutMillis ?? 30_000;
    const selector = options.aggregationSelector ?? defaultSelector;
    if (options.views !== undefined && !Array.isArray(options.views)) throw new TypeError('hotmeter: MeterProvider option views must be an array');
    const views = (options.views ?? []).map((v) => new View(v));
    const limit = options.cardinalityLimit ?? DEFAULT_CARDINALITY_LIMIT;
    if (!(Number.isInteger(limit) && limit > 0)) throw new TypeError('hotmeter: cardinalityLimit must be a positive integer');
    this.reclamation = options.reclamation !== false;
    const idle = options.reclaimIdleMillis ?? 0;
    if (!(typeof idle === 'number' && idle >= 0 && idle <= 2 ** 31)) {
      throw new TypeError('hotmeter: reclaimIdleMillis must be a number of milliseconds >= 0');
    }
    const cacheIdle = options.cacheIdleMillis ?? DEFAULT_CACHE_IDLE_MILLIS;
    if (!(typeof cacheIdle === 'number' && cacheIdle >= 0 && cacheIdle <= 2 ** 31)) {
      throw new TypeError('hotmeter: cacheIdleMillis must be a number of milliseconds >= 0');
    }
    if (options.readers !== undefined && !Array.isArray(options.readers)) throw new TypeError('hotmeter: MeterProvider option readers must be an array');
    this.readers = Array.isArray(options.readers) ? options.readers.map(adaptReader) : [];
    // Readers with their own aggregation or series limit (sdk-metrics readers' selectors),
    // read once per instrument kind here: a selector that asks for what hotmeter cannot do
    // is a TypeError now, not a surprise later.
    const preferences: ReaderPreference[] = [];
    const defaultReaders: object[] = [];
    for (const r of this.readers) {
      const pref = readerPreference(r);
      if (pref !== undefined) preferences.push(pref);
      else defaultReaders.push(r);
    }
    this.readerStreams = preferences.length > 0;
    if (this.readerStreams) {
      // Streams of a reader's own exist in this provider only: say so once, since a
      // worker thread's provider (attachMeterProvider) records into the domain's views'
      // streams and such a reader's export then misses what workers record.
      warnLimited(
        'reader-streams-workers',
        'a reader asks for an aggregation or series limit of its own: it gets streams of its own, which providers attached in worker threads (attachMeterProvider) do not write; give the provider that aggregation as a view to include workers',
      );
    }
    this.exemplarFilter = exemplarFilterCode(options.exemplarFilter);
    this.domain = registerDomainOf(options);
    this.sharedObservables = options.processShared !== undefined;
    this.registry = new InstrumentRegistry(
      this.domain,
      { limits, selector, views, cardinalityLimit: limit, readerPreferences: preferences, defaultReaders, exemplarFilter: this.exemplarFilter, processShared: this.sharedObservables },
      this.attributesOf,
      new LabelTrie<BoundHandle>(),
    );
    this.epochs = new ReaderEpochs(this.reclamation, idle, this.readers.length === 0 ? [DIRECT] : this.readers, cacheIdle);
    // A reader whose collections build attribute objects for every series (OTLP) has new
    // records' attributes decoded from the parts kept since their creation. Not without
    // one: a provider with no readers may never collect (one attached in a worker).
    this.attributesOf.keepEncoded = this.readers.some((r) => r.decodesAttributes === true);
    for (const r of this.readers) {
      const resource = this.resource;
      const producer: MetricProducer = {
        resource,
        collect: () => this.collectFor(r),
        delivered: (epoch) => this.epochs.delivered(r, epoch),
      };
      if (options.processShared !== undefined) producer.pushes = () => this.pushLease(options.processShared as string);
      // The native Prometheus pass and the incremental OTLP pass see every stream of the
      // domain: with streams of readers' own, a reader is given CheckpointSets of its
      // streams only (checkpoint filters them).
      if (!this.readerStreams) {
        producer.collectChanges = (mode) => this.collectChangesFor(r, mode);
        producer.collectPrometheus = (o) => this.collectPrometheusFor(r, o);
        producer.streamPrometheus = (o, partBytes) => this.streamPrometheusFor(r, o, partBytes);
      }
      r.setMetricProducer(producer);
    }
    exemplarProviderAdded(this.exemplarFilter);
  }

  /**
   * Removes the shared memory file of a `processShared` name left by a fleet that is gone
   * (a segment whose processes are all dead is otherwise reused as it is by the next
   * provider of the name: its series continue). Returns true if a file was removed, false
   * if there was none; throws if a live process still uses it.
   */
  static cleanupProcessShared(name: string): boolean {
    if (typeof name !== 'string' || name === '') throw new TypeError('hotmeter: cleanupProcessShared needs a processShared name');
    const r = native().cleanupProcessShared(name);
    if (r < 0) throw new Error(`hotmeter: processShared "${name}" is in use by a live process (or its file cannot be removed)`);
    return r === 1;
  }

  /**
   * For a `processShared` provider: live processes attached to its segment, 64 KiB slabs
   * of cells in use, series (every series the segment ever had, removed and expired ones
   * too), cell nodes in use (one per process thread's cell of a live series, and per
   * exemplar cell; a removed or expired series' go back) and live series (those not
   * removed or expired: what counts against the segment's capacity, as a removed
   * series' slot and key bytes are reused by later series), after folding the processes
   * found dead. Undefined otherwise.
   */
  processSharedStats():
    | { processes: number; slabs: number; series: number; nodes: number; liveSeries: number }
    | undefined {
    if (this.domainReleased) return undefined;
    const r = native().sharedStats(this.domain);
    return r === null ? undefined : { processes: r[0], slabs: r[1], series: r[2], nodes: r[3], liveSeries: r[4] };
  }

  /**
   * processShared: whether this process pushes the fleet's series now (see
   * `processShared`); says so through diag when that changes.
   */
  private pushLease(name: string): boolean {
    const leads = !this.domainReleased && native().pushLeader(this.domain);
    if (leads !== this.leadsPush) {
      this.leadsPush = leads;
      try {
        diag.info(
          leads
            ? `hotmeter: processShared "${name}": this process pushes the fleet's series to its push readers`
            : `hotmeter: processShared "${name}": another process pushes the fleet's series; this process's push exports are empty while it lives`,
        );
      } catch {
        // a user's logger that throws changes nothing here
      }
    }
    return leads;
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
    return this.registry.storeFor(scope, kind, name, options);
  }

  /** @internal */
  streamsFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options: MetricOptions = {}): RecordStore<BoundHandle>[] {
    return this.registry.streamsFor(scope, kind, name, options);
  }

  /** @internal */
  registerObservable(o: ObservableInstrument): void {
    this.callbacks.register(o);
  }

  /** @internal */
  registerBatch(reg: BatchRegistration): void {
    this.callbacks.registerBatch(reg);
  }

  /** @internal */
  unregisterBatch(callback: BatchObservableCallback, observables: Observable[]): void {
    this.callbacks.unregisterBatch(callback, observables);
  }

  /**
   * Runs the observable callbacks, then checkpoints every record of this provider in
   * one native pass. Synchronous instruments report every live series (cumulative);
   * observable instruments report the series observed in this collection (with
   * `processShared`: every series any process of the fleet has observed).
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
    const since = this.epochs.since(reader);
    await this.callbacks.run(this.callbackTimeoutMillis);
    return this.track(this.checkpoint(reader, since));
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
    // Collections under way finish first: their passes run on the libuv pool and their
    // output is read in slices, from the domain that releaseAll() frees.
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    this.registry.shutdown();
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
    exemplarProviderRemoved(this.exemplarFilter);
    this.registry.close();
    this.attributesOf.clear();
    this.callbacks.close();
    this.meters.clear();
    this.epochs.clear();
    try {
      native().releaseDomain(this.domain);
    } catch {
      // the environment is shutting down: its exit ends this thread's uses of the domain
    }
  }

  /** `p`, counted as a collection under way until it settles. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const gone = (): void => void this.inflight.delete(p);
    p.then(gone, gone);
    return p;
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
      for (const store of this.registry.values()) store.evict(stale);
    }
    this.epochs.passDone(reader, epoch);
  }

  /**
   * One collection written as Prometheus text by the native serializer on a libuv pool
   * thread from a snapshot taken on this thread when it is called (the record map's lock is
   * held only while the checkpoints are copied: one consistent cut), with the
   * same pass and bookkeeping as checkpoint(): callbacks first, then epoch, update
   * detection, reclamation, eviction.
   */
  private async collectPrometheusFor(reader: object, o: PrometheusCollectOptions): Promise<PrometheusPayload> {
    const readerEpoch = this.epochs.since(reader); // before the callbacks (collectFor)
    const options = await this.preparePrometheus(o);
    const before = this.reclaimBefore();
    const r = await this.track(native().serializePrometheus(this.domain, before !== undefined, before, null, { ...options, readerEpoch, staleBefore: this.epochs.staleBefore() }));
    const notes = this.finishPrometheusPass(reader, r);
    const chunks = r.chunks;
    return { chunks, byteLength: r.bytes, epoch: r.epoch, notes, release: () => void native().releaseOutput(chunks) };
  }

  /** As collectPrometheusFor, the text written a part at a time as the stream is read. */
  private async streamPrometheusFor(reader: object, o: PrometheusCollectOptions, partBytes?: number): Promise<PrometheusStream> {
    const readerEpoch = this.epochs.since(reader); // before the callbacks (collectFor)
    const options = await this.preparePrometheus(o);
    const before = this.reclaimBefore();
    const r = native().openPrometheusStream(this.domain, before !== undefined, before, null, {
      ...options,
      partBytes,
      readerEpoch,
      staleBefore: this.epochs.staleBefore(),
    });
    const notes = this.finishPrometheusPass(reader, r);
    const handle = r.stream;
    let closed = false;
    return {
      parts: r.parts,
      notes,
      epoch: r.epoch,
      heldBytes: r.snapshotBytes,
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
    await this.callbacks.run(this.callbackTimeoutMillis);
    const perInstrument: number[] = [];
    const exact: number[] = [];
    for (const [id, store] of this.registry.entries()) {
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
      protobuf: o.protobuf === true,
      targetInfo: (o.targetInfo ?? []).flat(),
      scopeLabels: !o.withoutScopeInfo,
      quantiles: Float64Array.from(o.summaryQuantiles),
      instrumentQuantiles: Float64Array.from(perInstrument),
      exact: Float64Array.from(exact),
      prefix: o.prefix ?? '',
      reservedNames: [...(o.reservedNames ?? [])],
      namePrefix: o.namePrefix ?? '',
      withoutUnits: o.withoutUnits === true,
      withoutCounterSuffixes: o.withoutCounterSuffixes === true,
      constantLabels: o.constantLabels ?? '',
      sampleSuffix: o.appendTimestamp === true ? ` ${Date.now()}` : '',
    };
  }

  /**
   * After a Prometheus pass: finishPass; the instruments left out and the pairs of
   * instruments whose records were written as one series, by name (the exporter reports them).
   */
  private finishPrometheusPass(reader: object, r: NativePrometheusPass): PrometheusPassNotes {
    this.finishPass(reader, r.epoch, new Set(r.stale), r.reclaimed);
    const nameOf = (id: number): string => this.registry.storeOf(id)?.descriptor.name ?? `#${id}`;
    const dropped = Array.from(r.dropped, nameOf);
    const merged: [string, string | undefined, number][] = [];
    const m = r.merged;
    for (let k = 0; k + 2 < m.length; k += 3) merged.push([nameOf(m[k]), m[k + 1] === m[k] ? undefined : nameOf(m[k + 1]), m[k + 2]]);
    return { dropped, merged };
  }

  /**
   * As collectFor, for a reader that keeps its conversions of earlier collections: the
   * native pass leaves out (mode 2) or lists by id only (mode 1) the records not changed
   * since the reader's previous pass, so the work here follows what changed. Eviction of
   * this thread's cached handles of idle records goes through its stale queue (drainStale,
   * which the pass filled; run once the reader has converted the collection: done()), not a set of every idle record.
   * The pass runs on the libuv pool.
   */
  private async collectChangesFor(reader: object, mode: 1 | 2): Promise<ChangedCollection> {
    if (this.shutdownDone) throw new Error('hotmeter: collect() after shutdown()');
    const since = this.epochs.since(reader); // before the callbacks (collectFor)
    await this.callbacks.run(this.callbackTimeoutMillis);
    const before = this.reclaimBefore();
    // Under way until the reader is done converting it (done()).
    let finished!: () => void;
    this.track(new Promise<void>((resolve) => (finished = resolve)));
    // The records come in parts while the pass reads the rest on the libuv pool (the
    // reader converts them meanwhile); its end gives the epoch and the records it freed.
    const parts: Float64Array[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown = undefined;
    let epoch = 0;
    let reclaimed: ArrayLike<number> = NO_IDS;
    const arrived = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const time = Date.now();
    let pass: Promise<Float64Array>;
    try {
      pass = native().collectStream(this.domain, before !== undefined, before, since, mode, this.epochs.staleBefore(), (part) => {
        parts.push(part);
        arrived();
      }, streamPartRecords);
    } catch (e) {
      finished();
      throw e;
    }
    pass.then(
      (last) => {
        epoch = last[0];
        const n = last[2];
        reclaimed = last.subarray(3, 3 + n);
        if (last.length > 3 + n) parts.push(last.subarray(3 + n));
        try {
          this.finishPass(reader, epoch, NOTHING_STALE, reclaimed);
        } catch (e) {
          failure = e;
        }
        ended = true;
        arrived();
      },
      (e: unknown) => {
        failure = e;
        ended = true;
        arrived();
      },
    );
    const attributesOf = this.attributesOf;
    return {
      nextPart: async () => {
        for (;;) {
          if (parts.length > 0) return parts.shift();
          if (failure !== undefined) throw failure;
          if (ended) return undefined;
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
      get epoch() {
        return epoch;
      },
      time,
      since,
      get reclaimed() {
        return reclaimed;
      },
      storeOf: (id) => this.registry.storeOf(id),
      attributes: (ids) => recordAttributes(ids, attributesOf),
      // Giving back cached references is housekeeping, not part of the export: after it.
      done: () => {
        finished();
        if (before !== undefined) setImmediate(drainStale);
      },
    };
  }

  /**
   * The pass on a libuv pool thread, its output read in slices (decodeCollection).
   * @param since the epoch of the reader's previous pass, read before its callbacks ran.
   */
  private async checkpoint(reader: object, since: number): Promise<CheckpointSet> {
    const before = this.reclaimBefore();
    const staleBefore = this.epochs.staleBefore();
    const data = before !== undefined ? await native().collectAsync(this.domain, true, before, undefined, undefined, staleBefore) : await native().collectAsync(this.domain, false);
    // With streams of readers' own, each reader gets its streams (a direct collection, every stream).
    const visible =
      this.readerStreams && reader !== DIRECT
        ? (s: RecordStore<BoundHandle>) => s.policy.readers === undefined || s.policy.readers.has(reader)
        : undefined;
    this.decoding++;
    try {
      const r = await decodeCollection(data, since, (id) => this.registry.storeOf(id), this.attributesOf, { visible, sharedObservables: this.sharedObservables, staleBefore });
      this.finishPass(reader, r.set.epoch, r.stale, r.reclaimed);
      return r.set;
    } finally {
      this.decoding--;
    }
  }

  /**
   * ReaderEpochs.reclaimBefore, but nothing expires while a collection's output is being
   * read in slices: the records in it keep their attributes until it is done.
   */
  private reclaimBefore(): number | undefined {
    const before = this.epochs.reclaimBefore();
    return before !== undefined && this.decoding > 0 ? 0 : before;
  }
}

// Keep the type import used for declaration output.
export type { ObservableResult };
