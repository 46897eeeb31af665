// Bound handles of the distribution aggregators: the quantile sketch, the base-2
// exponential histogram, and Exact. Same contract as src/api/handles.ts: values are
// validated like BoundHistogram's (finite, non-negative), bad ones dropped with a
// diagnostic; the sketch and exponential histogram update their cell with plain
// typed-array writes (a rare slow path moves or downscales the window in place) and
// never allocate. Exact is the explicitly expensive aggregator: it keeps every value in
// a growable JS buffer (amortised doubling) until a collection takes them.
import { AggregatorParams, DEFAULT_EXPONENTIAL_MAX_SIZE, DEFAULT_SKETCH_MAX_SIZE } from '../sdk/aggregation';
import { warnLimited } from '../sdk/diag';
import { expInsertSlow, mapToIndex } from '../sdk/exponential-histogram';
import { offerExemplar, offeringMethod } from '../sdk/exemplars';
import { sketchInsertSlow, sketchMapping } from '../sdk/sketch';
import { addToSummary, BoundHandle, HandleOwner, HISTOGRAM_REJECT_RULE as REJECT_RULE } from './handles';

/**
 * A histogram aggregated by a DDSketch quantile sketch. Cell: [count, sum, min, max,
 * zeroCount, base, bin0..bin(M-1)]; bin i counts key base + i, key(v) =
 * ceil(log_gamma(v)). Values below ~2.2e-308 (zero included) go to zeroCount.
 */
export class BoundSketch extends BoundHandle {
  /** @internal */ readonly m: number;
  /** @internal */ readonly invLnGamma: number;
  /** @internal */ readonly minIndexable: number;

  /** @internal */
  constructor(owner: HandleOwner, f64: Float64Array, off: number, recordId: number, params: AggregatorParams) {
    super(owner, f64, off, recordId);
    const mapping = sketchMapping(params.relativeAccuracy);
    this.m = params.maxSize || DEFAULT_SKETCH_MAX_SIZE;
    this.invLnGamma = mapping.invLnGamma;
    this.minIndexable = mapping.minIndexable;
  }

  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.owner.int && value % 1 !== 0) value = this.truncate(value);
      const f = this.f64;
      addToSummary(f, off, value);
      // Offsets as literals (SK_* in src/sdk/sketch.ts): zeroCount 4, base 5, bins 6.
      if (value < this.minIndexable) {
        f[off + 4] += 1;
        return;
      }
      const k = Math.ceil(Math.log(value) * this.invLnGamma);
      const p = k - f[off + 5];
      if (p >= 0 && p < this.m) f[off + 6 + p] += 1;
      else sketchInsertSlow(f, off, this.m, k);
    } else {
      this.reject(value, REJECT_RULE);
    }
  }
}

/**
 * A histogram aggregated as an OpenTelemetry base-2 exponential histogram. Cell:
 * [count, sum, min, max, zeroCount, scale, posBase, negBase, pos0..pos(M-1),
 * neg0..neg(M-1)]. Histogram values are non-negative, so only the positive range and
 * the zero count are written here.
 */
export class BoundExponentialHistogram extends BoundHandle {
  /** @internal */ readonly m: number;
  /** @internal */ readonly maxScale: number;

  /** @internal */
  constructor(owner: HandleOwner, f64: Float64Array, off: number, recordId: number, params: AggregatorParams) {
    super(owner, f64, off, recordId);
    this.m = params.maxSize || DEFAULT_EXPONENTIAL_MAX_SIZE;
    this.maxScale = params.maxScale;
  }

  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.owner.int && value % 1 !== 0) value = this.truncate(value);
      const f = this.f64;
      addToSummary(f, off, value);
      // Offsets as literals (EH_* in src/sdk/exponential-histogram.ts): zeroCount 4,
      // scale 5, posBase 6, positive buckets 8.
      if (value === 0) {
        f[off + 4] += 1;
        return;
      }
      const p = mapToIndex(value, f[off + 5]) - f[off + 6];
      if (p >= 0 && p < this.m) f[off + 8 + p] += 1;
      else expInsertSlow(f, off, this.m, this.maxScale, value, true);
    } else {
      this.reject(value, REJECT_RULE);
    }
  }
}
// While exemplars are live (src/api/handles.ts): the same writes, then the offer to the
// record's one exemplar slot (native/core/exemplar.h; the writers put it on the bucket
// that holds its value).
offeringMethod(BoundExponentialHistogram.prototype, 'record', function record(this: BoundExponentialHistogram, value: number): void {
  const off = this.off;
  if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
    if (this.owner.int && value % 1 !== 0) value = this.truncate(value);
    const f = this.f64;
    addToSummary(f, off, value);
    if (value === 0) {
      f[off + 4] += 1;
    } else {
      const p = mapToIndex(value, f[off + 5]) - f[off + 6];
      if (p >= 0 && p < this.m) f[off + 8 + p] += 1;
      else expInsertSlow(f, off, this.m, this.maxScale, value, true);
    }
    offerExemplar(this, value, 0);
  } else {
    this.reject(value, REJECT_RULE);
  }
});

