// Loads the addon (prebuilds first, then build/Release) and types its surface.
// Every function here throws a TypeError on wrong arguments; the TypeScript layer
// above never lets such an error reach a recording call.
import * as path from 'node:path';
import * as fs from 'node:fs';

export interface NativeDescriptor {
  id: number;
  name: string;
  description: string;
  unit: string;
  kind: number;
  valueType: number;
  aggregation: number;
  monotonic: boolean;
  bounds: Float64Array;
  /** Sketch relative accuracy (default 0.01). */
  relativeAccuracy: number;
  /** Sketch bins / exponential buckets per range, resolved (0 for other kinds). */
  maxSize: number;
  /** Exponential histogram max scale (default 20). */
  maxScale: number;
  /** The instrumentation scope that registered the instrument ('' when none given). */
  scopeName: string;
  scopeVersion: string;
  scopeSchemaUrl: string;
}

/** registerInstrument's optional aggregator options (validated natively). */
export interface NativeAggregatorOptions {
  relativeAccuracy?: number;
  maxSize?: number;
  maxScale?: number;
  scopeName?: string;
  scopeVersion?: string;
  scopeSchemaUrl?: string;
}

export interface NativeBinding {
  /** '' makes a new domain; a name returns the same id in every thread. */
  registerDomain(name: string): number;
  registerInstrument(
    domain: number,
    identity: string,
    name: string,
    description: string,
    unit: string,
    kind: number,
    valueType: number,
    aggregation: number,
    monotonic: boolean,
    bounds: Float64Array,
    options?: NativeAggregatorOptions,
  ): [number, boolean];
  descriptor(instrumentId: number): NativeDescriptor | null;
  /**
   * out <- [recordId, slab, offset, newCell, overflow]; false if the instrument is
   * disabled. Past `cardinalityLimit - 1` label sets, the overflow record is returned.
   */
  acquire(instrumentId: number, labelParts: string[], out: Float64Array, cardinalityLimit?: number): boolean;
  release(recordId: number): boolean;
  slab(index: number): ArrayBuffer;
  /** Layout: [epoch, recordCount, reclaimedCount,
   *  recordCount x [recordId, instrumentId, updated, startTimeMs, state...],
   *  reclaimedCount x recordId] */
  collect(domain: number, reclaim: boolean, reclaimBefore?: number): Float64Array;
  recordInfo(recordId: number): [number, string[]] | null;
  stats(): { records: number; arenaBytes: number; arenaId: number };
}

function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        if (JSON.parse(fs.readFileSync(pj, 'utf8')).name === 'hotmeter') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('hotmeter: cannot find the package root from ' + __dirname);
    dir = up;
  }
}

let binding: NativeBinding | undefined;

/** The addon, loaded once per thread (each worker gets its own arena). */
export function native(): NativeBinding {
  if (binding === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = load(packageRoot());
  }
  return binding;
}
