// Sparse delta passes (docs/design.md, "Update detection"): a collection for an all-delta
// OTLP reader reads the state of the records some thread may have written since a pass
// last read them (a reference held since, or new) and of those updated after the reader's
// previous pass, not of every record, and still exports exactly what was written.
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { beforeAll, describe, expect, it } from 'vitest';
import { MeterProvider, MetricsEngine, type MeterProviderOptions } from '../src';
import { native } from '../src/sdk/native';
import { attrKey } from './helpers';
import { requireCompiledPackage, startWorker, stopWorker } from './fixtures/worker-helpers';

const SERIES = 10_000;

/** attrKey -> value of every point of metric `name`. */
function points(rms: ResourceMetrics[], name: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const rm of rms) {
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        if (m.descriptor.name !== name) continue;
        for (const p of m.dataPoints) out.set(attrKey(p.attributes), p.value);
      }
    }
  }
  return out;
}

function deltaReader() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.DELTA);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  /** Flushes; returns the export and how many record states the pass read. */
  const flush = async () => {
    exporter.reset();
    const before = native().stats().stateReads;
    await reader.forceFlush();
    return { rms: exporter.getMetrics(), reads: native().stats().stateReads - before };
  };
  return { reader, flush };
}

function setup(options: Partial<MeterProviderOptions> = {}) {
  const { reader, flush } = deltaReader();
  const provider = new MeterProvider({ readers: [reader], cardinalityLimit: SERIES + 10, ...options });
  const meter = provider.getMeter(options.domain === undefined ? 'sparse-delta' : 'workers-test');
  return { provider, meter, flush };
}

