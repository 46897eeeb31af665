// The quantile sketch (DDSketch) on the JS side: the mapping, the rare slow path of an
// update (moving the window of a cell in place), and quantiles of a checkpointed state.
// The cell layout, the error bound and Merge are described in native/core/sketch.h.
import type { SketchAggregation } from '../export/checkpoint-set';
import { AggregatorParams } from './aggregation';

/** Offsets in a sketch cell. */
export const SK_COUNT = 0;
export const SK_SUM = 1;
export const SK_MIN = 2;
export const SK_MAX = 3;
export const SK_ZERO = 4;
export const SK_BASE = 5;
export const SK_HEADER = 6;

/** The smallest positive normal double. */
const MIN_NORMAL = 2.2250738585072014e-308;

/** Values to keys for one relative accuracy: key(v) = ceil(log_gamma(v)). */
export class SketchMapping {
  readonly gamma: number;
  readonly lnGamma: number;
  readonly invLnGamma: number;
  /** Smaller values (zero included) go to the zero count. */
  readonly minIndexable: number;
  private readonly valueFactor: number;

  constructor(readonly relativeAccuracy: number) {
    const a = relativeAccuracy;
    this.gamma = (1 + a) / (1 - a);
    this.lnGamma = Math.log1p((2 * a) / (1 - a));
    this.invLnGamma = 1 / this.lnGamma;
    this.minIndexable = MIN_NORMAL * this.gamma;
    this.valueFactor = 2 / (1 + this.gamma);
  }

  key(v: number): number {
    return Math.ceil(Math.log(v) * this.invLnGamma);
  }

  /** The estimate for every value of bin `key`: within relativeAccuracy of each. */
  value(key: number): number {
    return Math.exp(key * this.lnGamma) * this.valueFactor;
  }
}

const mappings = new Map<number, SketchMapping>();

/** The (shared) mapping for a relative accuracy. */
export function sketchMapping(relativeAccuracy: number): SketchMapping {
  let m = mappings.get(relativeAccuracy);
  if (m === undefined) {
    m = new SketchMapping(relativeAccuracy);
    mappings.set(relativeAccuracy, m);
  }
  return m;
}

/**
 * Slow path of an update: key `k` is outside the window of the cell at `off` (m bins),
 * or the window is not placed yet. Moves the window in place (re-centering while the
 * used keys span at most m bins, else keeping the top m keys and collapsing the lower
 * ones into the lowest kept bin), then counts k. Allocates nothing.
 */
export function sketchInsertSlow(f: Float64Array, off: number, m: number, k: number): void {
  const b0 = off + SK_HEADER;
  const base = f[off + SK_BASE];
  let i = m;
  if (base !== Infinity) {
    i = 0;
    while (i < m && f[b0 + i] === 0) i++;
  }
  if (i === m) {
    const nb = k - ((m - 1) >> 1);
    f[off + SK_BASE] = nb;
    f.fill(0, b0, b0 + m);
    f[b0 + k - nb] += 1;
    return;
  }
  let j = m - 1;
  while (f[b0 + j] === 0) j--;
  const lo = Math.min(base + i, k);
  const hi = Math.max(base + j, k);
  const span = hi - lo + 1;
  const nb = span <= m ? lo - ((m - span) >> 1) : hi - m + 1;
  const d = nb - base;
  if (d > 0) {
    const dd = d >= m ? m : d;
    let collapsed = 0;
    for (let p = 0; p < dd; p++) collapsed += f[b0 + p];
    f.copyWithin(b0, b0 + dd, b0 + m);
    f.fill(0, b0 + m - dd, b0 + m);
    f[b0] += collapsed;
  } else if (d < 0) {
    const u = -d >= m ? m : -d;
    f.copyWithin(b0 + u, b0, b0 + m - u);
    f.fill(0, b0, b0 + u);
  }
  f[off + SK_BASE] = nb;
  f[b0 + (k > nb ? k : nb) - nb] += 1;
}

/**
 * The q-quantile of a checkpointed sketch state: the estimate of the value of rank
 * floor(q (n - 1)), clamped to [min, max]; min for q = 0, max for q = 1. NaN when the
 * state is empty or q is not in [0, 1]. Same algorithm as sketch::Quantile (C++).
 */
export function sketchQuantile(st: Float64Array, mapping: SketchMapping, q: number): number {
  if (!(q >= 0 && q <= 1)) return NaN;
  let total = st[SK_ZERO];
  for (let i = SK_HEADER; i < st.length; i++) total += st[i];
  if (!(total > 0)) return NaN;
  const min = st[SK_MIN];
  const max = st[SK_MAX];
  if (q === 0) return min;
  if (q === 1) return max;
  const rank = q * (total - 1);
  let n = st[SK_ZERO];
  let est = max;
  if (n > rank) {
    est = 0;
  } else {
    const base = st[SK_BASE];
    for (let i = SK_HEADER; i < st.length; i++) {
      n += st[i];
      if (n > rank) {
        est = mapping.value(base + i - SK_HEADER);
        break;
      }
    }
  }
  return est < min ? min : est > max ? max : est;
}

/** A checkpoint's view of a sketch state `st` (copied: `st` may be reused). */
export function sketchView(st: Float64Array, params: AggregatorParams): SketchAggregation {
  const state = st.slice();
  const mapping = sketchMapping(params.relativeAccuracy);
  let count = state[SK_ZERO];
  for (let i = SK_HEADER; i < state.length; i++) count += state[i];
  return {
    kind: 'sketch',
    // The bins' total: a scrape never shows a count its quantiles disagree with.
    count,
    sum: state[SK_SUM],
    min: state[SK_MIN],
    max: state[SK_MAX],
    zeroCount: state[SK_ZERO],
    relativeAccuracy: params.relativeAccuracy,
    quantile: (q: number) => sketchQuantile(state, mapping, q),
  };
}
