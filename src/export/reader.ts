// MetricReader: how an exporter or controller is attached to a MeterProvider, the way
// OpenTelemetry JS users pass `readers` to their MeterProvider.
import type { Attributes } from '@opentelemetry/api';
import type { ChangedCollection } from '../sdk/collection';
import type { CheckpointSet } from './checkpoint-set';

/** How a Prometheus scrape is written (PrometheusExporter's options, resolved). */
export interface PrometheusCollectOptions {
  readonly openMetrics: boolean;
  readonly withoutScopeInfo: boolean;
  readonly withoutTargetInfo: boolean;
  readonly summaryQuantiles: readonly number[];
  /** Prepended to every metric name (with its '_'). */
  readonly namePrefix?: string;
  /** Names without the unit word. */
  readonly withoutUnits?: boolean;
  /** Counters without `_total` in the text format. */
  readonly withoutCounterSuffixes?: boolean;
  /** Every sample with the collection's time, ms. */
  readonly appendTimestamp?: boolean;
  /** Resource attributes whose names match: labels of every sample. */
  readonly withResourceConstantLabels?: RegExp;
  /** Those labels as `k="v",...` (what a native pass writes after the scope labels). */
  readonly constantLabels?: string;
  /**
   * Text written before the families (the Prometheus exporter's `target_info`), and the
   * family names it takes (no metric may be written under them). Default none.
   */
  readonly prefix?: string;
  readonly reservedNames?: readonly string[];
  /**
   * The Prometheus protobuf format (delimited MetricFamily messages) instead of text; the
   * prefix is then ignored and `targetInfo` ([name, value] label pairs) is written as the
   * target_info family. Default false.
   */
  readonly protobuf?: boolean;
  /** Protobuf's target_info labels: [name, value] pairs, names sanitized and merged as the text's. */
  readonly targetInfo?: readonly (readonly [string, string])[];
}

/**
 * What a native Prometheus pass left out or wrote as one series, by instrument name: the
 * exporter reports them (diagnostics). `how` is the exporter's MergeHow.
 */
export interface PrometheusPassNotes {
  /** Instruments left out: their Prometheus names clash with a metric of another type. */
  readonly dropped: readonly string[];
  /** Series written as one: [instrument, the other instrument (undefined: the same one), how]. */
  readonly merged: readonly (readonly [string, string | undefined, number])[];
}

/** One collection written as Prometheus text: UTF-8 chunks of whole lines. */
export interface PrometheusPayload {
  readonly chunks: Buffer[];
  readonly byteLength: number;
  /** Instruments left out or merged by the pass (for diagnostics). */
  readonly notes?: PrometheusPassNotes;
  /** The collection's epoch (for {@link MetricProducer.delivered}), when the producer has one. */
  readonly epoch?: number;
  /**
   * Hands the chunks' memory back for the next collection now (the chunks read as empty
   * afterwards); call once nothing reads them. Without it the memory returns when the
   * chunks are garbage-collected.
   */
  readonly release?: () => void;
}

/** One part of a streamed scrape: UTF-8 chunks of whole lines. */
export interface PrometheusPart {
  readonly chunks: Buffer[];
  readonly byteLength: number;
}

/**
 * One collection written as Prometheus text a part at a time, each part when it is read:
 * a scrape of a large registry then needs memory for a few parts, not for its whole text,
 * and writes them into memory the previous parts gave back.
 */
export interface PrometheusStream {
  /** How many parts the text has (at least one). */
  readonly parts: number;
  /** Instruments left out or merged by the pass (for diagnostics). */
  readonly notes?: PrometheusPassNotes;
  /** The collection's epoch (for {@link MetricProducer.delivered}), when the producer has one. */
  readonly epoch?: number;
  /** Memory the open stream holds besides its parts (its snapshot) until closed, bytes. */
  readonly heldBytes?: number;
  /** Writes the next part (off the JS thread); undefined after the last. One read at a time. */
  next(): Promise<PrometheusPart | undefined>;
  /**
   * Hands a part's memory back for the next parts (its chunks read as empty afterwards);
   * call once nothing reads them (socket writes included).
   */
  release(part: PrometheusPart): void;
  /** Done with the stream (parts not read are never written). Later calls do nothing. */
  close(): void;
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
  /**
   * Optional: as collectPrometheus (the collection pass happens when it resolves), but the
   * text is written a part of about `partBytes` at a time as the stream is read.
   */
  streamPrometheus?(options: PrometheusCollectOptions, partBytes?: number): Promise<PrometheusStream>;
  /**
   * Optional: the reader delivered the collection of this epoch (`CheckpointSet.epoch`,
   * `PrometheusPayload.epoch`, `PrometheusStream.epoch`): its export succeeded, its scrape
   * response was fully written. Only readers with `reportsDelivery` call it; a later epoch
   * covers earlier ones. With expiry on (`reclaimIdleMillis`), a series expires only once
   * every reader delivered its final value: a reader whose export failed has not seen it.
   */
  delivered?(epoch: number): void;
  /**
   * Optional (a processShared provider): whether this process is the one that pushes the
   * fleet's series now; taken if no live process is. A push reader exports nothing while
   * it is false (another process exports the same series), and calls no `delivered`
   * for it: this process then expires none of the fleet's series. Absent: always.
   */
  pushes?(): boolean;
  /**
   * @internal A collection whose native pass leaves out (mode 2) or lists by id only
   * (mode 1) the records not changed since this reader's previous pass (the OTLP producer
   * keeps its conversions of the others).
   */
  collectChanges?(mode: 1 | 2): Promise<ChangedCollection>;
}

/** Something that reads collections: a pull endpoint, a push controller. */
export interface MetricReader {
  /**
   * True: the reader calls its producer's `delivered(epoch)` once a collection's export is
   * delivered. Otherwise each collection counts as delivered when it is taken.
   */
  readonly reportsDelivery?: boolean;
  /**
   * True: the reader's collections build attribute objects for every series (as OTLP
   * does): the provider keeps each new series' encoded attributes from its creation to
   * decode them from. A reader that writes labels natively (Prometheus) leaves it unset.
   */
  readonly decodesAttributes?: boolean;
  /** Called once by the provider the reader is given to. */
  setMetricProducer(producer: MetricProducer): void;
  forceFlush?(): Promise<void>;
  shutdown?(): Promise<void>;
}

/**
 * A reader written against another metrics SDK's API that an installed adapter turns into
 * a {@link MetricReader} (src/export/reader-adapters.ts): an OpenTelemetry JS MetricReader
 * such as sdk-metrics' `PeriodicExportingMetricReader`, fed by a HotmeterMetricProducer.
 */
export interface ForeignMetricReader {
  setMetricProducer(producer: never): void;
  collect(...args: never[]): unknown;
  forceFlush(...args: never[]): unknown;
  shutdown(...args: never[]): unknown;
}
