// Incremental conversion of collections to OpenTelemetry JS ResourceMetrics for one
// HotmeterMetricProducer: the cost of a collection follows the records that changed since
// this reader's previous one, not the registry's size.
//
// The provider's collectChanges() gives the native output in which records not changed
// since this reader's previous pass are only ids (mode 1) or absent (mode 2). Per record,
// this keeps (while the record lives):
//  * its frozen attributes (shared with the provider's attributesOf);
//  * cumulative: the converted point value (frozen), re-sent as is while it does not change;
//  * delta: the previous cumulative state, to difference the next change against.
// Changed records are converted as UngroupedBatcher + ExponentialDeltaState did for this
// producer (same deltas, start times, reset rules); unchanged ones cost nothing in delta
// and one point object in cumulative.
//
// Invariants:
//  * Collections are converted in order, each once (the producer queues them).
//  * An entry goes when its record is reclaimed by this reader's pass, or when a mode 1
//    pass (every live record listed) does not list it (reclaimed by another reader's pass,
//    or removed); an all-delta producer asks for mode 1 every SWEEP_EVERY collections.
//  * Point values and attribute objects handed out are frozen: they are the cache.
//  * The native pass runs on the libuv pool; the walk here yields to the event loop every
//    SLICE_MS, new records' attributes are decoded in batches of ATTRIBUTE_BATCH.
import type { Attributes, HrTime } from '@opentelemetry/api';
import { deltaOf, isReset } from '../../export/batchers/merge';
import type { Aggregation, ExponentialHistogramAggregation } from '../../export/checkpoint-set';
import { AggregationTemporality } from '../../export/temporality';
import type { BoundHandle } from '../../api/handles';
import { AggregationKind, cellSize } from '../../sdk/aggregation';
import { ChangedCollection, GONE, toAggregation } from '../../sdk/collection';
import { InstrumentKind, isObservable } from '../../sdk/descriptor';
import type { RecordStore } from '../../sdk/record-store';
import { cumulativeExponential, exponentialValue, histogramValue, newMetric, toHrTime } from './convert';
import { exponentialDelta, wholeInterval } from './exponential-delta';
import {
  OtelDataPointType,
  OtelMetricData,
  OtelResource,
  OtelResourceMetrics,
  OtelScopeMetrics,
} from './types';

/** An all-delta producer lists every live record (mode 1) this often, to drop gone ones. */
const SWEEP_EVERY = 16;
/** The conversion yields to the event loop after this long, ms. */
const SLICE_MS = 8;
/** Attributes decoded per native call (a batch takes a few ms). */
const ATTRIBUTE_BATCH = 2000;
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const EMPTY_PART = new Float64Array(0);

type Store = RecordStore<BoundHandle>;

class Entry {
  /** Cumulative: the converted value of the last change, or undefined before one. */
  point: unknown = undefined;
  startHr: HrTime | undefined = undefined;
  /** Delta: the cumulative state at the last change this reader saw (FAST_KINDS: its cell). */
  prev: Aggregation | undefined = undefined;
  /** Delta (FAST_KINDS): offset of that cell in the converter's PrevCells, or -1. */
  prevCell = -1;
  /** Delta (observables): end time of the collection that last had its change. */
  prevEnd = 0;
  /** The collection that last had its change (observables: observed). */
  changedAt = 0;
  /** The collection that last listed it (changed or not). */
  seenAt = 0;
  constructor(
    /** The record's id (its slot's generation tells a reused slot apart). */
    readonly id: number,
    readonly store: Store,
    /** NO_ATTRIBUTES until decoded (the end of the collection that created the entry). */
    public attributes: Attributes,
    readonly startTime: number,
  ) {}
}

/**
 * The previous cells of delta entries, in one growing Float64Array (an array per entry
 * was an ArrayBuffer per record: slow to make, and a load on every GC). A cell is taken
 * when its entry first keeps one and given back when the entry goes; freed cells are
 * reused by cells of the same size.
 */
class PrevCells {
  data = new Float64Array(1024);
  private top = 0;
  private readonly free: number[][] = [];

