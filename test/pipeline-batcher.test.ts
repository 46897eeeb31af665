// Batchers: defaultkeys grouping, ungrouped identity, delta temporality (against
// independent reference totals, with random updates and real reclamation), resets,
// bounded state, and the encode-once property of label encoders.
import { describe, expect, it } from 'vitest';
import type { Attributes, MetricOptions } from '@opentelemetry/api';
import {
  AggregationTemporality,
  CheckpointSet,
  DefaultKeysBatcher,
  DeltaTemporalitySelector,
  InstrumentKind,
  MeterProvider,
  PullController,
  UngroupedBatcher,
  defaultLabelEncoder,
  type Aggregation,
  type CheckpointRecord,
  type Descriptor,
  type LabelEncoder,
  type MetricProducer,
  type MetricReader,
} from '../src';
import { hasMinMax } from '../src/export/batchers';
import { attrKey, histOf, prng, randInt, RefHistogram, sumOf } from './helpers';

const withAdvice = (attributes: string[], extra: MetricOptions = {}): MetricOptions =>
  ({ ...extra, advice: { ...(extra.advice ?? {}), attributes } }) as MetricOptions;

/** A reader driven by hand, whose collections go through a batcher. */
class BatchingReader implements MetricReader {
  producer!: MetricProducer;
  constructor(readonly batcher: UngroupedBatcher | DefaultKeysBatcher) {}
  setMetricProducer(p: MetricProducer): void {
    this.producer = p;
  }
  async collect(): Promise<CheckpointSet> {
    return this.batcher.process(await this.producer.collect());
  }
}

function only(set: CheckpointSet, name: string): CheckpointRecord[] {
  return set.records.filter((r) => r.descriptor.name === name);
}

const ROUTES = ['/a', '/b', '/c'];
const METHODS = ['GET', 'POST'];
const STATUSES = [200, 404, 500];

