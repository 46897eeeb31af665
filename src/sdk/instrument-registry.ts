// InstrumentRegistry: a MeterProvider's instruments. It turns an instrument's creation
// (name, kind, options) into its descriptor, applies the views and the
// AggregationSelector, registers the instrument in the native record map and keeps one
// RecordStore per instrument identity; and it finds the store of any instrument of the
// provider's domain by native id (instruments other providers sharing the domain registered
// get a passive store). Creation never throws: anything invalid makes a store that records
// nothing, with a diagnostic.
import { ExemplarFilterCode } from './exemplars';
import { MetricOptions, ValueType } from '@opentelemetry/api';
import type { AttributeTable } from './attribute-table';
import { BoundHandle } from '../api/handles';
import { AggregationSelector, compatible } from '../export/aggregation-selector';
import { AggregationKind, DEFAULT_HISTOGRAM_BOUNDARIES, DEFAULT_SKETCH_RELATIVE_ACCURACY, defaultAggregation, validBoundaries } from './aggregation';
import { AggregatorOptions, AggregatorParams, resolveAggregatorParams } from './aggregation';
import type { NativeDescriptor } from './native';
import { Descriptor, InstrumentationScope, InstrumentKind, isMonotonic, isValidInstrumentName, isValidUnit } from './descriptor';
import { describeValue, warnLimited } from './diag';
import { LabelLimits } from './labels';
import { LabelTrie } from './label-trie';
import { native } from './native';
import { RecordStore } from './record-store';
import { untrackStore } from './worker-evict';
import { StreamSettings, View } from './view';

/** The longest string registerInstrument takes, in UTF-8 bytes (kMaxStringBytes natively). */
const MAX_IDENTITY_BYTES = 64 * 1024;

const EMPTY_BOUNDS = new Float64Array(0);

/** What the provider's options say about its instruments. */
export interface RegistryOptions {
  readonly limits: LabelLimits;
  readonly selector: AggregationSelector;
  readonly views: readonly View[];
  readonly cardinalityLimit: number;
  /** Readers that choose their own aggregation or series limit (sdk-metrics readers). */
  readonly readerPreferences?: readonly ReaderPreference[];
  /** The other readers: they read the provider's default streams. */
  readonly defaultReaders?: readonly object[];
  /** The provider's exemplar filter (default trace based). */
  readonly exemplarFilter?: ExemplarFilterCode;
  /** The provider records into a processShared segment (its records are the fleet's). */
  readonly processShared?: boolean;
}

/**
 * A reader's own stream settings (sdk-metrics' MetricReader selectAggregation and
 * selectCardinalityLimit) for instruments no view matches; undefined: the provider's.
 */
export interface ReaderPreference {
  readonly reader: object;
  settingsFor(kind: InstrumentKind): StreamSettings | undefined;
}

/** One stream to register: its settings, and the readers it is exported to (undefined: all). */
interface StreamSpec {
  readonly settings: StreamSettings;
  readonly readers?: ReadonlySet<object>;
  /** The settings' key, for a reader's own stream. */
  readonly key?: string;
}

/** The provider's default stream: its aggregationSelector and cardinality limit. */
const DEFAULT_STREAM: StreamSettings = Object.freeze({ recordMinMax: true });

export class InstrumentRegistry {
  /** By identity (scope, lower-cased name, kind, unit, value type, description). */
  private readonly stores = new Map<string, RecordStore<BoundHandle>>();
  /** By native instrument id, this provider's and (passive) other providers' of the domain. */
  private readonly storeByInstrument = new Map<number, RecordStore<BoundHandle>>();
  /** Scope and lower-cased name -> the identity registered last (duplicate diagnostics). */
  private readonly nameKinds = new Map<string, string>();
  private readonly limits: LabelLimits;
  private readonly selector: AggregationSelector;
  private readonly views: readonly View[];
  private readonly cardinalityLimit: number;
  private readonly readerPreferences: readonly ReaderPreference[];
  private readonly defaultReaders: readonly object[];
  private readonly exemplarFilter: ExemplarFilterCode;
  private readonly processShared: boolean;
  /** By the instrument's own identity: its streams' stores. */
  private readonly streamsByInstrument = new Map<string, RecordStore<BoundHandle>[]>();
  /** Set by registerStream when a stream drops by design (streamsFor caches the disabled instrument). */
  private everyStreamDrops = false;
  private closed = false;

