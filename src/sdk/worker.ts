// Worker threads: one export for every thread of the process.
//
// The record map is native and process-wide. A provider created with a domain name
// shares its instruments and records with every provider of that name in any thread,
// so a worker "attaches" by creating a provider of the main thread's domain:
//
//   main:    new MeterProvider({ domain: 'app', readers: [exporter] })   // exports
//   worker:  attachMeterProvider('app')                                  // records only
//
// Each thread writes only its own cells (single writer, plain stores); the main thread's
// collection merges every thread's cells. A worker that exits, or is terminated, has its
// cells folded into the records by the environment cleanup hook before its memory is
// freed. Idle records a worker still caches are given back through the thread's stale
// queue (worker-evict.ts), so reclamation keeps working across threads.
//
// Lifetime: the domain lives while any provider of it, in any thread, has not shut down.
// The exporting provider's shutdown() stops its exports, but an attached provider still
// records into the domain (nothing collects it any more); the last provider to shut down,
// or the exit of the last thread with one, frees the domain's instruments and records.
import { isMainThread } from 'node:worker_threads';
import type { MeterProviderOptions } from './meter-provider';
import { MeterProvider } from './meter-provider';
import type { ObservableInstrument } from '../api/instruments';
import type { CheckpointSet } from '../export/checkpoint-set';
import { warnLimited } from './diag';
import { setEvictInterval } from './worker-evict';

/** Options of {@link attachMeterProvider}: a provider's options without readers. */
export interface AttachOptions
  extends Omit<MeterProviderOptions, 'domain' | 'processShared' | 'readers' | 'reclamation' | 'reclaimIdleMillis' | 'resource'> {
  /**
   * How often this thread checks whether records it caches went idle (the exporting
   * thread's collections decide), when it does not record; ms, default 1000. The timer
   * is unref'd and applies to the whole thread.
   */
  evictIntervalMillis?: number;
}

/**
 * A provider that records into a domain another provider (usually the main thread's)
 * collects and exports. It has no readers and does not collect: the exporting provider's
 * collection covers every thread's records. Create it with {@link attachMeterProvider}.
 *
 * Observable instruments: their callbacks run in the thread whose provider collects, so
 * callbacks registered here (in a worker) are never run by the main thread's collection.
 * Register observables in the exporting thread, or record a synchronous Gauge here.
 */
export class AttachedMeterProvider extends MeterProvider {
  /** The domain name this provider records into. */
  readonly domainName: string;

  constructor(domain: string, options: AttachOptions = {}) {
    if (typeof domain !== 'string' || domain === '') {
      throw new TypeError('hotmeter: attachMeterProvider needs the domain name the exporting provider was created with');
    }
    const o = (options ?? {}) as AttachOptions & { readers?: unknown };
    if (o.readers !== undefined) {
      throw new TypeError('hotmeter: an attached provider has no readers; the provider that owns the domain exports it');
    }
    const { evictIntervalMillis, ...rest } = o;
    // reclamation: false: only the exporting provider's collections may expire series
    // (after its readers delivered each one's final state) or queue idle ones for eviction.
    super({ ...rest, domain, readers: [], reclamation: false });
    this.domainName = domain;
    if (evictIntervalMillis !== undefined) setEvictInterval(evictIntervalMillis);
  }

  /** @internal */
  override registerObservable(o: ObservableInstrument): void {
    warnLimited(
      `attached-observable:${o.store.name}`,
      `${o.store.name}: observable callbacks registered in an attached provider${isMainThread ? '' : ' (worker thread)'} are not run by ` +
        `the exporting thread's collection; register observables where the domain is collected, or record a Gauge`,
    );
    super.registerObservable(o);
  }

  /**
   * Rejects: an attached provider does not collect. Its records are exported by the
   * provider that owns the domain's readers (a collection here would consume the
   * "updated" state that provider's collections rely on).
   */
  override async collect(): Promise<CheckpointSet> {
    throw new Error(`hotmeter: an attached provider does not collect; collect the provider of domain "${this.domainName}" that has the readers`);
  }
}

/**
 * Attaches this thread (typically a worker thread) to the domain `domain`: instruments
 * created through the returned provider record into the same records (same instrument
 * name and attributes, same series) as every other provider of that domain in the
 * process, and are exported by the provider of that domain that has the readers.
 * Use the same views, aggregation selector and limits as that provider.
 */
export function attachMeterProvider(domain: string, options: AttachOptions = {}): AttachedMeterProvider {
  return new AttachedMeterProvider(domain, options);
}
