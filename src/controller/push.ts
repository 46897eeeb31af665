// PushController: the seed's push controller as an OpenTelemetry JS style MetricReader
// (PeriodicExportingMetricReader). Every interval it collects, batches and exports.
//
// Invariants:
//  * At most one run (collect, batch, export) is in flight. A tick that finds one in
//    flight is SKIPPED (counted, diagnosed), not queued: cells are cumulative and the
//    batcher diffs against the last collection it processed, so the next run reports
//    everything the skipped one would have, for cumulative and delta temporality alike.
//  * A run is abandoned after `timeoutMillis`: its export is told so through its
//    AbortSignal, counted and diagnosed, and the controller moves on; a late result is
//    only counted. The controller keeps no reference to an abandoned run's data, so an
//    exporter that never settles costs the controller a counter, nothing more.
//  * Failures (export throws, rejects, resolves FAILED; collection fails) are diagnosed
//    through rate-limited diag warnings and never stop the timer.
import type { CheckpointSet } from '../export/checkpoint-set';
import { ExportResultCode, Exporter, exporterTemporality } from '../export/exporter';
import type { MetricProducer, MetricReader } from '../export/reader';
import { Batcher, BatcherKind, resolveBatcher } from '../export/batchers';
import { describeValue, warnLimited } from '../sdk/diag';

/** Options of {@link PushController}. */
export interface PushControllerOptions {
  /** Where collections go. */
  exporter: Exporter;
  /** Time between collections, ms. Default 60 000. */
  intervalMillis?: number;
  /** A run (collect, batch, export) still going after this long is abandoned, ms. Default 30 000. */
  timeoutMillis?: number;
  /**
   * 'defaultkeys' (default: recommended keys where instruments advise them), 'ungrouped'
   * (full dimensionality), or a Batcher you configured (its temporality and encoder are
   * then yours to choose). Named batchers take the exporter's temporality and encoder.
   */
  batcher?: Batcher | BatcherKind;
  /** For named batchers: drop state of series unseen for this many collections. Default 10. */
  maxIdleCollections?: number;
}

/** Counters of a {@link PushController}, for monitoring and tests. */
export interface PushControllerStats {
  /** Interval ticks so far. */
  readonly ticks: number;
  /** Collections processed by the batcher. */
  readonly collections: number;
  /** Calls to the exporter's `export`. */
  readonly exports: number;
  /** Exports that resolved SUCCESS (late ones included). */
  readonly succeeded: number;
  /** Exports that resolved FAILED, rejected or threw, and collections that failed. */
  readonly failed: number;
  /** Runs abandoned after `timeoutMillis`. */
  readonly timedOut: number;
  /** Ticks skipped because a run was in flight. */
  readonly skipped: number;
  /** Runs in flight: 0 or 1. */
  readonly inFlight: number;
  /** Abandoned runs that have not settled yet (the exporter still holds them). */
  readonly abandoned: number;
}

type Outcome = { ok: true } | { ok: false; error: Error };
const OK: Outcome = { ok: true };

function failure(e: unknown): Outcome {
  return { ok: false, error: e instanceof Error ? e : new Error(describeValue(e)) };
}

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new TypeError(`hotmeter: ${name} must be a positive number of milliseconds`);
  return v;
}

/**
 * Collects from its MeterProvider and exports every `intervalMillis` (an unref'd timer:
 * it never keeps the process alive), with a timeout per run. Give it to the provider:
 *
 *     new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 10_000 })] })
 *
 * `forceFlush()` collects and exports now; `shutdown()` (called by the provider's
 * shutdown) stops the timer, exports a last collection and shuts the exporter down.
 */
export class PushController implements MetricReader {
  /** A collection counts as delivered (for expiry) once its export succeeded. */
  readonly reportsDelivery = true;
  /** The exporter collections go to. */
  readonly exporter: Exporter;
  /** The batcher that prepares each collection. */
  readonly batcher: Batcher;
  /** Time between collections, ms. */
  readonly intervalMillis: number;
  /** Run timeout, ms. */
  readonly timeoutMillis: number;
  private producer: MetricProducer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<Outcome> | undefined;
  private closing = false;
  private shutdownPromise: Promise<void> | undefined;
  private lastEpoch = -Infinity;
  private readonly counters = {
    ticks: 0, collections: 0, exports: 0, succeeded: 0, failed: 0, timedOut: 0, skipped: 0, abandoned: 0,
  };

  /** @param options exporter, interval, timeout, batcher. */
  constructor(options: PushControllerOptions) {
    if (options === null || typeof options !== 'object' || options.exporter === null || typeof options.exporter?.export !== 'function') {
      throw new TypeError('hotmeter: PushController needs an exporter');
    }
    this.exporter = options.exporter;
    this.intervalMillis = positive('intervalMillis', options.intervalMillis, 60_000);
    this.timeoutMillis = positive('timeoutMillis', options.timeoutMillis, 30_000);
    this.batcher = resolveBatcher(options.batcher, {
      temporality: exporterTemporality(this.exporter),
      labelEncoder: this.exporter.labelEncoder,
      maxIdleCollections: options.maxIdleCollections,
    });
  }

  /** A snapshot of the counters. */
  get stats(): PushControllerStats {
    return { ...this.counters, inFlight: this.running !== undefined ? 1 : 0 };
  }

  /** Called once by the MeterProvider this controller is given to; starts the timer. */
  setMetricProducer(producer: MetricProducer): void {
    if (this.producer !== undefined) throw new Error('hotmeter: a PushController serves one MeterProvider');
    this.producer = producer;
    if (this.closing) return;
    this.timer = setInterval(() => this.tick(), this.intervalMillis);
    this.timer.unref?.();
  }

