// The aggregation selector of the call-metrics engine: the call-duration histogram is a
// quantile sketch (exported as a Prometheus summary); every other instrument is left to a
// base selector. Use it for a MeterProvider you pass to MetricsEngine yourself.
import { AggregationSelector, defaultSelector } from '../export/aggregation-selector';
import { AggregationKind, AggregatorOptions } from '../sdk/aggregation';
import { InstrumentKind } from '../sdk/descriptor';
import { callMetricNames, DEFAULT_CALL_METRICS_PREFIX } from './naming';

/** Default sketch accuracy of call durations: quantiles within 1% (relative). */
export const DEFAULT_CALL_RELATIVE_ACCURACY = 0.01;
/**
 * Default sketch bins of call durations: 1024 bins at 1% keep every value within the
 * bound while the values span less than gamma^1023 (~8e8, e.g. 1 µs .. 13 min) below the
 * largest one. 8 KiB per (api type, call name) and thread.
 */
export const DEFAULT_CALL_SKETCH_BINS = 1024;

/** Options of {@link callMetricsSelector}: the call duration sketch's accuracy and size. */
export interface CallMetricsSelectorOptions {
  /** The engine's instrument-name prefix. Default 'hotmeter'. */
  prefix?: string;
  /** Sketch relative accuracy, [1e-6, 1). Default 0.01. */
  relativeAccuracy?: number;
  /** Sketch bins, 2..4096. Default 1024. */
  maxSize?: number;
  /** Chooses for every other instrument. Default {@link defaultSelector}. */
  base?: AggregationSelector;
}

/** SKETCH for `<prefix>.call.duration`, `base` for everything else. */
export function callMetricsSelector(options: CallMetricsSelectorOptions = {}): AggregationSelector {
  const duration = callMetricNames(options.prefix ?? DEFAULT_CALL_METRICS_PREFIX).duration.toLowerCase();
  const base = options.base ?? defaultSelector;
  const sketch: AggregatorOptions = Object.freeze({
    relativeAccuracy: options.relativeAccuracy ?? DEFAULT_CALL_RELATIVE_ACCURACY,
    maxSize: options.maxSize ?? DEFAULT_CALL_SKETCH_BINS,
  });
  const isDuration = (name: string, kind: InstrumentKind): boolean =>
    kind === InstrumentKind.HISTOGRAM && name.toLowerCase() === duration;
  return {
    aggregatorFor: (d) => (isDuration(d.name, d.kind) ? AggregationKind.SKETCH : base.aggregatorFor(d)),
    aggregatorOptions: (d) => (isDuration(d.name, d.kind) ? sketch : base.aggregatorOptions?.(d)),
  };
}
