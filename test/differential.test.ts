// A seeded randomized differential test. Random operation sequences (create instruments of
// every kind, record with attribute sets drawn from a small pool so series repeat, change
// what observable callbacks report, collect, scrape) are applied identically, through
// @opentelemetry/api calls, to @opentelemetry/sdk-metrics' MeterProvider and to hotmeter's,
// both configured with the same random views (attribute filters, aggregation overrides,
// renames, several streams per instrument, cardinality limits) and the same readers
// (PeriodicExportingMetricReader + InMemoryMetricExporter, cumulative and delta, several at
// once). After each collection the exported points must agree, with the documented
// differences normalised as in otlp-sdk-parity.test.ts (shared code in helpers.ts).
//
// hotmeter also has a PrometheusExporter; after each step its exposition in text,
// OpenMetrics and protobuf must hold the same series with the same values, no
// (name, labels) twice, counters that never go down, no series that vanishes while its
// instrument lives, levels (up-down counters, gauges) kept across idle renders, and the
// values of an independent model of the recorded operations.
//
// HOTMETER_DIFF_SEED runs one seed; HOTMETER_DIFF_SEEDS=N runs seeds 1..N instead of the
// fixed list; HOTMETER_DIFF_OPS sets the operations per seed; HOTMETER_DIFF_TRACE=1 prints
// a failing seed's whole operation list (else its last 40 operations). A hunt:
//   HOTMETER_DIFF_SEEDS=300 HOTMETER_DIFF_OPS=150 npx vitest run test/differential.test.ts
import { ValueType, type Attributes, type Meter as ApiMeter, type MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  createAllowListAttributesProcessor,
  DataPointType,
  InMemoryMetricExporter,
  InstrumentType,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
  type AggregationOption,
  type ResourceMetrics,
  type ViewOptions,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_PROTOBUF_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PrometheusExporter } from '../src';

import {
  alignExponential,
  attrKey,
  checkKnownMinMax,
  compareSums,
  envInt,
  normalize,
  prng,
  randInt,
  RefHistogram,
  round,
  withoutMinMax,
} from './helpers';
import { canonical, decode, parseExposition, PROTOBUF_ACCEPT, type Sample, sampleKey, samplesOf, scrapeBody } from './prometheus-helpers';

/**
 * Seeds run by default; a seed that once found a bug stays in this list: 7, 9 and 19 (an
 * observable counter's overflow series kept only the last observation), 5 and 19 (a gauge
 * series merged from two records went back to an older value in the JavaScript writer).
 * 30: delta readers with expiry.
 */
const FIXED_SEEDS = [1, 2, 5, 7, 9, 12, 19, 30, 39];
const ONE_SEED = process.env.HOTMETER_DIFF_SEED;
const SEEDS = ONE_SEED !== undefined && ONE_SEED !== ''
  ? [envInt('HOTMETER_DIFF_SEED', 0)]
  : envInt('HOTMETER_DIFF_SEEDS', 0) > 0
    ? Array.from({ length: envInt('HOTMETER_DIFF_SEEDS', 0) }, (_, i) => i + 1)
    : FIXED_SEEDS;
const OPS = envInt('HOTMETER_DIFF_OPS', 150);
/** The share of operations followed by one of hotmeter's own API (HOTMETER_DIFF_HM_PERCENT). */
const HM_OPS = envInt('HOTMETER_DIFF_HM_PERCENT', 25) / 100;

type Rand = () => number;
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

type Kind = 'counter' | 'updown' | 'histogram' | 'gauge' | 'ocounter' | 'oupdown' | 'ogauge';
const KINDS: readonly Kind[] = ['counter', 'updown', 'histogram', 'gauge', 'ocounter', 'oupdown', 'ogauge'];

/** Units and the suffix they give a Prometheus name (annotations in braces give none). */
const UNIT_SUFFIX: Record<string, string> = { '': '', s: '_seconds', By: '_bytes', '{request}': '' };

/** Attribute sets: repeated, of several value types; {b: 1} and {b: '1'} are one Prometheus series. */
const ATTRS: readonly Attributes[] = [
  {},
  { a: 'x' },
  { a: 'y' },
  { a: 'x', b: 1 },
  { b: 1 },
  { b: '1' },
  { a: 'y', b: true },
  { s: 200 },
  { s: '200' },
  { a: 'x', b: 1.5 },
  { d: [1, 2] },
  { a: 'y', d: ['x', 'y'] },
];

/** Instrument names: meter 'a' gets a0..a5, meter 'b' b0..b1. */
const NAMES: readonly [string, string][] = [
  ['a', 'a0'], ['a', 'a1'], ['a', 'a2'], ['a', 'a3'], ['a', 'a4'], ['a', 'a5'], ['b', 'b0'], ['b', 'b1'],
];

/**
 * The view catalogue; a seed takes a random subset (no two entries name the same stream).
 * Aggregation overrides select their instrument kind: hotmeter applies an aggregation only
 * to the kind it fits (the kind's default, DROP, or a histogram aggregation on a histogram)
 * and warns and keeps the default otherwise, while sdk-metrics applies any (a histogram of
 * an observable gauge, the last value of a counter). The OpenTelemetry spec asks for the
 * warning and the view not applied where the result has no meaning (its example: an
 * asynchronous instrument with an explicit bucket histogram), so that is not compared.
 */
const VIEW_CATALOGUE: readonly ViewOptions[][] = [
  [{ instrumentName: 'a0', attributesProcessors: [createAllowListAttributesProcessor(['a'])] }],
  [{ instrumentName: 'a1', name: 'a1.renamed', description: 'renamed by a view' }],
  [{ instrumentName: 'a2', instrumentType: InstrumentType.HISTOGRAM, aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [0, 2, 4] } } }],
  [{ instrumentName: 'a3', instrumentType: InstrumentType.HISTOGRAM, aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 20 } } }],
  [{ instrumentName: 'a4', aggregationCardinalityLimit: 3 }],
  [
    { instrumentName: 'a5', name: 'a5.x', attributesProcessors: [createAllowListAttributesProcessor(['b'])] },
    { instrumentName: 'a5', name: 'a5.y' },
  ],
  [{ instrumentName: 'b0', instrumentType: InstrumentType.OBSERVABLE_GAUGE, aggregation: { type: AggregationType.LAST_VALUE } }],
  [{ instrumentName: 'b1', instrumentType: InstrumentType.UP_DOWN_COUNTER, aggregation: { type: AggregationType.SUM } }],
  [{ instrumentName: 'a2', instrumentType: InstrumentType.COUNTER, aggregation: { type: AggregationType.DROP } }],
];

