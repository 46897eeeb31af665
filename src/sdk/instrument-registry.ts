// InstrumentRegistry: a MeterProvider's instruments. It turns an instrument's creation
// (name, kind, options) into its descriptor, applies the views and the
// AggregationSelector, registers the instrument in the native record map and keeps one
// RecordStore per instrument identity; and it finds the store of any instrument of the
// provider's domain by native id (instruments other providers sharing the domain registered
// get a passive store). Creation never throws: anything invalid makes a store that records
// nothing, with a diagnostic.
import { MetricOptions, ValueType } from '@opentelemetry/api';
import type { AttributeTable } from './attribute-table';
import { BoundHandle } from '../api/handles';
import { AggregationSelector, compatible } from '../export/aggregation-selector';
import { AggregationKind, DEFAULT_HISTOGRAM_BOUNDARIES, defaultAggregation, validBoundaries } from './aggregation';
import { AggregatorOptions, AggregatorParams, resolveAggregatorParams } from './aggregation';
import type { NativeDescriptor } from './native';
import { Descriptor, InstrumentationScope, InstrumentKind, isMonotonic, isValidInstrumentName, isValidUnit } from './descriptor';
import { describeValue, warnLimited } from './diag';
import { LabelLimits } from './labels';
import { LabelTrie } from './label-trie';
import { native } from './native';
import { RecordStore } from './record-store';
import { untrackStore } from './worker-evict';
import { View } from './view';

/** The longest string registerInstrument takes, in UTF-8 bytes (kMaxStringBytes natively). */
const MAX_IDENTITY_BYTES = 64 * 1024;

const EMPTY_BOUNDS = new Float64Array(0);

/** What the provider's options say about its instruments. */
export interface RegistryOptions {
  readonly limits: LabelLimits;
  readonly selector: AggregationSelector;
  readonly views: readonly View[];
  readonly cardinalityLimit: number;
}

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
  }

  /** The store of an instrument (registered natively the first time its identity is seen). */
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
    if (this.closed) {
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
function registeredParams(reg: NativeDescriptor): AggregatorParams {
  return { relativeAccuracy: reg.relativeAccuracy, maxSize: reg.maxSize, maxScale: reg.maxScale };
}
