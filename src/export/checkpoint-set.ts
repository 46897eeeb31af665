// CheckpointSet: what one collection produced, as exporters consume it.
import type { Attributes } from '@opentelemetry/api';
import type { Descriptor, InstrumentationScope } from '../sdk/descriptor';

export interface SumAggregation {
  readonly kind: 'sum';
  readonly sum: number;
  readonly monotonic: boolean;
}
export interface LastValueAggregation {
  readonly kind: 'lastValue';
  readonly value: number;
}
export interface MinMaxSumCountAggregation {
  readonly kind: 'minMaxSumCount';
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}
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
export type Aggregation = SumAggregation | LastValueAggregation | MinMaxSumCountAggregation | HistogramAggregation;

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
