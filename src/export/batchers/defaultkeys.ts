// The defaultkeys batcher: groups by the instrument's recommended keys
// (`advice.attributes` of the instrument's MetricOptions, `descriptor.adviceAttributes`).
import type { Descriptor } from '../../sdk/descriptor';
import { Batcher } from './batcher';

const normalized = new WeakMap<readonly string[], readonly string[]>();

/**
 * Groups records by the instrument's recommended keys: the attributes outside
 * `advice.attributes` are dropped, and records that reduce to the same subset are merged
 * into one series (sums add; histograms and minMaxSumCounts add buckets, counts and sums
 * and take the min of mins and max of maxes; last values take the value of the latest
 * record in collection order among the records updated since the previous collection).
 * Instruments without advice keep every attribute; an empty advice list merges all of an
 * instrument's records into one series.
 *
 * Grouped cumulative totals are kept by the batcher (previous total plus the deltas of
 * the members), so a total does not go down when one of its records is reclaimed.
 */
export class DefaultKeysBatcher extends Batcher {
  /** The sorted, de-duplicated recommended keys, or undefined when the instrument has no advice. */
  protected keysFor(descriptor: Descriptor): readonly string[] | undefined {
    const advice = descriptor.adviceAttributes;
    if (advice === undefined) return undefined;
    let keys = normalized.get(advice);
    if (keys === undefined) {
      keys = Object.freeze([...new Set(advice.filter((k) => typeof k === 'string'))].sort());
      normalized.set(advice, keys);
    }
    return keys;
  }
}
