// RecordStore: one per instrument identity per provider per thread. Maps attribute sets
// to this thread's handles: first the provider's LabelTrie over the attribute object (no
// key is built; one trie for all the provider's stores, each store its own leaf value),
// then the canonical encoding (no C++ call), then native acquire (a new record or a new
// cell for this thread). Handles cached here hold one native reference each.
import type { Attributes } from '@opentelemetry/api';
import type { AttributeTable } from './attribute-table';
import {
  BoundCounter,
  BoundGauge,
  BoundHandle,
  BoundHistogram,
  BoundMinMaxSumCount,
  BoundUpDownCounter,
  HandleOwner,
  OFF_DROPPED,
  OFF_SHUTDOWN,
  warnRejectedValue,
} from '../api/handles';
import { BoundExact, BoundExponentialHistogram, BoundSketch } from '../api/handles-sketch';
import { AggregationKind, AggregatorParams, DEFAULT_AGGREGATOR_PARAMS, defaultAggregation } from './aggregation';
import { Descriptor, InstrumentationScope, InstrumentKind } from './descriptor';
import { describeValue, warnLimited } from './diag';
import { encodeLabels, LabelLimits } from './labels';
import { LabelTrie } from './label-trie';
import { native } from './native';
import { slabView } from './slabs';
import { ExemplarFilterCode } from './exemplars';
import { drainStale, markStalePending, stalePending, trackStore } from './worker-evict';

const EMPTY_F64 = new Float64Array(1);
const acquireOut = new Float64Array(6);

// A label set's first use on this thread caches nothing: one-off label sets (ids, URLs
// with parameters) cost no JS memory. Its handle is written by the caller at once (every
// lookup() caller writes before it returns), and its reference goes back afterwards: with
// the next acquire (same native call) or in a microtask, whichever comes first. At most one
// reference is pending per thread.
let pendingRelease = 0;
let flushScheduled = false;

function flushPendingRelease(): void {
  flushScheduled = false;
  const id = pendingRelease;
  if (id === 0) return;
  pendingRelease = 0;
  try {
    native().release(id);
  } catch {
    // the environment is shutting down; nothing left to release
  }
}

function releaseAfterWrite(recordId: number): void {
  if (pendingRelease !== 0) flushPendingRelease();
  pendingRelease = recordId;
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flushPendingRelease);
  }
}
const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ 'otel.metric.overflow': true });
/** Trie paths (key orders) cached per label set before its canonical path (cacheInTrie). */
const MAX_ORDER_PATHS = 4;

/** Per-stream settings from the provider and the matching view. */
export interface StorePolicy {
  /** At most this many series (the last one is the overflow series); 0 = unlimited. */
  readonly cardinalityLimit: number;
  /** Attribute keys kept (view allow/deny lists); undefined keeps all. */
  readonly keep?: (key: string) => boolean;
  /**
   * The view's attribute processors, composed. Run only where a label set is resolved
   * (a cache miss: its first uses, bind, remove), never on a cached label set.
   */
  readonly process?: (attrs: Attributes) => Attributes;
  /** The readers this stream is exported to; undefined: every reader. */
  readonly readers?: ReadonlySet<object>;
  /** The provider's exemplar filter; default trace based. */
  readonly exemplarFilter?: ExemplarFilterCode;
}

/** Series per instrument unless the provider or a view says otherwise (the OpenTelemetry default). */
export const DEFAULT_CARDINALITY_LIMIT = 2000;
const DEFAULT_POLICY: StorePolicy = Object.freeze({ cardinalityLimit: DEFAULT_CARDINALITY_LIMIT });

// Bound handles the user dropped without unbind(): give their reference back.
// Its WeakRef leaves the store's set too, or every forgotten handle would leak one.
const forgotten = new FinalizationRegistry<{ store: RecordStore; recordId: number; ref: WeakRef<BoundHandle> }>((held) => {
  held.store.forget(held.ref);
  held.store.releaseRecord(held.recordId);
});