  /**
   * @param attributesOf decoded attributes by record id, shared with the provider's collections
   * @param trie the direct calls' index for all the provider's stores (see LabelTrie)
   */
  constructor(
    private readonly domain: number,
    options: RegistryOptions,
    private readonly attributesOf: AttributeTable,
    private readonly trie: LabelTrie<BoundHandle>,
  ) {
    this.limits = options.limits;
    this.selector = options.selector;
    this.views = options.views;
    this.cardinalityLimit = options.cardinalityLimit;
    this.readerPreferences = options.readerPreferences ?? [];
    this.defaultReaders = options.defaultReaders ?? [];
    this.exemplarFilter = options.exemplarFilter ?? ExemplarFilterCode.TRACE_BASED;
    this.processShared = options.processShared === true;
  }

  /** The first stream's store of an instrument (see streamsFor). */
  storeFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options: MetricOptions = {}): RecordStore<BoundHandle> {
    return this.streamsFor(scope, kind, name, options)[0];
  }

  /**
   * The stores of an instrument's streams (registered natively the first time each stream
   * identity is seen): one per matching view, else the provider's default stream (one per
   * distinct reader preference, see ReaderPreference). At least one: a disabled store when
   * every stream drops.
   */
  streamsFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options: MetricOptions = {}): RecordStore<BoundHandle>[] {
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
    const scopeKey = `${scope.name}\0${scope.version ?? ''}\0${scope.schemaUrl ?? ''}`;
    if (this.closed) {
      // The domain is released: nothing is registered any more. Its measurements are
      // dropped with the after-shutdown diagnostic.
      const dead = this.disabledStore(instrument, scope);
      dead.shutdown();
      return [dead];
    }
    const instrumentKey = `${scopeKey}\0${nameText.toLowerCase()}\0${kind}\0${unit}\0${valueType}\0${description}`;
    const known = this.streamsByInstrument.get(instrumentKey);
    if (known !== undefined) return known;
    if (!isValidInstrumentName(name)) {
      warnLimited(`name:${nameText.slice(0, 300)}`, `invalid instrument name "${nameText.slice(0, 300)}": a letter then up to 254 of [A-Za-z0-9_.-/]; the instrument records nothing`);
      return [this.disabledStore(instrument, scope)];
    }
    const out: RecordStore<BoundHandle>[] = [];
    const identities = new Set<string>();
    for (const spec of this.streamSpecs(instrument, scope)) {
      const s = this.registerStream(instrument, scope, scopeKey, spec, identities);
      if (s !== undefined && !s.disabled) out.push(s);
    }
    const streams = out.length > 0 ? out : [this.disabledStore(instrument, scope)];
    // Registration failures (diagnosed) are not cached: the next creation tries again.
    if (out.length > 0 || this.everyStreamDrops) this.streamsByInstrument.set(instrumentKey, streams);
    this.everyStreamDrops = false;
    return streams;
  }

  /** A store that records nothing (disabled stream, invalid instrument). */
  private disabledStore(d: Descriptor, scope: InstrumentationScope): RecordStore<BoundHandle> {
    return new RecordStore<BoundHandle>(d, scope, 0, AggregationKind.DROP, EMPTY_BOUNDS, this.limits, this.attributesOf, undefined, undefined, this.trie);
  }

  /** The streams an instrument gets: the matching views', else the default (per reader preference). */
  private streamSpecs(instrument: Descriptor, scope: InstrumentationScope): StreamSpec[] {
    const views = this.views.filter((v) => v.matches(instrument, scope));
    if (views.length > 0) return views.map((v) => ({ settings: v.stream }));
    if (this.readerPreferences.length === 0) return [{ settings: DEFAULT_STREAM }];
    // OpenTelemetry: an instrument no view matches gets each reader's aggregation and
    // series limit. Readers that agree share one stream.
    const groups = new Map<string, { settings: StreamSettings; readers: object[] }>();
    const keyOf = (st: StreamSettings): string => {
      let agg = st.aggregation;
      if (agg === undefined) {
        try {
          agg = this.selector.aggregatorFor(instrument) ?? AggregationKind.DROP;
        } catch {
          agg = defaultAggregation(instrument.kind);
        }
      }
      return JSON.stringify([agg, st.boundaries ?? null, st.params ?? null, st.recordMinMax, st.cardinalityLimit ?? this.cardinalityLimit]);
    };
    if (this.defaultReaders.length > 0) groups.set(keyOf(DEFAULT_STREAM), { settings: DEFAULT_STREAM, readers: [...this.defaultReaders] });
    for (const p of this.readerPreferences) {
      let st: StreamSettings | undefined;
      try {
        st = p.settingsFor(instrument.kind);
      } catch (e) {
        warnLimited(`reader-pref:${instrument.name}`, `a reader's aggregation or cardinality selector threw for ${instrument.name} (${describeValue(e)}); the provider's defaults used`);
      }
      const settings = st ?? DEFAULT_STREAM;
      const k = keyOf(settings);
      const g = groups.get(k);
      if (g !== undefined) g.readers.push(p.reader);
      else groups.set(k, { settings, readers: [p.reader] });
    }
    if (groups.size === 1) return [{ settings: [...groups.values()][0].settings }];
    return [...groups.entries()].map(([k, g]) => ({ settings: g.settings, readers: new Set(g.readers), key: k }));
  }

  /**
   * Registers one stream of an instrument (or finds it: several instruments may feed one
   * stream); undefined when it cannot be registered or repeats one of the instrument's
   * earlier streams (`identities`), diagnosed.
   */
  private registerStream(
    instrument: Descriptor,
    scope: InstrumentationScope,
    scopeKey: string,
    spec: StreamSpec,
    identities: Set<string>,
  ): RecordStore<BoundHandle> | undefined {
    const vo = spec.settings;
    const kind = instrument.kind;
    const unit = instrument.unit;
    const valueType = instrument.valueType;
    const nameText = instrument.name;
    if (vo.aggregation === AggregationKind.DROP) {
      this.everyStreamDrops = true;
      return undefined;
    }
    const renamed = vo.name !== undefined || vo.description !== undefined || !vo.recordMinMax;
    const descriptor: Descriptor = !renamed
      ? instrument
      : Object.freeze({
          ...instrument,
          name: vo.name ?? instrument.name,
          description: vo.description ?? instrument.description,
          ...(vo.recordMinMax ? {} : { recordMinMax: false }),
        });
    const base = `${scopeKey}\0${descriptor.name.toLowerCase()}\0${kind}\0${unit}\0${valueType}\0${descriptor.description}`;
    // A reader's own stream is another native instrument than the default stream of its
    // name. Two views making streams of one identity make one stream, the first's (as
    // sdk-metrics reuses a compatible storage).
    const identity = spec.key !== undefined && spec.readers !== undefined ? `${base}\0reader ${spec.key}` : base;
    if (identities.has(identity)) {
      warnLimited(`same-stream:${identity}`, `two views make the same stream ${descriptor.name} of ${nameText}; the first one's settings are used`);
      return undefined;
    }
    identities.add(identity);
    const existing = this.stores.get(identity);
    if (existing !== undefined) return existing;

    // The native registry takes at most MAX_IDENTITY_BYTES of UTF-8 per string, the
    // identity included (it holds every other piece): longer ones make a no-op instrument.
    if (Buffer.byteLength(identity, 'utf8') > MAX_IDENTITY_BYTES) {
      warnLimited(
        `identity:${nameText}`,
        `instrument ${nameText}: its meter name, version and schema URL, description and unit together exceed ${MAX_IDENTITY_BYTES} bytes; the instrument records nothing`,
      );
      return undefined;
    }
    const nameKey = `${scopeKey}\0${descriptor.name.toLowerCase()}`;
    const prior = this.nameKinds.get(nameKey);
    if (prior !== undefined && prior !== base) {
      warnLimited(
        `dup:${nameKey}`,
        `duplicate instrument registration for "${descriptor.name}" with a different kind, unit, description or value type; both are exported ` +
          '(in Prometheus as one family where their types agree, with the first description and their series of the same labels merged; else the later one is left out)',
      );
    }
    this.nameKinds.set(nameKey, base);

    let aggregation: AggregationKind;
    try {
      aggregation = vo.aggregation ?? this.selector.aggregatorFor(descriptor) ?? AggregationKind.DROP;
    } catch (e) {
      warnLimited(`selector:${descriptor.name}`, `aggregationSelector threw for ${descriptor.name}: ${describeValue(e)}; default used`);
      aggregation = defaultAggregation(kind);
    }
    if (!compatible(kind, aggregation)) {
      warnLimited(`selector-fit:${descriptor.name}`, `aggregation ${String(AggregationKind[aggregation])} does not fit ${InstrumentKind[kind]} ${descriptor.name}; default used`);
      aggregation = defaultAggregation(kind);
    }
    if (aggregation === AggregationKind.DROP) {
      this.everyStreamDrops = true;
      return undefined;
    }
    if (aggregation === AggregationKind.EXACT && this.processShared) {
      // Exact values stay in the process that recorded them (handles-sketch.ts), so each
      // process's scrape would show quantiles of its own values beside the fleet's count
      // and sum. The sketch's state is cells, which every process's collection merges.
      warnLimited(
        `shared-exact:${descriptor.name}`,
        `instrument ${descriptor.name}: exact quantiles would cover only the values of the process that collects; in a processShared provider it keeps a sketch (summary quantiles within ${DEFAULT_SKETCH_RELATIVE_ACCURACY * 100}% relative error) of every process's values instead`,
      );
      aggregation = AggregationKind.SKETCH;
    }
    const bounds =
      aggregation === AggregationKind.HISTOGRAM
        ? new Float64Array(vo.boundaries ?? instrument.adviceBoundaries ?? DEFAULT_HISTOGRAM_BOUNDARIES)
        : EMPTY_BOUNDS;
    const params = vo.params !== undefined ? resolveAggregatorParams(aggregation, vo.params).params : aggregatorParams(this.selector, descriptor, aggregation);
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
          ...(descriptor.adviceQuantiles !== undefined ? { quantiles: Float64Array.from(descriptor.adviceQuantiles) } : {}),
          ...(descriptor.recordMinMax === false ? { recordMinMax: false } : {}),
        },
      );
    } catch (e) {
      // Every argument is checked above; this is the last guard of "creation never throws".
      warnLimited(`register:${nameText}`, `instrument ${nameText} could not be registered (${describeValue(e)}); it records nothing`);
      return undefined;
    }
    // In a domain shared by name, another provider (or thread) may have registered this
    // identity first with other advice or another selector: the cells in native memory
    // have its layout, so this store must use it.
    const reg = existed ? native().descriptor(id) : null;
    if (reg !== null && reg.aggregation === AggregationKind.DROP) {
      // processShared: the fleet has this name with another kind, unit or value type, or
      // the shared segment has no room for another instrument.
      warnLimited(
        `shared-conflict:${identity}`,
        `instrument ${descriptor.name}: a process of this processShared name registered ${descriptor.name} with another kind, unit or value type first ` +
          '(or the shared segment\'s instrument table is full); this one records nothing',
      );
      return undefined;
    }
    if (reg !== null && !sameLayout(reg, aggregation, bounds, params)) {
      warnLimited(
        `layout:${identity}`,
        `instrument ${descriptor.name} was registered first (by another provider of this domain or another process of this processShared name) with another aggregation, buckets or aggregator options; the first registration's are used`,
      );
    }
    const store = new RecordStore<BoundHandle>(
      descriptor, scope, id,
      reg !== null ? (reg.aggregation as AggregationKind) : aggregation,
      reg !== null ? reg.bounds : bounds,
      this.limits, this.attributesOf,
      { cardinalityLimit: vo.cardinalityLimit ?? this.cardinalityLimit, keep: vo.keep, process: vo.process, readers: spec.readers, exemplarFilter: this.exemplarFilter },
      reg !== null ? registeredParams(reg) : params,
      this.trie,
    );
    this.stores.set(identity, store);
    this.storeByInstrument.set(id, store);
    return store;
  }

  /** The store of a native instrument id of the domain (a passive one for another provider's). */
  storeOf(instrumentId: number): RecordStore<BoundHandle> | undefined {
    return this.storeByInstrument.get(instrumentId) ?? this.foreignStore(instrumentId);
  }

  /** The provider's own stores. */
  values(): IterableIterator<RecordStore<BoundHandle>> {
    return this.stores.values();
  }

  /** Every store by native instrument id (own and passive). */
  entries(): IterableIterator<[number, RecordStore<BoundHandle>]> {
    return this.storeByInstrument.entries();
  }

  /** Shuts every store down (their handles drop every measurement). */
  shutdown(): void {
    for (const s of this.stores.values()) s.shutdown();
  }

  /**
   * After shutdown: forgets every store; instruments created later record nothing (the
   * domain is being released).
   */
  close(): void {
    this.closed = true;
    for (const s of this.stores.values()) untrackStore(s);
    this.stores.clear();
    this.streamsByInstrument.clear();
    this.storeByInstrument.clear();
    this.nameKinds.clear();
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
      ...(d.quantiles.length > 0 ? { adviceQuantiles: Object.freeze(Array.from(d.quantiles)) } : {}),
      ...(d.recordMinMax ? {} : { recordMinMax: false }),
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
/** Whether a registered instrument has the aggregation, buckets and options asked for. */
function sameLayout(reg: NativeDescriptor, aggregation: AggregationKind, bounds: Float64Array, params: AggregatorParams): boolean {
  if (reg.aggregation !== aggregation || reg.bounds.length !== bounds.length) return false;
  for (let i = 0; i < bounds.length; i++) if (reg.bounds[i] !== bounds[i]) return false;
  if (aggregation === AggregationKind.SKETCH && reg.relativeAccuracy !== params.relativeAccuracy) return false;
  if ((aggregation === AggregationKind.SKETCH || aggregation === AggregationKind.EXPONENTIAL_HISTOGRAM) && params.maxSize > 0 && reg.maxSize !== params.maxSize) return false;
  if (aggregation === AggregationKind.EXPONENTIAL_HISTOGRAM && reg.maxScale !== params.maxScale) return false;
  return true;
}

function registeredParams(reg: NativeDescriptor): AggregatorParams {
  return { relativeAccuracy: reg.relativeAccuracy, maxSize: reg.maxSize, maxScale: reg.maxScale };
}
