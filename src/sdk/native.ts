// Loads the addon (build/Release, else build/Debug, else prebuilds/; or the file named by
// HOTMETER_ADDON_PATH) and types its surface.
// Every function here throws a TypeError on wrong arguments; the TypeScript layer
// above never lets such an error reach a recording call.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { addonHelp } from './native-help';

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
  /** Summary quantiles of the instrument's own (advice); empty: the exporter's. */
  quantiles: Float64Array;
  /** false: histogram points carry no min and max (a view's recordMinMax). */
  recordMinMax: boolean;
}

/** registerInstrument's optional aggregator options (validated natively). */
export interface NativeAggregatorOptions {
  relativeAccuracy?: number;
  maxSize?: number;
  maxScale?: number;
  scopeName?: string;
  scopeVersion?: string;
  scopeSchemaUrl?: string;
  /** Summary quantiles of the instrument's own (rendered so by every process of a processShared name). */
  quantiles?: Float64Array;
  recordMinMax?: boolean;
}

/** serializePrometheus options (validated natively). */
export interface NativePrometheusOptions {
  openMetrics?: boolean;
  /** The Prometheus protobuf format (delimited MetricFamily messages). */
  protobuf?: boolean;
  /** Protobuf's target_info labels: [name, value, ...]. */
  targetInfo?: string[];
  scopeLabels?: boolean;
  /** Default summary quantiles. */
  quantiles?: Float64Array;
  /** Per instrument: [instrumentId, n, q_1 .. q_n] groups. */
  instrumentQuantiles?: Float64Array;
  /** Text written before the families (target_info). */
  prefix?: string;
  /** Names the prefix takes: instruments mapping to them are dropped. */
  reservedNames?: string[];
  /** Prepended to every metric name before sanitizing. */
  namePrefix?: string;
  /** Names without the unit word. */
  withoutUnits?: boolean;
  /** Counters without `_total` in the text format. */
  withoutCounterSuffixes?: boolean;
  /** `k="v",...` written after the scope labels on every sample. */
  constantLabels?: string;
  /** Written after every sample's value (" <ms>"). */
  sampleSuffix?: string;
  chunkBytes?: number;
  /** Exact summaries: [recordId, n, v_1 .. v_n] groups (one value per quantile). */
  exact?: Float64Array;
  /** Serialization threads (0: automatic). */
  threads?: number;
  /**
   * The epoch of the collecting reader's previous pass (0: none): observable series
   * updated since then are written, whichever pass saw the update first.
   */
  readerEpoch?: number;
  /** A reclaiming pass queues idle referenced records last updated before it (CollectOptions::staleBefore). */
  staleBefore?: number;
}

/** A Prometheus collection pass's bookkeeping. */
export interface NativePrometheusPass {
  epoch: number;
  records: number;
  /** Records of included instruments kept but not updated in this pass. */
  stale: Float64Array;
  reclaimed: Float64Array;
  /** Instruments left out because their names clash with another family's. */
  dropped: Uint32Array;
  /**
   * Records written as one series because they have the same name and labels:
   * [instrument, other instrument, how]* (how: 0 added, 1 the gauge updated last kept,
   * 2 summary count/sum added with one's quantiles, 3 histogram buckets both have).
   */
  merged: Uint32Array;
  snapshotMs: number;
}

export interface NativePrometheusResult extends NativePrometheusPass {
  chunks: Buffer[];
  bytes: number;
  serializeMs: number;
}

export interface NativePrometheusStreamInfo extends NativePrometheusPass {
  /** The handle readPrometheusStream and closePrometheusStream take. */
  stream: object;
  parts: number;
  /** What the stream's snapshot holds until it is closed, bytes. */
  snapshotBytes: number;
}

export interface NativePrometheusPart {
  chunks: Buffer[];
  bytes: number;
  part: number;
  last: boolean;
  serializeMs: number;
}

