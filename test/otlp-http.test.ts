// OTLP over HTTP, end to end: hotmeter's MeterProvider with OpenTelemetry JS's
// PeriodicExportingMetricReader and the official OTLP exporters (JSON:
// @opentelemetry/exporter-metrics-otlp-http, protobuf: @opentelemetry/exporter-metrics-otlp-proto)
// sending to a receiver on 127.0.0.1 that decodes each request. Every data point received
// is checked against what the test recorded, and every recorded series must arrive.
import { diag, ValueType, type Attributes } from '@opentelemetry/api';
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as JsonExporter,
} from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { AggregationKind, MeterProvider } from '../src';
import { attrKey, CapturingLogger, installLogger, prng, randInt, RefHistogram, uninstallLogger } from './helpers';
import { startReceiver, type NMetric, type NPoint, type NRequest, type Receiver } from './otlp-receiver';

const PROTOCOLS = [
  { name: 'http/json', encoding: 'json', make: (o: object) => new JsonExporter(o) },
  { name: 'http/protobuf', encoding: 'protobuf', make: (o: object) => new ProtoExporter(o) },
] as const;

const HOSTILE = [
  'quote " inside',
  "single ' quote",
  'new\nline',
  'back\\slash \\n not a newline',
  'tab\there\r\ncrlf',
  'unicode ✓ 日本語 Ünïcödé 😀 \u2028',
  '{k="v",x="y"}',
  '',
  'a,b=c;d:e',
  '\u0000nul',
];

/** Attribute sets covering every attribute value type, hostile strings and keys. */
const ATTRS: Attributes[] = [
  {},
  { str: 'plain', int: 42, neg: -7, dbl: 1.5, bool: true, no: false },
  { strs: ['x', 'y', HOSTILE[0]], ints: [1, 2, 3], dbls: [0.5, -1.25], bools: [true, false] },
  ...HOSTILE.map((h, i) => ({ hostile: h, i })),
  { [HOSTILE[5]]: 'unicode key', 'key "quoted"\n': 'v', 'back\\key': HOSTILE[3] },
  { big: 2 ** 40, tiny: 1e-300, zero: 0 },
];

const RESOURCE = {
  attributes: {
    'service.name': 'otlp-test',
    'service.instance.id': HOSTILE[0] + HOSTILE[2] + HOSTILE[5],
    'deployment.count': 3,
    ratio: 0.25,
    'feature.on': true,
    tags: ['a', 'b\n', 'ü'],
  },
};
const SCHEMA = 'https://opentelemetry.io/schemas/1.24.0';
const LATENCY_BOUNDS = [0.1, 1, 10];

// ---------------------------------------------------------------------------------------
// The model: what was recorded, per metric and attribute set.

type Kind = 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram';
interface Series {
  attrs: Attributes;
  values: number[];
}
class Model {
  readonly metrics = new Map<string, { kind: Kind; monotonic: boolean; int: boolean; series: Map<string, Series> }>();
  define(name: string, kind: Kind, monotonic = false, int = false): void {
    this.metrics.set(name, { kind, monotonic, int, series: new Map() });
  }
  add(name: string, v: number, attrs: Attributes): void {
    const m = this.metrics.get(name)!;
    const k = attrKey(attrs);
    let s = m.series.get(k);
    if (s === undefined) m.series.set(k, (s = { attrs, values: [] }));
    s.values.push(v);
  }
  clear(): void {
    for (const m of this.metrics.values()) m.series.clear();
  }
}

