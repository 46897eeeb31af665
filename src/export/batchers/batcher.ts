// Batcher: turns the CheckpointSet of a collection into the export-ready CheckpointSet
// (the seed's Batcher). It decides two things:
//
//  * dimensionality: which attributes identify an exported series (all of them, or the
//    instrument's recommended keys); records that reduce to the same series are merged;
//  * temporality: cumulative (what a collection gives) or delta (differences from the
//    previous collection this batcher processed).
//
// Cumulative with full dimensionality is the identity: records pass through untouched
// and no state is kept. Every other combination goes through per-series state:
//
//  1. Series: records are keyed by (instrument identity, encoded labels). Each series
//     remembers its previous cumulative checkpoint, the record's start time and the end
//     time of the collection that saw it, and yields a delta: the difference, or, for a
//     new or reset series, its whole cumulative value (start time = the record's start).
//     A reset is a new seriesId or record start time (the record was reclaimed and
//     recreated) or a cumulative value that went down (see isReset).
//  2. Groups: each series belongs to one group (itself, or its recommended-key subset).
//     The deltas of a group's changed series are merged (mergeOrdered).
//  3. Output: DELTA emits each group that changed, with its merged delta. CUMULATIVE
//     keeps a running total per group (previous total + merged delta), so a grouped
//     total never goes down when one of its records is reclaimed; its min and max are
//     the min/max over the group's total and its members' cumulative min/max (exact).
//
// State for series and groups not seen for `maxIdleCollections` collections is dropped,
// so memory follows the live series. A series that comes back after that (an observable
// series not observed for that long) is treated as new.
import type { Attributes } from '@opentelemetry/api';
import type { Descriptor, InstrumentationScope } from '../../sdk/descriptor';
import { Aggregation, CheckpointRecord, CheckpointSet, HistogramAggregation, MinMaxSumCountAggregation } from '../checkpoint-set';
import { defaultLabelEncoder, encodedLabels, LabelEncoder } from '../label-encoder';
import {
  AggregationTemporality,
  AggregationTemporalitySelector,
  TemporalityPreference,
  temporalitySelector,
} from '../temporality';
import { BATCHABLE_KINDS, deltaOf, emptyLike, hasMinMax, isNonZeroDelta, isReset, mergeOrdered, Ordered, withMinMax } from './merge';
import { warnLimited } from '../../sdk/diag';

/** Options shared by every batcher. */
export interface BatcherOptions {
  /** Output temporality, one value or per instrument kind. Default CUMULATIVE. */
  temporality?: TemporalityPreference;
  /** Encoding used for series keys (use the exporter's, so labels are encoded once). Default {@link defaultLabelEncoder}. */
  labelEncoder?: LabelEncoder;
  /** Drop the state of series not seen for this many collections. Default 10, at least 1. */
  maxIdleCollections?: number;
}

class SeriesState {
  /** Cumulative at the last collection that saw this series. */
  prev: Aggregation | undefined = undefined;
  prevStart = 0;
  prevEnd = 0;
  prevSeriesId = 0;
  seenAt = 0;
  // This collection.
  stamp = 0;
  cur!: Aggregation;
  curStart = 0;
  curEnd = 0;
  curUpdated = false;
  curSeriesId = 0;
  order = 0;
  constructor(public group: GroupState) {}
}

class GroupState {
  seenAt = 0;
  dead = false;
  // This collection.
  stamp = 0;
  acc: Ordered | undefined = undefined;
  accStart = Infinity;
  changed = false;
  memberStart = Infinity;
  memberMin = Infinity;
  memberMax = -Infinity;
  endTime = 0;
  last: Ordered | undefined = undefined;
  /** The seriesId of the latest member (the output id of a full-dimensionality group). */
  lastSeriesId = 0;
  // Cumulative output.
  total: Aggregation | undefined = undefined;
  totalStart = 0;
  constructor(
    /** Output seriesId of a reduced group (negative, batcher-local), or 0: use the member's. */
    readonly id: number,
    readonly key: string,
    readonly attributes: Attributes,
    readonly descriptor: Descriptor,
    readonly scope: InstrumentationScope,
    readonly temporality: AggregationTemporality,
  ) {}
}

