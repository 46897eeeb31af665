// Call metrics: duration and count of calls to the APIs an agent depends on.
export { MetricsEngine, DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_CALL_SERIES, DEFAULT_METRICS_PORT, DEFAULT_QUANTILES } from './engine';
export type { AnyFunction, EndCall, MetricsEngineConfig } from './engine';
export { callMetricsSelector, DEFAULT_CALL_RELATIVE_ACCURACY, DEFAULT_CALL_SKETCH_BINS } from './selector';
export type { CallMetricsSelectorOptions } from './selector';
export {
  ATTR_API_TYPE,
  ATTR_CALL_NAME,
  ATTR_OUTCOME,
  CALL_METRICS_SCOPE,
  DEFAULT_CALL_METRICS_PREFIX,
  OUTCOME_ERROR,
  OUTCOME_OK,
  OUTCOME_TIMEOUT,
  callMetricNames,
} from './naming';
export type { CallMetricNames } from './naming';