/** The enumerable attributes, each read once, in a null-prototype object; undefined for arrays. */
function snapshot(attrs: object): Record<string, unknown> | undefined {
  if (Array.isArray(attrs)) return undefined;
  const out: Record<string, unknown> = Object.create(null);
  for (const k in attrs) out[k] = (attrs as Record<string, unknown>)[k];
  return out;
}

export class RecordStore<H extends BoundHandle = BoundHandle> implements HandleOwner {
  readonly name: string;
  readonly int: boolean;
  readonly exemplarFilter: ExemplarFilterCode;
  /**
   * Direct-call cache: (attribute object shape, this store) -> handle. Shared by the
   * provider's stores on this thread; any of them may clear it (it is only an index).
   */
  readonly trie: LabelTrie<H>;
  /** Canonical encoding (JSON of the parts) -> handle. Each entry holds one reference. */
  private readonly byKey = new Map<string, H>();
  /**
   * Trie paths this store cached per handle (one per key order seen) since the trie's
   * generation `pathsGeneration`; past MAX_ORDER_PATHS a handle gets its canonical path.
   */
  private readonly paths = new Map<H, number>();
  private pathsGeneration = -1;
  /** The trie generation in which this store cached a canonical path (-1: none). */
  private sortedGeneration = -1;
  /** The overflow series' cached handle (holds one reference), once the limit is hit. */
  private overflow: H | undefined;
  private readonly bound = new Set<WeakRef<H>>();
  private readonly weakOf = new WeakMap<H, WeakRef<H>>();
  /** The handle for "no attributes". */
  empty: H | undefined;
  /** Returned when a measurement is dropped by design. */
  readonly dropped: H;
  /** The byKey walk of an eviction stopped at its deadline (evict() resumes it). */
  private evicting: Iterator<[string, H]> | undefined = undefined;
  /** Entries that walk has still to visit at most. */
  private evictLeft = 0;
  private dead = false;

  constructor(
    readonly descriptor: Descriptor,
    readonly scope: InstrumentationScope,
    /** Native instrument id; 0 when disabled. */
    readonly instrumentId: number,
    readonly aggregation: AggregationKind,
    readonly bounds: Float64Array,
    private readonly limits: LabelLimits,
    /** recordId -> attributes, shared by the provider for collection. */
    private readonly attributesOf: AttributeTable,
    readonly policy: StorePolicy = DEFAULT_POLICY,
    /** Sketch / exponential histogram parameters (as registered natively). */
    readonly params: AggregatorParams = DEFAULT_AGGREGATOR_PARAMS,
    trie: LabelTrie<BoundHandle> = new LabelTrie<BoundHandle>(),
  ) {
    this.trie = trie as LabelTrie<H>;
    this.name = descriptor.name;
    this.int = descriptor.valueType === 0; /* ValueType.INT */
    this.exemplarFilter = policy.exemplarFilter ?? ExemplarFilterCode.TRACE_BASED;
    this.dropped = this.makeHandle(EMPTY_F64, OFF_DROPPED, 0);
    // Another thread's reclaiming collection may ask this thread to let go (worker-evict.ts).
    if (instrumentId !== 0) trackStore(this);
  }

  /**
   * Records nothing by design (no native instrument, or a DROP aggregation). A store
   * that was shut down is not "disabled": its measurements get the after-shutdown
   * diagnostic.
   */
  get disabled(): boolean {
    return !this.dead && (this.instrumentId === 0 || this.aggregation === AggregationKind.DROP);
  }

