// Aggregation temporality: whether an exported point covers the whole life of its series
// (cumulative, what a collection gives: cells are cumulative since the record's start)
// or only the interval since the previous export (delta, computed by a batcher).
// The names follow OpenTelemetry JS (`AggregationTemporality`, the temporality selectors).
import { InstrumentKind } from '../sdk/descriptor';

/** The temporality of exported points. Numbering matches OpenTelemetry JS. */
export enum AggregationTemporality {
  /** Each point covers the interval since the previous export of its series. */
  DELTA = 0,
  /** Each point covers the whole life of its series (since its start time). */
  CUMULATIVE = 1,
}

/** Chooses the temporality for an instrument kind (OpenTelemetry JS `AggregationTemporalitySelector`). */
export type AggregationTemporalitySelector = (kind: InstrumentKind) => AggregationTemporality;

/** A single temporality for every instrument, or a selector per instrument kind. */
export type TemporalityPreference = AggregationTemporality | AggregationTemporalitySelector;

/** Everything cumulative: what Prometheus and most pull backends want. The default. */
export const CumulativeTemporalitySelector: AggregationTemporalitySelector = () => AggregationTemporality.CUMULATIVE;

/**
 * Delta for counters, histograms and gauges; cumulative for up-down counters (whose
 * deltas are rarely useful), as in OpenTelemetry JS.
 */
export const DeltaTemporalitySelector: AggregationTemporalitySelector = (kind) => {
  switch (kind) {
    case InstrumentKind.UP_DOWN_COUNTER:
    case InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER:
      return AggregationTemporality.CUMULATIVE;
    default:
      return AggregationTemporality.DELTA;
  }
};

/**
 * Delta only where it saves memory in the backend (synchronous counters and histograms),
 * cumulative elsewhere, as in OpenTelemetry JS.
 */
export const LowMemoryTemporalitySelector: AggregationTemporalitySelector = (kind) => {
  switch (kind) {
    case InstrumentKind.COUNTER:
    case InstrumentKind.HISTOGRAM:
      return AggregationTemporality.DELTA;
    default:
      return AggregationTemporality.CUMULATIVE;
  }
};

/**
 * Turns a preference (a value, a selector, or nothing) into a selector that always
 * answers DELTA or CUMULATIVE. Unknown values, and selectors that throw or answer
 * something else, mean CUMULATIVE.
 */
export function temporalitySelector(preference: TemporalityPreference | undefined): AggregationTemporalitySelector {
  if (preference === AggregationTemporality.DELTA) return () => AggregationTemporality.DELTA;
  if (typeof preference !== 'function') return CumulativeTemporalitySelector;
  const cache = new Map<InstrumentKind, AggregationTemporality>();
  return (kind) => {
    let t = cache.get(kind);
    if (t === undefined) {
      try {
        t = preference(kind) === AggregationTemporality.DELTA ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
      } catch {
        t = AggregationTemporality.CUMULATIVE;
      }
      cache.set(kind, t);
    }
    return t;
  };
}