describe('defaultkeys batcher', () => {
  it('groups by the recommended keys: sums exactly, per collection, cumulative (seeded)', async () => {
    const reader = new BatchingReader(new DefaultKeysBatcher());
    // Without reclamation, so the ungrouped 'all' keeps every series (reclamation is
    // covered below and in the delta tests).
    const p = new MeterProvider({ readers: [reader], reclamation: false });
    const m = p.getMeter('dk');
    const c = m.createCounter('req', withAdvice(['route']));
    const all = m.createCounter('all'); // no advice: every key kept
    const none = m.createUpDownCounter('none', withAdvice([])); // empty advice: one series
    const rand = prng(1234);
    const byRoute = new Map<string, number>();
    const byFull = new Map<string, number>();
    let total = 0;
    for (let round = 0; round < 20; round++) {
      const n = randInt(rand, 0, 60);
      for (let i = 0; i < n; i++) {
        const attrs = { route: ROUTES[randInt(rand, 0, 2)], method: METHODS[randInt(rand, 0, 1)], status: STATUSES[randInt(rand, 0, 2)] };
        const v = randInt(rand, 1, 9);
        c.add(v, attrs);
        all.add(v, attrs);
        none.add(v - 5, attrs);
        total += v - 5;
        byRoute.set(attrs.route, (byRoute.get(attrs.route) ?? 0) + v);
        byFull.set(attrKey(attrs), (byFull.get(attrKey(attrs)) ?? 0) + v);
      }
      const set = await reader.collect();
      const req = only(set, 'req');
      expect(req.length).toBe(byRoute.size);
      for (const r of req) {
        expect(Object.keys(r.attributes)).toEqual(['route']);
        expect(sumOf(r)).toBe(byRoute.get(r.attributes.route as string));
      }
      const allRecs = only(set, 'all');
      expect(allRecs.length).toBe(byFull.size);
      for (const r of allRecs) expect(sumOf(r)).toBe(byFull.get(attrKey(r.attributes)));
      const noneRecs = only(set, 'none');
      if (byFull.size > 0) {
        expect(noneRecs.length).toBe(1);
        expect(noneRecs[0].attributes).toEqual({});
        expect(sumOf(noneRecs[0])).toBe(total);
      }
    }
  });

  it('histograms: buckets, counts and sums add; min of mins, max of maxes', async () => {
    const reader = new BatchingReader(new DefaultKeysBatcher());
    const p = new MeterProvider({ readers: [reader] });
    const bounds = [1, 10, 100];
    const h = p.getMeter('dk').createHistogram('lat', withAdvice(['route'], { advice: { explicitBucketBoundaries: bounds } }));
    const rand = prng(99);
    const refs = new Map<string, RefHistogram>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 200; i++) {
        const route = ROUTES[randInt(rand, 0, 2)];
        const v = randInt(rand, 0, 300);
        h.record(v, { route, method: METHODS[randInt(rand, 0, 1)] });
        if (!refs.has(route)) refs.set(route, new RefHistogram(bounds));
        refs.get(route)!.record(v);
      }
      const recs = only(await reader.collect(), 'lat');
      expect(recs.length).toBe(refs.size);
      for (const r of recs) {
        const ref = refs.get(r.attributes.route as string)!;
        const a = histOf(r);
        expect(a.bucketCounts).toEqual(ref.buckets);
        expect([a.count, a.sum, a.min, a.max]).toEqual([ref.count, ref.sum, ref.min, ref.max]);
      }
    }
  });

  it('last values: the latest updated record in collection order wins, else the previous value stays', () => {
    const b = new DefaultKeysBatcher();
    const d = descriptor('g', InstrumentKind.GAUGE, ['host']);
    const lv = (value: number): Aggregation => ({ kind: 'lastValue', value });
    const s1 = b.process(set(1, [rec(d, 1, { host: 'h', cpu: 0 }, lv(5), true), rec(d, 2, { host: 'h', cpu: 1 }, lv(7), true), rec(d, 3, { host: 'h', cpu: 2 }, lv(6), false)]));
    expect(s1.records.map((r) => r.aggregation)).toEqual([lv(7)]);
    const s2 = b.process(set(2, [rec(d, 1, { host: 'h', cpu: 0 }, lv(3), true), rec(d, 2, { host: 'h', cpu: 1 }, lv(7), false), rec(d, 3, { host: 'h', cpu: 2 }, lv(6), false)]));
    expect(s2.records.map((r) => r.aggregation)).toEqual([lv(3)]);
    const s3 = b.process(set(3, [rec(d, 1, { host: 'h', cpu: 0 }, lv(3), false), rec(d, 2, { host: 'h', cpu: 1 }, lv(7), false)]));
    expect(s3.records.map((r) => [r.aggregation, r.updated])).toEqual([[lv(3), false]]);
  });

  it('a grouped cumulative total never goes down when a member record is reclaimed', async () => {
    const reader = new BatchingReader(new DefaultKeysBatcher());
    const p = new MeterProvider({ readers: [reader] });
    const c = p.getMeter('dk').createCounter('c', withAdvice(['route']));
    c.add(10, { route: '/a', id: 'once' });
    c.add(1, { route: '/a', id: 'busy' });
    let last = 0;
    const seriesIds = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const r = only(await reader.collect(), 'c');
      expect(r.length).toBe(1);
      seriesIds.add(r[0].seriesId);
      expect(sumOf(r[0])).toBe(11 + i);
      expect(sumOf(r[0])).toBeGreaterThanOrEqual(last);
      last = sumOf(r[0]);
      c.add(1, { route: '/a', id: 'busy' }); // 'once' goes idle and is reclaimed
    }
    expect(seriesIds.size).toBe(1); // one stable (batcher-local) id for the group
    c.add(5, { route: '/a', id: 'once' }); // comes back: a new record, only the 5 is new
    expect(sumOf(only(await reader.collect(), 'c')[0])).toBe(last + 1 + 5);
  });
});

describe('ungrouped batcher', () => {
  it('cumulative: every series of the collection, the very same records', async () => {
    const b = new UngroupedBatcher();
    const p = new MeterProvider();
    const c = p.getMeter('u').createCounter('c', withAdvice(['route']));
    const rand = prng(5);
    const keys = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const attrs = { route: ROUTES[randInt(rand, 0, 2)], method: METHODS[randInt(rand, 0, 1)], status: STATUSES[randInt(rand, 0, 2)] };
      keys.add(attrKey(attrs));
      c.add(1, attrs);
    }
    const raw = await p.collect();
    const out = b.process(raw);
    expect(out.records.length).toBe(keys.size);
    expect(out.records.every((r, i) => r === raw.records[i])).toBe(true);
    expect(out.time).toBe(raw.time);
    expect(out.epoch).toBe(raw.epoch);
    expect(b.stateSize).toEqual({ series: 0, groups: 0 }); // identity keeps no state
  });
});

