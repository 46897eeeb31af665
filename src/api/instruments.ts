// The @opentelemetry/api instruments, plus bind(). A direct call goes through the
// store's cached handle for its attribute set: a trie walk and the handle's writes.
// Recording calls never throw.
import type {
  Attributes,
  BatchObservableCallback,
  Context,
  Counter as ApiCounter,
  Gauge as ApiGauge,
  Histogram as ApiHistogram,
  Observable,
  ObservableCallback,
  ObservableCounter as ApiObservableCounter,
  ObservableGauge as ApiObservableGauge,
  ObservableResult,
  ObservableUpDownCounter as ApiObservableUpDownCounter,
  UpDownCounter as ApiUpDownCounter,
} from '@opentelemetry/api';
import { InstrumentKind } from '../sdk/descriptor';
import type { LabelTrie } from '../sdk/label-trie';
import type { RecordStore } from '../sdk/record-store';
import type { BoundCounter, BoundGauge, BoundHandle, BoundHistogram, BoundUpDownCounter } from './handles';
import {
  BoundCounter as BoundCounterClass,
  BoundGauge as BoundGaugeClass,
  BoundHistogram as BoundHistogramClass,
  BoundUpDownCounter as BoundUpDownCounterClass,
  COUNTER_REJECT_RULE,
  FINITE_REJECT_RULE,
  HISTOGRAM_REJECT_RULE,
  OFF_DROPPED,
  OFF_UNBOUND,
} from './handles';

/**
 * What the synchronous instruments share. Each keeps its own copy of the direct call's
 * few lines (trie, else the store's slow path): one shared method measured ~3 ns slower
 * on histogram.record with a fresh literal (`npm run bench`: 35-36 ns against 31-32.5).
 * A label set the trie does not hold is resolved only for a value the handle accepts
 * (the same test as the handle's): a dropped measurement must create no record, or
 * every export would show its label set as a series.
 */
abstract class SyncInstrument<H extends BoundHandle> {
  /** @internal The store's trie, held here: the direct call reads no store field. */
  readonly trie: LabelTrie<H>;

  /** @internal */
  constructor(readonly store: RecordStore<H>) {
    this.trie = store.trie;
  }

  /** A handle bound to `attributes`; hold it, write through it, and `unbind()` when done. */
  bind(attributes?: Attributes): H {
    return this.store.bind(attributes);
  }

  /**
   * Removes the series of `attributes` (prom-client's `remove(labels)`): from the next
   * collection it is in no export; a later write starts a new series (new start time,
   * counting from zero). Handles bound to it before the call keep writing into the removed
   * series, which is never exported: bind again after remove(). Other threads' cached
   * references go within their next stale-queue drain. Never throws: attributes that are
   * not a plain object give a diagnostic and remove nothing.
   */
  remove(attributes?: Attributes): void {
    this.store.remove(attributes);
  }

  /** Removes every series of this instrument, as remove() does for one. Never throws. */
  clear(): void {
    this.store.clear();
  }
}

/** A monotonic sum. `add(value, attributes)` or, faster, `bind(attributes).add(value)`. */
export class Counter extends SyncInstrument<BoundCounter> implements ApiCounter {
  add(value: number, attributes?: Attributes, _context?: Context): void {
    const s = this.store;
    let h: BoundCounter | undefined;
    if (typeof attributes === 'object' && attributes !== null) {
      try {
        h = this.trie.get(attributes, s);
      } catch {
        h = undefined;
      }
    } else if (attributes === undefined) {
      h = s.empty; // the series without attributes, once it exists
    }
    if (h === undefined) {
      if (!(typeof value === 'number' && value >= 0 && value < Infinity)) return s.rejectValue(value, COUNTER_REJECT_RULE);
      h = s.lookup(attributes);
    }
    h.add(value);
  }
}

