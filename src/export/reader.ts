// MetricReader: how an exporter or controller is attached to a MeterProvider, the way
// OpenTelemetry JS users pass `readers` to their MeterProvider.
import type { Attributes } from '@opentelemetry/api';
import type { CheckpointSet } from './checkpoint-set';

/** How a Prometheus scrape is written (PrometheusExporter's options, resolved). */
export interface PrometheusCollectOptions {
  readonly openMetrics: boolean;
  readonly withoutScopeInfo: boolean;
  readonly withoutTargetInfo: boolean;
  readonly summaryQuantiles: readonly number[];
}

/** One collection written as Prometheus text: UTF-8 chunks of whole lines. */
export interface PrometheusPayload {
  readonly chunks: Buffer[];
  readonly byteLength: number;
  /**
   * Hands the chunks' memory back for the next collection now (the chunks read as empty
   * afterwards); call once nothing reads them. Without it the memory returns when the
   * chunks are garbage-collected.
   */
  readonly release?: () => void;
}

/** What a reader can ask of the provider it is attached to. */
export interface MetricProducer {
  /** Runs callbacks and checkpoints every record. Rejects after shutdown. */
  collect(): Promise<CheckpointSet>;
  readonly resource: { attributes: Attributes };
  /**
   * Optional: runs callbacks and writes one collection as Prometheus text without
   * building a CheckpointSet (a hotmeter MeterProvider does it natively, off the JS
   * thread). Rejects after shutdown.
   */
  collectPrometheus?(options: PrometheusCollectOptions): Promise<PrometheusPayload>;
}

/** Something that reads collections: a pull endpoint, a push controller. */
export interface MetricReader {
  /** Called once by the provider the reader is given to. */
  setMetricProducer(producer: MetricProducer): void;
  forceFlush?(): Promise<void>;
  shutdown?(): Promise<void>;
}
