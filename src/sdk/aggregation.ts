import { InstrumentKind } from './descriptor';

/** Aggregation kinds; numbering and cell layouts match native/core/descriptor.h. */
export enum AggregationKind {
  DROP = 0,
  /** cell [sum] */
  SUM = 1,
  /** cell [value, stamp]: the write with the greatest stamp (clock reading) is the value */
  LAST_VALUE = 2,
  /** cell [value, stamp]: cumulative totals observed by callbacks */
  PRECOMPUTED_SUM = 3,
  /** cell [count, sum, min, max] */
  MIN_MAX_SUM_COUNT = 4,
  /** cell [sum, min, max, bucket0..bucketN] (count is the sum of the buckets) */
  HISTOGRAM = 5,
  /**
   * A DDSketch quantile sketch (relative error bound `relativeAccuracy`).
   * cell [count, sum, min, max, zeroCount, base, bin0..bin(M-1)], M = maxSize (default 512)
   */
  SKETCH = 6,
  /**
   * The OpenTelemetry base-2 exponential histogram. cell [count, sum, min, max, zeroCount,
   * scale, posBase, negBase, pos0..pos(M-1), neg0..neg(M-1)], M = maxSize (default 160)
   */
  EXPONENTIAL_HISTOGRAM = 7,
  /**
   * Every value, until a collection takes them (allocates: values are kept in JS).
   * cell [count, sum, min, max]
   */
  EXACT = 8,
}

/** Parameters of the sketch and exponential histogram aggregations. */
export interface AggregatorOptions {
  /** Sketch: quantiles are within this relative error, 1e-6 <= a < 1 (default 0.01). */
  relativeAccuracy?: number;
  /**
   * Sketch: bins per cell, 2..4096 (default 512). ExponentialHistogram: buckets per range
   * (positive, negative), 2..4096 (default 160).
   */
  maxSize?: number;
  /** ExponentialHistogram: the highest (starting) scale, -10..20 (default 20). */
  maxScale?: number;
}

/** Resolved aggregator parameters (what native/core/descriptor.h holds). */
export interface AggregatorParams {
  readonly relativeAccuracy: number;
  /** Sketch bins / exponential buckets per range; 0 for the other kinds. */
  readonly maxSize: number;
  readonly maxScale: number;
}

export const DEFAULT_SKETCH_RELATIVE_ACCURACY = 0.01;
export const DEFAULT_SKETCH_MAX_SIZE = 512;
export const DEFAULT_EXPONENTIAL_MAX_SIZE = 160;
export const DEFAULT_EXPONENTIAL_MAX_SCALE = 20;

export const DEFAULT_AGGREGATOR_PARAMS: AggregatorParams = Object.freeze({
  relativeAccuracy: DEFAULT_SKETCH_RELATIVE_ACCURACY,
  maxSize: 0,
  maxScale: DEFAULT_EXPONENTIAL_MAX_SCALE,
});

/** The kind's default for maxSize (0 where it does not apply). */
function defaultMaxSize(kind: AggregationKind): number {
  if (kind === AggregationKind.SKETCH) return DEFAULT_SKETCH_MAX_SIZE;
  if (kind === AggregationKind.EXPONENTIAL_HISTOGRAM) return DEFAULT_EXPONENTIAL_MAX_SIZE;
  return 0;
}

/**
 * Validates `options` for `kind` and fills in the defaults. Returns the parameters and
 * the first problem found (the offending field then keeps its default).
 */
export function resolveAggregatorParams(
  kind: AggregationKind,
  options: AggregatorOptions | undefined,
): { params: AggregatorParams; problem?: string } {
  let relativeAccuracy = DEFAULT_SKETCH_RELATIVE_ACCURACY;
  let maxSize = defaultMaxSize(kind);
  let maxScale = DEFAULT_EXPONENTIAL_MAX_SCALE;
  let problem: string | undefined;
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    problem = 'aggregator options must be an object';
  } else if (options !== undefined) {
    const a = options.relativeAccuracy;
    if (a !== undefined) {
      if (typeof a === 'number' && a >= 1e-6 && a < 1) relativeAccuracy = a;
      else problem ??= 'relativeAccuracy must be a number in [1e-6, 1)';
    }
    const m = options.maxSize;
    if (m !== undefined && maxSize !== 0) {
      if (Number.isInteger(m) && (m as number) >= 2 && (m as number) <= 4096) maxSize = m as number;
      else problem ??= 'maxSize must be an integer in [2, 4096]';
    }
    const s = options.maxScale;
    if (s !== undefined) {
      if (Number.isInteger(s) && (s as number) >= -10 && (s as number) <= 20) maxScale = s as number;
      else problem ??= 'maxScale must be an integer in [-10, 20]';
    }
  }
  return { params: { relativeAccuracy, maxSize, maxScale }, problem };
}

/** The OpenTelemetry default explicit-bucket boundaries. */
export const DEFAULT_HISTOGRAM_BOUNDARIES: readonly number[] = Object.freeze([
  0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
]);

/** Doubles per cell; `maxSize` (sketch bins, exponential buckets per range) 0 = default. */
export function cellSize(kind: AggregationKind, boundCount: number, maxSize = 0): number {
  switch (kind) {
    case AggregationKind.DROP: return 0;
    case AggregationKind.SUM: return 1;
    case AggregationKind.LAST_VALUE: return 2;
    case AggregationKind.PRECOMPUTED_SUM: return 2;
    case AggregationKind.MIN_MAX_SUM_COUNT: return 4;
    case AggregationKind.HISTOGRAM: return 3 + boundCount + 1;
    case AggregationKind.SKETCH: return 6 + (maxSize || DEFAULT_SKETCH_MAX_SIZE);
    case AggregationKind.EXPONENTIAL_HISTOGRAM: return 8 + 2 * (maxSize || DEFAULT_EXPONENTIAL_MAX_SIZE);
    case AggregationKind.EXACT: return 4;
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