/** A sum that may go down. */
export class UpDownCounter extends SyncInstrument<BoundUpDownCounter> implements ApiUpDownCounter {
  add(value: number, attributes?: Attributes, _context?: Context): void {
    const s = this.store;
    let h: BoundUpDownCounter | undefined;
    if (typeof attributes === 'object' && attributes !== null) {
      try {
        h = this.trie.get(attributes, s);
      } catch {
        h = undefined;
      }
    } else if (attributes === undefined) {
      h = s.empty; // the series without attributes, once it exists
    }
    if (h === undefined) {
      if (!(typeof value === 'number' && value - value === 0)) return s.rejectValue(value, FINITE_REJECT_RULE);
      h = s.lookup(attributes);
    }
    h.add(value);
  }
}

/** A distribution of values (explicit-bucket histogram by default). */
export class Histogram extends SyncInstrument<BoundHistogram> implements ApiHistogram {
  record(value: number, attributes?: Attributes, _context?: Context): void {
    const s = this.store;
    let h: BoundHistogram | undefined;
    if (typeof attributes === 'object' && attributes !== null) {
      try {
        h = this.trie.get(attributes, s);
      } catch {
        h = undefined;
      }
    } else if (attributes === undefined) {
      h = s.empty; // the series without attributes, once it exists
    }
    if (h === undefined) {
      if (!(typeof value === 'number' && value >= 0 && value < Infinity)) return s.rejectValue(value, HISTOGRAM_REJECT_RULE);
      h = s.lookup(attributes);
    }
    h.record(value);
  }
}

/** The last value recorded. */
export class Gauge extends SyncInstrument<BoundGauge> implements ApiGauge {
  record(value: number, attributes?: Attributes, _context?: Context): void {
    const s = this.store;
    let h: BoundGauge | undefined;
    if (typeof attributes === 'object' && attributes !== null) {
      try {
        h = this.trie.get(attributes, s);
      } catch {
        h = undefined;
      }
    } else if (attributes === undefined) {
      h = s.empty; // the series without attributes, once it exists
    }
    if (h === undefined) {
      if (!(typeof value === 'number' && value - value === 0)) return s.rejectValue(value, FINITE_REJECT_RULE);
      h = s.lookup(attributes);
    }
    h.record(value);
  }
}

// Disabled streams (a selector or view chose DROP, or the name is invalid): the
// recording methods do nothing at all, so a disabled instrument costs a call that
// inlines to nothing. bind() still returns a handle that drops.
/** @internal */ export class DisabledCounter extends Counter {
  override add(): void {}
}
/** @internal */ export class DisabledUpDownCounter extends UpDownCounter {
  override add(): void {}
}
/** @internal */ export class DisabledHistogram extends Histogram {
  override record(): void {}
}
/** @internal */ export class DisabledGauge extends Gauge {
  override record(): void {}
}

// Instruments of several streams (several views match, or readers with their own
// aggregation): each measurement goes to every stream's own instrument, so a stream
// resolves attributes through its own cache and filters. An instrument of one stream is
// a plain Counter, Histogram, ...: it pays nothing for this.

// A handle of several streams holds one handle per stream (each its own reference) and
// writes none of its own cells: its inherited fields are the first part's, its `off` only
// says unbound.

/** @internal A bound counter of several streams. */
export class FanoutBoundCounter extends BoundCounterClass {
  /** @internal */ constructor(readonly parts: BoundCounter[]) {
    super(parts[0].owner, parts[0].f64, OFF_DROPPED, 0);
  }
  override add(value: number): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].add(value);
  }
  override unbind(): void {
    for (const h of this.parts) h.unbind();
    this.off = OFF_UNBOUND;
  }
}

/** @internal A bound up-down counter of several streams. */
export class FanoutBoundUpDownCounter extends BoundUpDownCounterClass {
  /** @internal */ constructor(readonly parts: BoundUpDownCounter[]) {
    super(parts[0].owner, parts[0].f64, OFF_DROPPED, 0);
  }
  override add(value: number): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].add(value);
  }
  override unbind(): void {
    for (const h of this.parts) h.unbind();
    this.off = OFF_UNBOUND;
  }
}

