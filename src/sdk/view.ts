// Views: select instruments and change how they are exported (the OpenTelemetry View
// model). Every view that matches an instrument makes a stream of it (its own name,
// aggregation, attribute filter and series limit); an instrument no view matches has one
// stream, the provider's default. Both hotmeter's option names and
// @opentelemetry/sdk-metrics' ViewOptions (aggregation `{ type, options }`,
// attributesProcessors, aggregationCardinalityLimit) are accepted; anything else is a
// TypeError when the provider is constructed.
import { context as apiContext } from '@opentelemetry/api';
import type { Attributes, Context } from '@opentelemetry/api';
import { compatible } from '../export/aggregation-selector';
import { AggregationKind, AggregatorOptions, validBoundaries } from './aggregation';
import { Descriptor, InstrumentationScope, InstrumentKind } from './descriptor';

/** OpenTelemetry JS instrument type names, accepted beside {@link InstrumentKind}. */
const TYPE_NAMES: Record<string, InstrumentKind> = {
  COUNTER: InstrumentKind.COUNTER,
  UP_DOWN_COUNTER: InstrumentKind.UP_DOWN_COUNTER,
  HISTOGRAM: InstrumentKind.HISTOGRAM,
  GAUGE: InstrumentKind.GAUGE,
  OBSERVABLE_COUNTER: InstrumentKind.OBSERVABLE_COUNTER,
  OBSERVABLE_UP_DOWN_COUNTER: InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER,
  OBSERVABLE_GAUGE: InstrumentKind.OBSERVABLE_GAUGE,
};

/** @opentelemetry/sdk-metrics' `AggregationType` values (its numbering). */
export const enum SdkAggregationType {
  DEFAULT = 0,
  DROP = 1,
  SUM = 2,
  LAST_VALUE = 3,
  EXPLICIT_BUCKET_HISTOGRAM = 4,
  EXPONENTIAL_HISTOGRAM = 5,
}

/** @opentelemetry/sdk-metrics' `AggregationOption` (`{ type: AggregationType.X, options }`). */
export interface SdkAggregationOption {
  type: number;
  options?: { boundaries?: number[]; recordMinMax?: boolean; maxSize?: number };
}

/** @opentelemetry/sdk-metrics' `IAttributesProcessor`. */
export interface AttributesProcessor {
  process(incoming: Attributes, context?: Context): Attributes;
}

/**
 * A view: which instruments (selection) and what to change for them (stream). The
 * @opentelemetry/sdk-metrics `ViewOptions` shape is accepted as is.
 */
export interface ViewOptions {
  /** Instrument name, case-insensitive; `*` matches any run of characters, `?` one. */
  instrumentName?: string;
  /** Instrument kind: an {@link InstrumentKind} or its OpenTelemetry JS name ('HISTOGRAM', sdk-metrics' InstrumentType). */
  instrumentType?: InstrumentKind | keyof typeof TYPE_NAMES;
  instrumentUnit?: string;
  meterName?: string;
  meterVersion?: string;
  meterSchemaUrl?: string;
  /** New stream name (only with a selection that matches one instrument name exactly). */
  name?: string;
  description?: string;
  /**
   * Aggregation for the stream: an {@link AggregationKind} ({@link AggregationKind.DROP}
   * disables the stream), or sdk-metrics' `{ type: AggregationType.X, options }`.
   */
  aggregation?: AggregationKind | SdkAggregationOption;
  /** Histogram bucket boundaries for the stream. */
  explicitBucketBoundaries?: number[];
  /** Attribute keys to keep (allow list). */
  attributeKeys?: string[];
  /** Attribute keys to drop (deny list). */
  excludedAttributeKeys?: string[];
  /**
   * sdk-metrics' attribute processors (createAllowListAttributesProcessor, ... or your own
   * `{ process(incoming, context) }`), applied in order. They run when a label set is first
   * seen, not per measurement: a processor must depend on the attributes only (the context
   * it gets is the one active then).
   */
  attributesProcessors?: AttributesProcessor[];
  /** Series limit for the stream (default: the provider's, 2000). */
  cardinalityLimit?: number;
  /** sdk-metrics' name of {@link ViewOptions.cardinalityLimit}. */
  aggregationCardinalityLimit?: number;
}