  alloc(size: number): number {
    const f = this.free[size];
    if (f !== undefined && f.length > 0) return f.pop()!;
    if (this.top + size > this.data.length) {
      const grown = new Float64Array(Math.max(this.data.length * 2, this.top + size));
      grown.set(this.data);
      this.data = grown;
    }
    const off = this.top;
    this.top += size;
    return off;
  }

  release(e: Entry): void {
    if (e.prevCell < 0) return;
    const size = cellSize(e.store.aggregation, e.store.bounds.length, e.store.params.maxSize);
    (this.free[size] ??= []).push(e.prevCell);
    e.prevCell = -1;
  }
}

interface Building {
  readonly metric: OtelMetricData;
  readonly order: number;
  readonly delta: boolean;
  readonly observable: boolean;
}

const scopeKeys = new WeakMap<object, string>();
function scopeKey(store: Store): string {
  const sc = store.scope;
  let k = scopeKeys.get(sc);
  if (k === undefined) scopeKeys.set(sc, (k = `${sc.name}\0${sc.version ?? ''}\0${sc.schemaUrl ?? ''}`));
  return k;
}

function aggregationKindName(kind: AggregationKind): Aggregation['kind'] {
  switch (kind) {
    case AggregationKind.SUM:
    case AggregationKind.PRECOMPUTED_SUM:
      return 'sum';
    case AggregationKind.LAST_VALUE:
      return 'lastValue';
    case AggregationKind.EXPONENTIAL_HISTOGRAM:
      return 'exponentialHistogram';
    default:
      return 'histogram';
  }
}

/** Sketches and exact values travel as bucketless histograms (count, sum, min, max). */
function exportable(a: Aggregation): Aggregation {
  return a.kind === 'sketch' || a.kind === 'exact' ? { kind: 'minMaxSumCount', count: a.count, sum: a.sum, min: a.min, max: a.max } : a;
}

/** Freezes a point value and every object in it (the cache hands it out again). */
function freezeValue<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v)) return v;
  if (Array.isArray(v)) {
    for (let j = 0; j < v.length; j++) freezeValue(v[j]);
  } else {
    for (const k in v) freezeValue((v as Record<string, unknown>)[k]);
  }
  return Object.freeze(v);
}

/** See the file comment. */
export class IncrementalConverter {
  /**
   * By record slot (the id's low 32 bits: dense, small integers, where ids themselves are
   * not small integers for V8); an entry whose id differs is a reclaimed record's.
   */
  private entries: (Entry | undefined)[] = [];
  /** @internal (Pass) */
  readonly prevCells = new PrevCells();
  private held = 0;
  private collections = 0;
  /** End time of the previous collection (delta start of a synchronous series). */
  private lastTime = 0;
  /**
   * The previous collection's Pass, emptied (retire()). A Pass lives for one collection;
   * with none alive, a major GC frees its hidden class, and V8 then deoptimises the
   * per-record code (Pass.run and what it inlines: "weak objects") and runs the next
   * collection unoptimised until it is compiled again: a 20,000-point delta flush took
   * 25 ms instead of 15 (bench/otlp.js, which collects garbage before each flush, as a
   * busy server does between two exports).
   */
  private lastPass: Pass | undefined = undefined;

  constructor(
    private readonly temporalityOf: (kind: InstrumentKind) => AggregationTemporality,
    /** The batcher's: observable series unseen this many collections start over. */
    private readonly maxIdleCollections: number,
  ) {}

  /** Records held (for tests). */
  get size(): number {
    return this.held;
  }

  /** The collection mode the next collection needs (see the file comment). */
  nextMode(): 1 | 2 {
    if ((this.collections + 1) % SWEEP_EVERY === 0) return 1;
    for (const k of [InstrumentKind.COUNTER, InstrumentKind.UP_DOWN_COUNTER, InstrumentKind.HISTOGRAM, InstrumentKind.GAUGE]) {
      if (this.temporalityOf(k) !== AggregationTemporality.DELTA) return 1;
    }
    for (const k of [InstrumentKind.OBSERVABLE_COUNTER, InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER, InstrumentKind.OBSERVABLE_GAUGE]) {
      if (this.temporalityOf(k) !== AggregationTemporality.DELTA) return 1;
    }
    return 2;
  }

