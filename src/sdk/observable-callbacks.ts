// ObservableCallbacks: the observable instruments' callbacks and the batch callbacks of a
// MeterProvider, run at the start of each collection. A callback that throws or rejects is
// reported and skipped; one that does not settle within the timeout is left behind.
import { Attributes, BatchObservableCallback, Observable } from '@opentelemetry/api';
import { BatchRegistration, InstrumentObservableResult, ObservableInstrument } from '../api/instruments';
import { describeValue, warnLimited } from './diag';

export class ObservableCallbacks {
  private readonly observables: ObservableInstrument[] = [];
  private readonly batches: BatchRegistration[] = [];
  private closed = false;

  /** An observable instrument whose callbacks run at every collection (once). */
  register(o: ObservableInstrument): void {
    if (this.closed) return; // never collected again
    if (!this.observables.includes(o)) this.observables.push(o);
  }

  registerBatch(reg: BatchRegistration): void {
    if (this.closed) return; // never collected again
    this.batches.push(reg);
  }

  unregisterBatch(callback: BatchObservableCallback, observables: Observable[]): void {
    const set = new Set(observables);
    const i = this.batches.findIndex(
      (b) => b.callback === callback && b.observables.size === set.size && [...set].every((o) => b.observables.has(o)),
    );
    if (i >= 0) this.batches.splice(i, 1);
  }

  /** After shutdown: forgets every callback; later registrations are ignored. */
  close(): void {
    this.closed = true;
    this.observables.length = 0;
    this.batches.length = 0;
  }

  /**
   * Runs every callback once; resolves when the asynchronous ones settled or after
   * `timeoutMillis` (collecting without the late ones, with a diagnostic).
   */
  async run(timeoutMillis: number): Promise<void> {
    for (const o of this.observables) o.beginObservations();
    for (const b of this.batches) {
      for (const o of b.observables) {
        try {
          if (o instanceof ObservableInstrument) o.beginObservations();
        } catch {
          // a Proxy whose getPrototypeOf trap throws (or a revoked one): not ours
        }
      }
    }
    const pending: Promise<unknown>[] = [];
    const guard = (what: string, fn: () => unknown): void => {
      try {
        const r = fn();
        if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
          pending.push(Promise.resolve(r).catch((e) => warnLimited(`cb:${what}`, `observable callback for ${what} rejected: ${describeValue(e)}`)));
        }
      } catch (e) {
        warnLimited(`cb:${what}`, `observable callback for ${what} threw: ${describeValue(e)}`);
      }
    };
    // Over copies: a callback may add or remove callbacks (its own included) or
    // instruments; those changes apply from the next collection, and no callback
    // registered when this one started is skipped.
    for (const o of this.observables.slice()) {
      if (o.callbacks.length === 0) continue;
      const result = new InstrumentObservableResult(o);
      for (const cb of o.callbacks.slice()) guard(o.store.name, () => cb(result));
    }
    for (const b of this.batches.slice()) {
      const result = {
        observe: (observable: Observable, value: number, attributes?: Attributes) => {
          let registered = false;
          try {
            registered = observable instanceof ObservableInstrument && b.observables.has(observable);
          } catch {
            // a Proxy whose getPrototypeOf trap throws (or a revoked one): not ours
          }
          if (registered) (observable as ObservableInstrument).observe(value, attributes);
          else warnLimited('batch-observe', 'batch callback observed an instrument it was not registered with; dropped');
        },
      };
      guard('batch', () => b.callback(result));
    }
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        warnLimited('cb-timeout', `observable callbacks did not settle within ${timeoutMillis} ms; collecting without them`);
        resolve();
      }, timeoutMillis);
      timer.unref?.();
    });
    await Promise.race([Promise.all(pending), timeout]);
    clearTimeout(timer);
  }
}
