// Bound handles: the hot path. A handle is a typed-array view over native slab memory
// and an offset; an update is a few plain writes into this thread's own cell (the
// Aggregator's Update, done in JS). Nothing here allocates or calls into C++.
//
// `off` is the cell offset while the handle is live, or a negative state:
//   OFF_UNBOUND after unbind(), OFF_SHUTDOWN after the provider shut down,
//   OFF_DROPPED when the measurement is dropped by design (disabled instrument,
//   invalid attributes: the diagnostic was already given).
// Every check is folded into the one validation branch, so a live handle with a good
// value pays for no extra test.
import { performance } from 'node:perf_hooks';
import { warnLimited } from '../sdk/diag';
import type { ExemplarFilterCode } from '../sdk/exemplars';
import { EX_UNKNOWN, offerExemplar, offeringMethod } from '../sdk/exemplars';

// Exemplars (src/sdk/exemplars.ts): the handles that keep them have a second version of
// their recording method, which offers the measurement after the same writes; it replaces
// the plain one on the prototype only while exemplars are live (a provider keeps them and
// a context manager is registered, or a filter is always_on). The plain methods have no
// exemplar code. Keep each pair's writes the same.

export const OFF_UNBOUND = -1;
export const OFF_SHUTDOWN = -2;
export const OFF_DROPPED = -3;

/** Why a histogram-like handle drops a value. */
export const HISTOGRAM_REJECT_RULE = 'histogram values must be finite and non-negative';
/** Why a counter drops a value. */
export const COUNTER_REJECT_RULE = 'counter increments must be finite and non-negative';
/** Why an up-down counter, a gauge or an observation drops a value. */
export const FINITE_REJECT_RULE = 'values must be finite';

/** The diagnostic for a measurement value that breaks `rule` (dropped). Never throws. */
export function warnRejectedValue(name: string, value: unknown, rule: string): void {
  if (typeof value !== 'number') warnLimited(`type:${name}`, `${name}: measurement of type ${typeof value} dropped (a number is required)`);
  else warnLimited(`value:${name}`, `${name}: measurement ${value} dropped (${rule})`);
}

/**
 * Adds a valid value to the [count, sum, min, max] head every summary-like cell starts
 * with (MinMaxSumCount, sketch, exponential histogram, Exact). Small enough to inline.
 */
export function addToSummary(f: Float64Array, off: number, value: number): void {
  f[off] += 1;
  f[off + 1] += value;
  if (value < f[off + 2]) f[off + 2] = value;
  if (value > f[off + 3]) f[off + 3] = value;
}

/** What a handle needs to know about its instrument, for diagnostics and unbinding. */
export interface HandleOwner {
  readonly name: string;
  /** Truncate values (ValueType.INT). */
  readonly int: boolean;
  /** Which measurements are offered as exemplars (the provider's exemplarFilter). */
  readonly exemplarFilter: ExemplarFilterCode;
  release(handle: BoundHandle): void;
}

/** The common part of every bound handle. */
export abstract class BoundHandle {
  /** @internal */ f64: Float64Array;
  /** @internal */ off: number;
  /** @internal */ recordId: number;
  /** @internal */ readonly owner: HandleOwner;
  /** @internal Copied from the owner: one load less on the hot path. */ readonly int: boolean;
  /**
   * @internal This thread's exemplar cell of the record: its slab view and offset, once
   * the first exemplar is offered (exOff EX_UNKNOWN before, EX_NONE if the record keeps
   * none). Written and read only by offerExemplar.
   */ exF64: Float64Array | undefined = undefined;
  /** @internal */ exOff: number = EX_UNKNOWN;

  /** @internal */
  constructor(owner: HandleOwner, f64: Float64Array, off: number, recordId: number) {
    this.owner = owner;
    this.int = owner.int;
    this.f64 = f64;
    // An int32 field: offsets arrive as doubles (read from a Float64Array), and a double
    // field would cost a conversion on every cell index.
    this.off = off | 0;
    this.recordId = recordId;
  }

  /** Releases this handle's reference to its record. Later calls on it are dropped. */
  unbind(): void {
    if (this.off < 0) return;
    this.owner.release(this);
    this.off = OFF_UNBOUND;
  }

  /** @internal Diagnoses a rejected value. Never throws. */
  protected reject(value: unknown, rule: string): void {
    const off = this.off;
    const name = this.owner.name;
    if (off === OFF_DROPPED) return;
    if (off === OFF_UNBOUND) warnLimited(`unbound:${name}`, `${name}: measurement on an unbound handle dropped`);
    else if (off === OFF_SHUTDOWN) warnLimited(`shutdown:${name}`, `${name}: measurement after shutdown dropped`);
    else warnRejectedValue(name, value, rule);
  }

  /** @internal Truncation for ValueType.INT, with its diagnostic. */
  protected truncate(v: number): number {
    warnLimited(`int:${this.owner.name}`, `${this.owner.name}: INT value type cannot accept ${v}; fractional digits ignored`);
    return Math.trunc(v);
  }
}

/** A counter bound to one attribute set. Values must be finite and non-negative. */
export class BoundCounter extends BoundHandle {
  add(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.int && value % 1 !== 0) value = this.truncate(value);
      this.f64[off] += value;
    } else {
      this.reject(value, COUNTER_REJECT_RULE);
    }
  }
}
offeringMethod(BoundCounter.prototype, 'add', function add(this: BoundCounter, value: number): void {
  const off = this.off;
  if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
    if (this.int && value % 1 !== 0) value = this.truncate(value);
    this.f64[off] += value;
    offerExemplar(this, value, 0);
  } else {
    this.reject(value, COUNTER_REJECT_RULE);
  }
});