/** The one metric named `name` in a request (throws if 0 or >1). */
function metricIn(req: NRequest, name: string): NMetric | undefined {
  const found = req.scopes.flatMap((s) => s.metrics.filter((m) => m.name === name));
  if (found.length > 1) throw new Error(`metric ${name} appears ${found.length} times`);
  return found[0];
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** `got` equals `want` up to floating-point rounding (relative 1e-9). */
function expectClose(got: number | undefined, want: number, where: string): void {
  expect(got, where).toBeDefined();
  expect(Math.abs(got! - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${where}: ${got} != ${want}`).toBe(true);
}

/** Checks one point against the values recorded for its series (`cumulative`: all of them; delta: the interval's). */
function checkPoint(name: string, kind: Kind, int: boolean, p: NPoint, s: Series, bounds?: number[]): void {
  const where = `${name} ${JSON.stringify(s.attrs)}`;
  expect(p.attributes, where).toEqual(s.attrs);
  switch (kind) {
    case 'sum':
    case 'gauge': {
      const want = kind === 'sum' ? sum(s.values) : s.values[s.values.length - 1];
      if (int) {
        expect(p.asDouble, where).toBeUndefined();
        expect(p.asInt, where).toBe(want);
      } else {
        expect(p.asInt, where).toBeUndefined();
        expectClose(p.asDouble, want, where);
      }
      break;
    }
    case 'histogram': {
      const ref = new RefHistogram(bounds!);
      for (const v of s.values) ref.record(v);
      expect(p.explicitBounds, where).toEqual(bounds);
      expect(p.bucketCounts, where).toEqual(ref.buckets);
      expect(p.count, where).toBe(ref.count);
      expectClose(p.sum, ref.sum, where);
      // min/max: exact whenever present; present for cumulative points.
      if (p.min !== undefined) expect(p.min, where).toBe(ref.min);
      if (p.max !== undefined) expect(p.max, where).toBe(ref.max);
      break;
    }
    case 'exponentialHistogram': {
      const zeros = s.values.filter((v) => v === 0).length;
      expect(p.count, where).toBe(s.values.length);
      expect(p.zeroCount ?? 0, where).toBe(zeros);
      expectClose(p.sum, sum(s.values), where);
      const pos = p.positive?.bucketCounts ?? [];
      expect(sum(pos), where).toBe(s.values.length - zeros);
      expect(sum(p.negative?.bucketCounts ?? []), where).toBe(0);
      // Every value lies in the bucket the point's scale puts it in: bucket offset + k
      // holds (base^(offset+k), base^(offset+k+1)], base = 2^(2^-scale). Checked
      // through the cumulative distribution, with a relative tolerance for rounding.
      const scale = p.scale ?? 0;
      const base = 2 ** (2 ** -scale);
      let below = zeros;
      for (let k = 0; k < pos.length; k++) {
        below += pos[k];
        const upper = base ** (p.positive!.offset + k + 1);
        const exact = s.values.filter((v) => v <= upper * (1 + 1e-12)).length;
        const loose = s.values.filter((v) => v <= upper * (1 - 1e-12)).length;
        expect(below >= loose && below <= exact, `${where}: bucket ${k} cumulative ${below} not in [${loose}, ${exact}]`).toBe(true);
      }
      if (p.min !== undefined) expect(p.min, where).toBe(Math.min(...s.values));
      if (p.max !== undefined) expect(p.max, where).toBe(Math.max(...s.values));
      break;
    }
  }
}

/** Checks a request against the model: every point matches, every series with data is there. */
function checkRequest(req: NRequest, model: Model, opts: { temporality: (name: string) => number; bounds: Record<string, number[]> }): void {
  for (const [name, m] of model.metrics) {
    const got = metricIn(req, name);
    const expected = [...m.series.values()];
    if (expected.length === 0) {
      expect(got, `${name} has no data and must not be exported`).toBeUndefined();
      continue;
    }
    expect(got, `${name} missing`).toBeDefined();
    expect(got!.type).toBe(m.kind);
    if (m.kind !== 'gauge') expect(got!.temporality, `${name} temporality`).toBe(opts.temporality(name));
    if (m.kind === 'sum') expect(got!.isMonotonic, `${name} monotonic`).toBe(m.monotonic);
    expect(got!.points.length, `${name} points: ${JSON.stringify(got!.points.map((p) => p.attributes))} vs ${JSON.stringify(expected.map((s) => s.attrs))}`).toBe(expected.length);
    for (const s of expected) {
      const p = got!.points.find((q) => attrKey(q.attributes as Attributes) === attrKey(s.attrs));
      expect(p, `${name} ${JSON.stringify(s.attrs)} missing`).toBeDefined();
      checkPoint(name, m.kind, m.int, p!, s, opts.bounds[name]);
    }
  }
}

function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Every point: start <= time, both within [from, to] (ns since the epoch). */
function checkTimes(req: NRequest, from: bigint, to: bigint): void {
  for (const s of req.scopes) {
    for (const m of s.metrics) {
      for (const p of m.points) {
        expect(p.start <= p.time, `${m.name}: start after time`).toBe(true);
        expect(p.start >= from - 1_000_000n && p.time <= to + 1_000_000n, `${m.name}: times outside the test`).toBe(true);
        expect(p.time % 1_000_000n, 'whole milliseconds').toBe(0n);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------

let receiver: Receiver | undefined;
let provider: MeterProvider | undefined;
let logger: CapturingLogger | undefined;

afterEach(async () => {
  await provider?.shutdown();
  provider = undefined;
  await receiver?.close();
  receiver = undefined;
  uninstallLogger();
  logger = undefined;
});

function noErrors(allowed?: RegExp): void {
  const bad = logger!.lines.filter((l) => l.level === 'error' || (l.level === 'warn' && !(allowed?.test(l.message) ?? false)));
  expect(bad, JSON.stringify(bad)).toEqual([]);
  expect(receiver!.errors).toEqual([]);
}

describe.each(PROTOCOLS)('OTLP $name', ({ encoding, make }) => {
  it('cumulative: every instrument kind, attribute type, hostile string, resource and scope arrives intact', async () => {
    logger = installLogger();
    receiver = await startReceiver();
    const from = nowNanos();
    const reader = new PeriodicExportingMetricReader({ exporter: make({ url: receiver.url }), exportIntervalMillis: 60_000 });
    provider = new MeterProvider({
      resource: RESOURCE,
      readers: [reader],
      views: [{ instrumentName: 'exp.latency', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }],
    });
    const meter = provider.getMeter('otlp.test', '1.2.3', { schemaUrl: SCHEMA });
    const other = provider.getMeter('second-scope');
    const model = new Model();
    const desc = `requests "served"\nby \\ the ✓ server`;
    const requests = meter.createCounter('requests', { valueType: ValueType.INT, description: desc, unit: '{request}' });
    const bytes = meter.createCounter('bytes', { unit: 'By' });
    const inflight = meter.createUpDownCounter('inflight', { valueType: ValueType.INT });
    const balance = meter.createUpDownCounter('balance');
    const latency = meter.createHistogram('latency', { unit: 's', advice: { explicitBucketBoundaries: LATENCY_BOUNDS } });
    const defaultHist = meter.createHistogram('default.hist');
    const exp = meter.createHistogram('exp.latency', { unit: 'ms' });
    const temperature = meter.createGauge('temperature');
    const level = meter.createGauge('level', { valueType: ValueType.INT });
    const ocounter = meter.createObservableCounter('o.counter', { valueType: ValueType.INT });
    const oupdown = meter.createObservableUpDownCounter('o.updown');
    const ogauge = meter.createObservableGauge('o.gauge');
    const otherCount = other.createCounter('other.count');
    model.define('requests', 'sum', true, true);
    model.define('bytes', 'sum', true);
    model.define('inflight', 'sum', false, true);
    model.define('balance', 'sum', false);
    model.define('latency', 'histogram');
    model.define('default.hist', 'histogram');
    model.define('exp.latency', 'exponentialHistogram');
    model.define('temperature', 'gauge');
    model.define('level', 'gauge', false, true);
    model.define('o.counter', 'sum', true, true);
    model.define('o.updown', 'sum', false);
    model.define('o.gauge', 'gauge');
    model.define('other.count', 'sum', true);

    const rand = prng(4242);
    const rec = (name: string, inst: { add?: (v: number, a: Attributes) => void; record?: (v: number, a: Attributes) => void }, v: number, a: Attributes) => {
      if (inst.add) inst.add(v, a);
      else inst.record!(v, a);
      model.add(name, v, a);
    };
    for (const a of ATTRS) {
      for (let n = 0; n < 3; n++) {
        rec('requests', requests, randInt(rand, 1, 5), a);
        rec('bytes', bytes, Math.round(rand() * 1e6) / 64, a);
        rec('inflight', inflight, randInt(rand, -3, 5), a);
        rec('balance', balance, Math.round((rand() - 0.5) * 1e4) / 8, a);
        // On and around the bounds, below the first and above the last.
        rec('latency', latency, [0, 0.1, 0.10000001, 1, 5, 10, 10.5, 1e6][randInt(rand, 0, 7)], a);
        rec('default.hist', defaultHist, randInt(rand, 0, 12000), a);
        rec('exp.latency', exp, n === 0 ? 0 : rand() * 10 ** randInt(rand, -3, 4), a);
        rec('temperature', temperature, Math.round(rand() * 1000) / 8 - 40, a);
        rec('level', level, randInt(rand, -100, 100), a);
      }
    }
    rec('other.count', otherCount, 0.5, { k: 'v' });
    const observed = ATTRS.map((a, i) => ({ a, c: 100 + i, u: -4.5 * i, g: i / 4 }));
    ocounter.addCallback((r) => observed.forEach((o) => r.observe(o.c, o.a)));
    oupdown.addCallback((r) => observed.forEach((o) => r.observe(o.u, o.a)));
    ogauge.addCallback((r) => observed.forEach((o) => r.observe(o.g, o.a)));
    for (const o of observed) {
      model.add('o.counter', o.c, o.a);
      model.add('o.updown', o.u, o.a);
      model.add('o.gauge', o.g, o.a);
    }

    await provider.forceFlush();
    await receiver.waitFor(1);
    // Observables report their latest observation: collect twice more, same expectations.
    await provider.forceFlush();
    await receiver.waitFor(2);
    const to = nowNanos();
    expect(receiver.requests.length).toBe(2);
    for (const req of receiver.requests) {
      expect(req.encoding).toBe(encoding);
      expect(req.resource).toEqual(RESOURCE.attributes);
      expect(req.scopes.map((s) => [s.name, s.version, s.schemaUrl])).toEqual([
        ['otlp.test', '1.2.3', SCHEMA],
        ['second-scope', '', ''],
      ]);
      checkRequest(req, model, { temporality: () => 2, bounds: { latency: LATENCY_BOUNDS, 'default.hist': [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000] } });
      checkTimes(req, from, to);
      const r = metricIn(req, 'requests')!;
      expect([r.description, r.unit]).toEqual([desc, '{request}']);
      expect(metricIn(req, 'exp.latency')!.unit).toBe('ms');
      // Cumulative histograms carry min and max.
      for (const p of metricIn(req, 'latency')!.points) expect(p.min !== undefined && p.max !== undefined).toBe(true);
    }
    // Cumulative: a series keeps its start time from one export to the next.
    const [a, b] = receiver.requests;
    for (const name of ['requests', 'latency', 'exp.latency', 'inflight']) {
      for (const p of metricIn(a, name)!.points) {
        const q = metricIn(b, name)!.points.find((x) => attrKey(x.attributes as Attributes) === attrKey(p.attributes as Attributes))!;
        expect(q.start).toBe(p.start);
        expect(q.time >= p.time).toBe(true);
      }
    }
    noErrors();
  });

  it('delta: each export holds exactly the interval, and the deltas add up to a cumulative reader\'s totals', async () => {
    logger = installLogger();
    receiver = await startReceiver();
    const from = nowNanos();
    const deltaReader = new PeriodicExportingMetricReader({
      exporter: make({ url: receiver.url, temporalityPreference: AggregationTemporalityPreference.DELTA }),
      exportIntervalMillis: 60_000,
    });
    const cumulative = await startReceiver();
    const cumulativeReader = new PeriodicExportingMetricReader({ exporter: make({ url: cumulative.url }), exportIntervalMillis: 60_000 });
    provider = new MeterProvider({
      readers: [deltaReader, cumulativeReader],
      views: [{ instrumentName: 'exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }],
    });
    const meter = provider.getMeter('delta.test', '0.1');
    const counter = meter.createCounter('counter', { valueType: ValueType.INT });
    const updown = meter.createUpDownCounter('updown');
    const hist = meter.createHistogram('hist', { advice: { explicitBucketBoundaries: LATENCY_BOUNDS } });
    const exp = meter.createHistogram('exp');
    const gauge = meter.createGauge('gauge');
    const ocounter = meter.createObservableCounter('o.counter');
    let observedTotal = 0;
    ocounter.addCallback((r) => r.observe(observedTotal, { src: 'cb' }));

    const round = new Model();
    round.define('counter', 'sum', true, true);
    round.define('hist', 'histogram');
    round.define('exp', 'exponentialHistogram');
    round.define('gauge', 'gauge');
    const totals = new Model();
    totals.define('counter', 'sum', true, true);
    totals.define('updown', 'sum', false);
    totals.define('hist', 'histogram');
    totals.define('exp', 'exponentialHistogram');
    totals.define('o.counter', 'sum', true);

    const rand = prng(777);
    const sets = ATTRS.slice(0, 6);
    const ROUNDS = 6;
    const observedDeltas: number[] = [];
    const seen = new Set<string>();
    let prevTime = 0n;
    for (let n = 0; n < ROUNDS; n++) {
      round.clear();
      // Each round touches a random subset of the series (some series skip rounds).
      for (const a of sets) {
        if (rand() < 0.3) continue;
        for (let k = randInt(rand, 1, 4); k > 0; k--) {
          const c = randInt(rand, 0, 9);
          counter.add(c, a);
          round.add('counter', c, a);
          totals.add('counter', c, a);
          // Never nets to zero (a series whose value never moved is not exported).
          const u = randInt(rand, -5, 5) + 1 / 1024;
          updown.add(u, a);
          totals.add('updown', u, a);
          const h = [0.05, 0.1, 0.7, 3, 10, 99][randInt(rand, 0, 5)];
          hist.record(h, a);
          round.add('hist', h, a);
          totals.add('hist', h, a);
          // Values spread far apart force the cumulative histogram to lower its scale
          // between rounds; the deltas must still be exact.
          const e = k === 1 && n === 2 ? 0 : rand() * 10 ** randInt(rand, -2, 2 + n);
          exp.record(e, a);
          round.add('exp', e, a);
          totals.add('exp', e, a);
          const g = randInt(rand, 0, 50);
          gauge.record(g, a);
          round.add('gauge', g, a);
        }
      }
      const step = randInt(rand, 0, 3) === 0 ? 0 : randInt(rand, 1, 20);
      observedTotal += step;
      observedDeltas.push(step);
      await deltaReader.forceFlush();
      await receiver.waitFor(n + 1);
      const req = receiver.requests[n];
      checkRequest(req, round, {
        temporality: (name) => (name === 'updown' ? 2 : 1),
        bounds: { hist: LATENCY_BOUNDS },
      });
      checkTimes(req, from, nowNanos());
      // Up-down counters stay cumulative under the OTLP exporters' DELTA preference.
      const ud = metricIn(req, 'updown');
      if (ud !== undefined) expect(ud.temporality).toBe(2);
      // The observed counter's delta is the step between observations.
      const oc = metricIn(req, 'o.counter')!;
      expect(oc.temporality).toBe(1);
      expect(oc.points.map((p) => p.asDouble)).toEqual([n === 0 ? observedTotal : step]);
      // A delta point covers the time since the previous collection (whether or not
      // its series changed then); a series' first point starts when the series did.
      const times = new Set(req.scopes.flatMap((s) => s.metrics.flatMap((m) => m.points.map((p) => p.time))));
      expect(times.size, 'one collection time per export').toBe(1);
      const time = [...times][0];
      for (const m of req.scopes[0].metrics) {
        if (m.temporality !== 1) continue;
        for (const p of m.points) {
          const key = `${m.name}${attrKey(p.attributes as Attributes)}`;
          if (seen.has(key)) expect(p.start, `${key} starts at the previous collection`).toBe(prevTime);
          else expect(p.start <= time && p.start >= from - 1_000_000n).toBe(true);
          seen.add(key);
        }
      }
      prevTime = time;
    }
    totals.add('o.counter', observedTotal, { src: 'cb' });

    // The cumulative reader, read once at the end, agrees with the sums of the deltas.
    await cumulativeReader.forceFlush();
    await cumulative.waitFor(1);
    const cum = cumulative.requests[0];
    checkRequest(cum, totals, { temporality: () => 2, bounds: { hist: LATENCY_BOUNDS } });
    const deltaReqs = receiver.requests;
    for (const [name] of totals.metrics) {
      if (name === 'updown') continue;
      const cm = metricIn(cum, name)!;
      for (const cp of cm.points) {
        const key = attrKey(cp.attributes as Attributes);
        const ds = deltaReqs.flatMap((r) => metricIn(r, name)?.points.filter((p) => attrKey(p.attributes as Attributes) === key) ?? []);
        if (cm.type === 'sum') expect(sum(ds.map((p) => p.asInt ?? p.asDouble ?? 0)), `${name} ${key}`).toBe(cp.asInt ?? cp.asDouble);
        if (cm.type === 'histogram') {
          expect(sum(ds.map((p) => p.count!))).toBe(cp.count);
          const buckets = cp.bucketCounts!.map((_, i) => sum(ds.map((p) => p.bucketCounts![i])));
          expect(buckets).toEqual(cp.bucketCounts);
        }
        if (cm.type === 'exponentialHistogram') {
          // Lower every delta point to the cumulative point's scale and add them up.
          const acc = new Map<number, number>();
          let zero = 0;
          for (const p of ds) {
            expect(p.scale! >= cp.scale!).toBe(true);
            const f = 2 ** (p.scale! - cp.scale!);
            zero += p.zeroCount ?? 0;
            p.positive?.bucketCounts.forEach((c, k) => {
              const i = Math.floor((p.positive!.offset + k) / f);
              acc.set(i, (acc.get(i) ?? 0) + c);
            });
          }
          expect(zero).toBe(cp.zeroCount ?? 0);
          const want = new Map<number, number>();
          cp.positive!.bucketCounts.forEach((c, k) => c > 0 && want.set(cp.positive!.offset + k, c));
          for (const [i, c] of acc) if (c === 0) acc.delete(i);
          expect(new Map([...acc].sort((x, y) => x[0] - y[0]))).toEqual(new Map([...want].sort((x, y) => x[0] - y[0])));
        }
      }
    }
    expect(observedDeltas.length).toBe(ROUNDS);
    // The exponential histogram lowered its scale along the way (the deltas above were
    // exact across rescaling).
    const scales = new Set(deltaReqs.flatMap((r) => metricIn(r, 'exp')?.points.map((p) => p.scale) ?? []));
    expect(scales.size).toBeGreaterThan(1);
    await cumulative.close();
    noErrors();
  });

  it('provider.shutdown() exports the last collection through the reader, then shuts the exporter down', async () => {
    logger = installLogger();
    receiver = await startReceiver();
    const exporter = make({ url: receiver.url });
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [reader] });
    const c = p.getMeter('s').createCounter('last.words');
    c.add(5, { k: HOSTILE[2] });
    c.add(2, { k: HOSTILE[2] });
    await p.shutdown(); // no forceFlush: shutdown alone must deliver it
    await receiver.waitFor(1);
    const m = metricIn(receiver.requests[0], 'last.words')!;
    expect(m.points.map((q) => [q.attributes, q.asDouble])).toEqual([[{ k: HOSTILE[2] }, 7]]);
    // The exporter is shut down: nothing more is sent, and the provider rejects collection.
    c.add(1, { k: 'after' });
    await expect(p.forceFlush()).rejects.toThrow(/after shutdown/);
    await expect(p.collect()).rejects.toThrow(/after shutdown/);
    expect(receiver.raw.length).toBe(1);
    noErrors(/measurement after shutdown dropped/);
  });

  it('a short export interval delivers without forceFlush', async () => {
    logger = installLogger();
    receiver = await startReceiver();
    const reader = new PeriodicExportingMetricReader({ exporter: make({ url: receiver.url }), exportIntervalMillis: 50, exportTimeoutMillis: 50 });
    provider = new MeterProvider({ readers: [reader] });
    provider.getMeter('tick').createCounter('ticks').add(3);
    await receiver.waitFor(2, 5_000);
    for (const req of receiver.requests.slice(0, 2)) {
      expect(metricIn(req, 'ticks')!.points.map((q) => q.asDouble)).toEqual([3]);
    }
    diag.disable();
  });
});