class InstrumentState {
  readonly series = new Map<string, SeriesState>();
  readonly groups = new Map<string, GroupState>();
}

const scopeKeys = new WeakMap<InstrumentationScope, WeakMap<Descriptor, string>>();

/** The identity of an instrument, as the provider defines it (scope, name, kind, unit, value type, description). */
function instrumentKey(d: Descriptor, scope: InstrumentationScope): string {
  let byDescriptor = scopeKeys.get(scope);
  if (byDescriptor === undefined) scopeKeys.set(scope, (byDescriptor = new WeakMap()));
  let k = byDescriptor.get(d);
  if (k === undefined) {
    k = `${scope.name}\0${scope.version ?? ''}\0${scope.schemaUrl ?? ''}\0${d.name.toLowerCase()}\0${d.kind}\0${d.unit}\0${d.valueType}\0${d.description}`;
    byDescriptor.set(d, k);
  }
  return k;
}

/** The attributes of `attrs` whose keys are in `keys` (in `keys` order), frozen. */
export function reduceAttributes(attrs: Attributes, keys: readonly string[]): Attributes {
  const out: Attributes = {};
  for (const k of keys) {
    if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: false, configurable: false });
  }
  return Object.freeze(out);
}

/**
 * Base of the batchers: applies temporality and merges records that reduce to the same
 * series. Subclasses choose the dimensionality with {@link Batcher.keysFor}.
 *
 * A batcher is stateful (delta and grouped cumulative output need the previous
 * collection) and belongs to one reader: give each controller its own.
 */
export abstract class Batcher {
  /** The encoding of series keys. */
  readonly labelEncoder: LabelEncoder;
  /** Collections after which unseen series state is dropped. */
  readonly maxIdleCollections: number;
  private readonly selectTemporality: AggregationTemporalitySelector;
  private readonly instruments = new Map<string, InstrumentState>();
  private collections = 0;
  private groupIds = 0;

  /** @param options temporality, label encoder and state retention. */
  constructor(options: BatcherOptions = {}) {
    this.labelEncoder = options.labelEncoder ?? defaultLabelEncoder;
    this.selectTemporality = temporalitySelector(options.temporality);
    const idle = options.maxIdleCollections;
    this.maxIdleCollections = typeof idle === 'number' && idle >= 1 ? Math.floor(idle) : 10;
  }

  /**
   * The attribute keys that identify a series of instrument `descriptor`, or undefined
   * to keep every attribute (full dimensionality).
   */
  protected abstract keysFor(descriptor: Descriptor): readonly string[] | undefined;

  /** The output temporality for records of instrument `descriptor`. */
  temporalityFor(descriptor: Descriptor): AggregationTemporality {
    return this.selectTemporality(descriptor.kind);
  }

  /** How many series and group states are held (for monitoring and tests). */
  get stateSize(): { series: number; groups: number } {
    let series = 0;
    let groups = 0;
    for (const i of this.instruments.values()) {
      series += i.series.size;
      groups += i.groups.size;
    }
    return { series, groups };
  }