  /** The cached handle for `attrs` (slow path of the direct calls). Never throws. */
  lookup(attrs: Attributes | undefined): H {
    if (attrs === undefined) {
      if (this.empty !== undefined) return this.empty;
      const h = this.resolve({}, false);
      // Only a byKey entry is cached here, so eviction releases it exactly once.
      if (h !== this.dropped && h !== this.overflow && this.byKey.get('[]') === h) this.empty = h;
      return h;
    }
    if (typeof attrs !== 'object' || attrs === null) {
      warnLimited(`attrs:${this.name}`, `${this.name}: attributes must be an object; measurement dropped`);
      return this.dropped;
    }
    try {
      const h = this.trie.get(attrs, this);
      if (h !== undefined) return h;
      if (this.sortedGeneration === this.trie.generation) {
        const hs = this.trie.getSorted(attrs, this);
        if (hs !== undefined) return hs;
      }
      return this.resolve(attrs, true);
    } catch (e) {
      warnLimited(`attrs-throw:${this.name}`, `${this.name}: reading the attributes threw (${describeValue(e)}); measurement dropped`);
      return this.dropped;
    }
  }

  /**
   * A measurement whose value breaks `rule` (the rule this instrument's handles check),
   * caught before its attributes are resolved: it is dropped with the handles'
   * diagnostic and leaves no record, so no series. Never throws.
   */
  rejectValue(value: unknown, rule: string): void {
    if (!this.disabled) warnRejectedValue(this.name, value, rule);
  }

  /** A new user-owned handle holding its own reference. */
  bind(attrs: Attributes | undefined): H {
    if (this.dead) {
      warnLimited(`shutdown:${this.name}`, `${this.name}: bind() after shutdown; the handle drops every measurement`);
      return this.dropped;
    }
    if (this.disabled) return this.dropped;
    let parts: string[] | undefined;
    try {
      parts = encodeLabels(this.processed(attrs ?? {}), this.limits, this.name, this.policy.keep);
    } catch {
      parts = undefined;
    }
    if (parts === undefined) {
      warnLimited(`attrs:${this.name}`, `${this.name}: attributes must be a plain object; bind() returned a handle that drops`);
      return this.dropped;
    }
    const h = this.acquire(parts, undefined);
    if (h === undefined) return this.dropped;
    const w = new WeakRef(h);
    this.bound.add(w);
    this.weakOf.set(h, w);
    forgotten.register(h, { store: this as RecordStore, recordId: h.recordId, ref: w }, h);
    return h;
  }

  /** Called by BoundHandle.unbind(). */
  release(handle: BoundHandle): void {
    const w = this.weakOf.get(handle as H);
    if (w === undefined) return; // a cached handle: the store owns its reference
    this.bound.delete(w);
    this.weakOf.delete(handle as H);
    forgotten.unregister(handle);
    this.releaseRecord(handle.recordId);
  }

  /** @internal A bound handle was garbage-collected without unbind(). */
  forget(ref: WeakRef<BoundHandle>): void {
    this.bound.delete(ref as WeakRef<H>);
  }

  /** @internal */
  releaseRecord(recordId: number): void {
    if (this.dead) return;
    try {
      native().release(recordId);
    } catch {
      // the environment is shutting down; nothing left to release
    }
  }

  /** releaseRecord() of each id, in one native call. */
  private releaseRecords(ids: number[]): void {
    if (this.dead) return;
    try {
      native().releaseMany(Float64Array.from(ids));
    } catch {
      // the environment is shutting down; nothing left to release
    }
  }

  /** After shutdown every handle, cached or bound, drops with a diagnostic. */
  shutdown(): void {
    if (this.dead) return;
    // No handle writes again, so every reference goes back: the records stay reclaimable
    // by whichever provider still collects the domain (another thread, for instance).
    const held: number[] = [];
    for (const h of this.byKey.values()) {
      h.off = OFF_SHUTDOWN;
      held.push(h.recordId);
    }
    for (const w of this.bound) {
      const h = w.deref();
      if (h === undefined || h.off < 0) continue;
      h.off = OFF_SHUTDOWN;
      forgotten.unregister(h);
      held.push(h.recordId);
    }
    if (this.overflow !== undefined) {
      this.overflow.off = OFF_SHUTDOWN;
      held.push(this.overflow.recordId);
    }
    for (const id of held) this.releaseRecord(id);
    this.dead = true;
    this.bound.clear();
    this.trie.clear();
    this.paths.clear();
    this.byKey.clear();
    this.empty = undefined;
    this.overflow = undefined;
  }