  /** Converts one collection (of the mode nextMode() said). */
  async convert(c: ChangedCollection, mode: 1 | 2, resource: OtelResource): Promise<OtelResourceMetrics> {
    const n = ++this.collections;
    const pass = new Pass(this, c, n, this.lastTime);
    try {
      return await this.walk(pass, c, n, mode, resource);
    } finally {
      // Keeps Pass's hidden class alive between collections (see `lastPass`).
      pass.retire();
      this.lastPass = pass;
    }
  }

  private async walk(pass: Pass, c: ChangedCollection, n: number, mode: 1 | 2, resource: OtelResource): Promise<OtelResourceMetrics> {
    const entries = this.entries;
    // Each part of the records as the native pass hands it on (while it reads the rest on
    // the libuv pool), in slices between which the event loop turns. A slice spans parts:
    // parts that arrived while one was converted are taken without a turn in between
    // (their promise is settled), so only the deadline lets the loop go.
    const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
    let deadline = performance.now() + SLICE_MS;
    for (let part = await c.nextPart(); part !== undefined; part = await c.nextPart()) {
      pass.feed(part);
      while (!pass.run(deadline)) {
        await turn();
        deadline = performance.now() + SLICE_MS;
      }
      if (performance.now() > deadline) {
        await turn();
        deadline = performance.now() + SLICE_MS;
      }
    }
    this.held += pass.created;
    // Records the pass freed (known at its end; none of them is in its output, and none of
    // their slots was taken again by a record in it).
    for (let k = 0; k < c.reclaimed.length; k++) {
      const id = c.reclaimed[k];
      const slot = id >>> 0; // ToUint32: the low 32 bits
      const e = entries[slot];
      if (e !== undefined && e.id === id) {
        this.prevCells.release(e);
        entries[slot] = undefined;
        this.held--;
      }
    }
    // Attributes of the new records, in batches between which the event loop turns, in
    // slot order: records created together (other instruments written with the same
    // attributes) fall in one batch, where they share one decoded object.
    const fresh = bySlot(pass.fresh, entries, n);
    for (let k = 0; k < fresh.length; k += ATTRIBUTE_BATCH) {
      if (k > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = fresh.slice(k, k + ATTRIBUTE_BATCH);
      const attrs = c.attributes(batch.map((x) => x.id));
      for (let j = 0; j < batch.length; j++) batch[j].attributes = attrs[j];
    }
    const points = pass.freshPoints;
    const owners = pass.freshPointEntries;
    let gone = false;
    for (let k = 0; k < points.length; k++) {
      points[k].attributes = owners[k].attributes;
      if (points[k].attributes === GONE) gone = true;
    }
    // Records removed before their attributes were decoded: out of this export (as if
    // removed before the pass), never sent without their attributes; their entries go.
    if (gone) {
      pass.dropPoints(GONE);
      for (const e of fresh) {
        if (e.attributes !== GONE || entries[e.id >>> 0] !== e) continue;
        this.prevCells.release(e);
        entries[e.id >>> 0] = undefined;
        this.held--;
      }
    }
    // Mode 1 lists every live record: an entry it did not list is gone. When the pass saw
    // as many entries as are held, none is missing and the walk over every slot is skipped
    // (at 200,000 records it cost ~8 ms of an idle cumulative flush).
    if (mode === 1 && pass.seen !== this.held) {
      for (let slot = 0; slot < entries.length; slot++) {
        const e = entries[slot];
        if (e !== undefined && e.seenAt !== n) {
          this.prevCells.release(e);
          entries[slot] = undefined;
          this.held--;
        }
      }
    }
    this.lastTime = c.time;
    return { resource, scopeMetrics: pass.scopeMetrics() };
  }

  /** @internal (Pass) */
  get state(): { entries: (Entry | undefined)[]; prevCells: PrevCells; temporalityOf: (kind: InstrumentKind) => AggregationTemporality; maxIdleCollections: number } {
    return { entries: this.entries, prevCells: this.prevCells, temporalityOf: this.temporalityOf, maxIdleCollections: this.maxIdleCollections };
  }
}

/**
 * The entries created by collection `n` (`fresh`), in slot order when they take more than
 * one batch: a walk over the slots (entries created by a pass are the ones it changed
 * that have no attributes yet; one with none from an earlier pass is decoded again, to no
 * harm), not a sort, which held the event loop ~20 ms at 200,000 records.
 */
function bySlot(fresh: Entry[], entries: readonly (Entry | undefined)[], n: number): Entry[] {
  if (fresh.length <= ATTRIBUTE_BATCH) return fresh;
  const out: Entry[] = [];
  for (let s = 0; s < entries.length; s++) {
    const e = entries[s];
    if (e !== undefined && e.changedAt === n && e.attributes === NO_ATTRIBUTES) out.push(e);
  }
  return out;
}

interface Point {
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  attributes: Attributes;
  readonly value: unknown;
}

/**
 * One collection's walk over the native output, resumable (run() up to a deadline), in
 * small monomorphic methods: the per-record code stays optimised across collections.
 */
class Pass {
  readonly fresh: Entry[] = [];
  /** Points of records whose attributes are decoded after the walk, and their entries. */
  readonly freshPoints: Point[] = [];
  readonly freshPointEntries: Entry[] = [];
  /** Slots newly filled. */
  created = 0;
  /** Entries this pass listed (each counted once). */
  seen = 0;
  private readonly entries: (Entry | undefined)[];
  private readonly prevCells: PrevCells;
  private readonly temporalityOf: (kind: InstrumentKind) => AggregationTemporality;
  private readonly maxIdle: number;
  /** The part of the records being walked (feed()). */
  private data: Float64Array = EMPTY_PART;
  private readonly end: number;
  private readonly endHr: HrTime;
  private readonly scopes = new Map<string, { scope: OtelScopeMetrics; built: Building[] }>();
  private readonly metrics = new Map<Store, Building>();
  private readonly times = new Map<number, HrTime>();
  private order = 0;
  private i = 0;
  private lastStore: Store | undefined = undefined;
  private b: Building = undefined as unknown as Building; // the building of lastStore
  private points: Point[] = [];
  private lastInst = -1;
  private store: Store = undefined as unknown as Store; // the store of lastInst
  private size = 0;
  private fast = false;
  private hrMs = NaN;
  private hrLast: HrTime;

