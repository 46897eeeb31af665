// Collection bookkeeping of a MeterProvider: which epochs its readers delivered and so
// what may expire (ReaderEpochs), and the native collect() output as a CheckpointSet
// (decodeCollection).
import type { Attributes } from '@opentelemetry/api';
import type { BoundHandle } from '../api/handles';
import type { AttributeTable } from './attribute-table';
import { takeExactValues } from '../api/handles-sketch';
import { Aggregation, CheckpointRecord, CheckpointSet } from '../export/checkpoint-set';
import type { MetricReader } from '../export/reader';
import { AggregationKind, cellSize } from './aggregation';
import { isObservable } from './descriptor';
import { exponentialHistogramView } from './exponential-histogram';
import { decodeLabels } from './labels';
import { native } from './native';
import type { RecordStore } from './record-store';
import { sketchView } from './sketch';

/**
 * Threads give back their cached references of a series idle this long, ms (MeterProvider
 * `cacheIdleMillis`).
 */
export const DEFAULT_CACHE_IDLE_MILLIS = 60_000;

/** Record::kMaxEpoch: a record's epochs saturate there (native/core/record.h). */
const MAX_RECORD_EPOCH = 4294967294;

const NO_ATTRIBUTES: Attributes = Object.freeze({});
/**
 * The attributes of a record gone (removed) before they were decoded: its points leave
 * the collection (decodeCollection, the OTLP producer) instead of going out without them.
 */
export const GONE: Attributes = Object.freeze({});

/**
 * Per reader (registered readers, or the provider's direct collections when it has none):
 * the latest epoch whose collection the reader delivered, and the times of recent passes;
 * from both, the epoch the next pass may expire records before.
 */
export class ReaderEpochs {
  /** Per reader: the latest epoch whose collection it delivered (0 before its first). */
  private readonly readerEpochs = new Map<object, number>();
  /**
   * Epoch and time of this provider's recent passes, oldest first: the latest at least
   * max(reclaimIdleMillis, cache idle time) old, and every later one.
   */
  private readonly passTimes: { epoch: number; time: number }[] = [];
  /** Cached references of a series idle this long are given back, ms (0: after one idle pass). */
  private readonly cacheIdleMillis: number;

  /**
   * @param reclamation false: passes never ask threads to give back cached references, nothing expires
   * @param reclaimIdleMillis > 0: opt-in expiry after this much idleness
   * @param cacheIdleMillis threads give back cached references of series idle this long
   *   (never longer than reclaimIdleMillis, when set: expiry needs them given back)
   */
  constructor(
    private readonly reclamation: boolean,
    private readonly reclaimIdleMillis: number,
    readers: readonly object[],
    cacheIdleMillis = DEFAULT_CACHE_IDLE_MILLIS,
  ) {
    for (const r of readers) this.readerEpochs.set(r, 0);
    this.cacheIdleMillis = reclaimIdleMillis > 0 ? Math.min(cacheIdleMillis, reclaimIdleMillis) : cacheIdleMillis;
  }

  /** The epoch of the reader's latest delivered collection (0 before its first). */
  since(reader: object): number {
    return this.readerEpochs.get(reader) ?? 0;
  }

  /**
   * The epoch records must have been last updated before to be expired by the next pass:
   * 0 when nothing may expire (the pass only asks threads to give back cached references
   * of idle records), undefined when the pass must not even do that (reclamation: false).
   * Every reader delivered each record's state as of the epoch it last delivered: a record
   * last updated at or before the oldest of those was delivered by every reader, and
   * (reclaimIdleMillis) a record whose last update was first seen by a pass at least
   * reclaimIdleMillis ago has been idle at least that long.
   */
  reclaimBefore(): number | undefined {
    if (!this.reclamation) return undefined;
    if (!(this.reclaimIdleMillis > 0)) return 0;
    let before = Infinity;
    for (const e of this.readerEpochs.values()) before = Math.min(before, e + 1);
    before = Math.min(before, this.idleSince(Date.now() - this.reclaimIdleMillis));
    return Number.isFinite(before) ? before : 0;
  }

