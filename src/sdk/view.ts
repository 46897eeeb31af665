// Views: select instruments and change how they are exported (the OpenTelemetry View
// model). One stream per instrument: when several views match, the first wins.
import { AggregationKind } from './aggregation';
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

/** A view: which instruments (selection) and what to change for them (stream). */
export interface ViewOptions {
  /** Instrument name, case-insensitive; `*` matches any run of characters, `?` one. */
  instrumentName?: string;
  /** Instrument kind: an {@link InstrumentKind} or its OpenTelemetry JS name ('HISTOGRAM'). */
  instrumentType?: InstrumentKind | keyof typeof TYPE_NAMES;
  instrumentUnit?: string;
  meterName?: string;
  meterVersion?: string;
  meterSchemaUrl?: string;
  /** New stream name (only with a selection that matches one instrument name exactly). */
  name?: string;
  description?: string;
  /** Aggregation for the stream; {@link AggregationKind.DROP} disables the instrument. */
  aggregation?: AggregationKind;
  /** Histogram bucket boundaries for the stream. */
  explicitBucketBoundaries?: number[];
  /** Attribute keys to keep (allow list). */
  attributeKeys?: string[];
  /** Attribute keys to drop (deny list). */
  excludedAttributeKeys?: string[];
  /** Series limit for the stream (default: the provider's, 2000). */
  cardinalityLimit?: number;
}

/** A validated view. */
export class View {
  private readonly nameRe: RegExp | undefined;
  private readonly kind: InstrumentKind | undefined;
  readonly keep: ((key: string) => boolean) | undefined;

  constructor(readonly options: ViewOptions) {
    const o = options;
    if (o === null || typeof o !== 'object') throw new TypeError('hotmeter: a view must be an object');
    const selects = [o.instrumentName, o.instrumentType, o.instrumentUnit, o.meterName, o.meterVersion, o.meterSchemaUrl];
    if (selects.every((x) => x === undefined)) {
      throw new TypeError('hotmeter: a view needs at least one selection criterion (instrumentName, instrumentType, ...)');
    }
    if (o.name !== undefined && (o.instrumentName === undefined || /[*?]/.test(o.instrumentName))) {
      throw new TypeError('hotmeter: a view that renames must select one instrument name without wildcards');
    }
    if (o.cardinalityLimit !== undefined && !(Number.isInteger(o.cardinalityLimit) && o.cardinalityLimit > 0)) {
      throw new TypeError('hotmeter: cardinalityLimit must be a positive integer');
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
    const allow = o.attributeKeys ? new Set(o.attributeKeys) : undefined;
    const deny = o.excludedAttributeKeys ? new Set(o.excludedAttributeKeys) : undefined;
    if (allow || deny) this.keep = (k) => (allow === undefined || allow.has(k)) && (deny === undefined || !deny.has(k));
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