  constructor(
    owner: IncrementalConverter,
    private readonly c: ChangedCollection,
    private readonly n: number,
    /** End time of the previous collection (delta start of a synchronous series). */
    private readonly lastTime: number,
  ) {
    const st = owner.state;
    this.entries = st.entries;
    this.prevCells = st.prevCells;
    this.temporalityOf = st.temporalityOf;
    this.maxIdle = st.maxIdleCollections;
    this.end = c.time;
    this.endHr = toHrTime(c.time);
    this.hrLast = this.endHr;
  }

  /** The next part of the records (whole records, in the pass's order). */
  feed(part: Float64Array): void {
    this.data = part;
    this.i = 0;
  }

  /** Walks the part's records until the deadline (performance.now()); true when every one is done. */
  run(deadline: number): boolean {
    const data = this.data;
    let k = 0; // records this run: at least 511 before it may stop
    while (this.i < data.length) {
      if ((++k & 511) === 0 && performance.now() > deadline) return false;
      const id = data[this.i];
      const inst = data[this.i + 1];
      if (inst < 0) {
        this.i += 2;
        this.unchanged(id);
      } else {
        if (inst !== this.lastInst) this.instrument(inst);
        const off = this.i + 4;
        this.i = off + this.size;
        this.changed(id, off);
      }
    }
    return true;
  }

