// AggregationSelector: picks the aggregator for each instrument (the seed's
// AggregationSelector). Returning null disables the instrument: its handles drop every
// measurement without touching memory.
import { AggregationKind, defaultAggregation } from '../sdk/aggregation';
import { Descriptor, InstrumentKind } from '../sdk/descriptor';

export interface AggregationSelector {
  aggregatorFor(descriptor: Descriptor): AggregationKind | null;
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
  return kind === InstrumentKind.HISTOGRAM && agg === AggregationKind.MIN_MAX_SUM_COUNT;
}
