/**
 * hotmeter: a metrics SDK for Node.js whose hot path writes straight into native memory.
 * @packageDocumentation
 */
export { MeterProvider } from './sdk/meter-provider';
export type { MeterProviderOptions } from './sdk/meter-provider';
export type { ExemplarFilter } from './sdk/exemplars';
export { Meter } from './api/meter';
export { getMeter, isHotmeterMeter } from './api/global';
export {
  Counter,
  UpDownCounter,
  Histogram,
  Gauge,
  ObservableCounter,
  ObservableUpDownCounter,
  ObservableGauge,
} from './api/instruments';
export { BoundHandle, BoundCounter, BoundUpDownCounter, BoundHistogram, BoundGauge, BoundMinMaxSumCount } from './api/handles';
export { CheckpointSet } from './export/checkpoint-set';
export type {
  Aggregation,
  CheckpointRecord,
  HistogramAggregation,
  LastValueAggregation,
  MinMaxSumCountAggregation,
  SumAggregation,
} from './export/checkpoint-set';
export { InstrumentKind } from './sdk/descriptor';
export type { Descriptor, InstrumentationScope } from './sdk/descriptor';
export { AggregationKind, DEFAULT_HISTOGRAM_BOUNDARIES } from './sdk/aggregation';
export { DEFAULT_LABEL_LIMITS } from './sdk/labels';
export type { LabelLimits } from './sdk/labels';
export type { MetricProducer, MetricReader } from './export/reader';
export { PrometheusExporter, PROMETHEUS_TEXT_CONTENT_TYPE } from './exporters/prometheus/exporter';
export type { PrometheusExporterOptions } from './exporters/prometheus/exporter';
export { serializeText as toPrometheusText } from './exporters/prometheus/serializer';
export { defaultSelector, inexpensiveSelector } from './export/aggregation-selector';
export type { AggregationSelector } from './export/aggregation-selector';
export { View } from './sdk/view';
export type { AttributesProcessor, SdkAggregationOption, ViewOptions } from './sdk/view';
export { DEFAULT_CARDINALITY_LIMIT } from './sdk/record-store';
// Export pipeline: label encoders, temporality, batchers, exporters, controllers.
export { DefaultLabelEncoder, defaultLabelEncoder } from './export/label-encoder';
export { prometheusLabelEncoder } from './exporters/prometheus/label-encoder';
export type { LabelEncoder } from './export/label-encoder';
export {
  AggregationTemporality,
  CumulativeTemporalitySelector,
  DeltaTemporalitySelector,
  LowMemoryTemporalitySelector,
  temporalitySelector,
} from './export/temporality';
export type { AggregationTemporalitySelector, TemporalityPreference } from './export/temporality';
export { Batcher, UngroupedBatcher, DefaultKeysBatcher, createBatcher } from './export/batchers';
export type { BatcherKind, BatcherOptions, BatchedHistogramAggregation, BatchedMinMaxSumCountAggregation } from './export/batchers';
export { ExportResultCode } from './export/exporter';
export type { Exporter, ExportOptions, ExportResource, ExportResult } from './export/exporter';
export { ConsoleMetricExporter } from './exporters/console';
export type { ConsoleMetricExporterOptions, TextSink } from './exporters/console';
export { PushController } from './controller/push';
export type { PushControllerOptions, PushControllerStats } from './controller/push';
export { PullController } from './controller/pull';
export type { PullControllerOptions } from './controller/pull';
// Distribution aggregators: quantile sketch, base-2 exponential histogram, exact.
export { sketchSelector, exponentialHistogramSelector, exactSelector, histogramSelector } from './export/aggregation-selector';
export { BoundSketch, BoundExponentialHistogram, BoundExact } from './api/handles-sketch';
export type { AggregatorOptions } from './sdk/aggregation';
export type {
  SketchAggregation,
  ExponentialHistogramAggregation,
  ExponentialBuckets,
  ExactAggregation,
} from './export/checkpoint-set';
// Worker threads: attach a thread to a domain another provider exports.
export { attachMeterProvider, AttachedMeterProvider } from './sdk/worker';
export type { AttachOptions } from './sdk/worker';
// Call metrics engine (duration and count of calls to dependent APIs) and runtime metrics.
export * from './callmetrics';
export * from './runtime';
// OTLP and the OpenTelemetry JS ecosystem: collections as sdk-metrics ResourceMetrics.
export { HotmeterMetricProducer, toOtelResourceMetrics } from './exporters/otlp';
export type { HotmeterMetricProducerOptions, ToResourceMetricsOptions } from './exporters/otlp';
// OTLP/HTTP protobuf export encoded in slices (the event loop is never blocked for long).
export { OTLPMetricExporter, encodeMetricsRequest } from './exporters/otlp';
export type { OTLPMetricExporterOptions, MetricsEncodeOptions } from './exporters/otlp';
// Prometheus: OpenMetrics content type, summary quantiles, the producer interface's text passes.
export { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_PROTOBUF_CONTENT_TYPE } from './exporters/prometheus/exporter';
export type { PrometheusScrape } from './exporters/prometheus/exporter';
export { DEFAULT_SUMMARY_QUANTILES } from './exporters/prometheus/serializer';
export type { PrometheusFormatOptions } from './exporters/prometheus/serializer';
export type { PrometheusCollectOptions, PrometheusPart, PrometheusPayload, PrometheusStream } from './export/reader';