  /**
   * Drops what the collection built (points, parts, maps), so that keeping the emptied
   * Pass (IncrementalConverter.lastPass) holds no memory of it.
   */
  retire(): void {
    this.data = EMPTY_PART;
    this.fresh.length = 0;
    this.freshPoints.length = 0;
    this.freshPointEntries.length = 0;
    this.scopes.clear();
    this.metrics.clear();
    this.times.clear();
    this.points = [];
    this.b = undefined as unknown as Building;
    this.lastStore = undefined;
  }

  /** Takes the points with these attributes out of every metric of this collection. */
  dropPoints(attributes: Attributes): void {
    for (const b of this.metrics.values()) {
      const m = b.metric as { dataPoints: Point[] };
      if (m.dataPoints.some((p) => p.attributes === attributes)) m.dataPoints = m.dataPoints.filter((p) => p.attributes !== attributes);
    }
  }

  scopeMetrics(): OtelScopeMetrics[] {
    const out: OtelScopeMetrics[] = [];
    for (const s of this.scopes.values()) {
      const built = s.built.filter((x) => x.metric.dataPoints.length > 0).sort((x, y) => x.order - y.order);
      if (built.length === 0) continue;
      s.scope.metrics = built.map((x) => x.metric);
      out.push(s.scope);
    }
    return out;
  }

  private use(store: Store): void {
    if (store === this.lastStore) return;
    this.lastStore = store;
    this.b = this.building(store);
    this.points = this.b.metric.dataPoints as Point[];
  }

  private instrument(inst: number): void {
    const st = this.c.storeOf(inst);
    if (st === undefined) throw new Error(`hotmeter: collection of an unknown instrument ${inst}`);
    this.lastInst = inst;
    this.store = st;
    this.size = cellSize(st.aggregation, st.bounds.length, st.params.maxSize);
    this.fast = FAST_KINDS[st.aggregation] === 1;
  }

  /** Not changed since this reader's previous pass: cumulative re-sends its point. */
  private unchanged(id: number): void {
    const e = this.entries[id >>> 0];
    if (e === undefined || e.id !== id) return; // first seen unchanged: cannot happen (see the file comment)
    if (e.seenAt !== this.n) this.seen++;
    e.seenAt = this.n;
    this.use(e.store);
    if (this.b.delta || this.b.observable || e.point === undefined) return;
    this.points.push({ startTime: e.startHr!, endTime: this.endHr, attributes: e.attributes, value: e.point });
  }

  private entry(id: number, off: number): Entry {
    const entries = this.entries;
    const slot = id >>> 0; // ToUint32: the low 32 bits
    let e = entries[slot];
    if (e === undefined || e.id !== id) {
      if (e === undefined) this.created++;
      else this.prevCells.release(e); // a reclaimed record's, its slot reused
      while (entries.length < slot) entries.push(undefined); // stays a packed array
      entries[slot] = e = new Entry(id, this.store, NO_ATTRIBUTES, Math.floor(this.data[off - 1]));
      this.fresh.push(e);
    }
    return e;
  }

  private push(e: Entry, point: Point): void {
    if (e.attributes === NO_ATTRIBUTES) {
      this.freshPoints.push(point);
      this.freshPointEntries.push(e);
    }
    this.points.push(point);
  }