// ---------------------------------------------------------------------------------------
// Exact.

/** Values a buffer keeps between two collections; later ones are counted but not kept. */
export const EXACT_MAX_VALUES = 1 << 22;

const NO_VALUES = new Float64Array(0);

/** The values one Exact handle recorded since the last collection. */
class ExactBuffer {
  values: Float64Array = NO_VALUES;
  n = 0;
  /** Capacity of the next allocation: about what the last collection needed. */
  hint = 16;

  constructor(
    readonly recordId: number,
    readonly pending: Map<number, ExactBuffer[]>,
  ) {}
}

/** Per owner (a RecordStore): recordId -> the buffers holding values not yet collected. */
const pendingOf = new WeakMap<HandleOwner, Map<number, ExactBuffer[]>>();

function pendingFor(owner: HandleOwner): Map<number, ExactBuffer[]> {
  let p = pendingOf.get(owner);
  if (p === undefined) {
    p = new Map();
    pendingOf.set(owner, p);
  }
  return p;
}

/** Appends to a full (or released) buffer: allocates, doubling the capacity. */
function appendSlow(b: ExactBuffer, v: number, name: string): void {
  const cap = b.values.length;
  if (cap === 0) {
    b.values = new Float64Array(b.hint);
    let list = b.pending.get(b.recordId);
    if (list === undefined) b.pending.set(b.recordId, (list = []));
    list.push(b);
  } else if (cap >= EXACT_MAX_VALUES) {
    warnLimited(`exact-full:${name}`, `${name}: more than ${EXACT_MAX_VALUES} values since the last collection; further values are counted but not kept (collect more often)`);
    return;
  } else {
    const grown = new Float64Array(Math.min(cap * 2, EXACT_MAX_VALUES));
    grown.set(b.values);
    b.values = grown;
  }
  b.values[b.n++] = v;
}

/**
 * A histogram aggregated exactly: every value is kept until the next collection takes
 * it. The cell holds [count, sum, min, max] (cumulative, every thread); the values live
 * in this handle's JS buffer, which grows by doubling: Exact allocates, unlike every
 * other aggregator.
 */
export class BoundExact extends BoundHandle {
  /** @internal */ readonly buf: ExactBuffer;

  /** @internal */
  constructor(owner: HandleOwner, f64: Float64Array, off: number, recordId: number) {
    super(owner, f64, off, recordId);
    this.buf = new ExactBuffer(recordId, pendingFor(owner));
  }

  record(value: number): void {
    const off = this.off;
    if (typeof value === 'number' && value >= 0 && value < Infinity && off >= 0) {
      if (this.owner.int && value % 1 !== 0) value = this.truncate(value);
      addToSummary(this.f64, off, value);
      const b = this.buf;
      if (b.n < b.values.length) b.values[b.n++] = value;
      else appendSlow(b, value, this.owner.name);
    } else {
      this.reject(value, REJECT_RULE);
    }
  }
}

/** The records of `owner` whose Exact handles hold values for the next collection. */
export function pendingExactRecords(owner: HandleOwner): number[] {
  const pending = pendingOf.get(owner);
  return pending === undefined ? [] : [...pending.keys()];
}

/**
 * Takes (and clears) the values this thread's Exact handles of `owner` recorded for a
 * record since the previous call, sorted ascending. Called by collection.
 */
export function takeExactValues(owner: HandleOwner, recordId: number): number[] {
  const pending = pendingOf.get(owner);
  const list = pending?.get(recordId);
  if (pending === undefined || list === undefined) return [];
  pending.delete(recordId);
  let n = 0;
  for (const b of list) n += b.n;
  const all = new Float64Array(n);
  let at = 0;
  for (const b of list) {
    all.set(b.values.subarray(0, b.n), at);
    at += b.n;
    b.hint = Math.min(Math.max(16, b.n), 1 << 16);
    b.values = NO_VALUES; // the next value re-registers the buffer
    b.n = 0;
  }
  all.sort();
  return Array.from(all);
}
