// OTLP and the OpenTelemetry JS ecosystem: hotmeter's collections as OpenTelemetry JS
// ResourceMetrics, for sdk-metrics' readers and every exporter built on them.
export { HotmeterMetricProducer, isOtelMetricReader } from './producer';
export type { HotmeterMetricProducerOptions } from './producer';
export { toOtelResourceMetrics, toOtelResource, toHrTime, otelInstrumentType, StaticResource } from './convert';
export type { ToResourceMetricsOptions, OtelPointSource, ExponentialDeltaAggregation } from './convert';
export { exponentialDelta, downscaleBuckets, ExponentialDeltaState } from './exponential-delta';
export type { ExponentialDelta, ExponentialDeltaPoint } from './exponential-delta';
export { OtelDataPointType } from './types';
export { encodeMetricsRequest, encodeMetricsRequestSync } from './protobuf-encoder';
export type { MetricsEncodeOptions } from './protobuf-encoder';
export { OTLPMetricExporter } from './exporter';
export type { OTLPMetricExporterOptions } from './exporter';
export type {
  OtelAggregationTemporality,
  OtelCollectionResult,
  OtelDataPoint,
  OtelExponentialHistogram,
  OtelExponentialHistogramMetricData,
  OtelGaugeMetricData,
  OtelHistogram,
  OtelHistogramMetricData,
  OtelInstrumentationScope,
  OtelInstrumentType,
  OtelMetricCollectOptions,
  OtelMetricData,
  OtelMetricDescriptor,
  OtelMetricProducer,
  OtelMetricReader,
  OtelResource,
  OtelResourceMetrics,
  OtelScopeMetrics,
  OtelSumMetricData,
} from './types';