const VIEW_KEYS = new Set([
  'instrumentName', 'instrumentType', 'instrumentUnit', 'meterName', 'meterVersion', 'meterSchemaUrl',
  'name', 'description', 'aggregation', 'explicitBucketBoundaries', 'attributeKeys', 'excludedAttributeKeys',
  'attributesProcessors', 'cardinalityLimit', 'aggregationCardinalityLimit',
]);

/** What a view asks of its stream, resolved. */
export interface StreamSettings {
  readonly name?: string;
  readonly description?: string;
  /** undefined: the provider's aggregationSelector decides. */
  readonly aggregation?: AggregationKind;
  readonly boundaries?: readonly number[];
  readonly params?: AggregatorOptions;
  /** false: histogram points carry no min and max (sdk-metrics' recordMinMax). */
  readonly recordMinMax: boolean;
  readonly cardinalityLimit?: number;
  readonly keep?: (key: string) => boolean;
  /** The attribute processors, composed; run when a label set is first seen. */
  readonly process?: (attrs: Attributes) => Attributes;
}

function isPositiveInt(x: unknown): x is number {
  return Number.isInteger(x) && (x as number) > 0;
}

function checkKeys(o: object, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new TypeError(`hotmeter: unknown option ${what}.${k} (known: ${allowed.join(', ')})`);
  }
}

/** sdk-metrics' aggregation option as hotmeter's kind and parameters; TypeError when it cannot be honoured. */
export function fromSdkAggregation(option: SdkAggregationOption, what: string): Pick<StreamSettings, 'aggregation' | 'boundaries' | 'params' | 'recordMinMax'> {
  if (option === null || typeof option !== 'object') throw new TypeError(`hotmeter: ${what} must be sdk-metrics { type: AggregationType.X, options }`);
  const a = typeof (option as { createAggregator?: unknown }).createAggregator === 'function' ? fromAggregationInstance(option, what) : option;
  checkKeys(a, ['type', 'options'], what);
  const opts = a.options ?? {};
  if (opts === null || typeof opts !== 'object') throw new TypeError(`hotmeter: ${what}.options must be an object`);
  const optKeys = (keys: string[]): void => checkKeys(opts, keys, `${what}.options`);
  const recordMinMax = (): boolean => {
    const r = (opts as { recordMinMax?: unknown }).recordMinMax;
    if (r !== undefined && typeof r !== 'boolean') throw new TypeError(`hotmeter: ${what}.options.recordMinMax must be a boolean`);
    return r !== false;
  };
  switch (a.type) {
    case SdkAggregationType.DEFAULT:
      // The provider's aggregationSelector: by default the OpenTelemetry default of the kind.
      optKeys([]);
      return { recordMinMax: true };
    case SdkAggregationType.DROP:
      optKeys([]);
      return { aggregation: AggregationKind.DROP, recordMinMax: true };
    case SdkAggregationType.SUM:
      optKeys([]);
      return { aggregation: AggregationKind.SUM, recordMinMax: true };
    case SdkAggregationType.LAST_VALUE:
      optKeys([]);
      return { aggregation: AggregationKind.LAST_VALUE, recordMinMax: true };
    case SdkAggregationType.EXPLICIT_BUCKET_HISTOGRAM: {
      optKeys(['boundaries', 'recordMinMax']);
      const b = (opts as { boundaries?: unknown }).boundaries;
      if (b !== undefined && !validBoundaries(b)) {
        throw new TypeError(`hotmeter: ${what}.options.boundaries must be finite, strictly increasing numbers`);
      }
      return { aggregation: AggregationKind.HISTOGRAM, boundaries: b as number[] | undefined, recordMinMax: recordMinMax() };
    }
    case SdkAggregationType.EXPONENTIAL_HISTOGRAM: {
      optKeys(['maxSize', 'recordMinMax']);
      const m = (opts as { maxSize?: unknown }).maxSize;
      if (m !== undefined && !(Number.isInteger(m) && (m as number) >= 2 && (m as number) <= 4096)) {
        throw new TypeError(`hotmeter: ${what}.options.maxSize must be an integer in [2, 4096]`);
      }
      return {
        aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM,
        params: m === undefined ? undefined : { maxSize: m as number },
        recordMinMax: recordMinMax(),
      };
    }
    default:
      throw new TypeError(`hotmeter: unknown ${what}.type ${String(a.type)} (sdk-metrics AggregationType 0..5)`);
  }
}