  private changed(id: number, off: number): void {
    const store = this.store;
    const e = this.entry(id, off);
    this.use(store);
    const b = this.b;
    const data = this.data;
    const prevChanged = e.changedAt;
    e.changedAt = this.n;
    if (e.seenAt !== this.n) this.seen++;
    e.seenAt = this.n;
    if (!b.delta) {
      e.startHr ??= this.hr(Math.min(e.startTime, this.end)); // shared by the series started in one ms
      e.point = freezeValue(
        withoutMinMax(store, this.fast ? cellValue(store, data, off, undefined, 0) : pointValue(b.metric.dataPointType, exportable(toAggregation(store, data.subarray(off, off + this.size), id)))),
      );
      this.push(e, { startTime: e.startHr, endTime: this.endHr, attributes: e.attributes, value: e.point });
      return;
    }
    // Delta: as the batcher (UngroupedBatcher) and ExponentialDeltaState did. A
    // synchronous series was in every collection they saw (its previous end is the
    // previous collection's); an observable one only when observed, and its state went
    // after maxIdleCollections collections without.
    let prevEnd = this.lastTime;
    let forget = false;
    if (b.observable) {
      prevEnd = e.prevEnd;
      forget = this.n - 1 - prevChanged >= this.maxIdle;
    }
    e.prevEnd = this.end;
    let value: unknown;
    let start: number;
    if (this.fast) {
      const cells = this.prevCells;
      const p = forget ? -1 : e.prevCell;
      if (p < 0 || cellReset(store, data, off, cells.data, p)) {
        value = cellValue(store, data, off, undefined, 0);
        start = e.startTime;
      } else {
        // Changed since this reader's previous pass: exported even when the delta is 0
        // (the batcher's `updated`), as before.
        value = cellValue(store, data, off, cells.data, p);
        start = prevEnd;
      }
      const size = this.size;
      if (e.prevCell < 0) e.prevCell = cells.alloc(size);
      const keep = cells.data; // after alloc (which may grow it)
      const k = e.prevCell;
      for (let j = 0; j < size; j++) keep[k + j] = data[off + j];
    } else {
      const a = exportable(toAggregation(store, data.subarray(off, off + this.size), id));
      const prev = forget ? undefined : e.prev;
      e.prev = a;
      if (a.kind === 'exponentialHistogram') {
        const d = prev === undefined ? undefined : exponentialDelta(prev as ExponentialHistogramAggregation, a);
        value = exponentialValue(d ?? wholeInterval(a));
        start = d === undefined ? e.startTime : prevEnd;
      } else if (prev === undefined || isReset(prev, a)) {
        value = pointValue(b.metric.dataPointType, a);
        start = e.startTime;
      } else {
        value = pointValue(b.metric.dataPointType, deltaOf(prev, a));
        start = prevEnd;
      }
    }
    this.push(e, { startTime: this.hr(Math.min(start, this.end)), endTime: this.endHr, attributes: e.attributes, value: withoutMinMax(store, value) });
  }

  private hr(ms: number): HrTime {
    if (ms === this.hrMs) return this.hrLast;
    this.hrMs = ms;
    let t = this.times.get(ms);
    if (t === undefined) this.times.set(ms, (t = toHrTime(ms)));
    return (this.hrLast = t);
  }