  /** `attrs` through the view's attribute processors, if any (they may throw). */
  private processed(attrs: Attributes): unknown {
    const p = this.policy.process;
    return p === undefined ? attrs : p({ ...attrs });
  }

  private resolve(attrs: Attributes, cacheInTrie: boolean): H {
    if (this.dead) {
      warnLimited(`shutdown:${this.name}`, `${this.name}: measurement after shutdown dropped`);
      return this.dropped;
    }
    if (this.disabled) return this.dropped;
    // Read every attribute once: a getter may return a new value on each read, and the
    // trie must cache exactly the values that were encoded.
    const snap = snapshot(attrs);
    let parts: string[] | undefined;
    if (snap !== undefined) {
      const p = this.policy.process;
      let input: unknown = snap;
      if (p !== undefined) {
        try {
          // A copy: the trie caches `snap` itself.
          input = p({ ...snap } as Attributes);
        } catch (e) {
          warnLimited(`process:${this.name}`, `${this.name}: an attributes processor threw (${describeValue(e)}); measurement dropped`);
          return this.dropped;
        }
      }
      parts = encodeLabels(input, this.limits, this.name, this.policy.keep);
    }
    if (parts === undefined) {
      warnLimited(`attrs:${this.name}`, `${this.name}: attributes must be a plain object; measurement dropped`);
      return this.dropped;
    }
    const key = JSON.stringify(parts);
    let h = this.byKey.get(key);
    if (h === undefined) {
      h = this.acquire(parts, key);
      if (h === undefined) return this.dropped;
      if (acquireOut[4] === 1) return this.overflowHandle(h);
      if (acquireOut[3] === 1) {
        // This thread's first use of the label set: nothing cached (releaseAfterWrite).
        releaseAfterWrite(h.recordId);
        return h;
      }
      // Its second use: cached by key; the third enters the trie (cacheInTrie below).
      this.byKey.set(key, h);
    } else if (cacheInTrie) {
      this.cacheInTrie(snap!, h);
    }
    return h;
  }

  /**
   * Caches `h` in the trie under this key order of its label set. A label set written in
   * many key orders would add a path per order (and its nodes) without bound: after
   * MAX_ORDER_PATHS orders it gets one path in canonical key order instead, which
   * lookup() walks after a miss. Label sets written in a few orders (one per call site)
   * keep a path per order, so their hits never sort.
   */
  private cacheInTrie(snap: Record<string, unknown>, h: H): void {
    const trie = this.trie;
    if (this.pathsGeneration !== trie.generation) {
      this.paths.clear();
      this.pathsGeneration = trie.generation;
    }
    const n = this.paths.get(h) ?? 0;
    if (n < MAX_ORDER_PATHS) {
      if (trie.set(snap, this, h) && trie.generation === this.pathsGeneration) this.paths.set(h, n + 1);
    } else if (n === MAX_ORDER_PATHS) {
      if (trie.setSorted(snap, this, h) && trie.generation === this.pathsGeneration) {
        this.paths.set(h, n + 1);
        this.sortedGeneration = trie.generation;
      }
    }
  }

  /**
   * True if other label sets may write the series of `h`: it is the overflow series, or a
   * view's attribute filter or processors map several label sets to one.
   */
  sharesSeries(h: H): boolean {
    return h === this.overflow || this.policy.keep !== undefined || this.policy.process !== undefined;
  }

  /** Keeps one reference for the overflow series; extra ones go back at once. */
  private overflowHandle(h: H): H {
    warnLimited(
      `overflow:${this.name}`,
      `${this.name}: cardinality limit ${this.policy.cardinalityLimit} reached; new label sets are recorded as otel.metric.overflow=true`,
    );
    if (this.overflow === undefined) {
      this.overflow = h;
      return h;
    }
    this.releaseRecord(h.recordId);
    return this.overflow;
  }