/** @internal A bound histogram of several streams. */
export class FanoutBoundHistogram extends BoundHistogramClass {
  /** @internal */ constructor(readonly parts: BoundHistogram[]) {
    super(parts[0].owner, parts[0].f64, OFF_DROPPED, 0, NO_BOUNDS);
  }
  override record(value: number): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].record(value);
  }
  override unbind(): void {
    for (const h of this.parts) h.unbind();
    this.off = OFF_UNBOUND;
  }
}

/** @internal A bound gauge of several streams. */
export class FanoutBoundGauge extends BoundGaugeClass {
  /** @internal */ constructor(readonly parts: BoundGauge[]) {
    super(parts[0].owner, parts[0].f64, OFF_DROPPED, 0);
  }
  override record(value: number): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].record(value);
  }
  override unbind(): void {
    for (const h of this.parts) h.unbind();
    this.off = OFF_UNBOUND;
  }
}

const NO_BOUNDS = new Float64Array(0);

/** @internal A counter of several streams. */
export class MultiCounter extends Counter {
  /** @internal */ constructor(readonly parts: Counter[]) {
    super(parts[0].store);
  }
  override add(value: number, attributes?: Attributes): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].add(value, attributes);
  }
  override bind(attributes?: Attributes): BoundCounter {
    return new FanoutBoundCounter(this.parts.map((c) => c.bind(attributes)));
  }
  override remove(attributes?: Attributes): void {
    for (const c of this.parts) c.remove(attributes);
  }
  override clear(): void {
    for (const c of this.parts) c.clear();
  }
}

/** @internal An up-down counter of several streams. */
export class MultiUpDownCounter extends UpDownCounter {
  /** @internal */ constructor(readonly parts: UpDownCounter[]) {
    super(parts[0].store);
  }
  override add(value: number, attributes?: Attributes): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].add(value, attributes);
  }
  override bind(attributes?: Attributes): BoundUpDownCounter {
    return new FanoutBoundUpDownCounter(this.parts.map((c) => c.bind(attributes)));
  }
  override remove(attributes?: Attributes): void {
    for (const c of this.parts) c.remove(attributes);
  }
  override clear(): void {
    for (const c of this.parts) c.clear();
  }
}

/** @internal A histogram of several streams. */
export class MultiHistogram extends Histogram {
  /** @internal */ constructor(readonly parts: Histogram[]) {
    super(parts[0].store);
  }
  override record(value: number, attributes?: Attributes): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].record(value, attributes);
  }
  override bind(attributes?: Attributes): BoundHistogram {
    return new FanoutBoundHistogram(this.parts.map((c) => c.bind(attributes)));
  }
  override remove(attributes?: Attributes): void {
    for (const c of this.parts) c.remove(attributes);
  }
  override clear(): void {
    for (const c of this.parts) c.clear();
  }
}

/** @internal A gauge of several streams. */
export class MultiGauge extends Gauge {
  /** @internal */ constructor(readonly parts: Gauge[]) {
    super(parts[0].store);
  }
  override record(value: number, attributes?: Attributes): void {
    const p = this.parts;
    for (let i = 0; i < p.length; i++) p[i].record(value, attributes);
  }
  override bind(attributes?: Attributes): BoundGauge {
    return new FanoutBoundGauge(this.parts.map((c) => c.bind(attributes)));
  }
  override remove(attributes?: Attributes): void {
    for (const c of this.parts) c.remove(attributes);
  }
  override clear(): void {
    for (const c of this.parts) c.clear();
  }
}

/** Base of the observable instruments: callbacks run at each collection. */
export class ObservableInstrument implements Observable {
  /** @internal */ readonly callbacks: ObservableCallback[] = [];
  /** @internal Every stream's store (the first is `store`). */ readonly stores: RecordStore<BoundGauge>[];

  /** @internal */
  constructor(
    readonly store: RecordStore<BoundGauge>,
    stores?: RecordStore<BoundGauge>[],
  ) {
    this.stores = stores ?? [store];
  }