  private building(store: Store): Building {
    let b = this.metrics.get(store);
    if (b !== undefined) return b;
    const key = scopeKey(store);
    let s = this.scopes.get(key);
    if (s === undefined) {
      const sc = store.scope;
      s = { scope: { scope: { name: sc.name, version: sc.version || undefined, schemaUrl: sc.schemaUrl || undefined }, metrics: [] }, built: [] };
      this.scopes.set(key, s);
    }
    const kind = store.descriptor.kind;
    const temporality = this.temporalityOf(kind);
    const aggregation = { kind: aggregationKindName(store.aggregation) } as Aggregation;
    // As before: exponential histograms after the other metrics of their scope.
    const o = (store.aggregation === AggregationKind.EXPONENTIAL_HISTOGRAM ? 1e9 : 0) + this.order++;
    b = { metric: newMetric({ descriptor: store.descriptor, aggregation }, temporality), order: o, delta: temporality === AggregationTemporality.DELTA, observable: isObservable(kind) };
    this.metrics.set(store, b);
    s.built.push(b);
    return b;
  }
}

function pointValue(type: OtelDataPointType, a: Aggregation): unknown {
  switch (type) {
    case OtelDataPointType.SUM:
    case OtelDataPointType.GAUGE:
      return a.kind === 'sum' ? a.sum : a.kind === 'lastValue' ? a.value : NaN;
    case OtelDataPointType.EXPONENTIAL_HISTOGRAM:
      return exponentialValue(cumulativeExponential(a as ExponentialHistogramAggregation));
    default:
      return histogramValue(a);
  }
}

/** Aggregations converted straight from their cells (the others through toAggregation). */
const FAST_KINDS: readonly number[] = (() => {
  const k: number[] = [];
  for (const a of [AggregationKind.SUM, AggregationKind.PRECOMPUTED_SUM, AggregationKind.LAST_VALUE, AggregationKind.MIN_MAX_SUM_COUNT, AggregationKind.HISTOGRAM]) k[a] = 1;
  return k;
})();

const EMPTY_BOUNDARIES: number[] = Object.freeze([]) as unknown as number[];
const boundariesOf = new WeakMap<Store, number[]>();
function boundaries(store: Store): number[] {
  let b = boundariesOf.get(store);
  if (b === undefined) boundariesOf.set(store, (b = Object.freeze(Array.from(store.bounds)) as unknown as number[]));
  return b;
}

/** A finite number, or undefined (OTLP: unset). */
function finite(v: number): number | undefined {
  return Number.isFinite(v) ? v : undefined;
}

/**
 * Whether the cell at data[off] cannot follow `prev` in one cumulative series (merge.ts
 * isReset): a monotonic sum or a count or bucket that went down.
 */
function cellReset(store: Store, data: Float64Array, off: number, prev: Float64Array, p: number): boolean {
  switch (store.aggregation) {
    case AggregationKind.SUM:
    case AggregationKind.PRECOMPUTED_SUM:
      return store.descriptor.monotonic && data[off] < prev[p];
    case AggregationKind.MIN_MAX_SUM_COUNT:
      return data[off] < prev[p];
    case AggregationKind.HISTOGRAM: {
      const nb = store.bounds.length + 1;
      for (let j = 3; j < 3 + nb; j++) if (data[off + j] < prev[p + j]) return true;
      return false;
    }
    default:
      return false;
  }
}

/** A view's recordMinMax: false (sdk-metrics): histogram points carry no min and max. */
function withoutMinMax(store: Store, value: unknown): unknown {
  if (store.descriptor.recordMinMax === false && typeof value === 'object' && value !== null) {
    const v = value as { min?: number; max?: number };
    v.min = undefined;
    v.max = undefined;
  }
  return value;
}

/**
 * The point value of the cell at data[off] of a FAST_KINDS store: cumulative, or (prev)
 * the delta from the cell at prev[p], as histogramValue(deltaOf(prev, cur)) gives it: min and max only
 * when the interval recorded something and moved both cumulative extremes.
 */
function cellValue(store: Store, data: Float64Array, off: number, prev: Float64Array | undefined, p: number): unknown {
  switch (store.aggregation) {
    case AggregationKind.SUM:
    case AggregationKind.PRECOMPUTED_SUM:
      return prev === undefined ? data[off] : data[off] - prev[p];
    case AggregationKind.LAST_VALUE:
      return data[off];
    case AggregationKind.MIN_MAX_SUM_COUNT: {
      const min = data[off + 2];
      const max = data[off + 3];
      const count = prev === undefined ? data[off] : data[off] - prev[p];
      const sum = prev === undefined ? data[off + 1] : data[off + 1] - prev[p + 1];
      const known = count > 0 && (prev === undefined || (min < prev[p + 2] && max > prev[p + 3]));
      return { buckets: { boundaries: EMPTY_BOUNDARIES, counts: [count] }, count, sum, min: known ? finite(min) : undefined, max: known ? finite(max) : undefined };
    }
    default: {
      // HISTOGRAM: [sum, min, max, bucket0..bucketN]
      const nb = store.bounds.length + 1;
      const counts = new Array<number>(nb);
      let count = 0;
      for (let j = 0; j < nb; j++) {
        const c = prev === undefined ? data[off + 3 + j] : data[off + 3 + j] - prev[p + 3 + j];
        counts[j] = c;
        count += c;
      }
      const min = data[off + 1];
      const max = data[off + 2];
      const sum = prev === undefined ? data[off] : data[off] - prev[p];
      const known = count > 0 && (prev === undefined || (min < prev[p + 1] && max > prev[p + 2]));
      return { buckets: { boundaries: boundaries(store), counts }, count, sum, min: known ? finite(min) : undefined, max: known ? finite(max) : undefined };
    }
  }
}
