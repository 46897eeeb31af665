// AggregationSelector: picks the aggregator for each instrument (the seed's
// AggregationSelector). Returning null disables the instrument: its handles drop every
// measurement without touching memory.
import { AggregationKind, AggregatorOptions, defaultAggregation } from '../sdk/aggregation';
import { Descriptor, InstrumentKind } from '../sdk/descriptor';

/**
 * Picks each instrument's aggregator when it is created (the seed SDK's
 * AggregationSelector); give one to `new MeterProvider({ aggregationSelector })`. Views
 * that name an aggregation take precedence.
 */
export interface AggregationSelector {
  /** The aggregation for instruments like `descriptor`; `null` disables the instrument. */
  aggregatorFor(descriptor: Descriptor): AggregationKind | null;
  /**
   * Optional parameters of the chosen aggregator (SKETCH: relativeAccuracy, maxSize;
   * EXPONENTIAL_HISTOGRAM: maxSize, maxScale). Invalid values fall back to the defaults
   * with a diagnostic.
   */
  aggregatorOptions?(descriptor: Descriptor): AggregatorOptions | undefined;
}

/** The OpenTelemetry defaults: sums, explicit-bucket histograms, last values. */
export const defaultSelector: AggregationSelector = {
  aggregatorFor: (d) => defaultAggregation(d.kind),
};

/** Like the default, but histograms keep only min, max, sum and count. */
export const inexpensiveSelector: AggregationSelector = {
  aggregatorFor: (d) => (d.kind === InstrumentKind.HISTOGRAM ? AggregationKind.MIN_MAX_SUM_COUNT : defaultAggregation(d.kind)),
};

/** Whether instruments of `kind` can be aggregated by `agg` (handles must fit the calls). */
export function compatible(kind: InstrumentKind, agg: AggregationKind): boolean {
  if (agg === AggregationKind.DROP || agg === defaultAggregation(kind)) return true;
  return (
    kind === InstrumentKind.HISTOGRAM &&
    (agg === AggregationKind.MIN_MAX_SUM_COUNT ||
      agg === AggregationKind.SKETCH ||
      agg === AggregationKind.EXPONENTIAL_HISTOGRAM ||
      agg === AggregationKind.EXACT)
  );
}

/**
 * Like the default, but histograms use `agg` (SKETCH, EXPONENTIAL_HISTOGRAM, EXACT or
 * MIN_MAX_SUM_COUNT) with `options`.
 */
export function histogramSelector(agg: AggregationKind, options?: AggregatorOptions): AggregationSelector {
  const opts = options === undefined ? undefined : Object.freeze({ ...options });
  return {
    aggregatorFor: (d) => (d.kind === InstrumentKind.HISTOGRAM ? agg : defaultAggregation(d.kind)),
    aggregatorOptions: () => opts,
  };
}

/**
 * Like the default, but histograms are DDSketch quantile sketches: quantiles within 1%
 * (relative) of the exact ones, in a fixed 4 KiB cell per series and thread.
 * `histogramSelector(AggregationKind.SKETCH, { relativeAccuracy, maxSize })` to tune.
 */
export const sketchSelector: AggregationSelector = histogramSelector(AggregationKind.SKETCH);

/**
 * Like the default, but histograms are OpenTelemetry base-2 exponential histograms (at
 * most 160 buckets, scale at most 20). `histogramSelector(AggregationKind.EXPONENTIAL_HISTOGRAM,
 * { maxSize, maxScale })` to tune.
 */
export const exponentialHistogramSelector: AggregationSelector = histogramSelector(AggregationKind.EXPONENTIAL_HISTOGRAM);

/**
 * Like the default, but histograms keep every value until the next collection (the
 * explicitly expensive selector: it allocates per measurement, amortised).
 */
export const exactSelector: AggregationSelector = histogramSelector(AggregationKind.EXACT);