/**
 * An @opentelemetry/sdk-metrics `Aggregation` instance (the 1.x public classes, such as
 * `new ExplicitBucketHistogramAggregation([1, 5])`; internal in 2.x) as the option it stands
 * for. Recognised by class name; another class is a TypeError.
 */
function fromAggregationInstance(a: object, what: string): SdkAggregationOption {
  const f = a as { _boundaries?: number[]; _recordMinMax?: boolean; _maxSize?: number };
  const name = (a.constructor as { name?: string } | undefined)?.name ?? '';
  switch (name) {
    case 'DefaultAggregation': return { type: SdkAggregationType.DEFAULT };
    case 'DropAggregation': return { type: SdkAggregationType.DROP };
    case 'SumAggregation': return { type: SdkAggregationType.SUM };
    case 'LastValueAggregation': return { type: SdkAggregationType.LAST_VALUE };
    case 'HistogramAggregation': return { type: SdkAggregationType.EXPLICIT_BUCKET_HISTOGRAM };
    case 'ExplicitBucketHistogramAggregation':
      return { type: SdkAggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: f._boundaries, recordMinMax: f._recordMinMax } };
    case 'ExponentialHistogramAggregation':
      return { type: SdkAggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: f._maxSize, recordMinMax: f._recordMinMax } };
    default:
      throw new TypeError(`hotmeter: ${what} is an aggregation class hotmeter does not know (${name || 'anonymous'})`);
  }
}

/** A validated view. */
export class View {
  private readonly nameRe: RegExp | undefined;
  private readonly kind: InstrumentKind | undefined;
  /** The stream this view asks for. */
  readonly stream: StreamSettings;