/**
 * Streams of the catalogue where several observed attribute sets may share a series (a view
 * that keeps some attributes; the overflow series past a cardinality limit). For observable
 * counters and up-down counters such a series holds the sum of the observations, as the
 * OpenTelemetry spec aggregates them; sdk-metrics 2.x keeps only the last observation
 * there (its batchCumulate replaces the accumulation), so those points are checked against
 * the observations here instead of against sdk-metrics.
 */
const MERGING: readonly { stream: string; instrument: string; keys?: string[]; limit?: number }[] = [
  { stream: 'a0', instrument: 'a0', keys: ['a'] },
  { stream: 'a4', instrument: 'a4', limit: 3 },
  { stream: 'a5.x', instrument: 'a5', keys: ['b'] },
];
const OVERFLOW_KEY = attrKey({ 'otel.metric.overflow': true });

/**
 * Meters by key: name, version, schemaUrl. 'a' and 'b' have the instruments of NAMES; the
 * others get some of the same names (SCOPED_NAMES): one name in several scopes.
 */
const METERS: Record<string, [string, string?, { schemaUrl: string }?]> = {
  a: ['a'],
  b: ['b'],
  'a@2': ['a', '2'],
  'a+schema': ['a', undefined, { schemaUrl: 'https://example.com/schemas/1.0' }],
  c: ['c'],
};
// Open: scopes that differ only by schemaUrl are one Prometheus series (no
// otel_scope_schema_url label; @opentelemetry/exporter-prometheus writes one), so a histogram
// of each with other boundaries loses its finite buckets; 'a+schema' shares no name with 'a'.
const SCOPED_NAMES: readonly [string, string][] = [['a@2', 'a0'], ['a+schema', 'b0'], ['c', 'b0'], ['c', 'a0'], ['a@2', 'b1'], ['a+schema', 'b1']];

interface Spec {
  /** The key of the instrument in this test: its name in meters 'a' and 'b', meter/name in the others. */
  id: string;
  meter: string;
  name: string;
  kind: Kind;
  int: boolean;
  /** '' or a unit with its Prometheus name suffix (OpenTelemetry's Prometheus compatibility rules). */
  unit: string;
  boundaries?: number[];
}

/** What the test believes one series holds (cumulative). */
interface ModelSeries {
  sum: number;
  hist?: RefHistogram;
  last?: number;
}

interface Side {
  provider: ApiMeterProvider & { shutdown(): Promise<void>; forceFlush(): Promise<void> };
  readers: PeriodicExportingMetricReader[];
  exporters: InMemoryMetricExporter[];
  /** Per instrument name, every API object created for it (created again: the same instrument). */
  instruments: Map<string, { add?: (v: number, a: Attributes) => void; record?: (v: number, a: Attributes) => void; raw?: unknown }[]>;
}

/** hotmeter's synchronous instrument API beyond @opentelemetry/api (README "Bound handles, batches and removal"). */
interface HmSync {
  bind(a: Attributes): { add?: (v: number) => void; record?: (v: number) => void; unbind(): void };
  remove(a: Attributes): void;
  clear(): void;
}
interface HmMeter {
  recordBatch(a: Attributes, m: readonly (readonly [unknown, number])[]): void;
}

const resource = resourceFromAttributes({ 'service.name': 'differential' });

/** An exporter whose reader aggregates histograms as exponential histograms. */
class ExponentialExporter extends InMemoryMetricExporter {
  selectAggregation(type: InstrumentType): AggregationOption {
    return type === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 40 } } : { type: AggregationType.DEFAULT };
  }
}

/** Removes what only differs by a documented rule before comparing two exports. */
function dropEmpty(rm: ResourceMetrics): void {
  for (const sm of rm.scopeMetrics) sm.metrics = sm.metrics.filter((m) => m.dataPoints.length > 0);
  rm.scopeMetrics = rm.scopeMetrics.filter((sm) => sm.metrics.length > 0);
}

/**
 * Delta: hotmeter tells an interval's updates by a changed value (otlp-sdk-parity.test.ts),
 * so a series written without change in an interval (add(0), updates that cancel out, an
 * observation equal to the last) sends no point where sdk-metrics sends a zero delta or the
 * same last value. Drop those sdk-metrics points that hotmeter does not have, when they are
 * zero deltas (sums) or equal the value sent before (gauges).
 */
function dropUnchanged(sdk: ResourceMetrics, hm: ResourceMetrics, lastGauge: Map<string, number>): void {
  const have = new Set<string>();
  for (const sm of hm.scopeMetrics) for (const m of sm.metrics) for (const p of m.dataPoints) have.add(`${scopeKey(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`);
  for (const sm of sdk.scopeMetrics) {
    for (const m of sm.metrics) {
      (m as { dataPoints: unknown[] }).dataPoints = (m.dataPoints as { attributes: Attributes; value: unknown }[]).filter((p) => {
        const k = `${scopeKey(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`;
        if (have.has(k)) return true;
        if (m.dataPointType === DataPointType.SUM) return p.value !== 0;
        if (m.dataPointType === DataPointType.GAUGE) return lastGauge.get(k) !== p.value;
        return true;
      });
    }
  }
  for (const sm of sdk.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.dataPointType !== DataPointType.GAUGE) continue;
      for (const p of m.dataPoints) lastGauge.set(`${scopeKey(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`, p.value as number);
    }
  }
  dropEmpty(sdk);
}

/** The Prometheus label value of an attribute value (as the exporters print them). */
function labelValue(v: unknown): string {
  if (Array.isArray(v)) return JSON.stringify(v);
  return String(v);
}

function promLabels(meter: string, attrs: Attributes): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) out[k] = labelValue(v);
  const [name, version] = METERS[meter];
  out.otel_scope_name = name;
  if (version !== undefined) out.otel_scope_version = version;
  return out;
}