/** Lets the stale-queue drain a collection leaves for the next event-loop turns run. */
const turns = async (n = 4) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('sparse delta passes', () => {
  it('a delta pass after one write among 10,000 idle series reads a handful of record states, and exports that write', async () => {
    const { provider, meter, flush } = setup();
    const counter = meter.createCounter('requests');
    try {
      // Each series written once: this thread keeps no reference to any of them.
      for (let i = 0; i < SERIES; i++) counter.add(1, { route: `/r/${i}` });
      const first = await flush();
      expect(points(first.rms, 'requests').size).toBe(SERIES);
      expect(first.reads).toBeGreaterThanOrEqual(SERIES);
      const idle = await flush();
      expect(points(idle.rms, 'requests').size).toBe(0);
      expect(idle.reads).toBeLessThan(10);
      counter.add(5, { route: '/r/1234' });
      const one = await flush();
      expect(points(one.rms, 'requests')).toEqual(new Map([[attrKey({ route: '/r/1234' }), 5]]));
      expect(one.reads).toBeGreaterThanOrEqual(1);
      expect(one.reads).toBeLessThan(10);
    } finally {
      await provider.shutdown();
    }
  });

  it('series this thread caches are read until their references are given back, then only when written again', async () => {
    // cacheIdleMillis 0: a pass asks for the references of every idle series back.
    const { provider, meter, flush } = setup({ cacheIdleMillis: 0 });
    const counter = meter.createCounter('cached');
    const n = 1000;
    try {
      // Written twice: the second write caches the series' handle (a reference held).
      for (let i = 0; i < n; i++) counter.add(1, { i });
      for (let i = 0; i < n; i++) counter.add(2, { i });
      const first = await flush();
      expect(points(first.rms, 'cached').size).toBe(n);
      expect([...points(first.rms, 'cached').values()].every((v) => v === 3)).toBe(true);
      await turns();
      // Idle and referenced: read, and queued for this thread to give back (the drain
      // after the collection).
      const asked = await flush();
      expect(asked.reads).toBeGreaterThanOrEqual(n);
      await turns();
      // No reference held any more: every record read once more (its final state), and
      // nothing exported.
      const last = await flush();
      expect(last.reads).toBeGreaterThanOrEqual(n);
      expect(points(last.rms, 'cached').size).toBe(0);
      const idle = await flush();
      expect(idle.reads).toBeLessThan(10);
      // Written again after their references went: taken again, exported exactly.
      for (let i = 0; i < n; i += 10) counter.add(i + 1, { i });
      const again = await flush();
      const d = points(again.rms, 'cached');
      expect(d.size).toBe(n / 10);
      for (let i = 0; i < n; i += 10) expect(d.get(attrKey({ i }))).toBe(i + 1);
    } finally {
      await provider.shutdown();
    }
  });

  it("an update another reader's pass saw first is still in this delta reader's next export", async () => {
    const a = deltaReader();
    const bExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const b = new PeriodicExportingMetricReader({ exporter: bExporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [a.reader, b] });
    const counter = provider.getMeter('sparse-delta').createCounter('seen');
    try {
      for (let i = 0; i < 100; i++) counter.add(1, { i });
      expect(points((await a.flush()).rms, 'seen').size).toBe(100);
      await b.forceFlush();
      expect(points((await a.flush()).rms, 'seen').size).toBe(0);
      // Written once (no reference kept), then read first by the cumulative reader's pass,
      // which finds it changed and leaves it as "read with no reference held".
      counter.add(7, { i: 42 });
      counter.add(3, { i: 'new' });
      await b.forceFlush();
      await b.forceFlush();
      const d = await a.flush();
      expect(points(d.rms, 'seen')).toEqual(
        new Map([
          [attrKey({ i: 42 }), 7],
          [attrKey({ i: 'new' }), 3],
        ]),
      );
      expect(points((await a.flush()).rms, 'seen').size).toBe(0);
    } finally {
      await provider.shutdown();
    }
  });

  it('every write path is exported by sparse delta passes', async () => {
    const { provider, meter, flush } = setup();
    const counter = meter.createCounter('c');
    const updown = meter.createUpDownCounter('u');
    const hist = meter.createHistogram('h', { advice: { explicitBucketBoundaries: [10] } });
    const gauge = meter.createGauge('g');
    let observed = 1;
    meter.createObservableCounter('o').addCallback((r) => r.observe(observed, { k: 'obs' }));
    try {
      const batch = (meter as unknown as { recordBatch(a: object, m: unknown[]): void }).recordBatch.bind(meter);
      for (let i = 0; i < 100; i++) counter.add(1, { k: `idle${i}` });
      const bound = counter.bind({ k: 'bound' });
      bound.add(1);
      // Every series below exists and was exported before.
      counter.add(1);
      batch({ k: 'batch' }, [
        [counter, 1],
        [updown, 1],
        [hist, 1],
        [gauge, 1],
      ]);
      for (let i = 0; i < 4; i++) await flush();
      // Bound handle: a reference held, read every pass while bound.
      bound.add(2);
      expect(points((await flush()).rms, 'c')).toEqual(new Map([[attrKey({ k: 'bound' }), 2]]));
      // Its last writes before unbind() are still exported.
      bound.add(3);
      bound.unbind();
      expect(points((await flush()).rms, 'c')).toEqual(new Map([[attrKey({ k: 'bound' }), 3]]));
      // No attributes; recordBatch; every synchronous kind through the attribute path.
      counter.add(4);
      batch({ k: 'batch' }, [
        [counter, 6],
        [updown, -2],
        [hist, 12],
        [gauge, 7],
      ]);
      const d = (await flush()).rms;
      expect(points(d, 'c')).toEqual(
        new Map<string, unknown>([
          [attrKey({}), 4],
          [attrKey({ k: 'batch' }), 6],
        ]),
      );
      expect(points(d, 'u')).toEqual(new Map([[attrKey({ k: 'batch' }), -2]]));
      expect([...points(d, 'h').values()].map((h) => (h as { count: number }).count)).toEqual([1]);
      expect(points(d, 'g')).toEqual(new Map([[attrKey({ k: 'batch' }), 7]]));
      // Observations: written by the collection's callbacks, read every pass.
      observed = 11;
      expect(points((await flush()).rms, 'o')).toEqual(new Map([[attrKey({ k: 'obs' }), 10]]));
      // Idle again: nothing but the observable.
      const idle = await flush();
      expect(points(idle.rms, 'c').size).toBe(0);
      expect(idle.reads).toBeLessThan(20);
    } finally {
      await provider.shutdown();
    }
  });
});

