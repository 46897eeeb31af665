// PullController: the seed's pull controller as a MetricReader. Collects when asked (a
// scrape), batches, and returns the export-ready CheckpointSet. Repeated calls within
// `minimumIntervalMillis` get the cached set; concurrent calls share one collection.
import type { CheckpointSet } from '../export/checkpoint-set';
import type { ExportResource } from '../export/exporter';
import type { LabelEncoder } from '../export/label-encoder';
import type { MetricProducer, MetricReader } from '../export/reader';
import { Batcher, BatcherKind, resolveBatcher } from '../export/batchers';
import type { TemporalityPreference } from '../export/temporality';

/** Options of {@link PullController}. */
export interface PullControllerOptions {
  /** 'defaultkeys' (default), 'ungrouped', or a Batcher you configured. */
  batcher?: Batcher | BatcherKind;
  /** For named batchers: output temporality. Default CUMULATIVE (what scrapers expect). */
  temporality?: TemporalityPreference;
  /** For named batchers: the encoding series are keyed by (use the serializer's). */
  labelEncoder?: LabelEncoder;
  /** For named batchers: drop state of series unseen for this many collections. Default 10. */
  maxIdleCollections?: number;
  /**
   * Calls within this many ms of the previous collection's completion return that
   * collection again instead of collecting. Default 0 (every call collects).
   */
  minimumIntervalMillis?: number;
}

/**
 * Collects on demand. Attach it to a provider, then call {@link PullController.collect}
 * from a scrape handler:
 *
 *     const pull = new PullController({ minimumIntervalMillis: 1000 });
 *     new MeterProvider({ readers: [pull] });
 *     http.createServer(async (req, res) => res.end(render(await pull.collect())));
 */
export class PullController implements MetricReader {
  /** The batcher that prepares each collection. */
  readonly batcher: Batcher;
  /** Cache lifetime, ms. */
  readonly minimumIntervalMillis: number;
  private producer: MetricProducer | undefined;
  private inFlight: Promise<CheckpointSet> | undefined;
  private cached: CheckpointSet | undefined;
  private cachedAt = -Infinity;
  private shut = false;
  private collections = 0;

  /** @param options batcher, temporality, encoder, cache lifetime. */
  constructor(options: PullControllerOptions = {}) {
    const min = options.minimumIntervalMillis ?? 0;
    if (typeof min !== 'number' || !(min >= 0) || !Number.isFinite(min)) {
      throw new TypeError('hotmeter: minimumIntervalMillis must be a non-negative number of milliseconds');
    }
    this.minimumIntervalMillis = min;
    this.batcher = resolveBatcher(options.batcher, {
      temporality: options.temporality,
      labelEncoder: options.labelEncoder,
      maxIdleCollections: options.maxIdleCollections,
    });
  }

  /** Called once by the MeterProvider this controller is given to. */
  setMetricProducer(producer: MetricProducer): void {
    if (this.producer !== undefined) throw new Error('hotmeter: a PullController serves one MeterProvider');
    this.producer = producer;
  }

  /** The provider's resource (empty until attached). */
  get resource(): ExportResource {
    return this.producer?.resource ?? { attributes: {} };
  }

  /** How many collections this controller has made (cached answers excluded). */
  get collectionCount(): number {
    return this.collections;
  }

  /**
   * The batched CheckpointSet of a collection: the cached one if it completed less than
   * `minimumIntervalMillis` ago, the one in flight if there is one, otherwise a new one.
   * Rejects when not attached, after shutdown, or when the collection fails (failures
   * are not cached).
   */
  collect(): Promise<CheckpointSet> {
    if (this.shut) return Promise.reject(new Error('hotmeter: PullController.collect() after shutdown()'));
    const producer = this.producer;
    if (producer === undefined) return Promise.reject(new Error('hotmeter: PullController is not attached to a MeterProvider'));
    if (this.cached !== undefined && Date.now() - this.cachedAt < this.minimumIntervalMillis) return Promise.resolve(this.cached);
    if (this.inFlight !== undefined) return this.inFlight;
    const p = producer.collect().then((raw) => {
      const set = this.batcher.process(raw);
      this.collections++;
      if (this.minimumIntervalMillis > 0) {
        this.cached = set;
        this.cachedAt = Date.now();
      }
      return set;
    });
    this.inFlight = p;
    const clear = (): void => {
      if (this.inFlight === p) this.inFlight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /** Nothing is buffered: a no-op. */
  async forceFlush(): Promise<void> {}

  /** Later collect() calls reject; the cache is dropped. */
  async shutdown(): Promise<void> {
    this.shut = true;
    this.cached = undefined;
  }
}
