// CheckpointSet: what one collection produced, as exporters consume it.
import type { Attributes } from '@opentelemetry/api';
import type { Descriptor, InstrumentationScope } from '../sdk/descriptor';

/** A sum (counters, up-down counters, observable sums): `sum` is cumulative since the series' start. */
export interface SumAggregation {
  readonly kind: 'sum';
  readonly sum: number;
  readonly monotonic: boolean;
}
/** The last value recorded (gauges, observable gauges): the latest write in time across threads. */
export interface LastValueAggregation {
  readonly kind: 'lastValue';
  readonly value: number;
}
/** Count, sum, min and max of a histogram's values (`inexpensiveSelector`); no buckets. */
export interface MinMaxSumCountAggregation {
  readonly kind: 'minMaxSumCount';
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}
/** An explicit-bucket histogram (the OpenTelemetry default for histograms), cumulative. */
export interface HistogramAggregation {
  readonly kind: 'histogram';
  readonly count: number;
  readonly sum: number;
  /** +Infinity when count is 0. */
  readonly min: number;
  /** -Infinity when count is 0. */
  readonly max: number;
  /** Upper bounds; bucketCounts has one more entry (the +Inf bucket). */
  readonly boundaries: readonly number[];
  readonly bucketCounts: readonly number[];
}
/**
 * A DDSketch quantile sketch (AggregationKind.SKETCH). Cumulative, like a histogram.
 * quantile(q) estimates the value of rank floor(q (count - 1)) within a relative error
 * of `relativeAccuracy`, as long as the values span less than gamma^(maxSize - 1)
 * (gamma = (1 + a) / (1 - a); ~2.7e4 with the defaults a = 0.01 and 512 bins) below the
 * largest one: lower values are collapsed into the lowest kept bin and over-estimated.
 */
export interface SketchAggregation {
  readonly kind: 'sketch';
  readonly count: number;
  readonly sum: number;
  /** +Infinity when count is 0. */
  readonly min: number;
  /** -Infinity when count is 0. */
  readonly max: number;
  /** Values below ~2.2e-308, zero included (estimated as 0). */
  readonly zeroCount: number;
  readonly relativeAccuracy: number;
  /** The q-quantile, 0 <= q <= 1 (min for 0, max for 1); NaN if empty or q is out of range. */
  quantile(q: number): number;
}
/** One range of an exponential histogram: bucketCounts[i] counts bucket index offset + i. */
export interface ExponentialBuckets {
  readonly offset: number;
  readonly bucketCounts: readonly number[];
}
/**
 * The OpenTelemetry base-2 exponential histogram (AggregationKind.EXPONENTIAL_HISTOGRAM):
 * bucket index i holds (base^i, base^(i+1)], base = 2^(2^-scale). Cumulative.
 */
export interface ExponentialHistogramAggregation {
  readonly kind: 'exponentialHistogram';
  /** zeroCount plus every bucket. */
  readonly count: number;
  readonly sum: number;
  /** +Infinity when count is 0. */
  readonly min: number;
  /** -Infinity when count is 0. */
  readonly max: number;
  readonly scale: number;
  readonly zeroCount: number;
  readonly positive: ExponentialBuckets;
  /** Always empty for the Histogram instrument (its values are non-negative). */
  readonly negative: ExponentialBuckets;
}
/**
 * Every value (AggregationKind.EXACT). count, sum, min and max are cumulative over every
 * thread like a MinMaxSumCount; `values` are delta by nature: the values this thread
 * recorded since the previous collection of this provider, sorted ascending (each
 * collection takes them, so with several readers each value goes to one of them).
 */
export interface ExactAggregation {
  readonly kind: 'exact';
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly values: readonly number[];
}
/**
 * One series' aggregated state in a {@link CheckpointRecord}; `kind` tells which (the
 * instrument's aggregation, from the AggregationSelector or a view).
 */
export type Aggregation =
  | SumAggregation
  | LastValueAggregation
  | MinMaxSumCountAggregation
  | HistogramAggregation
  | SketchAggregation
  | ExponentialHistogramAggregation
  | ExactAggregation;

/** One record's checkpoint: an instrument, a label set and its aggregated state. */
export interface CheckpointRecord {
  /**
   * The record's id: stable for the life of a series, new when a reclaimed series
   * comes back (its cumulative values then restart from zero, a reset).
   */
  readonly seriesId: number;
  readonly descriptor: Descriptor;
  readonly scope: InstrumentationScope;
  readonly attributes: Attributes;
  readonly aggregation: Aggregation;
  /** Start of the cumulative series, ms since the epoch. */
  readonly startTime: number;
  /** The collection time, ms since the epoch. */
  readonly endTime: number;
  /** Whether the record changed since the previous collection. */
  readonly updated: boolean;
  /**
   * The collection epoch (process-wide, increasing) of the pass that first saw the record's
   * last update: of two records, the one with the larger epoch was updated later. Set by
   * hotmeter's MeterProvider; undefined from other producers.
   */
  readonly lastUpdateEpoch?: number;
}

/** The records of one collection, in instrument registration order. */
export class CheckpointSet implements Iterable<CheckpointRecord> {
  /** @internal */
  constructor(
    readonly records: readonly CheckpointRecord[],
    /** Collection time, ms since the epoch. */
    readonly time: number,
    /** Collection sequence number (process-wide). */
    readonly epoch: number,
  ) {}

  get size(): number {
    return this.records.length;
  }

  [Symbol.iterator](): Iterator<CheckpointRecord> {
    return this.records[Symbol.iterator]();
  }

  forEach(fn: (r: CheckpointRecord) => void): void {
    for (const r of this.records) fn(r);
  }

  /** The records of the instrument named `name` (case-insensitive). */
  byName(name: string): CheckpointRecord[] {
    const n = name.toLowerCase();
    return this.records.filter((r) => r.descriptor.name.toLowerCase() === n);
  }
}