  /**
   * Turns one collection into the export-ready set. Collections must be passed in
   * order, each once. The returned set has the same `time` and `epoch`; its records are
   * in the order of their first input record. Records that pass through unchanged are
   * the input objects; every other output object is new (inputs are never mutated).
   *
   * Output `seriesId`s: a full-dimensionality series keeps its record's id; a grouped
   * series gets a negative id of this batcher's, stable while its state lives.
   * Output `updated`: true for every delta point; for a cumulative group, whether a
   * member changed. Delta points omit series that did not change (not updated and a
   * zero delta); a delta histogram or minMaxSumCount may have `hasMinMax: false`.
   */
  process(set: CheckpointSet): CheckpointSet {
    const n = ++this.collections;
    const out: (CheckpointRecord | GroupState)[] = [];
    const touched: SeriesState[] = [];
    const records = set.records;
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      const temporality = this.selectTemporality(r.descriptor.kind);
      const keys = this.keysFor(r.descriptor);
      if (temporality === AggregationTemporality.CUMULATIVE && keys === undefined) {
        out.push(r);
        continue;
      }
      if (!BATCHABLE_KINDS.has(r.aggregation.kind)) {
        warnLimited(`batcher-kind:${r.descriptor.name}`, `${r.descriptor.name}: ${String(r.aggregation.kind)} aggregations are exported as collected (no grouping, cumulative)`);
        out.push(r);
        continue;
      }
      const instKey = instrumentKey(r.descriptor, r.scope);
      let inst = this.instruments.get(instKey);
      if (inst === undefined) this.instruments.set(instKey, (inst = new InstrumentState()));
      const enc = encodedLabels(r.attributes, this.labelEncoder);
      let s = inst.series.get(enc);
      if (s === undefined) {
        s = new SeriesState(this.groupFor(inst, enc, r, keys, temporality));
        inst.series.set(enc, s);
      } else if (s.group.dead) {
        s.group = this.groupFor(inst, enc, r, keys, temporality);
      }
      if (s.stamp !== n) {
        s.stamp = n;
        s.cur = r.aggregation;
        s.curStart = r.startTime;
        s.curEnd = r.endTime;
        s.curUpdated = r.updated;
        s.curSeriesId = r.seriesId;
        s.order = i;
        touched.push(s);
        const g = s.group;
        if (g.stamp !== n) {
          g.stamp = n;
          g.acc = undefined;
          g.accStart = Infinity;
          g.changed = false;
          g.memberStart = Infinity;
          g.memberMin = Infinity;
          g.memberMax = -Infinity;
          g.last = undefined;
          out.push(g);
        }
      } else {
        // Two records whose labels encode alike (a non-injective exporter encoding):
        // one series, their cumulative states merged.
        try {
          s.cur = mergeOrdered({ aggregation: s.cur, order: s.order }, { aggregation: r.aggregation, order: i }).aggregation;
        } catch {
          continue; // different layouts: keep the first
        }
        s.curStart = Math.min(s.curStart, r.startTime);
        s.curUpdated ||= r.updated;
        s.order = i;
      }
    }

    for (const s of touched) this.advance(s, n);

