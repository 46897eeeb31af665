import { ValueType } from '@opentelemetry/api';

/** Instrument kinds; numbering matches native/core/descriptor.h. */
export enum InstrumentKind {
  COUNTER = 0,
  UP_DOWN_COUNTER = 1,
  HISTOGRAM = 2,
  GAUGE = 3,
  OBSERVABLE_COUNTER = 4,
  OBSERVABLE_UP_DOWN_COUNTER = 5,
  OBSERVABLE_GAUGE = 6,
}

/** What an instrument is. Immutable. */
export interface Descriptor {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
  readonly kind: InstrumentKind;
  readonly valueType: ValueType;
  /** Whether the sum only grows (counters and observable counters). */
  readonly monotonic: boolean;
  /** `advice.explicitBucketBoundaries`, if given. */
  readonly adviceBoundaries?: readonly number[];
  /** `advice.attributes`: the recommended keys, used by the defaultkeys batcher. */
  readonly adviceAttributes?: readonly string[];
  /** `advice.quantiles` (a hotmeter extension): the quantiles a Prometheus summary of this instrument shows. */
  readonly adviceQuantiles?: readonly number[];
  /** false: a view asked for histogram points without min and max (sdk-metrics' recordMinMax). */
  readonly recordMinMax?: boolean;
}

/** The instrumentation scope that created an instrument (the Meter's identity). */
export interface InstrumentationScope {
  readonly name: string;
  readonly version?: string;
  readonly schemaUrl?: string;
}

// OpenTelemetry instrument name syntax: a letter, then up to 254 of [A-Za-z0-9_.\-/].
const NAME_RE = /^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$/;

export function isValidInstrumentName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

// Units: ASCII, at most 63 characters.
export function isValidUnit(unit: unknown): unit is string {
  // eslint-disable-next-line no-control-regex -- the range is all of ASCII, control characters included
  return typeof unit === 'string' && unit.length <= 63 && /^[\x00-\x7F]*$/.test(unit);
}

export function isMonotonic(kind: InstrumentKind): boolean {
  return kind === InstrumentKind.COUNTER || kind === InstrumentKind.OBSERVABLE_COUNTER;
}

export function isObservable(kind: InstrumentKind): boolean {
  return kind >= InstrumentKind.OBSERVABLE_COUNTER;
}