  /**
   * The epoch a pass queues idle records last updated before for their threads to give
   * back cached references (CollectOptions::staleBefore): one past the latest pass at
   * least the cache idle time ago, so a series written now and then keeps its cache (and
   * its next write takes no native call). Undefined: every idle record (cache idle time 0).
   */
  staleBefore(): number | undefined {
    if (!this.reclamation || !(this.cacheIdleMillis > 0)) return undefined;
    return this.idleSince(Date.now() - this.cacheIdleMillis);
  }

  /** One past the epoch of the latest pass at or before `cutoff` (ms), or 0 if none. */
  private idleSince(cutoff: number): number {
    const t = this.passTimes;
    for (let k = t.length - 1; k >= 0; k--) if (t[k].time <= cutoff) return t[k].epoch + 1;
    return 0;
  }

  /** A reader delivered its collection of `epoch` (MetricProducer.delivered). */
  delivered(reader: object, epoch: number): void {
    if (typeof epoch !== 'number' || !(epoch >= 0)) return;
    const prev = this.readerEpochs.get(reader);
    if (prev !== undefined && epoch > prev) this.readerEpochs.set(reader, epoch);
  }

  /**
   * After a pass for `reader`: a reader that does not report delivery (and the direct
   * collections) delivered it now; the pass's time is kept for reclaimIdleMillis.
   */
  passDone(reader: object, epoch: number): void {
    if ((reader as MetricReader).reportsDelivery !== true) this.delivered(reader, epoch);
    if (!this.reclamation) return;
    const now = Date.now();
    const t = this.passTimes;
    t.push({ epoch, time: now });
    // Kept: the latest pass at least the longer idle time old, and every later one.
    const cutoff = now - Math.max(this.reclaimIdleMillis, this.cacheIdleMillis);
    while (t.length > 1 && t[1].time <= cutoff) t.shift();
  }

  clear(): void {
    this.passTimes.length = 0;
  }
}

/** A native collection as CheckpointRecords, with what the pass saw idle and reclaimed. */
export interface DecodedCollection {
  readonly set: CheckpointSet;
  /** Records not updated in this pass (their threads may give back cached references). */
  readonly stale: Set<number>;
  /** Ids of the records the pass freed. */
  readonly reclaimed: ArrayLike<number>;
}

/** How a collection's records are read (decodeCollection). */
export interface DecodeOptions {
  /** Whether this reader is given the records of a store (its streams); default all. */
  readonly visible?: (store: RecordStore<BoundHandle>) => boolean;
  /**
   * Process-shared records: an observable's series is a level of the fleet (every
   * process's last observation), in every collection and counted as observed in each,
   * as the native passes treat it (CheckpointView::fresh).
   */
  readonly sharedObservables?: boolean;
  /** Only records idle since before this epoch are stale (ReaderEpochs.staleBefore); default every idle one. */
  readonly staleBefore?: number;
}

/** A decodeCollection walk yields to the event loop after this long, ms. */
let decodeSliceMs = 8;

/** @internal For tests: the length of decodeCollection's slices, ms (0: every 512 records). */
export function setDecodeSliceMillis(ms: number): void {
  decodeSliceMs = ms;
}
/** Attributes decoded per step (a native call for records made by other threads). */
const ATTRIBUTE_BATCH = 2000;

const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A native collect()'s output as CheckpointRecords for one reader: `since` is the epoch of
 * the reader's previous pass (read before its callbacks ran). Records of instruments
 * `storeOf` does not know are skipped; attributes are decoded once per record and kept in
 * `attributesOf` while the record lives. The walk and the decoding run in slices between
 * which the event loop turns (a collection of 200,000 records held it ~300 ms in one
 * go); the caller keeps records of this output from being reclaimed meanwhile (their
 * attributes would go with them).
 */
