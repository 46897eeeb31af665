// Node.js runtime and process metrics (opt-in).
export { startRuntimeMetrics, DEFAULT_GC_DURATION_BOUNDARIES, RUNTIME_METRIC_NAMES, RUNTIME_METRICS_SCOPE } from './runtime-metrics';
export type { RuntimeMetrics, RuntimeMetricsOptions } from './runtime-metrics';