describe('sparse delta passes and call metrics', () => {
  it("call metrics (bound handles) are in a delta reader's exports after idle passes", async () => {
    const { reader, flush: flushAll } = deltaReader();
    const engine = new MetricsEngine({ readers: [reader], callTimeoutMs: 0 });
    const flush = async () => points((await flushAll()).rms, 'hotmeter.calls');
    const ok = attrKey({ api_type: 'db', call_name: 'query', outcome: 'ok' });
    try {
      engine.recordCall('db', 'query')();
      expect((await flush()).get(ok)).toBe(1);
      for (let i = 0; i < 3; i++) await flush();
      expect((await flush()).get(ok)).toBeUndefined();
      engine.recordCall('db', 'query')();
      engine.recordCall('db', 'query')();
      expect((await flush()).get(ok)).toBe(2);
    } finally {
      await engine.shutdown();
    }
  });
});

describe('sparse delta passes with worker threads', () => {
  beforeAll(() => requireCompiledPackage());

  it("a worker's writes (attribute path, bound handle, its last ones before it exits) are in the delta exports", async () => {
    const { provider, meter, flush } = setup({ domain: 'sparse-delta-worker-exit' });
    meter.createCounter('idle.count'); // the instrument the worker writes ('idle' mode)
    const w = startWorker({ mode: 'idle', domain: 'sparse-delta-worker-exit' });
    const record = async (keys: string[], value: number, bind = false) => {
      w.worker.postMessage({ type: 'record', rounds: 1, keys, value, bind });
      await w.next('recorded');
    };
    const idle = async () => {
      for (let i = 0; i < 3; i++) await flush();
    };
    const exported = async () => points((await flush()).rms, 'idle.count');
    try {
      await w.next('ready');
      await record(['a', 'b'], 1);
      expect(await exported()).toEqual(new Map([[attrKey({ k: 'a' }), 1], [attrKey({ k: 'b' }), 1]]));
      await idle();
      await record(['a'], 2);
      expect(await exported()).toEqual(new Map([[attrKey({ k: 'a' }), 2]]));
      await idle();
      await record(['b'], 3, true);
      expect(await exported()).toEqual(new Map([[attrKey({ k: 'b' }), 3], [attrKey({ k: 'bound' }), 3]]));
      await idle();
      // The last writes, then the thread exits before any collection read them.
      await record(['a'], 5);
      w.worker.postMessage('exit');
      expect(await w.exited).toBe(0);
      expect(await exported()).toEqual(new Map([[attrKey({ k: 'a' }), 5]]));
      expect((await exported()).size).toBe(0);
    } finally {
      await stopWorker(w);
      await provider.shutdown();
    }
  }, 60_000);

  it('delta exports collected while two workers write 1,500 series sparsely add up to the exact totals', async () => {
    // cacheIdleMillis 0: references are given back and taken again all along.
    const { provider, meter, flush } = setup({ domain: 'sparse-delta-writers', cacheIdleMillis: 0 });
    meter.createCounter('sparse');
    const series = 1500;
    const iterations = 300_000;
    const sync = new Int32Array(new SharedArrayBuffer(4));
    const workers = [0, 1].map((tag) => startWorker({ mode: 'sparse', domain: 'sparse-delta-writers', iterations, series, tag, sync: sync.buffer }));
    const totals = new Map<string, number>();
    const add = (rms: ResourceMetrics[]) => {
      for (const [k, v] of points(rms, 'sparse')) totals.set(k, (totals.get(k) ?? 0) + (v as number));
    };
    try {
      Atomics.store(sync, 0, 1);
      Atomics.notify(sync, 0);
      const done = Promise.all(workers.map((w) => w.next('done', 120_000)));
      let finished = false;
      void done.then(() => (finished = true));
      let collections = 0;
      while (!finished) {
        add((await flush()).rms);
        collections++;
        await new Promise((r) => setImmediate(r));
      }
      await done;
      add((await flush()).rms);
      expect(collections).toBeGreaterThan(1);
      const expected = new Map<string, number>();
      for (const tag of [0, 1]) {
        for (let j = 0; j < iterations; j++) {
          const k = attrKey({ s: `s${(j * 7919 + tag * 13) % series}` });
          expected.set(k, (expected.get(k) ?? 0) + 1 + (j % 3));
        }
      }
      expect(new Map([...totals].sort())).toEqual(new Map([...expected].sort()));
    } finally {
      for (const w of workers) expect(await stopWorker(w)).toBe(0);
      await provider.shutdown();
    }
  }, 180_000);
});
