// The OTLP producer converts only what changed since its reader's previous collection
// (src/exporters/otlp/incremental.ts): delta collections hold exactly the changed series
// with their exact intervals, cumulative ones every live series with its current total
// (unchanged ones from the cache), the cache cannot be corrupted by an exporter, and
// totals stay exact while worker threads write during collections.
import type { Attributes } from '@opentelemetry/api';
import {
  AggregationTemporality as SdkTemporality,
  DataPointType,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
  type Histogram,
  type MetricData,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { beforeAll, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { attrKey, prng, randInt } from './helpers';
import { requireCompiledPackage, startWorker, stopWorker } from './fixtures/worker-helpers';

const BOUNDS = [1, 10, 100];

function metric(rm: ResourceMetrics, name: string): MetricData | undefined {
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) if (m.descriptor.name === name) return m;
  return undefined;
}

/** attrKey -> point value of metric `name` in `rm` (every point once). */
function points<T>(rm: ResourceMetrics | undefined, name: string): Map<string, T> {
  const out = new Map<string, T>();
  const m = rm === undefined ? undefined : metric(rm, name);
  for (const p of m?.dataPoints ?? []) {
    const k = attrKey(p.attributes);
    expect(out.has(k), `${name}${k} once`).toBe(false);
    out.set(k, p.value as T);
  }
  return out;
}

function bucketOf(v: number): number {
  let i = 0;
  while (i < BOUNDS.length && v > BOUNDS[i]) i++;
  return i;
}

interface Series {
  attrs: Attributes;
  sum: number;
  counts: number[];
  hsum: number;
}

function setup(temporality: SdkTemporality, series: number) {
  const exporter = new InMemoryMetricExporter(temporality);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader], cardinalityLimit: series + 10 });
  const meter = provider.getMeter('incremental');
  const counter = meter.createCounter('requests');
  const hist = meter.createHistogram('latency', { advice: { explicitBucketBoundaries: BOUNDS } });
  const all: Series[] = [];
  for (let i = 0; i < series; i++) all.push({ attrs: { route: `/r/${i}`, odd: i % 2 === 1 }, sum: 0, counts: BOUNDS.map(() => 0).concat(0), hsum: 0 });
  const record = (s: Series, add: number, v: number) => {
    counter.add(add, s.attrs);
    hist.record(v, s.attrs);
    s.sum += add;
    s.counts[bucketOf(v)]++;
    s.hsum += v;
  };
  return { exporter, reader, provider, all, record };
}

