// Batchers: `ungrouped` (full dimensionality) and `defaultkeys` (recommended keys), and
// the Merge algebra they use.
import { Batcher, BatcherOptions } from './batcher';
import { DefaultKeysBatcher } from './defaultkeys';
import { UngroupedBatcher } from './ungrouped';

export { Batcher, reduceAttributes } from './batcher';
export type { BatcherOptions } from './batcher';
export { UngroupedBatcher } from './ungrouped';
export { DefaultKeysBatcher } from './defaultkeys';
export {
  BATCHABLE_KINDS,
  deltaOf,
  emptyLike,
  hasMinMax,
  isReset,
  mergeAggregations,
  mergeOrdered,
} from './merge';
export type { BatchedHistogramAggregation, BatchedMinMaxSumCountAggregation, MinMaxFlag, Ordered } from './merge';

/** The batchers by name, as controllers accept them. */
export type BatcherKind = 'ungrouped' | 'defaultkeys';

/** A new batcher of `kind` ('defaultkeys' or 'ungrouped') with `options`. */
export function createBatcher(kind: BatcherKind, options: BatcherOptions = {}): Batcher {
  switch (kind) {
    case 'ungrouped':
      return new UngroupedBatcher(options);
    case 'defaultkeys':
      return new DefaultKeysBatcher(options);
    default:
      throw new TypeError(`hotmeter: unknown batcher ${String(kind)} (use 'defaultkeys' or 'ungrouped')`);
  }
}

/**
 * The batcher a controller uses: `spec` itself when it is a Batcher, otherwise a new
 * one of that kind (default 'defaultkeys') configured with `defaults`.
 */
export function resolveBatcher(spec: Batcher | BatcherKind | undefined, defaults: BatcherOptions): Batcher {
  if (spec instanceof Batcher) return spec;
  return createBatcher(spec ?? 'defaultkeys', defaults);
}
