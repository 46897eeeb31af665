// The OpenTelemetry base-2 exponential histogram on the JS side: the index mapping (as
// @opentelemetry/sdk-metrics' LogarithmMapping / ExponentMapping), the rare slow path
// of an update (downscaling and moving a window in place), and the checkpoint view. The
// cell layout and Merge are described in native/core/exponential_histogram.h.
import type { ExponentialBuckets, ExponentialHistogramAggregation } from '../export/checkpoint-set';
import { AggregatorParams } from './aggregation';

/** Offsets in an exponential histogram cell. */
export const EH_COUNT = 0;
export const EH_SUM = 1;
export const EH_MIN = 2;
export const EH_MAX = 3;
export const EH_ZERO = 4;
export const EH_SCALE = 5;
export const EH_POS_BASE = 6;
export const EH_NEG_BASE = 7;
export const EH_HEADER = 8;

export const MIN_SCALE = -10;
export const MAX_SCALE = 20;

/** The smallest positive normal double, 2^-1022. */
const MIN_NORMAL = 2.2250738585072014e-308;

// A module-level scratch to read a double's bits without allocating.
const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;

/** log2(e) * 2^scale for scale in [-10, 20], at [scale + 10]. */
const SCALE_FACTOR = new Float64Array(MAX_SCALE - MIN_SCALE + 1);
for (let s = MIN_SCALE; s <= MAX_SCALE; s++) SCALE_FACTOR[s - MIN_SCALE] = Math.LOG2E * 2 ** s;

/**
 * The bucket index of v > 0 (finite) at `scale`: bucket i holds (base^i, base^(i+1)],
 * base = 2^(2^-scale). Exact powers of two are computed from the exponent so that the
 * rounding of the logarithm never moves them up a bucket.
 */
export function mapToIndex(v: number, scale: number): number {
  scratch[0] = v;
  const hi = words[HI];
  const exp = ((hi >>> 20) & 0x7ff) - 1023;
  const pow2 = (hi & 0xfffff) === 0 && words[LO] === 0;
  if (scale > 0) {
    if (v <= MIN_NORMAL) return (-1022 << scale) - 1;
    if (pow2) return (exp << scale) - 1;
    const i = Math.floor(Math.log(v) * SCALE_FACTOR[scale + 10]);
    const maxIndex = (1024 << scale) - 1;
    return i >= maxIndex ? maxIndex : i;
  }
  const shift = -scale;
  if (v < MIN_NORMAL) return (-1022 >> shift) - (shift < 2 ? 1 : 0);
  return (pow2 ? exp - 1 : exp) >> shift;
}

/** The lower (exclusive) boundary of bucket `index` at `scale`, for normal values. */
export function lowerBoundary(index: number, scale: number): number {
  if (scale > 0) return Math.exp(index * Math.LN2 * 2 ** -scale);
  return 2 ** (index * 2 ** -scale);
}

/** index -> index >> c in both ranges, in place (every bucket moves down or stays). */
function downscale(f: Float64Array, off: number, m: number, c: number): void {
  for (let r = 0; r < 2; r++) {
    const bs = off + (r === 0 ? EH_POS_BASE : EH_NEG_BASE);
    const b0 = off + EH_HEADER + r * m;
    const base = f[bs];
    if (base === Infinity) continue;
    let i = 0;
    while (i < m && f[b0 + i] === 0) i++;
    if (i === m) continue;
    let j = m - 1;
    while (f[b0 + j] === 0) j--;
    const nb = (base + i) >> c;
    for (let p = i; p <= j; p++) {
      const n = f[b0 + p];
      if (n === 0) continue;
      f[b0 + p] = 0;
      f[b0 + ((base + p) >> c) - nb] += n;
    }
    f[bs] = nb;
  }
  f[off + EH_SCALE] -= c;
}

/**
 * Slow path of an update of |value| = a > 0: its index is outside the window of its
 * range (or the range is empty). Sets the configured max scale on an empty histogram,
 * downscales both ranges by the smallest change that fits the range in m buckets (as
 * OpenTelemetry does), re-centers the window, then counts the value. Allocates nothing.
 */
export function expInsertSlow(f: Float64Array, off: number, m: number, maxScale: number, a: number, positive: boolean): void {
  if (f[off + EH_SCALE] > maxScale) downscale(f, off, m, f[off + EH_SCALE] - maxScale);
  const bs = off + (positive ? EH_POS_BASE : EH_NEG_BASE);
  const b0 = off + EH_HEADER + (positive ? 0 : m);
  for (;;) {
    const idx = mapToIndex(a, f[off + EH_SCALE]);
    const base = f[bs];
    let i = m;
    if (base !== Infinity) {
      i = 0;
      while (i < m && f[b0 + i] === 0) i++;
    }
    if (i === m) {
      const nb = idx - ((m - 1) >> 1);
      f[bs] = nb;
      f.fill(0, b0, b0 + m);
      f[b0 + idx - nb] += 1;
      return;
    }
    let j = m - 1;
    while (f[b0 + j] === 0) j--;
    const lo = Math.min(base + i, idx);
    const hi = Math.max(base + j, idx);
    let c = 0;
    while ((hi >> c) - (lo >> c) + 1 > m) c++;
    if (c === 0) {
      let nb = base;
      if (idx < base || idx >= base + m) {
        nb = lo - ((m - (hi - lo + 1)) >> 1);
        const d = nb - base;
        if (d > 0) {
          f.copyWithin(b0, b0 + d, b0 + m);
          f.fill(0, b0 + m - d, b0 + m);
        } else {
          f.copyWithin(b0 - d, b0, b0 + m + d);
          f.fill(0, b0, b0 - d);
        }
        f[bs] = nb;
      }
      f[b0 + idx - nb] += 1;
      return;
    }
    downscale(f, off, m, c);
  }
}

function buckets(st: Float64Array, base: number, b0: number, m: number): ExponentialBuckets {
  if (base === Infinity) return { offset: 0, bucketCounts: [] };
  let i = 0;
  while (i < m && st[b0 + i] === 0) i++;
  if (i === m) return { offset: 0, bucketCounts: [] };
  let j = m - 1;
  while (st[b0 + j] === 0) j--;
  return { offset: base + i, bucketCounts: Array.from(st.subarray(b0 + i, b0 + j + 1)) };
}

/** A checkpoint's view of an exponential histogram state. */
export function exponentialHistogramView(st: Float64Array, params: AggregatorParams): ExponentialHistogramAggregation {
  const m = (st.length - EH_HEADER) / 2;
  const positive = buckets(st, st[EH_POS_BASE], EH_HEADER, m);
  const negative = buckets(st, st[EH_NEG_BASE], EH_HEADER + m, m);
  let count = st[EH_ZERO];
  for (const c of positive.bucketCounts) count += c;
  for (const c of negative.bucketCounts) count += c;
  const empty = positive.bucketCounts.length === 0 && negative.bucketCounts.length === 0;
  return {
    kind: 'exponentialHistogram',
    // The buckets' total: count always equals zeroCount plus every bucket.
    count,
    sum: st[EH_SUM],
    min: st[EH_MIN],
    max: st[EH_MAX],
    // With no bucket yet, the scale the first value will get.
    scale: empty ? Math.min(st[EH_SCALE], params.maxScale) : st[EH_SCALE],
    zeroCount: st[EH_ZERO],
    positive,
    negative,
  };
}