export async function decodeCollection(
  data: Float64Array,
  since: number,
  storeOf: (instrumentId: number) => RecordStore<BoundHandle> | undefined,
  attributesOf: AttributeTable,
  options: DecodeOptions = {},
): Promise<DecodedCollection> {
  const walk = new CollectionWalk(data, since, storeOf, attributesOf, options);
  while (!walk.run(performance.now() + decodeSliceMs)) await nextTurn();
  // In record slot order: records of one label set made one after the other (a call
  // site writing several instruments) fall in one batch, where they share one object.
  const at = walk.undecodedBySlot();
  const parts = new PartsDecoder();
  for (let k = 0; k < at.length; k += ATTRIBUTE_BATCH) {
    if (k > 0) await nextTurn();
    decodeAttributes(walk.records, at.slice(k, k + ATTRIBUTE_BATCH), attributesOf, parts);
  }
  // A record removed (remove(), clear()) while the walk yielded, before its attributes
  // were decoded, has none left to decode: it leaves this collection as if removed
  // before it (never exported without its attributes). Expiry is held off meanwhile.
  let records = walk.records;
  if (at.length > 0 && records.some((r) => r.attributes === GONE)) records = records.filter((r) => r.attributes !== GONE);
  return { set: new CheckpointSet(records, walk.now, walk.epoch), stale: walk.stale, reclaimed: data.subarray(walk.i, walk.i + data[2]) };
}

type MutableRecord = { -readonly [K in keyof CheckpointRecord]: CheckpointRecord[K] };

/** decodeCollection's walk over the native output, resumable (run() up to a deadline). */
class CollectionWalk {
  readonly stale = new Set<number>();
  readonly records: MutableRecord[] = [];
  /** Indices into records of attributes to decode. */
  private readonly undecoded: number[] = [];
  readonly epoch: number;
  readonly now = Date.now();
  /** Index into data of the next record; after the walk, of the reclaimed ids. */
  i = 3;
  private n = 0;
  private readonly count: number;
  private readonly passEpoch: number;

  constructor(
    private readonly data: Float64Array,
    private readonly since: number,
    private readonly storeOf: (instrumentId: number) => RecordStore<BoundHandle> | undefined,
    private readonly attributesOf: AttributeTable,
    private readonly o: DecodeOptions,
  ) {
    this.epoch = data[0];
    this.count = data[1];
    // Per record, the pass that first saw its last update: this pass's epoch (saturated
    // as natively) when it was updated in this pass, later than the reader's previous
    // pass when it was updated since then, whichever reader's pass (another reader's,
    // another provider's of the domain) saw it first. Each reader gets every update.
    this.passEpoch = Math.min(this.epoch, MAX_RECORD_EPOCH);
  }

  /** Walks records until the deadline (performance.now()); true when every one is done. */
  run(deadline: number): boolean {
    const { data, since, passEpoch, stale, records, undecoded, attributesOf, now } = this;
    const { visible, sharedObservables = false, staleBefore } = this.o;
    let i = this.i;
    let k = 0; // records this run: at least 511 before it may stop
    try {
      while (this.n < this.count) {
        if ((++k & 511) === 0 && performance.now() > deadline) return false;
        this.n++;
        const recordId = data[i];
        const instrumentId = data[i + 1];
        const store = this.storeOf(instrumentId);
        const lastUpdate = data[i + 2];
        // Whole milliseconds, like endTime (Date.now()): a series created and collected
        // within one millisecond must not start after it ends.
        const startTime = Math.floor(data[i + 3]);
        i += 4;
        if (store === undefined) continue; // not registered natively: cannot happen
        const observable = isObservable(store.descriptor.kind);
        const updated = lastUpdate > since || (observable && sharedObservables);
        const size = cellSize(store.aggregation, store.bounds.length, store.params.maxSize);
        const st = data.subarray(i, i + size);
        i += size;
        // Idle in this pass, and long enough (reclamation).
        if (lastUpdate !== passEpoch && (staleBefore === undefined || lastUpdate < staleBefore)) stale.add(recordId);
        if (visible !== undefined && !visible(store)) continue; // another reader's stream
        if (observable && !updated) continue; // not observed since this reader's last pass
        const attributes = attributesOf.get(recordId);
        if (attributes === undefined) undecoded.push(records.length);
        records.push({
          seriesId: recordId,
          descriptor: store.descriptor,
          scope: store.scope,
          attributes: attributes ?? NO_ATTRIBUTES,
          aggregation: toAggregation(store, st, recordId),
          startTime,
          endTime: now,
          updated,
          lastUpdateEpoch: lastUpdate,
        });
      }
      return true;
    } finally {
      this.i = i;
    }
  }