describe('delta temporality', () => {
  for (const kind of ['ungrouped', 'defaultkeys'] as const) {
    it(`${kind}: the deltas of many collections sum to the cumulative totals, through reclamation (seeded)`, async () => {
      const batcher = kind === 'ungrouped'
        ? new UngroupedBatcher({ temporality: AggregationTemporality.DELTA })
        : new DefaultKeysBatcher({ temporality: AggregationTemporality.DELTA });
      const reader = new BatchingReader(batcher);
      const p = new MeterProvider({ readers: [reader], reclaimIdleMillis: 1 }); // expiry on
      const m = p.getMeter('delta');
      const bounds = [5, 50];
      const c = m.createCounter('c', withAdvice(['route']));
      const h = m.createHistogram('h', withAdvice(['route'], { advice: { explicitBucketBoundaries: bounds } }));
      const groupOf = (a: Attributes): string => (kind === 'ungrouped' ? attrKey(a) : attrKey({ route: a.route }));
      const rand = prng(kind === 'ungrouped' ? 77 : 78);
      const refSum = new Map<string, number>();
      const refHist = new Map<string, RefHistogram>();
      const gotSum = new Map<string, number>();
      const gotBuckets = new Map<string, number[]>();
      const gotCount = new Map<string, number>();
      const lastEnd = new Map<string, number>();
      let resets = 0;
      for (let round = 0; round < 60; round++) {
        // Some rounds touch few label sets, so idle ones are reclaimed and come back.
        const n = round % 7 === 3 ? 0 : randInt(rand, 0, 25);
        const width = round % 10 < 5 ? 1 : 12;
        for (let i = 0; i < n; i++) {
          const attrs = { route: ROUTES[randInt(rand, 0, 2)], id: randInt(rand, 0, width) };
          const v = randInt(rand, 1, 9);
          const x = randInt(rand, 0, 80);
          c.add(v, attrs);
          h.record(x, attrs);
          const g = groupOf(attrs);
          refSum.set(g, (refSum.get(g) ?? 0) + v);
          if (!refHist.has(g)) refHist.set(g, new RefHistogram(bounds));
          refHist.get(g)!.record(x);
        }
        await new Promise((r) => setTimeout(r, 2)); // idle series: idle longer than reclaimIdleMillis
        const out = await reader.collect();
        for (const r of out.records) {
          expect(r.updated).toBe(true);
          expect(r.startTime).toBeLessThanOrEqual(r.endTime);
          const g = groupOf(r.attributes);
          const k = `${r.descriptor.name} ${g}`;
          const prevEnd = lastEnd.get(k);
          if (prevEnd !== undefined && r.startTime !== prevEnd) resets++;
          if (prevEnd !== undefined) expect(r.startTime).toBeGreaterThanOrEqual(prevEnd);
          lastEnd.set(k, r.endTime);
          if (r.descriptor.name === 'c') {
            expect(sumOf(r)).toBeGreaterThan(0); // unchanged series are omitted
            gotSum.set(g, (gotSum.get(g) ?? 0) + sumOf(r));
          } else {
            const a = histOf(r);
            expect(a.count).toBeGreaterThan(0);
            gotCount.set(g, (gotCount.get(g) ?? 0) + a.count);
            const acc = gotBuckets.get(g) ?? [0, 0, 0];
            a.bucketCounts.forEach((x, i) => (acc[i] += x));
            gotBuckets.set(g, acc);
          }
        }
        expect(gotSum).toEqual(refSum);
        for (const [g, ref] of refHist) {
          expect(gotBuckets.get(g)).toEqual(ref.buckets);
          expect(gotCount.get(g)).toBe(ref.count);
        }
      }
      if (kind === 'ungrouped') expect(resets).toBeGreaterThan(0); // reclaimed series did come back
      // State follows the live series: idle ones were dropped.
      expect(batcher.stateSize.series).toBeLessThan(2 * 3 * 13);
    });
  }

  it('a gauge is reported when it was set, with its value', async () => {
    const reader = new BatchingReader(new UngroupedBatcher({ temporality: DeltaTemporalitySelector }));
    const p = new MeterProvider({ readers: [reader] });
    const g = p.getMeter('d').createGauge('g');
    g.record(3, { a: 1 });
    expect(only(await reader.collect(), 'g').map((r) => r.aggregation)).toEqual([{ kind: 'lastValue', value: 3 }]);
    expect(only(await reader.collect(), 'g')).toEqual([]);
    g.record(4, { a: 1 });
    expect(only(await reader.collect(), 'g').map((r) => r.aggregation)).toEqual([{ kind: 'lastValue', value: 4 }]);
  });

  it('the selector decides per kind: up-down counters stay cumulative under DeltaTemporalitySelector', async () => {
    const reader = new BatchingReader(new UngroupedBatcher({ temporality: DeltaTemporalitySelector }));
    const p = new MeterProvider({ readers: [reader] });
    const m = p.getMeter('d');
    const c = m.createCounter('c');
    const u = m.createUpDownCounter('u');
    c.add(2);
    u.add(2);
    await reader.collect();
    c.add(3);
    u.add(3);
    const out = await reader.collect();
    expect(sumOf(only(out, 'c')[0])).toBe(3);
    expect(sumOf(only(out, 'u')[0])).toBe(5);
  });

  it('observable counters: deltas of the observed totals', async () => {
    const reader = new BatchingReader(new UngroupedBatcher({ temporality: AggregationTemporality.DELTA }));
    const p = new MeterProvider({ readers: [reader] });
    let total = 0;
    p.getMeter('d').createObservableCounter('oc').addCallback((r) => r.observe(total, { k: 'v' }));
    const got: number[] = [];
    for (const t of [5, 5, 12, 30]) {
      total = t;
      got.push(...only(await reader.collect(), 'oc').map(sumOf));
    }
    expect(got).toEqual([5, 0, 7, 18]); // observed each time, so reported (0 included)
  });
});

