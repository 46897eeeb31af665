// Exporter: consumes the batched CheckpointSet of a collection (the seed's Exporter),
// with the lifecycle and result vocabulary of OpenTelemetry JS's PushMetricExporter,
// promise style.
import type { Attributes } from '@opentelemetry/api';
import type { InstrumentKind } from '../sdk/descriptor';
import type { CheckpointSet } from './checkpoint-set';
import type { LabelEncoder } from './label-encoder';
import type { AggregationTemporality, TemporalityPreference } from './temporality';

/** The outcome of an export (numbering matches @opentelemetry/core's ExportResultCode). */
export enum ExportResultCode {
  SUCCESS = 0,
  FAILED = 1,
}

/** What {@link Exporter.export} resolves to. */
export interface ExportResult {
  readonly code: ExportResultCode;
  readonly error?: Error;
}

/** The entity that produced the telemetry, exported with every collection. */
export interface ExportResource {
  readonly attributes: Attributes;
}

/** Per-export options a controller passes to {@link Exporter.export}. */
export interface ExportOptions {
  /**
   * Aborted when the controller abandons this export (its timeout passed). An exporter
   * should then stop and release what it holds for it.
   */
  readonly signal?: AbortSignal;
}

/**
 * Sends or prints collections. A PushController waits for one `export` at a time; a
 * call that outlasts its timeout is abandoned (its `signal` is aborted) and the next
 * interval calls `export` again, so an exporter that ignores the signal may see an
 * abandoned call still running beside a new one.
 */
export interface Exporter {
  /**
   * Exports one batched collection. Should resolve (not reject) with FAILED on failure;
   * a rejection or a throw is treated as FAILED.
   */
  export(set: CheckpointSet, resource: ExportResource, options?: ExportOptions): Promise<ExportResult>;
  /** Sends anything buffered. */
  forceFlush(): Promise<void>;
  /** Releases resources; later exports should resolve FAILED. */
  shutdown(): Promise<void>;
  /**
   * The temporality this exporter wants, one value or per instrument kind. Default
   * CUMULATIVE. The controller configures its batcher with it.
   */
  readonly temporality?: TemporalityPreference;
  /** OpenTelemetry JS spelling of {@link Exporter.temporality}; used when present. */
  selectAggregationTemporality?(kind: InstrumentKind): AggregationTemporality;
  /** The encoding this exporter prints labels with; the batcher keys its state by it. */
  readonly labelEncoder?: LabelEncoder;
}

/** The temporality preference of `exporter` (its selectAggregationTemporality method first). */
export function exporterTemporality(exporter: Exporter): TemporalityPreference | undefined {
  if (typeof exporter.selectAggregationTemporality === 'function') {
    return (kind: InstrumentKind) => exporter.selectAggregationTemporality!(kind);
  }
  return exporter.temporality;
}
