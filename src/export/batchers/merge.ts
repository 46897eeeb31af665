// Merge (the seed Aggregator's third operation) over exported aggregations, and the
// delta between two cumulative checkpoints of one series.
//
// Merge is associative and commutative (exactly so for integer-valued sums; floating
// point addition of arbitrary values is so only up to rounding):
//   sum             sums add; monotonic if both are
//   lastValue       the later one in record order wins (see Ordered)
//   minMaxSumCount  counts and sums add, min of mins, max of maxes
//   histogram       buckets, counts and sums add, min of mins, max of maxes
// A min/max that is not known (`hasMinMax: false`, from a delta, see deltaOf) is
// absorbing: merging with it gives an unknown min/max.
import type {
  Aggregation,
  HistogramAggregation,
  LastValueAggregation,
  MinMaxSumCountAggregation,
  SumAggregation,
} from '../checkpoint-set';

/**
 * Marks whether `min` and `max` of a histogram or minMaxSumCount are meaningful. Absent
 * or `true`: they are exact (+Infinity / -Infinity when `count` is 0). `false`: they
 * could not be derived (a delta point, see {@link deltaOf}); `min` is then +Infinity and
 * `max` -Infinity, and exporters should omit them (OTLP: leave min/max unset).
 */
export interface MinMaxFlag {
  readonly hasMinMax?: boolean;
}

/** A histogram aggregation as batchers emit it: possibly with unknown min/max. */
export type BatchedHistogramAggregation = HistogramAggregation & MinMaxFlag;
/** A minMaxSumCount aggregation as batchers emit it: possibly with unknown min/max. */
export type BatchedMinMaxSumCountAggregation = MinMaxSumCountAggregation & MinMaxFlag;

/** Whether `a`'s min and max are meaningful (always true for sums and last values). */
export function hasMinMax(a: Aggregation): boolean {
  return (a as MinMaxFlag).hasMinMax !== false;
}

/**
 * An aggregation with its position in record order. Last values merge by position (the
 * later record wins), which is what makes their merge commutative: the position travels
 * with the value. Merged results carry the larger position.
 */
export interface Ordered {
  readonly aggregation: Aggregation;
  readonly order: number;
}