  addCallback(callback: ObservableCallback): void {
    if (typeof callback !== 'function') return;
    if (!this.callbacks.includes(callback)) this.callbacks.push(callback);
  }

  removeCallback(callback: ObservableCallback): void {
    const i = this.callbacks.indexOf(callback);
    if (i >= 0) this.callbacks.splice(i, 1);
  }

  /**
   * @internal Observations of this collection's callbacks that share a series with another
   * attribute set (the overflow series; a view that drops attributes), for sums only:
   * store -> recordId -> the observed attribute sets' values and their total. Written and
   * read on this thread by observe(); cleared by beginObservations() when this provider's
   * collection starts its callbacks.
   */
  private merged: Map<RecordStore<BoundGauge>, Map<number, { total: number; bySet: Map<string, number> }>> | undefined;

  /** @internal A collection's callbacks start: observations merged into a series add up anew. */
  beginObservations(): void {
    this.merged = undefined;
  }

  /**
   * @internal Writes one observation: the observed value replaces the series value. A
   * value that is not finite is dropped before its attributes are resolved: no series.
   * Where several observed attribute sets of a counter or up-down counter land in one
   * series (the overflow series, a view's attribute filter), the series holds their sum
   * (the same attribute set observed twice: the later value), as the OpenTelemetry spec
   * aggregates them; before, the last of them replaced the others and the series went
   * down and up with the order of observations.
   */
  observe(value: number, attributes?: Attributes): void {
    if (typeof value === 'number' && value - value === 0) {
      const ss = this.stores;
      for (let i = 0; i < ss.length; i++) {
        const s = ss[i];
        const h = s.lookup(attributes);
        h.record(s.descriptor.kind !== InstrumentKind.OBSERVABLE_GAUGE && s.sharesSeries(h) ? this.mergedValue(s, h.recordId, value, attributes) : value);
      }
    } else this.store.rejectValue(value, FINITE_REJECT_RULE);
  }

  /** The sum of this collection's observations of the series `recordId` of `s`, `value` included. */
  private mergedValue(s: RecordStore<BoundGauge>, recordId: number, value: number, attributes: Attributes | undefined): number {
    let key: string;
    try {
      const a = (attributes ?? {}) as Record<string, unknown>;
      key = JSON.stringify(Object.keys(a).sort().map((k) => [k, typeof a[k], a[k]]));
    } catch {
      return value; // attributes that cannot be read twice: as before, the value replaces
    }
    this.merged ??= new Map();
    let byRecord = this.merged.get(s);
    if (byRecord === undefined) this.merged.set(s, (byRecord = new Map()));
    let m = byRecord.get(recordId);
    if (m === undefined) byRecord.set(recordId, (m = { total: 0, bySet: new Map() }));
    const prev = m.bySet.get(key);
    m.bySet.set(key, value);
    // The same set again (a duplicate observation) replaces its earlier value.
    m.total = prev === undefined ? m.total + value : m.total - prev + value;
    return m.total;
  }
}

/** An asynchronous monotonic sum: its callbacks report the current total at each collection. */
export class ObservableCounter extends ObservableInstrument implements ApiObservableCounter {}
/** An asynchronous sum that may go down: its callbacks report the current level at each collection. */
export class ObservableUpDownCounter extends ObservableInstrument implements ApiObservableUpDownCounter {}
/** An asynchronous gauge: its callbacks report the current value at each collection. */
export class ObservableGauge extends ObservableInstrument implements ApiObservableGauge {}

/** What a callback receives: observations go to the instrument it belongs to. */
export class InstrumentObservableResult implements ObservableResult {
  /** @internal */
  constructor(private readonly instrument: ObservableInstrument) {}
  observe(value: number, attributes?: Attributes): void {
    this.instrument.observe(value, attributes);
  }
}

/** A registered batch callback and the observables it may report. */
export interface BatchRegistration {
  callback: BatchObservableCallback;
  observables: Set<Observable>;
}
