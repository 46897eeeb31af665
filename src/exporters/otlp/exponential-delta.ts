// Delta temporality for base-2 exponential histograms. The batchers in src/export/batchers
// pass exponential histograms through untouched (cumulative); a delta-preferring
// OpenTelemetry reader needs the interval's points, so the OTLP adapter differences them
// here, per series.
//
// A cumulative exponential histogram only ever lowers its scale (a value outside the
// current range halves the resolution), so the previous checkpoint of a series, lowered
// to the current scale, lies bucket by bucket under the current one: their difference
// is exact, whatever rescaling happened in between. Anything else (a count or a bucket
// that went down, a scale that went up) is a reset, and the current point is reported
// whole, starting at the series' start time.
import type { ExponentialBuckets, ExponentialHistogramAggregation } from '../../export/checkpoint-set';

/** An interval of an exponential histogram; `min`/`max` are undefined when the interval's are unknown. */
export interface ExponentialDelta {
  readonly count: number;
  readonly sum: number;
  readonly scale: number;
  readonly zeroCount: number;
  readonly positive: ExponentialBuckets;
  readonly negative: ExponentialBuckets;
  readonly min: number | undefined;
  readonly max: number | undefined;
}

/** `b`'s counts at a scale lower by `by` (bucket i goes to floor(i / 2^by)). */
export function downscaleBuckets(b: ExponentialBuckets, by: number): ExponentialBuckets {
  if (by === 0 || b.bucketCounts.length === 0) return b;
  const f = 2 ** by;
  const first = Math.floor(b.offset / f);
  const last = Math.floor((b.offset + b.bucketCounts.length - 1) / f);
  const counts = new Array<number>(last - first + 1).fill(0);
  for (let k = 0; k < b.bucketCounts.length; k++) counts[Math.floor((b.offset + k) / f) - first] += b.bucketCounts[k];
  return { offset: first, bucketCounts: counts };
}

/** `cur - prev` bucket by bucket (same scale), trimmed of zero buckets at both ends; undefined if any goes negative. */
function subtractBuckets(cur: ExponentialBuckets, prev: ExponentialBuckets): ExponentialBuckets | undefined {
  const counts = cur.bucketCounts.slice();
  for (let k = 0; k < prev.bucketCounts.length; k++) {
    const c = prev.bucketCounts[k];
    if (c === 0) continue;
    const j = prev.offset + k - cur.offset;
    if (j < 0 || j >= counts.length || counts[j] < c) return undefined;
    counts[j] -= c;
  }
  let lo = 0;
  let hi = counts.length;
  while (lo < hi && counts[lo] === 0) lo++;
  while (hi > lo && counts[hi - 1] === 0) hi--;
  return lo === hi ? { offset: 0, bucketCounts: [] } : { offset: cur.offset + lo, bucketCounts: counts.slice(lo, hi) };
}

/** A whole cumulative point as an interval (min/max undefined when empty). */
export function wholeInterval(cur: ExponentialHistogramAggregation): ExponentialDelta {
  const known = cur.count > 0;
  return {
    count: cur.count,
    sum: cur.sum,
    scale: cur.scale,
    zeroCount: cur.zeroCount,
    positive: cur.positive,
    negative: cur.negative,
    min: known ? cur.min : undefined,
    max: known ? cur.max : undefined,
  };
}

/**
 * The interval between two cumulative checkpoints of one series (`prev` earlier), or
 * undefined when `cur` cannot follow `prev` (a reset). Min is known when the cumulative
 * min went down in the interval (it was recorded then), max when the cumulative max
 * went up; otherwise they are undefined (OTLP: unset).
 */
export function exponentialDelta(prev: ExponentialHistogramAggregation, cur: ExponentialHistogramAggregation): ExponentialDelta | undefined {
  if (prev.count === 0) return wholeInterval(cur);
  if (cur.scale > prev.scale || cur.count < prev.count || cur.zeroCount < prev.zeroCount) return undefined;
  const by = prev.scale - cur.scale;
  const positive = subtractBuckets(cur.positive, downscaleBuckets(prev.positive, by));
  const negative = subtractBuckets(cur.negative, downscaleBuckets(prev.negative, by));
  if (positive === undefined || negative === undefined) return undefined;
  const count = cur.count - prev.count;
  return {
    count,
    sum: count === 0 ? 0 : cur.sum - prev.sum,
    scale: cur.scale,
    zeroCount: cur.zeroCount - prev.zeroCount,
    positive,
    negative,
    min: count > 0 && cur.min < prev.min ? cur.min : undefined,
    max: count > 0 && cur.max > prev.max ? cur.max : undefined,
  };
}

interface SeriesState {
  prev: ExponentialHistogramAggregation;
  prevStart: number;
  prevEnd: number;
  stamp: number;
}

/** One delta point: the interval and its start time. */
export interface ExponentialDeltaPoint {
  readonly value: ExponentialDelta;
  readonly startTime: number;
  /** Whether the interval recorded anything. */
  readonly changed: boolean;
}

/**
 * Per-series state for delta exponential histograms, keyed by the record's seriesId
 * (which changes when a reclaimed series comes back, so a comeback starts afresh).
 * Series absent from a collection are forgotten: a synchronous instrument reports every
 * live series in every collection, so an absent one was reclaimed.
 */
export class ExponentialDeltaState {
  private readonly series = new Map<number, SeriesState>();
  private stamp = 0;

  /** Starts a collection: call {@link ExponentialDeltaState.next} per series, then {@link ExponentialDeltaState.end}. */
  begin(): void {
    this.stamp++;
  }

  /** The delta of one series' cumulative point `cur` (start `start`, collected at `end`). */
  next(seriesId: number, cur: ExponentialHistogramAggregation, start: number, end: number): ExponentialDeltaPoint {
    const s = this.series.get(seriesId);
    let point: ExponentialDeltaPoint;
    if (s === undefined || s.prevStart !== start) {
      point = { value: wholeInterval(cur), startTime: start, changed: cur.count > 0 };
    } else {
      const d = exponentialDelta(s.prev, cur);
      point = d === undefined
        ? { value: wholeInterval(cur), startTime: start, changed: cur.count > 0 }
        : { value: d, startTime: s.prevEnd, changed: d.count > 0 };
    }
    if (s === undefined) this.series.set(seriesId, { prev: cur, prevStart: start, prevEnd: end, stamp: this.stamp });
    else {
      s.prev = cur;
      s.prevStart = start;
      s.prevEnd = end;
      s.stamp = this.stamp;
    }
    return point;
  }

  /** Ends a collection: forgets the series it did not see. */
  end(): void {
    for (const [id, s] of this.series) if (s.stamp !== this.stamp) this.series.delete(id);
  }

  /** Series held (for tests). */
  get size(): number {
    return this.series.size;
  }
}