function sameBoundaries(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function minMaxOf(a: Aggregation & { min: number; max: number }, b: Aggregation & { min: number; max: number }): { min: number; max: number; known: boolean } {
  if (!hasMinMax(a) || !hasMinMax(b)) return { min: Infinity, max: -Infinity, known: false };
  return { min: Math.min(a.min, b.min), max: Math.max(a.max, b.max), known: true };
}

/** Whether two aggregations can be merged (same kind; histograms: same boundaries). */
export function mergeable(a: Aggregation, b: Aggregation): boolean {
  if (a.kind !== b.kind) return false;
  return a.kind !== 'histogram' || sameBoundaries(a.boundaries, (b as HistogramAggregation).boundaries);
}

/**
 * Merges two ordered aggregations of the same kind (and boundaries). Associative and
 * commutative. Throws a TypeError when they cannot be merged. Never mutates its inputs.
 */
export function mergeOrdered(a: Ordered, b: Ordered): Ordered {
  const x = a.aggregation;
  const y = b.aggregation;
  if (!mergeable(x, y)) throw new TypeError(`hotmeter: cannot merge ${x.kind} with ${y.kind} (or different boundaries)`);
  const order = Math.max(a.order, b.order);
  switch (x.kind) {
    case 'sum': {
      const s = y as SumAggregation;
      return { aggregation: { kind: 'sum', sum: x.sum + s.sum, monotonic: x.monotonic && s.monotonic }, order };
    }
    case 'lastValue': {
      const l = y as LastValueAggregation;
      // Later position wins; equal positions (not produced by batchers) pick the larger
      // value so that the choice stays commutative.
      const pick = a.order !== b.order ? (a.order > b.order ? x : l) : x.value >= l.value ? x : l;
      return { aggregation: pick, order };
    }
    case 'minMaxSumCount': {
      const m = y as BatchedMinMaxSumCountAggregation;
      const mm = minMaxOf(x, m);
      const out: BatchedMinMaxSumCountAggregation = { kind: 'minMaxSumCount', count: x.count + m.count, sum: x.sum + m.sum, min: mm.min, max: mm.max };
      return { aggregation: mm.known ? out : { ...out, hasMinMax: false }, order };
    }
    case 'histogram': {
      const h = y as BatchedHistogramAggregation;
      const mm = minMaxOf(x, h);
      const bucketCounts = new Array<number>(x.bucketCounts.length);
      for (let i = 0; i < bucketCounts.length; i++) bucketCounts[i] = x.bucketCounts[i] + h.bucketCounts[i];
      const out: BatchedHistogramAggregation = {
        kind: 'histogram',
        count: x.count + h.count,
        sum: x.sum + h.sum,
        min: mm.min,
        max: mm.max,
        boundaries: x.boundaries,
        bucketCounts,
      };
      return { aggregation: mm.known ? out : { ...out, hasMinMax: false }, order };
    }
    default:
      throw new TypeError(`hotmeter: cannot merge aggregations of kind ${String((x as { kind: unknown }).kind)}`);
  }
}

/** The aggregation kinds batchers understand; records of other kinds pass through untouched. */
export const BATCHABLE_KINDS: ReadonlySet<string> = new Set(['sum', 'lastValue', 'minMaxSumCount', 'histogram']);

/**
 * Merges `b` into `a` where `b` is the later one in record order (a last value takes
 * `b`'s). Associative; commutative for every kind but lastValue (use
 * {@link mergeOrdered} to carry positions).
 */
export function mergeAggregations(a: Aggregation, b: Aggregation): Aggregation {
  return mergeOrdered({ aggregation: a, order: 0 }, { aggregation: b, order: 1 }).aggregation;
}

/** An aggregation like `a` with nothing recorded (a last value is returned as is). */
export function emptyLike(a: Aggregation): Aggregation {
  switch (a.kind) {
    case 'sum':
      return { kind: 'sum', sum: 0, monotonic: a.monotonic };
    case 'lastValue':
      return a;
    case 'minMaxSumCount':
      return { kind: 'minMaxSumCount', count: 0, sum: 0, min: Infinity, max: -Infinity };
    case 'histogram':
      return {
        kind: 'histogram', count: 0, sum: 0, min: Infinity, max: -Infinity,
        boundaries: a.boundaries, bucketCounts: new Array<number>(a.bucketCounts.length).fill(0),
      };
    default:
      return a;
  }
}

/**
 * Whether `cur` cannot be a later state of the same cumulative series as `prev`: a
 * different kind or boundaries, a monotonic sum that went down, or a histogram or
 * minMaxSumCount whose count (or any bucket) went down. Such a series was reset (its
 * record reclaimed and recreated, or an observed total restarted).
 */
export function isReset(prev: Aggregation, cur: Aggregation): boolean {
  if (!mergeable(prev, cur)) return true;
  switch (cur.kind) {
    case 'sum':
      return cur.monotonic && cur.sum < (prev as SumAggregation).sum;
    case 'lastValue':
      return false;
    case 'minMaxSumCount':
      return cur.count < (prev as MinMaxSumCountAggregation).count;
    case 'histogram': {
      const p = prev as HistogramAggregation;
      if (cur.count < p.count) return true;
      for (let i = 0; i < cur.bucketCounts.length; i++) if (cur.bucketCounts[i] < p.bucketCounts[i]) return true;
      return false;
    }
    default:
      return true;
  }
}

/**
 * The delta between two cumulative checkpoints of one series (`prev` earlier, not a
 * reset: see {@link isReset}). Sums, counts, buckets subtract; a last value is `cur`.
 *
 * Min and max cannot in general be derived from two cumulative checkpoints. They are
 * exact when the interval recorded nothing (+Infinity / -Infinity), or when the
 * cumulative min went down and the cumulative max went up in this interval (then the
 * extremes were recorded in it). Otherwise the delta has `hasMinMax: false`, min
 * +Infinity and max -Infinity.
 */
export function deltaOf(prev: Aggregation, cur: Aggregation): Aggregation {
  switch (cur.kind) {
    case 'sum':
      return { kind: 'sum', sum: cur.sum - (prev as SumAggregation).sum, monotonic: cur.monotonic };
    case 'lastValue':
      return cur;
    case 'minMaxSumCount': {
      const p = prev as MinMaxSumCountAggregation;
      const count = cur.count - p.count;
      const sum = cur.sum - p.sum;
      if (count === 0) return { kind: 'minMaxSumCount', count, sum, min: Infinity, max: -Infinity };
      if (cur.min < p.min && cur.max > p.max) return { kind: 'minMaxSumCount', count, sum, min: cur.min, max: cur.max };
      const out: BatchedMinMaxSumCountAggregation = { kind: 'minMaxSumCount', count, sum, min: Infinity, max: -Infinity, hasMinMax: false };
      return out;
    }
    case 'histogram': {
      const p = prev as HistogramAggregation;
      const bucketCounts = new Array<number>(cur.bucketCounts.length);
      for (let i = 0; i < bucketCounts.length; i++) bucketCounts[i] = cur.bucketCounts[i] - p.bucketCounts[i];
      const count = cur.count - p.count;
      const sum = cur.sum - p.sum;
      const base = { kind: 'histogram' as const, count, sum, boundaries: cur.boundaries, bucketCounts };
      if (count === 0) return { ...base, min: Infinity, max: -Infinity };
      if (cur.min < p.min && cur.max > p.max) return { ...base, min: cur.min, max: cur.max };
      const out: BatchedHistogramAggregation = { ...base, min: Infinity, max: -Infinity, hasMinMax: false };
      return out;
    }
    default:
      return cur;
  }
}

/** Whether a delta records anything (a non-zero sum or count). Last values: never. */
export function isNonZeroDelta(d: Aggregation): boolean {
  switch (d.kind) {
    case 'sum':
      return d.sum !== 0;
    case 'lastValue':
      return false;
    case 'minMaxSumCount':
    case 'histogram':
      return d.count !== 0;
    default:
      return true;
  }
}

/** `a` with min/max lowered/raised to include `min`/`max` (exact: clears `hasMinMax: false`). */
export function withMinMax<A extends MinMaxSumCountAggregation | HistogramAggregation>(a: A, min: number, max: number): A {
  const out = { ...a, min, max } as A & MinMaxFlag;
  if ((out as { hasMinMax?: boolean }).hasMinMax !== undefined) delete (out as { hasMinMax?: boolean }).hasMinMax;
  return out;
}