// Synthetic collections, for the cases a provider does not produce on demand.
const SCOPE = { name: 'synthetic' };
function descriptor(name: string, kind: InstrumentKind, adviceAttributes?: string[]): Descriptor {
  return Object.freeze({ name, description: '', unit: '', kind, valueType: 1, monotonic: kind === InstrumentKind.COUNTER || kind === InstrumentKind.OBSERVABLE_COUNTER, adviceAttributes });
}
let clock = 1_000;
function rec(d: Descriptor, seriesId: number, attributes: Attributes, aggregation: Aggregation, updated = true, startTime = 1_000): CheckpointRecord {
  return { seriesId, descriptor: d, scope: SCOPE, attributes, aggregation, startTime, endTime: clock, updated };
}
function set(epoch: number, records: CheckpointRecord[]): CheckpointSet {
  return new CheckpointSet(records, clock, epoch);
}
const attrsOf = new Map<string, Attributes>();
/** The same attribute object every time, as the provider gives. */
function A(key: string): Attributes {
  let a = attrsOf.get(key);
  if (a === undefined) attrsOf.set(key, (a = { key }));
  return a;
}

describe('resets and state', () => {
  const d = descriptor('c', InstrumentKind.COUNTER);
  const sum = (s: number): Aggregation => ({ kind: 'sum', sum: s, monotonic: true });

  it('a recreated record (new seriesId) starts a new delta series from its own start', () => {
    const b = new UngroupedBatcher({ temporality: AggregationTemporality.DELTA });
    clock = 2_000;
    expect(b.process(set(1, [rec(d, 1, A('x'), sum(10))])).records[0]).toMatchObject({ aggregation: sum(10), startTime: 1_000, endTime: 2_000 });
    clock = 3_000;
    expect(b.process(set(2, [rec(d, 1, A('x'), sum(14))])).records[0]).toMatchObject({ aggregation: sum(4), startTime: 2_000, endTime: 3_000 });
    clock = 4_000; // reclaimed, recreated at 3500 with 3 recorded; its cumulative is higher than 0 but below 14
    expect(b.process(set(3, [rec(d, 7, A('x'), sum(3), true, 3_500)])).records[0]).toMatchObject({ seriesId: 7, aggregation: sum(3), startTime: 3_500, endTime: 4_000 });
    clock = 5_000; // recreated again with a HIGHER value than before, same start: the new id tells
    expect(b.process(set(4, [rec(d, 8, A('x'), sum(50), true, 3_500)])).records[0]).toMatchObject({ aggregation: sum(50), startTime: 3_500 });
  });

  it('a monotonic total that went down is a reset even with the same id and start', () => {
    const b = new UngroupedBatcher({ temporality: AggregationTemporality.DELTA });
    clock = 2_000;
    b.process(set(1, [rec(d, 1, A('y'), sum(10))]));
    clock = 3_000;
    expect(b.process(set(2, [rec(d, 1, A('y'), sum(4))])).records[0]).toMatchObject({ aggregation: sum(4), startTime: 1_000 });
    clock = 4_000;
    expect(b.process(set(3, [rec(d, 1, A('y'), sum(6))])).records[0]).toMatchObject({ aggregation: sum(2), startTime: 3_000 });
  });

  it('delta histograms report min/max only when derivable (hasMinMax)', () => {
    const b = new UngroupedBatcher({ temporality: AggregationTemporality.DELTA });
    const hd = descriptor('h', InstrumentKind.HISTOGRAM);
    const h = (bucketCounts: number[], sum: number, min: number, max: number): Aggregation =>
      ({ kind: 'histogram', count: bucketCounts.reduce((x, y) => x + y, 0), sum, min, max, boundaries: [10], bucketCounts });
    const first = b.process(set(1, [rec(hd, 1, A('h'), h([1, 1], 25, 5, 20))])).records[0].aggregation;
    expect(first).toMatchObject({ min: 5, max: 20 });
    expect(hasMinMax(first)).toBe(true);
    const mid = b.process(set(2, [rec(hd, 1, A('h'), h([2, 1], 32, 5, 20))])).records[0].aggregation;
    expect(mid).toMatchObject({ count: 1, sum: 7, bucketCounts: [1, 0], hasMinMax: false, min: Infinity, max: -Infinity });
    const ext = b.process(set(3, [rec(hd, 1, A('h'), h([3, 2], 32 + 1 + 99, 1, 99))])).records[0].aggregation;
    expect(ext).toMatchObject({ count: 2, min: 1, max: 99 });
    expect(hasMinMax(ext)).toBe(true);
  });

  it('state of series not seen for maxIdleCollections collections is dropped', () => {
    const b = new UngroupedBatcher({ temporality: AggregationTemporality.DELTA, maxIdleCollections: 3 });
    const many = Array.from({ length: 100 }, (_, i) => rec(d, 100 + i, A(`s${i}`), sum(i + 1)));
    b.process(set(1, many));
    expect(b.stateSize).toEqual({ series: 100, groups: 100 });
    for (let e = 2; e <= 3; e++) b.process(set(e, [rec(d, 100, A('s0'), sum(1), false)]));
    expect(b.stateSize.series).toBe(100);
    b.process(set(4, [rec(d, 100, A('s0'), sum(1), false)]));
    expect(b.stateSize).toEqual({ series: 1, groups: 1 });
    b.process(set(5, []));
    b.process(set(6, []));
    b.process(set(7, []));
    expect(b.stateSize).toEqual({ series: 0, groups: 0 });
  });

  it('aggregation kinds a batcher does not know pass through untouched', () => {
    const b = new DefaultKeysBatcher({ temporality: AggregationTemporality.DELTA });
    const hd = descriptor('x', InstrumentKind.HISTOGRAM, []);
    const odd = { kind: 'exponentialHistogram', count: 1 } as unknown as Aggregation;
    const r = rec(hd, 1, A('odd'), odd);
    expect(b.process(set(1, [r])).records).toEqual([r]);
    expect(b.process(set(2, [r])).records[0]).toBe(r);
  });

  it('two records whose labels encode alike (a lossy encoder) are one series, merged', () => {
    const lossy: LabelEncoder = { id: 'test.lossy', encode: (a) => String(a.key).toLowerCase() };
    const b = new UngroupedBatcher({ temporality: AggregationTemporality.DELTA, labelEncoder: lossy });
    const out = b.process(set(1, [rec(d, 1, { key: 'X' }, sum(2)), rec(d, 2, { key: 'x' }, sum(3))]));
    expect(out.records.map((r) => r.aggregation)).toEqual([sum(5)]);
  });
});

