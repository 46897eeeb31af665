import { InstrumentKind } from './descriptor';

/** Aggregation kinds; numbering and cell layouts match native/core/descriptor.h. */
export enum AggregationKind {
  DROP = 0,
  /** cell [sum] */
  SUM = 1,
  /** cell [value, seq] */
  LAST_VALUE = 2,
  /** cell [value, seq]: cumulative totals observed by callbacks */
  PRECOMPUTED_SUM = 3,
  /** cell [count, sum, min, max] */
  MIN_MAX_SUM_COUNT = 4,
  /** cell [sum, min, max, bucket0..bucketN] (count is the sum of the buckets) */
  HISTOGRAM = 5,
}

/** The OpenTelemetry default explicit-bucket boundaries. */
export const DEFAULT_HISTOGRAM_BOUNDARIES: readonly number[] = Object.freeze([
  0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
]);

export function cellSize(kind: AggregationKind, boundCount: number): number {
  switch (kind) {
    case AggregationKind.DROP: return 0;
    case AggregationKind.SUM: return 1;
    case AggregationKind.LAST_VALUE: return 2;
    case AggregationKind.PRECOMPUTED_SUM: return 2;
    case AggregationKind.MIN_MAX_SUM_COUNT: return 4;
    case AggregationKind.HISTOGRAM: return 3 + boundCount + 1;
  }
}

/** The aggregation OpenTelemetry uses by default for each instrument kind. */
export function defaultAggregation(kind: InstrumentKind): AggregationKind {
  switch (kind) {
    case InstrumentKind.COUNTER:
    case InstrumentKind.UP_DOWN_COUNTER:
      return AggregationKind.SUM;
    case InstrumentKind.HISTOGRAM:
      return AggregationKind.HISTOGRAM;
    case InstrumentKind.GAUGE:
    case InstrumentKind.OBSERVABLE_GAUGE:
      return AggregationKind.LAST_VALUE;
    case InstrumentKind.OBSERVABLE_COUNTER:
    case InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER:
      return AggregationKind.PRECOMPUTED_SUM;
  }
}

/** Validates explicit bucket boundaries: finite, strictly increasing. */
export function validBoundaries(b: unknown): b is readonly number[] {
  if (!Array.isArray(b) || b.length > 4096) return false;
  for (let i = 0; i < b.length; i++) {
    const v = b[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) return false;
    if (i > 0 && !(v > b[i - 1])) return false;
  }
  return true;
}