  constructor(readonly options: ViewOptions) {
    const o = options;
    if (o === null || typeof o !== 'object') throw new TypeError('hotmeter: a view must be an object');
    for (const k of Object.keys(o)) {
      if (!VIEW_KEYS.has(k)) throw new TypeError(`hotmeter: unknown view option ${k} (known: ${[...VIEW_KEYS].join(', ')})`);
    }
    const selects = [o.instrumentName, o.instrumentType, o.instrumentUnit, o.meterName, o.meterVersion, o.meterSchemaUrl];
    if (selects.every((x) => x === undefined)) {
      throw new TypeError('hotmeter: a view needs at least one selection criterion (instrumentName, instrumentType, ...)');
    }
    for (const k of ['instrumentName', 'instrumentUnit', 'meterName', 'meterVersion', 'meterSchemaUrl', 'name', 'description'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'string') throw new TypeError(`hotmeter: view option ${k} must be a string`);
    }
    if (o.name !== undefined && (o.instrumentName === undefined || /[*?]/.test(o.instrumentName))) {
      throw new TypeError('hotmeter: a view that renames must select one instrument name without wildcards');
    }
    if (o.cardinalityLimit !== undefined && o.aggregationCardinalityLimit !== undefined) {
      throw new TypeError('hotmeter: a view takes cardinalityLimit or aggregationCardinalityLimit, not both');
    }
    const limit = o.cardinalityLimit ?? o.aggregationCardinalityLimit;
    if (limit !== undefined && !isPositiveInt(limit)) {
      throw new TypeError(`hotmeter: ${o.cardinalityLimit !== undefined ? 'cardinalityLimit' : 'aggregationCardinalityLimit'} must be a positive integer`);
    }
    if (o.instrumentName !== undefined) {
      const re = o.instrumentName.replace(/[.+^${}()|[\]\\/-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
      this.nameRe = new RegExp(`^${re}$`, 'i');
    }
    if (o.instrumentType !== undefined) {
      const k = typeof o.instrumentType === 'string' ? TYPE_NAMES[o.instrumentType] : o.instrumentType;
      if (k === undefined || InstrumentKind[k] === undefined) throw new TypeError(`hotmeter: unknown instrumentType ${String(o.instrumentType)}`);
      this.kind = k;
    }

    let agg: Pick<StreamSettings, 'aggregation' | 'boundaries' | 'params' | 'recordMinMax'> = { recordMinMax: true };
    if (typeof o.aggregation === 'number') {
      if (AggregationKind[o.aggregation] === undefined) throw new TypeError(`hotmeter: unknown view aggregation ${o.aggregation}`);
      agg = { aggregation: o.aggregation, recordMinMax: true };
    } else if (o.aggregation !== undefined) {
      if (o.aggregation === null || typeof o.aggregation !== 'object') {
        throw new TypeError('hotmeter: view.aggregation must be an AggregationKind or sdk-metrics { type: AggregationType.X, options }');
      }
      agg = fromSdkAggregation(o.aggregation, 'view.aggregation');
    }
    if (o.explicitBucketBoundaries !== undefined) {
      if (!validBoundaries(o.explicitBucketBoundaries)) throw new TypeError('hotmeter: explicitBucketBoundaries must be finite, strictly increasing numbers');
      if (agg.boundaries !== undefined) throw new TypeError('hotmeter: a view takes explicitBucketBoundaries or aggregation.options.boundaries, not both');
      agg = { ...agg, boundaries: o.explicitBucketBoundaries };
    }
    if (this.kind !== undefined && agg.aggregation !== undefined && !compatible(this.kind, agg.aggregation)) {
      throw new TypeError(
        `hotmeter: view aggregation ${AggregationKind[agg.aggregation]} cannot aggregate ${InstrumentKind[this.kind]} instruments ` +
          '(supported: the kind\'s default, DROP, and for histograms every distribution aggregation)',
      );
    }

    for (const k of ['attributeKeys', 'excludedAttributeKeys'] as const) {
      const l = o[k];
      if (l !== undefined && !(Array.isArray(l) && l.every((x) => typeof x === 'string'))) throw new TypeError(`hotmeter: view option ${k} must be an array of strings`);
    }
    const allow = o.attributeKeys ? new Set(o.attributeKeys) : undefined;
    const deny = o.excludedAttributeKeys ? new Set(o.excludedAttributeKeys) : undefined;
    const keep = allow || deny ? (k: string) => (allow === undefined || allow.has(k)) && (deny === undefined || !deny.has(k)) : undefined;

    let process: ((attrs: Attributes) => Attributes) | undefined;
    const ps = o.attributesProcessors;
    if (ps !== undefined) {
      if (!Array.isArray(ps) || !ps.every((p) => p !== null && typeof p === 'object' && typeof (p as AttributesProcessor).process === 'function')) {
        throw new TypeError('hotmeter: view option attributesProcessors must be an array of { process(incoming, context) } objects');
      }
      const list = [...ps];
      if (list.length > 0) {
        process = (attrs) => {
          const ctx = apiContext.active();
          let a = attrs;
          for (const p of list) a = p.process(a, ctx);
          return a;
        };
      }
    }
    this.stream = Object.freeze({ name: o.name, description: o.description, ...agg, cardinalityLimit: limit, keep, process });
  }

  matches(d: Descriptor, scope: InstrumentationScope): boolean {
    const o = this.options;
    if (this.nameRe !== undefined && !this.nameRe.test(d.name)) return false;
    if (this.kind !== undefined && this.kind !== d.kind) return false;
    if (o.instrumentUnit !== undefined && o.instrumentUnit !== d.unit) return false;
    if (o.meterName !== undefined && o.meterName !== scope.name) return false;
    if (o.meterVersion !== undefined && o.meterVersion !== (scope.version ?? '')) return false;
    if (o.meterSchemaUrl !== undefined && o.meterSchemaUrl !== (scope.schemaUrl ?? '')) return false;
    return true;
  }
}