describe('incremental OTLP collections', () => {
  it('delta: each export holds exactly the series written since the previous one, with their exact intervals (40 rounds, 500 series)', async () => {
    const { exporter, reader, provider, all, record } = setup(SdkTemporality.DELTA, 500);
    const rand = prng(29);
    try {
      for (let round = 0; round < 40; round++) {
        // Round 0 writes every series; later rounds a random subset (some rounds none).
        const changed = new Map<string, { sum: number; counts: number[]; hsum: number }>();
        const share = round === 0 ? 1 : [0, 0.01, 0.1, 0.5][round % 4];
        for (const s of all) {
          if (rand() >= share) continue;
          const before = { sum: s.sum, counts: s.counts.slice(), hsum: s.hsum };
          const times = randInt(rand, 1, 3);
          for (let k = 0; k < times; k++) record(s, randInt(rand, 1, 9), [0.5, 5, 50, 500][randInt(rand, 0, 3)]);
          changed.set(attrKey(s.attrs), { sum: s.sum - before.sum, counts: s.counts.map((c, j) => c - before.counts[j]), hsum: s.hsum - before.hsum });
        }
        exporter.reset();
        await reader.forceFlush();
        const rm = exporter.getMetrics()[0];
        const sums = points<number>(rm, 'requests');
        const hists = points<Histogram>(rm, 'latency');
        expect([...sums.keys()].sort(), `round ${round}`).toEqual([...changed.keys()].sort());
        expect([...hists.keys()].sort(), `round ${round}`).toEqual([...changed.keys()].sort());
        for (const [k, c] of changed) {
          expect(sums.get(k), `round ${round} ${k}`).toBe(c.sum);
          const h = hists.get(k)!;
          expect(h.buckets.counts, `round ${round} ${k}`).toEqual(c.counts);
          expect(h.count).toBe(c.counts.reduce((a, b) => a + b, 0));
          expect(h.sum).toBeCloseTo(c.hsum, 9);
        }
        if (rm !== undefined) expect(metric(rm, 'requests')!.aggregationTemporality).toBe(SdkTemporality.DELTA);
      }
    } finally {
      await provider.shutdown();
    }
  });

  it('cumulative: every export holds every series, idle ones with their unchanged totals (30 rounds, reclamation on)', async () => {
    const { exporter, reader, provider, all, record } = setup(SdkTemporality.CUMULATIVE, 300);
    const rand = prng(7);
    try {
      for (let round = 0; round < 30; round++) {
        const share = round === 0 ? 1 : [0, 0.02, 0.3][round % 3];
        for (const s of all) if (rand() < share) record(s, randInt(rand, 1, 5), rand() * 200);
        exporter.reset();
        await reader.forceFlush();
        const rm = exporter.getMetrics()[0];
        const sums = points<number>(rm, 'requests');
        const hists = points<Histogram>(rm, 'latency');
        expect(sums.size, `round ${round}`).toBe(all.length);
        expect(hists.size, `round ${round}`).toBe(all.length);
        for (const s of all) {
          const k = attrKey(s.attrs);
          expect(sums.get(k), `round ${round} ${k}`).toBe(s.sum);
          const h = hists.get(k)!;
          expect(h.buckets.counts, `round ${round} ${k}`).toEqual(s.counts);
          expect(h.buckets.boundaries).toEqual(BOUNDS);
          expect(h.sum).toBeCloseTo(s.hsum, 9);
        }
        const m = metric(rm, 'requests')!;
        expect(m.dataPointType).toBe(DataPointType.SUM);
        expect(m.aggregationTemporality).toBe(SdkTemporality.CUMULATIVE);
        // Points of one export share the collection's end time; start times stay each series'.
        const ends = new Set(m.dataPoints.map((p) => `${p.endTime[0]}.${p.endTime[1]}`));
        expect(ends.size).toBe(1);
      }
    } finally {
      await provider.shutdown();
    }
  });

  it('an exporter that mutates what it is given cannot change later exports (attributes and cached values are frozen)', async () => {
    const exports: ResourceMetrics[] = [];
    const failures: unknown[] = [];
    const vandal: PushMetricExporter = {
      export(metrics, done) {
        exports.push(structuredClone(metrics));
        for (const sm of metrics.scopeMetrics) {
          for (const m of sm.metrics) {
            for (const p of m.dataPoints as { attributes: Attributes; value: unknown }[]) {
              for (const f of [
                () => ((p.attributes as Record<string, unknown>).route = 'vandalised'),
                () => delete (p.attributes as Record<string, unknown>).odd,
                () => ((p.attributes as Record<string, unknown>).added = 1),
                () => (p.attributes.list as unknown[]).push('x'),
                () => ((p.value as Histogram).buckets.counts[0] = -1),
                () => (p.value as Histogram).buckets.boundaries.push(1e9),
                () => ((p.value as Histogram).count = -1),
              ]) {
                try {
                  f();
                } catch (e) {
                  failures.push(e);
                }
              }
            }
          }
        }
        done({ code: 0 });
      },
      forceFlush: async () => {},
      shutdown: async () => {},
      selectAggregationTemporality: () => SdkTemporality.CUMULATIVE,
    };
    const reader = new PeriodicExportingMetricReader({ exporter: vandal, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter('vandal');
    const counter = meter.createCounter('c');
    const hist = meter.createHistogram('h', { advice: { explicitBucketBoundaries: [5] } });
    const attrs = { route: '/a', odd: true, list: ['p', 'q'] };
    try {
      counter.add(3, attrs);
      hist.record(1, attrs);
      hist.record(7, attrs);
      await reader.forceFlush();
      await reader.forceFlush(); // nothing changed: from the cache
      counter.add(1, { route: '/b' });
      await reader.forceFlush(); // another series changed, these two from the cache
      expect(exports).toHaveLength(3);
      for (const rm of exports) {
        const c = points<number>(rm, 'c');
        const h = points<Histogram>(rm, 'h');
        expect(c.get(attrKey(attrs))).toBe(3);
        const hv = h.get(attrKey(attrs))!;
        expect(hv.buckets).toEqual({ boundaries: [5], counts: [1, 1] });
        expect(hv.count).toBe(2);
        const p = metric(rm, 'c')!.dataPoints.find((x) => x.attributes.route === '/a')!;
        expect(p.attributes).toEqual({ route: '/a', odd: true, list: ['p', 'q'] });
      }
      expect(failures.length).toBeGreaterThan(0);
      for (const e of failures) expect(e).toBeInstanceOf(TypeError);
      expect(attrs).toEqual({ route: '/a', odd: true, list: ['p', 'q'] }); // the caller's object is never shared
    } finally {
      await provider.shutdown();
    }
  });

  const SHARED = 2100;
  it('records of different instruments written with the same attributes share one decoded, frozen attributes object (OTLP export and provider.collect())', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const otlp = new MeterProvider({ readers: [reader], cardinalityLimit: 5000 });
    const direct = new MeterProvider({ cardinalityLimit: 5000 });
    try {
      for (const provider of [otlp, direct]) {
        const meter = provider.getMeter('shared');
        const c = meter.createCounter('c');
        const h = meter.createHistogram('h');
        const u = meter.createUpDownCounter('u');
        // More label sets than the producer decodes per batch (2,000).
        for (let i = 0; i < SHARED; i++) {
          c.add(1, { route: `/r/${i}`, n: i });
          h.record(i, { route: `/r/${i}`, n: i });
          if (i % 2 === 0) u.add(1, { n: i, route: `/r/${i}` }); // another key order: the same label set
        }
        u.add(1, { route: '/other' });
      }
      await reader.forceFlush();
      const rm = exporter.getMetrics().at(-1)!;
      const set = await direct.collect();
      const byName = new Map<string, Map<string, Attributes>>();
      for (const m of ['c', 'h', 'u']) {
        const e = new Map<string, Attributes>();
        for (const p of metric(rm, m)!.dataPoints) e.set(`otlp${attrKey(p.attributes)}`, p.attributes);
        for (const r of set) if (r.descriptor.name === m) e.set(`direct${attrKey(r.attributes)}`, r.attributes);
        byName.set(m, e);
      }
      for (const src of ['otlp', 'direct']) {
        for (let i = 0; i < SHARED; i++) {
          const k = `${src}${attrKey({ route: `/r/${i}`, n: i })}`;
          const a = byName.get('c')!.get(k)!;
          expect(a).toEqual({ route: `/r/${i}`, n: i });
          expect(Object.isFrozen(a)).toBe(true);
          expect(byName.get('h')!.get(k)).toBe(a);
          if (i % 2 === 0) expect(byName.get('u')!.get(k)).toBe(a);
        }
        expect(byName.get('u')!.get(`${src}${attrKey({ route: '/other' })}`)).toEqual({ route: '/other' });
      }
    } finally {
      await otlp.shutdown();
      await direct.shutdown();
    }
  });
});

describe('incremental OTLP collections with worker threads writing', () => {
  beforeAll(() => requireCompiledPackage());

  it('delta exports collected while two workers write add up to the exact totals', async () => {
    const domain = 'otlp-incremental-workers';
    const exporter = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ domain, readers: [reader] });
    // The instruments the workers write (worker-recorder.js 'hammer'), created here too.
    const meter = provider.getMeter('workers-test');
    meter.createCounter('requests');
    const iterations = 1_000_000;
    const sync = new Int32Array(new SharedArrayBuffer(4));
    const workers = [0, 1].map(() => startWorker({ mode: 'hammer', domain, iterations, sync: sync.buffer }));
    const totals = new Map<string, number>();
    const latency = { count: 0, counts: [] as number[] };
    const add = () => {
      for (const rm of exporter.getMetrics()) {
        for (const [k, v] of points<number>(rm, 'requests')) totals.set(k, (totals.get(k) ?? 0) + v);
        for (const [k, v] of points<number>(rm, 'bound')) totals.set(`bound${k}`, (totals.get(`bound${k}`) ?? 0) + v);
        for (const h of points<Histogram>(rm, 'latency').values()) {
          latency.count += h.count;
          h.buckets.counts.forEach((c, j) => (latency.counts[j] = (latency.counts[j] ?? 0) + c));
        }
      }
      exporter.reset();
    };
    try {
      Atomics.store(sync, 0, 1);
      Atomics.notify(sync, 0);
      const done = Promise.all(workers.map((w) => w.next('done', 120_000)));
      let finished = false;
      void done.then(() => (finished = true));
      let collections = 0;
      while (!finished) {
        await reader.forceFlush();
        add();
        collections++;
        await new Promise((r) => setImmediate(r));
      }
      await done;
      await reader.forceFlush();
      add();
      expect(collections).toBeGreaterThan(1);
      // Per worker, j = 0..n-1: requests{METHODS[j & 3], ROUTES[(j >> 2) & 1]} += 1 + j % 3.
      const expected = new Map<string, number>();
      const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
      const ROUTES = ['/api/users', '/api/orders'];
      for (let j = 0; j < iterations; j++) {
        const k = attrKey({ method: METHODS[j & 3], route: ROUTES[(j >> 2) & 1] });
        expected.set(k, (expected.get(k) ?? 0) + 2 * (1 + (j % 3)));
      }
      expected.set(`bound${attrKey({ shared: 'yes' })}`, 2 * iterations);
      expect(new Map([...totals].sort())).toEqual(new Map([...expected].sort()));
      expect(latency.count).toBe(2 * iterations);
    } finally {
      for (const w of workers) expect(await stopWorker(w)).toBe(0);
      await provider.shutdown();
    }
  }, 180_000);
});