describe('label encoding happens once per series', () => {
  for (const temporality of [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]) {
    it(`${AggregationTemporality[temporality]}: the batcher and the exporter share the exporter's encoder`, async () => {
      let calls = 0;
      const counting: LabelEncoder = { id: `test.counting.${temporality}`, encode: (a) => (calls++, defaultLabelEncoder.encode(a)) };
      const pull = new PullController({ batcher: 'ungrouped', temporality, labelEncoder: counting });
      const p = new MeterProvider({ readers: [pull] });
      const c = p.getMeter('enc').createCounter('c');
      const handles = Array.from({ length: 50 }, (_, i) => c.bind({ i }));
      const K = 8;
      for (let k = 0; k < K; k++) {
        for (const h of handles) h.add(1);
        const set = await pull.collect();
        // What an exporter does: print every series' labels with its encoder.
        const printed = set.records.map((r) => encodedLabelsFor(r, counting));
        expect(printed.length).toBe(50);
      }
      expect(calls).toBe(50); // once per series for its life (<= once per series per collection)
      for (const h of handles) h.unbind();
    });
  }
});

import { encodedLabels } from '../src/export/label-encoder';
function encodedLabelsFor(r: CheckpointRecord, e: LabelEncoder): string {
  return encodedLabels(r.attributes, e);
}