  /**
   * Drops the cached handles of records that were not updated in the last collection,
   * giving back their references so the record map can reclaim them. The shared trie
   * is cleared before returning whenever a handle was dropped (it is only an index; live
   * label sets of every store re-enter it from their byKey entries on use), so no evicted
   * handle stays reachable. Bound handles keep their own references and are untouched.
   * Stops at `deadline` (performance.now()) and resumes the same walk at the next call
   * (evictionPending until it is done): a large cache is not walked in one turn.
   */
  evict(stale: ReadonlySet<number>, deadline = Infinity): number {
    // The references to give back, in one native call at the end (one per handle held
    // the map's lock 20,000 times in a drain after a 10%-written delta export).
    const released: number[] = [];
    let it = this.evicting;
    if (it === undefined) {
      it = this.evicting = this.byKey.entries();
      this.evictLeft = this.byKey.size;
      if (this.empty !== undefined && stale.has(this.empty.recordId)) this.empty = undefined; // released below
      if (this.overflow !== undefined && stale.has(this.overflow.recordId)) {
        this.overflow.off = OFF_DROPPED;
        released.push(this.overflow.recordId);
        this.overflow = undefined;
      }
    }
    let k = 0;
    for (;;) {
      if ((++k & 255) === 0 && performance.now() > deadline) break;
      // Entries added during the walk come after those it started with: not walked (a
      // label set written again between slices is not idle, and the walk ends).
      const r = this.evictLeft-- > 0 ? it.next() : undefined;
      if (r === undefined || r.done === true) {
        this.evicting = undefined;
        break;
      }
      const h = r.value[1];
      if (!stale.has(h.recordId)) continue;
      this.byKey.delete(r.value[0]);
      if (this.empty === h) this.empty = undefined;
      h.off = OFF_DROPPED; // unreachable now (the trie is cleared below); never writes again
      released.push(h.recordId);
    }
    if (released.length > 0) {
      this.trie.clear();
      this.paths.clear();
      this.releaseRecords(released);
    }
    return released.length;
  }

  /** An evict() walk stopped at its deadline and not finished. */
  get evictionPending(): boolean {
    return this.evicting !== undefined;
  }

  /**
   * Removes the series of `attrs` (see Counter.remove): this thread's cached handle of it
   * goes (its reference is given back), the trie is cleared (only an index), and the
   * native record is unlinked so the next write creates a new series. Never throws.
   */
  remove(attrs: Attributes | undefined): void {
    if (this.dead || this.disabled) return;
    let parts: string[] | undefined;
    try {
      const snap = attrs === undefined ? {} : typeof attrs === 'object' && attrs !== null ? snapshot(attrs) : undefined;
      parts = snap === undefined ? undefined : encodeLabels(this.processed(snap as Attributes), this.limits, this.name, this.policy.keep);
    } catch {
      parts = undefined;
    }
    if (parts === undefined) {
      warnLimited(`remove:${this.name}`, `${this.name}: remove() needs a plain attributes object; nothing removed`);
      return;
    }
    const key = JSON.stringify(parts);
    const h = this.byKey.get(key);
    if (h !== undefined) {
      this.byKey.delete(key);
      if (this.empty === h) this.empty = undefined;
      h.off = OFF_DROPPED; // unreachable now; never writes again
      this.releaseRecord(h.recordId);
    }
    this.trie.clear();
    flushPendingRelease();
    let id: number;
    try {
      id = native().removeSeries(this.instrumentId, parts);
    } catch (e) {
      warnLimited(`remove:${this.name}`, `${this.name}: remove() rejected the attributes (${(e as Error).message}); nothing removed`);
      return;
    }
    if (id !== 0) this.forgetRemoved(id);
  }

