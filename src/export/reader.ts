// MetricReader: how an exporter or controller is attached to a MeterProvider, the way
// OpenTelemetry JS users pass `readers` to their MeterProvider.
import type { Attributes } from '@opentelemetry/api';
import type { CheckpointSet } from './checkpoint-set';

/** What a reader can ask of the provider it is attached to. */
export interface MetricProducer {
  /** Runs callbacks and checkpoints every record. Rejects after shutdown. */
  collect(): Promise<CheckpointSet>;
  readonly resource: { attributes: Attributes };
}

/** Something that reads collections: a pull endpoint, a push controller. */
export interface MetricReader {
  /** Called once by the provider the reader is given to. */
  setMetricProducer(producer: MetricProducer): void;
  forceFlush?(): Promise<void>;
  shutdown?(): Promise<void>;
}