  /** The records to decode, in slot order (a counting pass over slots, not a sort). */
  undecodedBySlot(): number[] {
    const u = this.undecoded;
    if (u.length <= ATTRIBUTE_BATCH) return u;
    let max = 0;
    for (let k = 0; k < u.length; k++) max = Math.max(max, this.records[u[k]].seriesId >>> 0);
    const bySlot = new Int32Array(max + 1).fill(-1);
    for (let k = 0; k < u.length; k++) bySlot[this.records[u[k]].seriesId >>> 0] = u[k];
    const out: number[] = [];
    for (let s = 0; s <= max; s++) if (bySlot[s] >= 0) out.push(bySlot[s]);
    return out;
  }
}

/**
 * Decodes the attributes of records[k] for each k of `at` and keeps them while the
 * records live: the record stores do not keep attribute objects (a Prometheus scrape
 * never needs them). Records whose parts the table kept from their creation are decoded
 * from those; the others from their native records (one call). Records of one label set
 * (other instruments' records of the same attributes) share one frozen object: those
 * decoded natively when in one call, those from kept parts when acquired one after the
 * other.
 */
function decodeAttributes(
  records: { seriesId: number; attributes: Attributes }[],
  at: readonly number[],
  attributesOf: AttributeTable,
  parts = new PartsDecoder(),
): void {
  let rest: number[] | undefined;
  for (let k = 0; k < at.length; k++) {
    const r = records[at[k]];
    const attrs = parts.decode(r.seriesId, attributesOf);
    if (attrs === undefined) (rest ??= []).push(at[k]);
    else r.attributes = attrs;
  }
  if (rest !== undefined) decodeNative(records, rest, attributesOf, GONE);
}

/**
 * Decodes records' attributes from the parts the table kept (decodeAttributes), one
 * object per parts array: records of one label set acquired one after the other share
 * theirs (AttributeTable.setEncoded).
 */
class PartsDecoder {
  private byParts: Map<readonly string[], Attributes> | undefined = undefined;
  private lastParts: readonly string[] | undefined = undefined;
  private last: Attributes = NO_ATTRIBUTES;

  /** The record's attributes, now kept by the table; undefined if it has no parts kept. */
  decode(id: number, attributesOf: AttributeTable): Attributes | undefined {
    const parts = attributesOf.encoded(id);
    if (parts === undefined) return undefined;
    let attrs: Attributes | undefined;
    if (parts === this.lastParts) attrs = this.last;
    else {
      const byParts = (this.byParts ??= new Map());
      attrs = byParts.get(parts);
      if (attrs === undefined) byParts.set(parts, (attrs = freezeAttributes(decodeLabels(parts))));
      this.lastParts = parts;
      this.last = attrs;
    }
    attributesOf.set(id, attrs);
    return attrs;
  }
}

/** As decodeAttributes, from the native records (one call). */
function decodeNative(
  records: { seriesId: number; attributes: Attributes }[],
  at: readonly number[],
  attributesOf: AttributeTable,
  /** The attributes of a record the native map no longer has. */
  gone = NO_ATTRIBUTES,
): void {
  const ids = new Float64Array(at.length);
  for (let k = 0; k < at.length; k++) ids[k] = records[at[k]].seriesId;
  // A number: the index of an earlier record of the call with the same label set (another
  // instrument's record of the same attributes), whose frozen object it shares.
  const parts = JSON.parse(native().recordLabels(ids)) as (string[] | number | null)[];
  const decoded: Attributes[] = new Array<Attributes>(at.length);
  for (let k = 0; k < at.length; k++) {
    const p = parts[k];
    const attrs = p === null ? gone : typeof p === 'number' ? decoded[p] : freezeAttributes(decodeLabels(p));
    decoded[k] = attrs;
    if (attrs !== GONE) attributesOf.set(ids[k], attrs);
    records[at[k]].attributes = attrs;
  }
}

/**
 * Attributes kept across collections are shared by every collection's records and points
 * (and an exporter's queues): frozen, array values too, so no consumer can change them.
 */