export interface NativeBinding {
  /**
   * '' makes a new domain; a name returns the same id in every thread while the domain
   * lives. Counts one use of the domain by this thread (a provider).
   */
  registerDomain(name: string, processShared?: boolean): number;
  /** A process-shared domain's segment: [live processes, slabs in use, series, cell nodes in use]; null if not shared. */
  sharedStats(domain: number): [number, number, number, number, number] | null;
  /**
   * processShared: true if this process pushes the fleet's series now (an exclusive lease
   * that the kernel drops when its holder exits; taken if free). False for another domain.
   */
  pushLeader(domain: number): boolean;
  /** Removes the segment file of a processShared name if no live process uses it: 1 removed, 0 absent, -1 in use (or not removable). */
  cleanupProcessShared(name: string): number;
  /**
   * Ends one use of the domain by this thread. The last use of any thread (or its exit)
   * frees the domain: its instruments, records and cells. The caller's handles must
   * never write again. Returns whether the domain was freed.
   */
  releaseDomain(domain: number): boolean;
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
   * out <- [recordId, slab, offset, newCell, overflow, stalePending (if out has 6 slots:
   * drainStale() has ids for this thread)]; false if the instrument is disabled. Past
   * `cardinalityLimit - 1` label sets, the overflow record is returned. A non-zero
   * `releaseRecordId` drops one reference this thread holds first (as release()).
   */
  acquire(instrumentId: number, labelParts: string[], out: Float64Array, cardinalityLimit?: number, releaseRecordId?: number): boolean;
  /** Drops one reference this thread holds. */
  release(recordId: number): boolean;
  /** release() of each id, in one call (one lock): how many were released. */
  releaseMany(recordIds: Float64Array): number;
  /**
   * Ids of records a reclaiming collection (in any thread) saw idle while this thread
   * referenced them; this thread drops its cached references among them.
   */
  drainStale(): Float64Array;
  /**
   * This thread's exemplar cell of a record (native/core/exemplar.h): 1, out <- [slab,
   * offset, slots]; 0 if the record is unknown or its instrument keeps no exemplars; -1 if
   * its processShared segment has no room for the cell.
   */
  exemplarCell(recordId: number, out: Float64Array): number;
  /**
   * Removes the instrument's series of this label set from every later collection (the
   * next acquire of it creates a new record); returns the removed record's id, 0 if none.
   */
  removeSeries(instrumentId: number, labelParts: string[]): number;
  /** removeSeries for every series of the instrument; the removed records' ids. */
  clearSeries(instrumentId: number): Float64Array;
  slab(index: number): ArrayBuffer;
  /** Layout: [epoch, recordCount, reclaimedCount,
   *  recordCount x [recordId, instrumentId, lastUpdateEpoch, startTimeMs, state...],
   *  reclaimedCount x recordId]. lastUpdateEpoch: the pass that first saw the record's
   *  last update (min(epoch, 2^32 - 2) when this pass did).
   *  With readerEpoch and mode 1, a record not changed since the pass at readerEpoch is
   *  the entry [recordId, -1]; mode 2 leaves it out; modes 1 and 2 put the reclaimed ids
   *  right after the header (RecordMap::Collect, changedOnly). A reclaiming pass queues
   *  idle records still referenced for their threads to give back only when last updated
   *  before staleBefore (CollectOptions::staleBefore; default every idle record). */
  collect(domain: number, reclaim: boolean, reclaimBefore?: number, readerEpoch?: number, mode?: 0 | 1 | 2, staleBefore?: number): Float64Array;
  /** collect() with the pass on a libuv pool thread. */
  collectAsync(domain: number, reclaim: boolean, reclaimBefore?: number, readerEpoch?: number, mode?: 0 | 1 | 2, staleBefore?: number): Promise<Float64Array>;
  /**
   * collectAsync in mode 1 or 2 whose records are handed to onPart (on this thread, in
   * order, all before the promise settles; onPart must not throw) every `every` records
   * while the pass goes on; the promise gives [epoch, count, reclaimedCount, reclaimed
   * ids..., the records not handed on yet].
   */
  collectStream(
    domain: number,
    reclaim: boolean,
    reclaimBefore: number | undefined,
    readerEpoch: number,
    mode: 1 | 2,
    staleBefore: number | undefined,
    onPart: (part: Float64Array) => void,
    every: number,
  ): Promise<Float64Array>;
  recordInfo(recordId: number): [number, string[]] | null;
  /** JSON of each record's label parts (null for an unknown record), in one call. */
  recordLabels(recordIds: Float64Array): string;
  /**
   * pooledOutputBlocks: Prometheus output blocks kept for the next scrape; reusedOutputBlocks:
   * blocks scrapes took from that pool since the process started; lentOutputChunks: output
   * chunks JS Buffers hold now (output_pool.h); labelSets: interned label sets in use;
   * retiredLabelSets: sets no record uses any more, kept while a Prometheus snapshot that
   * may point at them is held (an open stream, a serialization in flight).
   */
  stats(): {
    records: number;
    /** Instruments registered and not freed with their domain. */
    instruments: number;
    arenaBytes: number;
    arenaId: number;
    pooledOutputBlocks: number;
    reusedOutputBlocks: number;
    lentOutputChunks: number;
    labelSets: number;
    retiredLabelSets: number;
    /** Records whose state collection passes read since the process started (a sparse delta pass reads only those that may have changed). */
    stateReads: number;
  };
  /**
   * One collection pass of `domain` (as collect(): epoch, update detection, reclamation)
   * written as Prometheus text on a libuv pool thread. `include`: the instrument ids to
   * write (null: all). Layouts: native/binding/prometheus_js.cc.
   */
  serializePrometheus(
    domain: number,
    reclaim: boolean,
    reclaimBefore: number | undefined,
    include: Uint32Array | null,
    options?: NativePrometheusOptions,
  ): Promise<NativePrometheusResult>;
  /**
   * Detaches the Buffers of `chunks` whose memory serializePrometheus lent (others are
   * left alone): their blocks go back to the output pool on the next turn of the event
   * loop instead of after a GC. They read as empty afterwards. Returns how many.
   */
  releaseOutput(chunks: Buffer[]): number;
  /**
   * serializePrometheus's collection pass and snapshot, taken now, with the plan that cuts
   * its text into parts of about `options.partBytes` (default 4 MiB).
   */
  openPrometheusStream(
    domain: number,
    reclaim: boolean,
    reclaimBefore: number | undefined,
    include: Uint32Array | null,
    options?: NativePrometheusOptions & { partBytes?: number },
  ): NativePrometheusStreamInfo;
  /** The next part, written on a libuv pool thread; null after the last. One read at a time. */
  readPrometheusStream(stream: object): Promise<NativePrometheusPart | null>;
  /** Drops the stream (its snapshot goes once no part is being written). */
  closePrometheusStream(stream: object): void;
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
    // HOTMETER_ADDON_PATH: load this .node file instead (scripts/asan-test.sh points it
    // at an ASan + UBSan build kept outside build/). Inherited by workers and child
    // processes, so a whole test run uses the same addon.
    const explicit = process.env.HOTMETER_ADDON_PATH;
    if (explicit !== undefined && explicit !== '') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      binding = require(path.resolve(explicit)) as NativeBinding;
    } else {
      const root = packageRoot();
      binding = loadAddon(root, () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const load = require('node-gyp-build') as (dir: string) => NativeBinding;
        return load(root);
      });
    }
  }
  return binding;
}

/**
 * Runs `load`; if it throws (no prebuild for this platform and no source build, or a
 * prebuild this system's libc cannot load), throws an Error that says which platform and
 * libc this is, which prebuilds there are and what to install, with the loader's error
 * as its `cause`.
 */
export function loadAddon(root: string, load: () => NativeBinding): NativeBinding {
  try {
    return load();
  } catch (err) {
    throw new Error(addonHelp(root, err), { cause: err });
  }
}