/** A scope's identity in an export. */
const scopeKey = (scope: { name: string; version?: string; schemaUrl?: string }): string => `${scope.name}@${scope.version ?? ''}+${scope.schemaUrl ?? ''}`;

const seriesKey = (s: Sample): string => sampleKey({ ...s, value: 0 });

async function runSeed(seed: number, ops: number): Promise<{ collections: number; renders: number }> {
  const rand = prng(seed);
  const views = VIEW_CATALOGUE.filter(() => rand() < 0.3).flat();
  const temporalities = pick(rand, [
    [AggregationTemporality.CUMULATIVE],
    [AggregationTemporality.DELTA],
    [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA],
    [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA],
  ]);
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  // Choices added later draw from a second stream, so the seeds above keep their sequences.
  const rand2 = prng(seed ^ 0x5bd1e995);
  // Some readers want exponential histograms (a reader's own aggregation).
  const exponentialReader = temporalities.map(() => rand2() < 0.25);
  // Delta readers only: sometimes with expiry (reclaimIdleMillis). A reclaimed series must
  // have delivered its last delta: the deltas still add up to sdk-metrics'.
  const reclaim = temporalities.every((t) => t === AggregationTemporality.DELTA) && rand2() < 0.5;
  const make = (hotmeter: boolean): Side => {
    const exporters = temporalities.map((t, i) => (exponentialReader[i] ? new ExponentialExporter(t) : new InMemoryMetricExporter(t)));
    const readers = exporters.map((exporter) => new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 }));
    const provider = hotmeter
      ? new MeterProvider({ resource, views, readers: [...readers, prometheus], ...(reclaim ? { reclaimIdleMillis: 1 } : {}) })
      : new SdkMeterProvider({ resource, views, readers });
    return { provider: provider as Side['provider'], readers, exporters, instruments: new Map() };
  };
  const sdk = make(false);
  const hm = make(true);
  const sides = [sdk, hm];
  const specs = new Map<string, Spec>();
  /** What the observable callbacks report now: instrument -> attribute index -> value. */
  const observed = new Map<string, Map<number, number>>();
  const model = new Map<string, Map<string, ModelSeries>>();
  const lastGauge = temporalities.map(() => new Map<string, number>());
  const invalidObservations: [string, unknown, Attributes][] = [];
  let previous: Map<string, Sample> | undefined;
  let collections = 0;
  let renders = 0;
  const trace: string[] = [];
  const where = () => `seed ${seed}, views ${JSON.stringify(views.map((v) => v.instrumentName + (v.name ? `->${v.name}` : '')))}, temporalities ${JSON.stringify(temporalities)}, exponential readers ${JSON.stringify(exponentialReader)}, reclaim ${reclaim}\n${trace.slice(process.env.HOTMETER_DIFF_TRACE ? 0 : -40).join('\n')}`;

  // hotmeter's own API (bind, recordBatch, remove, clear) draws from a third stream.
  const rand3 = prng(seed ^ 0x2545f491);
  /** Bound handles (hotmeter): instrument -> attribute index -> handle. */
  const bound = new Map<string, Map<number, ReturnType<HmSync['bind']>>>();
  /** Handles bound before a remove()/clear() of their series: they write into nothing exported. */
  const stale: { id: string; handle: ReturnType<HmSync['bind']> }[] = [];
  /** Instruments that had a remove() or clear(): hotmeter only, compared with the model, not with sdk-metrics. */
  const removed = new Set<string>();
  /** Instruments with a remove() or clear() since the last render: their series may vanish or restart from zero. */
  let removedSinceRender = new Set<string>();
  /** When a series (name + attrKey) was last removed; clear() removes them all. */
  const removedAt = new Map<string, number>();
  const clearedAt = new Map<string, number>();

  const modelSeries = (name: string, attrs: Attributes): ModelSeries => {
    let m = model.get(name);
    if (m === undefined) model.set(name, (m = new Map()));
    const k = attrKey(attrs);
    let s = m.get(k);
    if (s === undefined) m.set(k, (s = { sum: 0 }));
    return s;
  };

  /** The model after a write of v: what the API promises (negative counter and histogram
   *  values dropped; an INT instrument's value truncated as sdk-metrics does). */
  const modelWrite = (spec: Spec, v: number, attrs: Attributes): void => {
    if ((spec.kind === 'counter' || spec.kind === 'histogram') && v < 0) return;
    const value = spec.int ? Math.trunc(v) : v;
    const s = modelSeries(spec.id, attrs);
    if (spec.kind === 'histogram') {
      s.hist ??= new RefHistogram(spec.boundaries ?? [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]);
      s.hist.record(value);
    } else if (spec.kind === 'gauge') {
      s.last = value;
    } else {
      s.sum += value;
    }
  };

  const valueFor = (rnd: Rand, spec: Spec): number => {
    switch (spec.kind) {
      case 'counter': return pick(rnd, [0, 1, 2, 3, 0.5, 7, 100, -1]);
      case 'updown': return pick(rnd, [-3, -1, 1, 2, 0.25, 5, 0]);
      case 'histogram': return pick(rnd, [0, 0.5, 1, 2, 3, 5, 7, 10, 49, 50, 51, 1000, -1]);
      default: return pick(rnd, [-2, 0, 3.5, 7]);
    }
  };

  /** hotmeter's own API: bound handles, recordBatch, remove, clear, unbind (no sdk-metrics counterpart for the last three). */
  const hotmeterOp = (created: Spec[]): void => {
    const sync = created.filter((x) => !x.kind.startsWith('o'));
    if (sync.length === 0) return;
    const r = rand3();
    const spec = pick(rand3, sync);
    const ai = randInt(rand3, 0, ATTRS.length - 1);
    const attrs = ATTRS[ai];
    const raws = hm.instruments.get(spec.id)!;
    const raw = raws[randInt(rand3, 0, raws.length - 1)].raw as HmSync;
    if (r < 0.4) {
      // A bound handle's write is the API write with its attributes.
      // Open: with expiry, a handle holds its record while another attribute set of the
      // same Prometheus series ({s: 200} and {s: '200'}; sets a view's attribute filter
      // merges) expires, and the merged counter goes down between two renders; not
      // generated until that is decided.
      if (reclaim && (!plain(spec.name) || [4, 5, 7, 8].includes(ai))) return;
      let v = valueFor(rand3, spec);
      let handles = bound.get(spec.id);
      if (handles === undefined) bound.set(spec.id, (handles = new Map()));
      let h = handles.get(ai);
      if (h === undefined) {
        // bind() makes the series (at zero, as Prometheus clients do for a label set they
        // are given): its first write is a valid one, so sdk-metrics has the series too.
        if ((spec.kind === 'counter' || spec.kind === 'histogram') && v < 0) v = -v;
        handles.set(ai, (h = raw.bind(attrs)));
        const ms = modelSeries(spec.id, attrs);
        if (spec.kind === 'histogram') ms.hist ??= new RefHistogram(spec.boundaries ?? [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]);
      }
      trace.push(`bound ${spec.id} ${v} ${JSON.stringify(attrs)}`);
      if (h.add) h.add(v);
      else h.record!(v);
      const inst = sdk.instruments.get(spec.id)![0];
      if (inst.add) inst.add(v, attrs);
      else inst.record!(v, attrs);
      modelWrite(spec, v, attrs);
    } else if (r < 0.55) {
      // recordBatch: several instruments (of both meters), one attribute set.
      const entries = sync.filter(() => rand3() < 0.5);
      const vs = entries.map((e) => valueFor(rand3, e));
      trace.push(`recordBatch ${JSON.stringify(attrs)} ${JSON.stringify(entries.map((e, i) => [e.id, vs[i]]))}`);
      (hm.provider.getMeter(pick(rand3, ['a', 'b'])) as unknown as HmMeter).recordBatch(attrs, entries.map((e, i) => [hm.instruments.get(e.id)![0].raw, vs[i]] as const));
      entries.forEach((e, i) => {
        const inst = sdk.instruments.get(e.id)![0];
        if (inst.add) inst.add(vs[i], attrs);
        else inst.record!(vs[i], attrs);
        modelWrite(e, vs[i], attrs);
      });
    } else if (r < 0.65) {
      // A handle bound before its series was removed: the write leaves no trace.
      if (stale.length === 0) return;
      const s = pick(rand3, stale);
      const v = valueFor(rand3, specs.get(s.id)!);
      trace.push(`stale handle ${s.id} ${v}`);
      if (s.handle.add) s.handle.add(v);
      else s.handle.record!(v);
    } else if (r < 0.75) {
      const handles = bound.get(spec.id);
      const h = handles?.get(ai);
      if (h === undefined) return;
      trace.push(`unbind ${spec.id} ${JSON.stringify(attrs)}`);
      h.unbind();
      handles!.delete(ai);
    } else if (plain(spec.name)) {
      // remove / clear: instruments no view touches (stream name = instrument name), checked
      // against the model: gone from every export, a later write starts again from zero.
      const k = attrKey(attrs);
      const now = Date.now();
      removed.add(spec.id);
      removedSinceRender.add(spec.id);
      const handles = bound.get(spec.id) ?? new Map<number, ReturnType<HmSync['bind']>>();
      if (r < 0.93) {
        trace.push(`remove ${spec.id} ${JSON.stringify(attrs)}`);
        raw.remove(attrs);
        model.get(spec.id)?.delete(k);
        removedAt.set(`${spec.id}${k}`, now);
        for (const [i, h] of handles) {
          if (attrKey(ATTRS[i]) !== k) continue;
          stale.push({ id: spec.id, handle: h });
          handles.delete(i);
        }
      } else {
        trace.push(`clear ${spec.id}`);
        raw.clear();
        model.get(spec.id)?.clear();
        clearedAt.set(spec.id, now);
        for (const h of handles.values()) stale.push({ id: spec.id, handle: h });
        handles.clear();
      }
    }
  };

  /**
   * One name in several scopes: the kind and unit of the first, so the Prometheus family is one
   * (its type and name suffix); boundaries and value type may differ.
   */
  const sameAsOtherScopes = (spec: Spec): void => {
    const other = [...specs.values()].find((x) => x.name === spec.name && x.id !== spec.id);
    if (other === undefined) return;
    spec.kind = other.kind;
    spec.unit = other.unit;
    if (spec.kind !== 'histogram') delete spec.boundaries;
  };

  const create = (spec: Spec): void => {
    specs.set(spec.id, spec);
    for (const side of sides) {
      const [mn, mv, mo] = METERS[spec.meter];
      const meter: ApiMeter = side.provider.getMeter(mn, mv, mo);
      const opts = { valueType: spec.int ? ValueType.INT : ValueType.DOUBLE, unit: spec.unit, description: `${spec.kind} ${spec.name}`, ...(spec.boundaries ? { advice: { explicitBucketBoundaries: spec.boundaries } } : {}) };
      if (spec.kind === 'counter') {
        const c = meter.createCounter(spec.name, opts);
        side.instruments.set(spec.id, [...(side.instruments.get(spec.id) ?? []), { add: (v, a) => c.add(v, a), raw: c }]);
      } else if (spec.kind === 'updown') {
        const c = meter.createUpDownCounter(spec.name, opts);
        side.instruments.set(spec.id, [...(side.instruments.get(spec.id) ?? []), { add: (v, a) => c.add(v, a), raw: c }]);
      } else if (spec.kind === 'histogram') {
        const h = meter.createHistogram(spec.name, opts);
        side.instruments.set(spec.id, [...(side.instruments.get(spec.id) ?? []), { record: (v, a) => h.record(v, a), raw: h }]);
      } else if (spec.kind === 'gauge') {
        const g = meter.createGauge(spec.name, opts);
        side.instruments.set(spec.id, [...(side.instruments.get(spec.id) ?? []), { record: (v, a) => g.record(v, a), raw: g }]);
      } else {
        const o = spec.kind === 'ocounter' ? meter.createObservableCounter(spec.name, opts)
          : spec.kind === 'oupdown' ? meter.createObservableUpDownCounter(spec.name, opts)
            : meter.createObservableGauge(spec.name, opts);
        o.addCallback((r) => {
          for (const [i, v] of observed.get(spec.id) ?? []) r.observe(v, ATTRS[i]);
          // Values no observation may hold, to hotmeter only (sdk-metrics takes NaN).
          if (side === hm) for (const [n, v, a] of invalidObservations) if (n === spec.id) r.observe(v as number, a);
        });
      }
    }
  };

  /** See MERGING: takes those points out of both exports, checking hotmeter's (cumulative) against the observations. */
  const checkMergedObservations = (sdkRm: ResourceMetrics, hmRm: ResourceMetrics, cumulative: boolean): void => {
    for (const m of MERGING) {
      const spec = specs.get(m.instrument);
      if (spec === undefined || (spec.kind !== 'ocounter' && spec.kind !== 'oupdown')) continue;
      if (!views.some((v) => v.instrumentName === m.instrument && (v.name ?? m.instrument) === m.stream)) continue;
      const take = (rm: ResourceMetrics): Map<string, number> => {
        const out = new Map<string, number>();
        for (const sm of rm.scopeMetrics) {
          for (const md of sm.metrics) {
            if (md.descriptor.name !== m.stream) continue;
            const keep = (md.dataPoints as { attributes: Attributes; value: number }[]).filter((p) => {
              const k = attrKey(p.attributes);
              const merged = m.keys !== undefined || k === OVERFLOW_KEY;
              if (merged) out.set(k, p.value);
              return !merged;
            });
            (md as { dataPoints: unknown[] }).dataPoints = keep;
            if (m.limit !== undefined) for (const p of keep) out.set(attrKey(p.attributes), p.value);
          }
        }
        return out;
      };
      take(sdkRm);
      const got = take(hmRm);
      if (!cumulative) continue;
      const obs = observed.get(m.instrument) ?? new Map<number, number>();
      const what = `observations merged into ${m.stream}\n${where()}`;
      if (m.keys !== undefined) {
        const want = new Map<string, number>();
        for (const [ai, v] of obs) {
          const k = attrKey(Object.fromEntries(Object.entries(ATTRS[ai]).filter(([key]) => m.keys!.includes(key))));
          want.set(k, (want.get(k) ?? 0) + v);
        }
        expect(new Map([...got].map(([k, v]) => [k, round(v)])), what).toEqual(new Map([...want].map(([k, v]) => [k, round(v)])));
      } else {
        let total = 0;
        for (const v of obs.values()) total += v;
        let sum = 0;
        for (const v of got.values()) sum += v;
        expect(round(sum), what).toBe(round(total));
      }
    }
  };

  /**
   * A synchronous instrument's cardinality limit: hotmeter counts the series live or idle
   * (README "Series over time", as the OpenTelemetry spec does), sdk-metrics only those
   * written since its last collection, so series written in different intervals overflow
   * in hotmeter and not in sdk-metrics. Compared: the stream's totals, and hotmeter keeps
   * within the limit.
   */
  const checkLimitedSync = (sdkRm: ResourceMetrics, hmRm: ResourceMetrics): void => {
    for (const m of MERGING) {
      const spec = specs.get(m.instrument);
      if (m.limit === undefined || spec === undefined || spec.kind.startsWith('o')) continue;
      if (!views.some((v) => v.instrumentName === m.instrument && (v.name ?? m.instrument) === m.stream)) continue;
      const take = (rm: ResourceMetrics): { n: number; total: number } => {
        let n = 0;
        let total = 0;
        for (const sm of rm.scopeMetrics) {
          for (const md of sm.metrics) {
            if (md.descriptor.name !== m.stream) continue;
            for (const p of md.dataPoints as { value: unknown }[]) {
              n++;
              total += typeof p.value === 'number' ? (spec.kind === 'gauge' ? 0 : p.value) : (p.value as { count: number }).count;
            }
            (md as { dataPoints: unknown[] }).dataPoints = [];
          }
        }
        return { n, total };
      };
      const a = take(sdkRm);
      const b = take(hmRm);
      expect(b.n, `series of ${m.stream} within its limit\n${where()}`).toBeLessThanOrEqual(m.limit);
      expect(round(b.total), `totals of ${m.stream}\n${where()}`).toBe(round(a.total));
    }
  };

  const collect = async (): Promise<void> => {
    collections++;
    for (const side of sides) for (const r of side.readers) await r.forceFlush();
    for (let i = 0; i < temporalities.length; i++) {
      const s = sdk.exporters[i].getMetrics();
      const h = hm.exporters[i].getMetrics();
      sdk.exporters[i].reset();
      hm.exporters[i].reset();
      // hotmeter sends no export without a point; sdk-metrics sends one with the zero deltas
      // of series written without change (see dropUnchanged): compared as an empty export.
      // Nor one after remove()/clear() took its only series (compared without those instruments).
      if (h.length === 0 && s.length === 1 && (temporalities[i] === AggregationTemporality.DELTA || removed.size > 0)) h.push({ resource: s[0].resource, scopeMetrics: [] });
      expect(h.length, `exports of reader ${i}\n${where()}`).toBe(s.length);
      for (let k = 0; k < s.length; k++) {
        const sdkRm = s[k];
        const hmRm = h[k];
        if (temporalities[i] === AggregationTemporality.CUMULATIVE) {
          checkModel(hmRm, exponentialReader[i]);
          checkExact(hmRm);
        }
        // remove()/clear() have no sdk-metrics counterpart: those instruments are compared with the model only.
        for (const rm of [sdkRm, hmRm]) for (const sm of rm.scopeMetrics) sm.metrics = sm.metrics.filter((m) => !removed.has(idOf(sm.scope, m.descriptor.name)));
        checkMergedObservations(sdkRm, hmRm, temporalities[i] === AggregationTemporality.CUMULATIVE);
        checkLimitedSync(sdkRm, hmRm);
        dropEmpty(sdkRm);
        dropEmpty(hmRm);
        if (temporalities[i] === AggregationTemporality.DELTA) dropUnchanged(sdkRm, hmRm, lastGauge[i]);
        checkKnownMinMax(hmRm, sdkRm);
        alignExponential(hmRm, sdkRm);
        const drop = withoutMinMax(hmRm);
        if (temporalities[i] === AggregationTemporality.CUMULATIVE) expect([...drop.min, ...drop.max], where()).toEqual([]);
        expect(normalize(hmRm), `reader ${i} (${temporalities[i] === AggregationTemporality.DELTA ? 'delta' : 'cumulative'})\n${where()}`).toEqual(normalize(sdkRm, drop));
        compareSums(hmRm, sdkRm);
      }
    }
  };

  /** Instruments no view touches: the cumulative export holds the model's values. */
  const plain = (name: string): boolean => !views.some((v) => v.instrumentName === name);

  /**
   * Plain synchronous instruments: the cumulative export holds exactly the model's series (a
   * removed one is gone, nothing is there that no valid write made), and a series written
   * again after remove()/clear() is a new one: its start time is not before the removal.
   */
  /** The instrument (Spec.id) of a metric in an export. */
  const idOf = (scope: { name: string; version?: string; schemaUrl?: string }, name: string): string => {
    const want = scopeKey(scope);
    for (const spec of specs.values()) {
      const [n, v, o] = METERS[spec.meter];
      if (spec.name === name && scopeKey({ name: n, version: v, schemaUrl: o?.schemaUrl }) === want) return spec.id;
    }
    return name;
  };

  const checkExact = (rm: ResourceMetrics): void => {
    const got = new Map<string, Set<string>>();
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        const spec = specs.get(idOf(sm.scope, m.descriptor.name));
        if (spec === undefined || spec.kind.startsWith('o') || !plain(spec.name)) continue;
        const keys = got.get(spec.id) ?? new Set<string>();
        got.set(spec.id, keys);
        for (const p of m.dataPoints) {
          const k = attrKey(p.attributes);
          expect(keys.has(k), `twice in one export: ${spec.id}${k}\n${where()}`).toBe(false);
          keys.add(k);
          const t = Math.max(removedAt.get(`${spec.id}${k}`) ?? -1, clearedAt.get(spec.id) ?? -1);
          const start = p.startTime[0] * 1000 + Math.floor(p.startTime[1] / 1e6);
          if (t >= 0) expect(start, `start time of ${spec.id}${k} written again after its removal\n${where()}`).toBeGreaterThanOrEqual(t - 1);
        }
      }
    }
    for (const spec of specs.values()) {
      if (spec.kind.startsWith('o') || !plain(spec.name)) continue;
      const want = [...(model.get(spec.id)?.keys() ?? [])].sort();
      expect([...(got.get(spec.id) ?? [])].sort(), `series of ${spec.id} in the cumulative export\n${where()}`).toEqual(want);
    }
  };

  const checkModel = (rm: ResourceMetrics, exponential: boolean): void => {
    const got = new Map<string, unknown>();
    for (const sm of rm.scopeMetrics) for (const m of sm.metrics) for (const p of m.dataPoints) got.set(`${idOf(sm.scope, m.descriptor.name)}${attrKey(p.attributes)}`, p.value);
    for (const [name, series] of model) {
      if (!plain(specs.get(name)!.name)) continue;
      for (const [k, s] of series) {
        const v = got.get(`${name}${k}`);
        const what = `model ${name}${k}\n${where()}`;
        if (s.hist !== undefined) {
          expect(v, what).toMatchObject(exponential ? { count: s.hist.count } : { count: s.hist.count, buckets: { counts: s.hist.buckets } });
        } else if (s.last !== undefined) {
          expect(v, what).toBe(s.last);
        } else {
          expect(Number((v as number).toPrecision(12)), what).toBe(Number(s.sum.toPrecision(12)));
        }
      }
    }
  };

  /** The Prometheus family of a sample name and the instruments that write it (plain instruments: no rename). */
  const familyOfSample = (sample: string): { base: string; ids: string[] } | undefined => {
    let out: { base: string; ids: string[] } | undefined;
    for (const spec of specs.values()) {
      const base = spec.name + UNIT_SUFFIX[spec.unit];
      for (const suffix of ['', '_total', '_bucket', '_sum', '_count', '_created']) {
        if (sample !== base + suffix) continue;
        out ??= { base, ids: [] };
        out.ids.push(spec.id);
      }
    }
    return out;
  };

  const render = async (): Promise<void> => {
    renders++;
    const text = await prometheus.render('text/plain;version=0.0.4');
    const om = await prometheus.render(OPENMETRICS_CONTENT_TYPE);
    const s = await scrapeBody(prometheus, PROTOBUF_ACCEPT);
    const pbBody = s.body;
    // With readers that have aggregations of their own, the exporter renders in JavaScript
    // and offers no protobuf: the answer is then the text format, as negotiated.
    const isProtobuf = s.contentType === PROMETHEUS_PROTOBUF_CONTENT_TYPE;
    expect(isProtobuf || s.contentType === PROMETHEUS_TEXT_CONTENT_TYPE, s.contentType).toBe(true);
    expect(isProtobuf, `protobuf offered\n${where()}`).toBe(prometheus.negotiate(PROTOBUF_ACCEPT).protobuf === true);
    let families: ReturnType<typeof decode> = [];
    if (isProtobuf) {
      try {
        families = decode(pbBody);
      } catch (e) {
        throw new Error(`protobuf exposition does not decode (${String(e)}): ${pbBody.toString('hex')}\ntext:\n${text}\n${where()}`, { cause: e });
      }
    }
    const tx = parseExposition(text);
    const omSamples = parseExposition(om.split('\n').map((l) => l.replace(/ # \{.*$/, '')).join('\n')).filter((x) => !x.name.endsWith('_created'));
    // Native histograms: the protobuf has coarser buckets than the text; compare the rest.
    const nativeNames = new Set(families.filter((f) => f.metric.some((m) => m.histogram?.schema !== undefined)).map((f) => `${f.name}_bucket`));
    // Without the protobuf: the exponential histogram streams of the views (with the unit
    // suffix the instrument's unit gives).
    for (const v of views) {
      if ((v.aggregation as { type?: AggregationType } | undefined)?.type !== AggregationType.EXPONENTIAL_HISTOGRAM) continue;
      const spec = specs.get(v.instrumentName!);
      if (spec !== undefined) nativeNames.add(`${(v.name ?? v.instrumentName)!.replace(/\./g, '_')}${UNIT_SUFFIX[spec.unit]}_bucket`);
    }
    const coarse = (x: Sample): boolean => !(nativeNames.has(x.name) && x.labels.le !== '+Inf');
    const third = (isProtobuf ? samplesOf(families) : parseExposition(pbBody.toString('utf8'))).filter(coarse);
    if (reclaim) {
      // Expiry: a render that delivered a series' last value may let it go before the next
      // render; the series the renders share must agree.
      const values = (xs: Sample[]): Map<string, number> => new Map(xs.map((x) => [seriesKey(x), x.value]));
      const [a, b, c] = [values(tx.filter(coarse)), values(omSamples.filter(coarse)), values(third)];
      for (const [k, v] of a) {
        if (b.has(k)) expect(b.get(k), `OpenMetrics vs text: ${k}\n${where()}`).toBe(v);
        if (c.has(k)) expect(c.get(k), `protobuf vs text: ${k}\n${where()}`).toBe(v);
      }
    } else {
      expect(canonical(omSamples), `OpenMetrics vs text\n${where()}`).toEqual(canonical(tx));
      expect(canonical(third), `protobuf vs text\n${where()}`).toEqual(canonical(tx.filter(coarse)));
    }
    // No (name, labels) twice.
    const now = new Map<string, Sample>();
    for (const x of tx) {
      const k = seriesKey(x);
      expect(now.has(k), `twice in one exposition: ${k}\n${where()}`).toBe(false);
      now.set(k, x);
    }
    const types = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
    const familyOf = (name: string): string | undefined => {
      for (const suffix of ['', '_bucket', '_sum', '_count']) {
        if (suffix === '' || name.endsWith(suffix)) {
          const f = name.slice(0, name.length - suffix.length);
          if (types.has(f)) return types.get(f);
        }
      }
      return undefined;
    };
    // Expiry: an idle series leaves the exposition once delivered and comes back as a new
    // series (README "Series over time"); the vanish, monotonic and model checks do not apply.
    if (previous !== undefined && !reclaim) {
      for (const [k, before] of previous) {
        const after = now.get(k);
        // An exponential histogram's classic buckets are those of its current scale: they
        // change when the scale goes down (the +Inf bucket, sum and count stay).
        if (!coarse(before)) continue;
        // remove()/clear() since the last render: the series may be gone or restarted.
        if (familyOfSample(before.name)?.ids.some((id) => removedSinceRender.has(id))) continue;
        // Every instrument lives and nothing is removed: no series vanishes.
        expect(after, `series vanished: ${k}\n${where()}`).toBeDefined();
        const type = familyOf(before.name);
        const monotonic = type === 'counter' || (type === 'histogram' && !before.name.endsWith('_sum'));
        if (monotonic) expect(after!.value, `counter went down: ${k}\n${where()}`).toBeGreaterThanOrEqual(before.value);
      }
    }
    previous = now;
    removedSinceRender = new Set();
    // Plain synchronous instruments: the exposition holds exactly the model's series.
    if (!reclaim) {
      const got = new Map<string, Set<string>>();
      for (const [k, x] of now) {
        const fam = familyOfSample(x.name);
        if (fam === undefined || x.labels.le === '+Inf' || x.name.endsWith('_sum')) continue;
        const set = got.get(fam.base) ?? new Set<string>();
        got.set(fam.base, set);
        set.add(k);
      }
      const wanted = new Map<string, Set<string>>();
      for (const spec of specs.values()) {
        if (spec.kind.startsWith('o') || !plain(spec.name)) continue;
        const name = spec.name + UNIT_SUFFIX[spec.unit];
        const want = wanted.get(name) ?? new Set<string>();
        wanted.set(name, want);
        for (const [k, ms] of model.get(spec.id) ?? []) {
          const labels = promLabels(spec.meter, ATTRS.find((a) => attrKey(a) === k)!);
          if (ms.hist !== undefined) {
            want.add(seriesKey({ name: `${name}_count`, labels, value: 0 }));
            for (const b of ms.hist.boundaries) want.add(seriesKey({ name: `${name}_bucket`, labels: { ...labels, le: String(b) }, value: 0 }));
          } else {
            want.add(seriesKey({ name: spec.kind === 'counter' ? `${name}_total` : name, labels, value: 0 }));
          }
        }
      }
      for (const [name, want] of wanted) {
        const have = got.get(name) ?? new Set<string>();
        // le as the exporter prints it: compared without the bucket bounds.
        const strip = (xs: Set<string>): string[] => [...new Set([...xs].map((x) => x.replace(/le="[^"]*"/, 'le')))].sort();
        expect(strip(have), `series of ${name} in the exposition\n${where()}`).toEqual(strip(want));
      }
    }
    // The model: plain synchronous counters, up-down counters and histograms (series merged
    // at export add up); gauges only where one attribute set makes the series.
    // Instruments of one name in several scopes whose labels are the same (scopes that differ
    // only by schemaUrl) are one Prometheus series.
    const expected = new Map<string, { name: string; labels: Record<string, string>; value: number; gauge: boolean }[]>();
    for (const [instrument, series] of model) {
      const spec = specs.get(instrument)!;
      if (!plain(spec.name) || reclaim) continue;
      const name = spec.name + UNIT_SUFFIX[spec.unit];
      for (const [k, s] of series) {
        const attrs = ATTRS.find((a) => attrKey(a) === k)!;
        const labels = promLabels(spec.meter, attrs);
        const rows: [string, Record<string, string>, number][] = [];
        if (s.hist !== undefined) {
          rows.push([`${name}_count`, labels, s.hist.count]);
          s.hist.boundaries.forEach((b, i) => rows.push([`${name}_bucket`, { ...labels, le: String(b) }, s.hist!.buckets.slice(0, i + 1).reduce((x, y) => x + y, 0)]));
        } else if (s.last !== undefined) {
          rows.push([name, labels, s.last]);
        } else {
          rows.push([spec.kind === 'counter' ? `${name}_total` : name, labels, s.sum]);
        }
        for (const [n, l, v] of rows) {
          const key = seriesKey({ name: n, labels: l, value: 0 });
          const e = expected.get(key) ?? [];
          e.push({ name: n, labels: l, value: v, gauge: spec.kind === 'gauge' });
          expected.set(key, e);
        }
      }
    }
    {
      for (const [key, rows] of expected) {
        const x = now.get(key);
        expect(x, `model series missing from the exposition: ${key}\n${where()}`).toBeDefined();
        if (rows[0].gauge && rows.length > 1) continue;
        const want = rows.reduce((a, r) => a + r.value, 0);
        if (x!.labels.le !== undefined) {
          // le printed by the exporter; the model's bounds as numbers.
          continue;
        }
        expect(Number(x!.value.toPrecision(12)), `model ${key}\n${where()}`).toBe(Number(want.toPrecision(12)));
      }
    }
  };

  try {
    for (let op = 0; op < ops; op++) {
      const r = rand();
      const created = [...specs.values()];
      const sync = created.filter((s) => !s.kind.startsWith('o'));
      const obs = created.filter((s) => s.kind.startsWith('o'));
      if (rand2() < 0.06 && created.length > 0) {
        // A measurement every API drops: it must leave no trace (no series, no change).
        // sdk-metrics takes NaN and infinities as numbers: those go to hotmeter only.
        const spec = pick(rand2, created);
        const bad = pick(rand2, [NaN, Infinity, -Infinity, '5', null, undefined] as unknown[]);
        const attrs = ATTRS[randInt(rand2, 0, ATTRS.length - 1)];
        const both = typeof bad !== 'number';
        trace.push(`invalid ${spec.id} ${String(bad)} ${JSON.stringify(attrs)}${both ? '' : ' (hotmeter only)'}`);
        if (spec.kind.startsWith('o')) {
          // Observed by hotmeter's callback at every later collection.
          invalidObservations.push([spec.id, bad, attrs]);
        } else {
          for (const side of both ? sides : [hm]) {
            const inst = side.instruments.get(spec.id)![0];
            if (inst.add) inst.add(bad as number, attrs);
            else inst.record!(bad as number, attrs);
          }
        }
      }
      if (rand3() < HM_OPS) hotmeterOp(created);
      if (rand3() < 0.04) {
        // One instrument name in another scope (another meter name, version or schemaUrl).
        const free = SCOPED_NAMES.filter(([m, n]) => !specs.has(`${m}/${n}`) && plain(n));
        if (free.length > 0) {
          const [meter, name] = pick(rand3, free);
          const kind = pick(rand3, KINDS);
          const spec: Spec = { id: `${meter}/${name}`, meter, name, kind, int: rand3() < 0.25, unit: pick(rand3, Object.keys(UNIT_SUFFIX)) };
          if (kind === 'histogram' && rand3() < 0.6) spec.boundaries = [0, 1, 2, 5, 10, 50].filter(() => rand3() < 0.5);
          sameAsOtherScopes(spec);
          trace.push(`create ${JSON.stringify(spec)}`);
          create(spec);
        }
      }
      if (r < 0.02 && sync.length > 0) {
        // The same instrument created again: one instrument, both objects write it.
        const spec = pick(rand, sync);
        trace.push(`create again ${spec.id}`);
        create(spec);
      } else if (r < 0.1 || created.length === 0) {
        const free = NAMES.filter(([, n]) => !specs.has(n));
        if (free.length === 0) continue;
        const [meter, name] = pick(rand, free);
        const kind = pick(rand, KINDS);
        const spec: Spec = { id: name, meter, name, kind, int: rand() < 0.25, unit: pick(rand2, Object.keys(UNIT_SUFFIX)) };
        if (kind === 'histogram' && rand() < 0.6) spec.boundaries = [0, 1, 2, 5, 10, 50].filter(() => rand() < 0.5);
        sameAsOtherScopes(spec);
        trace.push(`create ${JSON.stringify(spec)}`);
        create(spec);
      } else if (r < 0.65 && sync.length > 0) {
        const spec = pick(rand, sync);
        const ai = randInt(rand, 0, ATTRS.length - 1);
        const attrs = ATTRS[ai];
        let v: number;
        switch (spec.kind) {
          case 'counter': v = pick(rand, [0, 1, 2, 3, 0.5, 7, 100, -1]); break;
          case 'updown': v = pick(rand, [-3, -1, 1, 2, 0.25, 5, 0]); break;
          case 'histogram': v = pick(rand, [0, 0.5, 1, 2, 3, 5, 7, 10, 49, 50, 51, 1000, -1]); break;
          default: v = pick(rand, [-2, 0, 3.5, 7]);
        }
        const which = randInt(rand, 0, 3);
        trace.push(`${spec.id} ${v} ${JSON.stringify(attrs)}`);
        for (const side of sides) {
          const all = side.instruments.get(spec.id)!;
          const inst = all[which % all.length];
          if (inst.add) inst.add(v, attrs);
          else inst.record!(v, attrs);
        }
        modelWrite(spec, v, attrs);
      } else if (r < 0.78 && obs.length > 0) {
        const spec = pick(rand, obs);
        const ai = randInt(rand, 0, ATTRS.length - 1);
        const m = observed.get(spec.id) ?? new Map<number, number>();
        observed.set(spec.id, m);
        const prev = m.get(ai) ?? 0;
        const next = spec.kind === 'ocounter' ? prev + pick(rand, [0, 1, 2.5, 10]) : pick(rand, [-4, 0, 1, 2.5, 9]);
        m.set(ai, spec.int ? Math.trunc(next) : next);
        trace.push(`observe ${spec.id} ${next} ${JSON.stringify(ATTRS[ai])}`);
      } else if (r < 0.92) {
        trace.push('collect');
        await collect();
        trace.push('render');
        await render();
      } else {
        trace.push('render');
        await render();
      }
    }
    trace.push('collect (final)');
    await collect();
    await render();
    await render();
  } finally {
    for (const side of sides) await side.provider.shutdown();
  }
  return { collections, renders };
}

describe('randomized differential test: hotmeter against @opentelemetry/sdk-metrics, and its Prometheus formats against a model', () => {
  let collections = 0;
  let renders = 0;
  // Long hunts (HOTMETER_DIFF_SEEDS, HOTMETER_DIFF_OPS) get a longer limit per seed.
  const limit = Math.max(60_000, OPS * 400);
  for (const seed of SEEDS) {
    it(`seed ${seed}, ${OPS} operations`, async () => {
      const r = await runSeed(seed, OPS);
      collections += r.collections;
      renders += r.renders;
    }, limit);
  }
  it('the generator interleaved collections and renders with the recordings', () => {
    expect(collections).toBeGreaterThan(SEEDS.length);
    expect(renders).toBeGreaterThan(SEEDS.length);
  });
});