    const result: CheckpointRecord[] = [];
    for (const x of out) {
      if (x instanceof GroupState) {
        const r = this.emit(x);
        if (r !== undefined) result.push(r);
      } else {
        result.push(x);
      }
    }
    this.sweep(n);
    return new CheckpointSet(result, set.time, set.epoch);
  }

  private groupFor(
    inst: InstrumentState,
    enc: string,
    r: CheckpointRecord,
    keys: readonly string[] | undefined,
    temporality: AggregationTemporality,
  ): GroupState {
    let attributes = r.attributes;
    let key = enc;
    if (keys !== undefined) {
      attributes = reduceAttributes(r.attributes, keys);
      key = encodedLabels(attributes, this.labelEncoder);
    }
    let g = inst.groups.get(key);
    if (g === undefined || g.dead) {
      g = new GroupState(keys === undefined ? 0 : --this.groupIds, key, attributes, r.descriptor, r.scope, temporality);
      inst.groups.set(key, g);
    }
    return g;
  }

  /** Computes the series' delta, commits its cumulative state, and feeds its group. */
  private advance(s: SeriesState, n: number): void {
    const cur = s.cur;
    const prev = s.prev;
    const fresh = prev === undefined || s.curSeriesId !== s.prevSeriesId || s.curStart !== s.prevStart || isReset(prev, cur);
    let delta: Aggregation;
    let start: number;
    let changed: boolean;
    if (fresh) {
      delta = cur;
      start = s.curStart;
      changed = s.curUpdated || isNonZeroDelta(cur);
    } else {
      delta = deltaOf(prev, cur);
      start = s.prevEnd;
      changed = s.curUpdated || isNonZeroDelta(delta) || (cur.kind === 'lastValue' && prev.kind === 'lastValue' && !Object.is(prev.value, cur.value));
    }
    s.prev = cur;
    s.prevStart = s.curStart;
    s.prevEnd = s.curEnd;
    s.prevSeriesId = s.curSeriesId;
    s.seenAt = n;

    const g = s.group;
    g.seenAt = n;
    g.endTime = Math.max(g.endTime, s.curEnd);
    if (s.curStart < g.memberStart) g.memberStart = s.curStart;
    if ((cur.kind === 'histogram' || cur.kind === 'minMaxSumCount') && hasMinMax(cur)) {
      if (cur.min < g.memberMin) g.memberMin = cur.min;
      if (cur.max > g.memberMax) g.memberMax = cur.max;
    }
    g.last = { aggregation: cur, order: s.order };
    g.lastSeriesId = s.curSeriesId;
    if (!changed) return;
    const d: Ordered = { aggregation: delta, order: s.order };
    if (g.acc === undefined) g.acc = d;
    else {
      try {
        g.acc = mergeOrdered(g.acc, d);
      } catch {
        return; // a member with another layout (cannot happen within one instrument)
      }
    }
    if (start < g.accStart) g.accStart = start;
    g.changed = true;
  }

  private emit(g: GroupState): CheckpointRecord | undefined {
    if (g.temporality === AggregationTemporality.DELTA) {
      if (!g.changed || g.acc === undefined) return undefined;
      return {
        seriesId: g.id !== 0 ? g.id : g.lastSeriesId,
        descriptor: g.descriptor,
        scope: g.scope,
        attributes: g.attributes,
        aggregation: g.acc.aggregation,
        startTime: Math.min(g.accStart, g.endTime),
        endTime: g.endTime,
        updated: true,
      };
    }
    let total = g.total;
    const acc = g.acc?.aggregation;
    if (total === undefined || (acc !== undefined && acc.kind !== total.kind)) {
      total = acc ?? emptyLike(g.last!.aggregation);
      if (total.kind === 'lastValue' && acc === undefined) total = g.last!.aggregation;
      g.totalStart = g.memberStart;
    } else if (acc !== undefined) {
      try {
        total = total.kind === 'lastValue' ? acc : mergeOrdered({ aggregation: total, order: 0 }, { aggregation: acc, order: 1 }).aggregation;
      } catch {
        total = acc;
        g.totalStart = g.memberStart;
      }
    }
    if (total.kind === 'histogram' || total.kind === 'minMaxSumCount') {
      // Exact: every value of the group's life is in a present member's cumulative
      // min/max or in the previous total's.
      const prevTotal = g.total as (HistogramAggregation | MinMaxSumCountAggregation) | undefined;
      const pm = prevTotal !== undefined && prevTotal.kind === total.kind ? prevTotal : undefined;
      total = withMinMax(total, Math.min(pm?.min ?? Infinity, g.memberMin), Math.max(pm?.max ?? -Infinity, g.memberMax));
    }
    g.total = total;
    return {
      seriesId: g.id !== 0 ? g.id : g.lastSeriesId,
      descriptor: g.descriptor,
      scope: g.scope,
      attributes: g.attributes,
      aggregation: total,
      startTime: Math.min(g.totalStart, g.endTime),
      endTime: g.endTime,
      updated: g.changed,
    };
  }

  private sweep(n: number): void {
    const limit = n - this.maxIdleCollections;
    for (const [k, inst] of this.instruments) {
      for (const [key, s] of inst.series) if (s.seenAt <= limit) inst.series.delete(key);
      for (const [key, g] of inst.groups) {
        if (g.seenAt <= limit) {
          g.dead = true;
          inst.groups.delete(key);
        }
      }
      if (inst.series.size === 0 && inst.groups.size === 0) this.instruments.delete(k);
    }
  }
}