  /** Removes every series of the instrument (see Counter.clear). Never throws. */
  clear(): void {
    if (this.dead || this.disabled) return;
    for (const h of this.byKey.values()) {
      h.off = OFF_DROPPED;
      this.releaseRecord(h.recordId);
    }
    this.byKey.clear();
    this.empty = undefined;
    this.trie.clear();
    flushPendingRelease();
    let ids: Float64Array;
    try {
      ids = native().clearSeries(this.instrumentId);
    } catch {
      return; // the environment is shutting down
    }
    for (let i = 0; i < ids.length; i++) this.forgetRemoved(ids[i]);
  }

  /** A record of this store was removed: its attributes go, and the overflow handle if it was that. */
  private forgetRemoved(id: number): void {
    this.attributesOf.delete(id);
    if (this.overflow !== undefined && this.overflow.recordId === id) {
      this.overflow.off = OFF_DROPPED;
      this.releaseRecord(id);
      this.overflow = undefined;
    }
  }

  /** @param key JSON.stringify(parts), when the caller has it */
  private acquire(parts: string[], key: string | undefined): H | undefined {
    if (stalePending()) drainStale();
    let ok: boolean;
    const release = pendingRelease;
    pendingRelease = 0;
    try {
      ok = native().acquire(this.instrumentId, parts, acquireOut, this.policy.cardinalityLimit, release);
    } catch (e) {
      // Arguments are checked before the release is applied: give it back separately.
      if (release !== 0) {
        pendingRelease = release;
        flushPendingRelease();
      }
      warnLimited(`native:${this.name}`, `${this.name}: label set rejected (${(e as Error).message}); measurement dropped`);
      return undefined;
    }
    if (!ok) {
      // The native side had no room (a processShared segment at capacity) or no such
      // instrument any more.
      warnLimited(`acquire:${this.name}`, `${this.name}: no record could be made (shared segment full?); measurement dropped`);
      return undefined;
    }
    if (acquireOut[5] === 1) markStalePending();
    const recordId = acquireOut[0];
    // Attributes are decoded when a collection first needs them (MeterProvider.checkpoint):
    // a Prometheus scrape never does, so a label set costs no attribute object here; a
    // provider whose collections do keeps the parts (no copy) to decode them from. The
    // overflow series' are known.
    if (acquireOut[4] === 1) {
      if (!this.attributesOf.has(recordId)) this.attributesOf.set(recordId, OVERFLOW_ATTRIBUTES);
    } else this.attributesOf.setEncoded(recordId, parts, key);
    return this.makeHandle(slabView(acquireOut[1]), acquireOut[2], recordId);
  }

  private makeHandle(f64: Float64Array, off: number, recordId: number): H {
    // A disabled instrument still hands out the class its instrument calls into.
    const agg = this.aggregation === AggregationKind.DROP ? defaultAggregation(this.descriptor.kind) : this.aggregation;
    switch (agg) {
      case AggregationKind.HISTOGRAM:
        return new BoundHistogram(this, f64, off, recordId, this.bounds) as unknown as H;
      case AggregationKind.MIN_MAX_SUM_COUNT:
        return new BoundMinMaxSumCount(this, f64, off, recordId) as unknown as H;
      case AggregationKind.LAST_VALUE:
      case AggregationKind.PRECOMPUTED_SUM:
        return new BoundGauge(this, f64, off, recordId) as unknown as H;
      case AggregationKind.SKETCH:
        return new BoundSketch(this, f64, off, recordId, this.params) as unknown as H;
      case AggregationKind.EXPONENTIAL_HISTOGRAM:
        return new BoundExponentialHistogram(this, f64, off, recordId, this.params) as unknown as H;
      case AggregationKind.EXACT:
        return new BoundExact(this, f64, off, recordId) as unknown as H;
      default:
        return (this.descriptor.kind === InstrumentKind.COUNTER
          ? new BoundCounter(this, f64, off, recordId)
          : new BoundUpDownCounter(this, f64, off, recordId)) as unknown as H;
    }
  }
}

