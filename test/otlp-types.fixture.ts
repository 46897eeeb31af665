// Compile-time evidence (type-checked by test/otlp-types.test.ts, never run): hotmeter's
// OpenTelemetry bridge types are assignable to @opentelemetry/sdk-metrics' own, and
// sdk-metrics readers are accepted where hotmeter takes readers, without casts.
import { AggregationTemporalityPreference, OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  InMemoryMetricExporter,
  AggregationTemporality,
  MetricReader,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { HotmeterMetricProducer, MeterProvider, OTLPMetricExporter as HotmeterOTLPMetricExporter } from '../src';
import { StaticResource, type OtelMetricData, type OtelResourceMetrics } from '../src/exporters/otlp';

export async function fixture(): Promise<void> {
  // sdk-metrics readers go straight into hotmeter's provider.
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'fixture' }),
    readers: [
      new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: 'http://127.0.0.1:4318/v1/metrics' }) }),
      new PeriodicExportingMetricReader({ exporter: new OTLPProtoMetricExporter() }),
      new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.DELTA) }),
    ],
  });
  // A HotmeterMetricProducer is an sdk-metrics MetricProducer.
  const producer: MetricProducer = new HotmeterMetricProducer();
  const result: CollectionResult = await producer.collect();
  // hotmeter's data types are sdk-metrics'.
  const rm: ResourceMetrics = {} as OtelResourceMetrics;
  const md: MetricData = {} as OtelMetricData;
  const res: Resource = new StaticResource({ a: 1 });
  // An sdk-metrics reader can take a hotmeter producer by hand.
  const reader: MetricReader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), metricProducers: [new HotmeterMetricProducer()] });
  reader.setMetricProducer(new HotmeterMetricProducer());
  // hotmeter's OTLPMetricExporter is an sdk-metrics PushMetricExporter and takes the
  // upstream proto exporter's configuration as it is.
  const protoConfig: NonNullable<ConstructorParameters<typeof OTLPProtoMetricExporter>[0]> = { compression: CompressionAlgorithm.GZIP, temporalityPreference: AggregationTemporalityPreference.DELTA };
  const pushExporter: PushMetricExporter = new HotmeterOTLPMetricExporter(protoConfig);
  const sliced = new PeriodicExportingMetricReader({ exporter: new HotmeterOTLPMetricExporter({ url: 'http://127.0.0.1:4318/v1/metrics' }) });
  void [provider, result, rm, md, res, pushExporter, sliced];
}