export function freezeAttributes(attrs: Attributes): Attributes {
  for (const k of Object.keys(attrs)) {
    const v = attrs[k];
    if (Array.isArray(v)) Object.freeze(v);
  }
  return Object.freeze(attrs);
}

/**
 * A collection for a reader that keeps what it converted of earlier ones (the OTLP
 * producer): the native output of mode 1 or 2 (native.ts collect(): records not changed
 * since the reader's previous pass are [recordId, -1] or left out), in parts (collectStream).
 */
export interface ChangedCollection {
  /**
   * The next part of the records (whole records in the native collect() layout, no
   * header), as the pass hands them on while it reads the rest; undefined once every one
   * was given (then epoch and reclaimed are known). Rejects if the pass failed.
   */
  nextPart(): Promise<Float64Array | undefined>;
  /** The pass's epoch (known once nextPart() gave undefined). */
  readonly epoch: number;
  /** Collection time (taken as the pass starts), ms since the epoch. */
  readonly time: number;
  /** The epoch of the reader's previous pass (records with a later lastUpdate changed since). */
  readonly since: number;
  /** Ids of the records the pass freed (known once nextPart() gave undefined). */
  readonly reclaimed: ArrayLike<number>;
  storeOf(instrumentId: number): RecordStore<BoundHandle> | undefined;
  /**
   * The (frozen) attributes of records, those not known yet decoded in one native call;
   * GONE for a record removed before its attributes were decoded.
   */
  attributes(recordIds: readonly number[]): Attributes[];
  /** The reader is done with the collection (called once, also when converting failed). */
  done(): void;
}

/** The attributes of `recordIds`, decoding the unknown ones at once (kept in attributesOf). */
export function recordAttributes(recordIds: readonly number[], attributesOf: AttributeTable): Attributes[] {
  const out: Attributes[] = new Array<Attributes>(recordIds.length);
  let records: { seriesId: number; attributes: Attributes }[] | undefined;
  let at: number[] | undefined;
  const parts = new PartsDecoder();
  for (let k = 0; k < recordIds.length; k++) {
    const id = recordIds[k];
    const a = attributesOf.get(id) ?? parts.decode(id, attributesOf);
    if (a !== undefined) out[k] = a;
    else {
      records ??= [];
      (at ??= []).push(records.length);
      records.push({ seriesId: id, attributes: NO_ATTRIBUTES });
    }
  }
  if (records === undefined || at === undefined) return out;
  decodeNative(records, at, attributesOf, GONE);
  let j = 0;
  for (let k = 0; k < recordIds.length; k++) if (out[k] === undefined) out[k] = records[j++].attributes;
  return out;
}

/** A record's state as an Aggregation (EXACT: takes the values this thread holds for it). */
export function toAggregation(store: RecordStore<BoundHandle>, st: Float64Array, recordId: number): Aggregation {
  const monotonic = store.descriptor.monotonic;
  switch (store.aggregation) {
    case AggregationKind.SKETCH:
      return sketchView(st, store.params);
    case AggregationKind.EXPONENTIAL_HISTOGRAM:
      return exponentialHistogramView(st, store.params);
    case AggregationKind.EXACT:
      return { kind: 'exact', count: st[0], sum: st[1], min: st[2], max: st[3], values: takeExactValues(store, recordId) };
    case AggregationKind.SUM:
      return { kind: 'sum', sum: st[0], monotonic };
    case AggregationKind.PRECOMPUTED_SUM:
      return { kind: 'sum', sum: st[0], monotonic };
    case AggregationKind.LAST_VALUE:
      return { kind: 'lastValue', value: st[0] };
    case AggregationKind.MIN_MAX_SUM_COUNT:
      return { kind: 'minMaxSumCount', count: st[0], sum: st[1], min: st[2], max: st[3] };
    default: {
      const bucketCounts = Array.from(st.subarray(3));
      let count = 0;
      for (const c of bucketCounts) count += c;
      return {
        kind: 'histogram',
        count,
        sum: st[0],
        min: st[1],
        max: st[2],
        boundaries: Array.from(store.bounds),
        bucketCounts,
      };
    }
  }
}