  /**
   * Waits for a run in flight, then collects and exports now, then flushes the
   * exporter. Rejects when that export fails or times out. A no-op after shutdown.
   */
  async forceFlush(): Promise<void> {
    if (this.closing) return;
    const outcome = await this.runExclusive();
    if (!outcome.ok) throw outcome.error;
    await this.exporter.forceFlush();
  }

  /**
   * Stops the timer, waits for a run in flight, exports a last collection (measurements
   * recorded before the call are in it), then shuts the exporter down (bounded by
   * `timeoutMillis`). Rejects if the last export failed. Idempotent.
   */
  shutdown(): Promise<void> {
    if (this.shutdownPromise === undefined) this.shutdownPromise = this.doShutdown();
    return this.shutdownPromise;
  }

  private async doShutdown(): Promise<void> {
    this.closing = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    const outcome = this.producer !== undefined ? await this.runExclusive() : OK;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => this.exporter.shutdown()),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            warnLimited('push:exporter-shutdown', `exporter shutdown did not finish within ${this.timeoutMillis} ms`);
            resolve();
          }, this.timeoutMillis);
          timer.unref?.();
        }),
      ]);
    } catch (e) {
      warnLimited('push:exporter-shutdown', `exporter shutdown failed: ${describeValue(e)}`);
    } finally {
      clearTimeout(timer);
    }
    if (!outcome.ok) throw outcome.error;
  }

  private tick(): void {
    this.counters.ticks++;
    if (this.running !== undefined) {
      this.counters.skipped++;
      warnLimited('push:busy', `a collection was skipped: the previous export is still running (interval ${this.intervalMillis} ms, timeout ${this.timeoutMillis} ms)`);
      return;
    }
    void this.start();
  }

  /** Runs after any run in flight (one at a time). */
  private async runExclusive(): Promise<Outcome> {
    while (this.running !== undefined) await this.running;
    return this.start();
  }

  private start(): Promise<Outcome> {
    const p: Promise<Outcome> = this.runOnce().then(
      (o) => o,
      (e) => failure(e),
    );
    const tracked = p.finally(() => {
      if (this.running === tracked) this.running = undefined;
    });
    this.running = tracked;
    return tracked;
  }

  /** One run, raced against the timeout. Never rejects. */
  private async runOnce(): Promise<Outcome> {
    const producer = this.producer;
    if (producer === undefined) return failure(new Error('hotmeter: PushController is not attached to a MeterProvider'));
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMillis);
      timer.unref?.();
    });
    const work = this.collectAndExport(producer, abort.signal);
    const r = await Promise.race([work, timeout]);
    clearTimeout(timer);
    if (r !== 'timeout') return r;
    abort.abort(new Error(`hotmeter: export abandoned after ${this.timeoutMillis} ms`));
    this.counters.timedOut++;
    this.counters.abandoned++;
    void work.then(() => {
      this.counters.abandoned--;
    });
    warnLimited('push:timeout', `collection and export did not finish within ${this.timeoutMillis} ms; abandoned`);
    return failure(new Error(`hotmeter: export timed out after ${this.timeoutMillis} ms`));
  }

  /** Collect, batch, export. Never rejects. */
  private async collectAndExport(producer: MetricProducer, signal: AbortSignal): Promise<Outcome> {
    let set: CheckpointSet;
    let raw: CheckpointSet;
    try {
      raw = await producer.collect();
      // Collections reach the batcher in order, each once. A collection that arrives
      // after its run was abandoned still advances the batcher (so nothing it holds is
      // counted twice later) but is not exported.
      if (raw.epoch < this.lastEpoch) return failure(new Error('hotmeter: stale collection dropped'));
      this.lastEpoch = raw.epoch;
      set = this.batcher.process(raw);
      this.counters.collections++;
    } catch (e) {
      this.counters.failed++;
      warnLimited('push:collect', `collection failed: ${describeValue(e)}`);
      return failure(e);
    }
    if (signal.aborted) return failure(new Error('hotmeter: run abandoned'));
    const epoch = raw.epoch;
    // processShared: another process pushes the fleet's series (MetricProducer.pushes).
    // The batcher above still took the collection (a later takeover starts from it).
    // Not delivered: nothing went out, so this reader keeps this process from expiring
    // the fleet's series (the pushing process's delivered exports let it expire them).
    if (producer.pushes !== undefined && !producer.pushes()) return OK;
    return this.exportSet(set, producer, signal).then((o) => {
      if (o.ok) producer.delivered?.(epoch);
      return o;
    });
  }

  private exportSet(set: CheckpointSet, producer: MetricProducer, signal: AbortSignal): Promise<Outcome> {
    this.counters.exports++;
    let p: Promise<unknown>;
    try {
      p = Promise.resolve(this.exporter.export(set, producer.resource, { signal }));
    } catch (e) {
      p = Promise.reject(e);
    }
    return p.then(
      (res) => {
        const r = res as { code?: unknown; error?: unknown } | undefined;
        if (r !== null && typeof r === 'object' && r.code === ExportResultCode.SUCCESS) {
          this.counters.succeeded++;
          return OK;
        }
        this.counters.failed++;
        const why = r !== null && typeof r === 'object' && r.error !== undefined ? describeValue(r.error) : 'FAILED';
        warnLimited('push:export', `export failed: ${why}`);
        return failure(r?.error ?? new Error('hotmeter: export failed'));
      },
      (e) => {
        this.counters.failed++;
        warnLimited('push:export', `export failed: ${describeValue(e)}`);
        return failure(e);
      },
    );
  }
}