/** An up-down counter bound to one attribute set. Values must be finite. */
export class BoundUpDownCounter extends BoundHandle {
  add(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value - value === 0 && off >= 0) {
      if (this.int && value % 1 !== 0) value = this.truncate(value);
      this.f64[off] += value;
    } else {
      this.reject(value, FINITE_REJECT_RULE);
    }
  }
}

// The bucket search table for a bounds array: the bounds padded with +Infinity to a
// power-of-two length P >= bounds.length + 1, searched in log2(P) fixed steps whose
// selects V8 compiles without branches (unpredictable values mispredict a binary
// search's branches: ~24 ns against ~10 ns here for the 15 default bounds).
// The index found is the number of bounds below v: bucket i holds bounds[i-1] < v <= bounds[i].
const searchTables = new WeakMap<Float64Array, Float64Array>();
function searchTable(bounds: Float64Array): Float64Array {
  let t = searchTables.get(bounds);
  if (t === undefined) {
    let p = 1;
    while (p < bounds.length + 1) p <<= 1;
    t = new Float64Array(p).fill(Infinity);
    t.set(bounds);
    searchTables.set(bounds, t);
  }
  return t;
}

/**
 * A histogram bound to one attribute set (explicit buckets). Values must be finite and
 * non-negative. Cell: [sum, min, max, bucket0..bucketN]; bucket i holds
 * bounds[i-1] < v <= bounds[i].
 */
export class BoundHistogram extends BoundHandle {
  /** @internal Padded search table (see searchTable). */ table: Float64Array;
  /** @internal Half the table length: the first search step. */ half: number;

  /** @internal */
  constructor(owner: HandleOwner, f64: Float64Array, off: number, recordId: number, bounds: Float64Array) {
    super(owner, f64, off, recordId);
    this.table = searchTable(bounds);
    this.half = this.table.length >> 1;
  }

  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.int && value % 1 !== 0) value = this.truncate(value);
      const f = this.f64;
      const t = this.table;
      let i = 0;
      for (let step = this.half; step > 0; step >>= 1) i += value > t[i + step - 1] ? step : 0;
      f[off + 3 + i] += 1;
      f[off] += value;
      if (value < f[off + 1]) f[off + 1] = value;
      if (value > f[off + 2]) f[off + 2] = value;
    } else {
      this.reject(value, HISTOGRAM_REJECT_RULE);
    }
  }
}
offeringMethod(BoundHistogram.prototype, 'record', function record(this: BoundHistogram, value: number): void {
  const off = this.off;
  if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
    if (this.int && value % 1 !== 0) value = this.truncate(value);
    const f = this.f64;
    const t = this.table;
    let i = 0;
    for (let step = this.half; step > 0; step >>= 1) i += value > t[i + step - 1] ? step : 0;
    f[off + 3 + i] += 1;
    f[off] += value;
    if (value < f[off + 1]) f[off + 1] = value;
    if (value > f[off + 2]) f[off + 2] = value;
    offerExemplar(this, value, i);
  } else {
    this.reject(value, HISTOGRAM_REJECT_RULE);
  }
});

/** A histogram aggregated as min/max/sum/count. Cell: [count, sum, min, max]. */
export class BoundMinMaxSumCount extends BoundHandle {
  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.int && value % 1 !== 0) value = this.truncate(value);
      addToSummary(this.f64, off, value);
    } else {
      this.reject(value, HISTOGRAM_REJECT_RULE);
    }
  }
}

// The stamp of a last-value write: a clock that every thread of the process reads alike,
// so the collector's merge (native/core/aggregator.cc) keeps the write that is last in
// time, whichever thread made it. performance.now() reads the monotonic clock from the
// process's time origin (the same in every worker thread on Node 20; adding this thread's
// timeOrigin keeps stamps comparable where a thread's origin differs, as epoch ms).
// Resolution 2^-12 ms (~0.24 us) at today's epoch: only writes that nothing orders come
// closer than that (a message between threads takes microseconds). No allocation; it
// costs ~35 ns a write (a gauge.record went from ~2.5 to ~40 ns in a tight loop). The
// cheaper stamp, a process-wide counter bumped with Atomics.add (~11 ns more), needs
// memory that every thread shares, which nothing here has (each thread sees only its own
// slabs), and an int32 counter wraps after 2^32 writes. perf_hooks' object, not the
// global `performance` (an accessor, read on every call).
const STAMP_ORIGIN = performance.timeOrigin;

/**
 * A gauge bound to one attribute set, and the cell observable instruments write.
 * Cell: [value, stamp]; the stamp (> 0, see STAMP_ORIGIN) orders writes across threads,
 * and a new stamp shows the collector a repeated equal value as an update.
 */
export class BoundGauge extends BoundHandle {
  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value - value === 0 && off >= 0) {
      if (this.int && value % 1 !== 0) value = this.truncate(value);
      this.f64[off] = value;
      this.f64[off + 1] = STAMP_ORIGIN + performance.now();
    } else {
      this.reject(value, FINITE_REJECT_RULE);
    }
  }
}
