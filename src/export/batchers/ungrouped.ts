// The ungrouped batcher: full dimensionality. Cumulative output is the identity; delta
// output is computed per series (instrument + every attribute).
import type { Descriptor } from '../../sdk/descriptor';
import { Batcher } from './batcher';

/**
 * Keeps every attribute of every record: one exported series per record. With
 * cumulative temporality (the default) records pass through untouched and no state is
 * kept; with delta temporality each series is differenced against the previous
 * collection.
 */
export class UngroupedBatcher extends Batcher {
  /** Always undefined: every attribute identifies a series. */
  protected keysFor(_descriptor: Descriptor): readonly string[] | undefined {
    return undefined;
  }
}
