// Worker threads, one export: instruments created in any worker record into the same
// records as the main thread (same name and label set, same series), and the main
// thread's collection exports everything, exactly, while workers keep writing.
import { describe, expect, it, beforeAll, afterEach } from 'vitest';
import { MeterProvider, attachMeterProvider, AttachedMeterProvider, toPrometheusText } from '../src';
import type { CheckpointSet } from '../src';
import { findRecord, histOf, installLogger, maybeRecord, recordsOf, sumOf, uninstallLogger, attrKey } from './helpers';
import { requireCompiledPackage, sleep, startWorker, stopWorker } from './fixtures/worker-helpers';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];
const ROUTES = ['/api/users', '/api/orders'];

beforeAll(() => requireCompiledPackage());
afterEach(() => uninstallLogger());

describe('attaching a worker to the main thread\'s domain', () => {
  it('a worker records into the main thread\'s series; the main collection exports both', async () => {
    const main = new MeterProvider({ domain: 'wx-basic', reclaimIdleMillis: 1 }); // expiry on
    const requests = main.getMeter('workers-test').createCounter('requests');
    requests.add(100, { method: 'GET', route: '/api/users' }); // the series the worker writes too
    const sync = new Int32Array(new SharedArrayBuffer(4));
    const w = startWorker({ mode: 'hammer', domain: 'wx-basic', iterations: 8, sync: sync.buffer });
    Atomics.store(sync, 0, 1);
    Atomics.notify(sync, 0);
    await w.next('done');
    // The worker exits before any collection: its cells were folded into the records.
    expect(await stopWorker(w)).toBe(0);
    const cs = await main.collect();
    // j = 0 is GET /api/users: +1 (1 + j % 3), on top of the main thread's 100.
    expect(sumOf(findRecord(cs, 'requests', { method: 'GET', route: '/api/users' }))).toBe(101);
    expect(recordsOf(cs, 'requests')).toHaveLength(8);
    // Instruments only the worker created are exported too (see the next test).
    expect(sumOf(findRecord(cs, 'bound', { shared: 'yes' }))).toBe(8);
    expect(histOf(findRecord(cs, 'latency', { route: ROUTES[0] })).count).toBe(4);
    // Exported (delivered), unreferenced since the worker went, then idle longer than
    // reclaimIdleMillis: reclaimed. The series the main thread keeps writing stays.
    requests.add(1, { method: 'GET', route: '/api/users' });
    await new Promise((r) => setTimeout(r, 5));
    const after = await main.collect();
    expect(maybeRecord(after, 'bound', { shared: 'yes' })).toBeUndefined();
    expect(sumOf(findRecord(after, 'requests', { method: 'GET', route: '/api/users' }))).toBe(102);
  });

  it('instruments only a worker registered are exported with their descriptor, scope and attributes', async () => {
    const main = new MeterProvider({ domain: 'wx-foreign' });
    main.getMeter('main-scope').createCounter('main.only').add(1);
    const check = (cs: CheckpointSet, tag: string, workers: number) => {
      const when = `${tag}, ${workers} worker(s)`;
      const odd = findRecord(cs, 'jobs.processed', { queue: 'odd', worker: tag });
      expect(sumOf(odd), when).toBe(5);
      expect(sumOf(findRecord(cs, 'jobs.processed', { queue: 'even', worker: tag })), when).toBe(5);
      expect(odd.descriptor).toMatchObject({ name: 'jobs.processed', unit: '{job}', description: 'jobs this worker processed', monotonic: true });
      expect(odd.scope).toEqual({ name: 'worker-scope', version: '2.1.0', schemaUrl: 'https://example.com/schema' });
      // Series without the worker tag are shared by both workers (striped cells).
      const size = histOf(findRecord(cs, 'job.size', { queue: 'all' }));
      expect(size.boundaries).toEqual([10, 100]);
      expect(size.bucketCounts, when).toEqual([1, 5, 4].map((n) => n * workers)); // 0; 20..100; 120..180
      expect(size.sum, when).toBe(900 * workers);
      const depth = findRecord(cs, 'queue.depth');
      expect(depth.aggregation, when).toEqual({ kind: 'sum', sum: 3 * workers, monotonic: false });
      expect(sumOf(findRecord(cs, 'main.only'))).toBe(1);
    };
    // A worker that records and exits before any collection: its cells were folded.
    const w1 = startWorker({ mode: 'only-worker', domain: 'wx-foreign', tag: 'w1' });
    await w1.next('ready');
    expect(await stopWorker(w1)).toBe(0);
    const cs1 = await main.collect();
    check(cs1, 'w1', 1);
    const text = toPrometheusText(cs1);
    expect(text).toContain('# TYPE jobs_processed_total counter');
    expect(text).toContain('jobs_processed_total{queue="odd",worker="w1"} 5');
    expect(text).toContain('job_size_bytes_bucket{queue="all",le="100"} 6');
    // A live worker, recording into the same series.
    const w2 = startWorker({ mode: 'only-worker', domain: 'wx-foreign', tag: 'w2' });
    await w2.next('ready');
    check(await main.collect(), 'w2', 2);
    expect(await stopWorker(w2)).toBe(0);
  });

  it('an attached provider has no readers and does not collect', async () => {
    expect(() => attachMeterProvider('')).toThrow(TypeError);
    expect(() => attachMeterProvider('wx-attach', { readers: [] } as never)).toThrow(/no readers/);
    const a = attachMeterProvider('wx-attach');
    expect(a).toBeInstanceOf(AttachedMeterProvider);
    expect(a).toBeInstanceOf(MeterProvider);
    await expect(a.collect()).rejects.toThrow(/does not collect/);
    // In the main thread too, it records into the domain another provider collects.
    const main = new MeterProvider({ domain: 'wx-attach' });
    a.getMeter('m').createCounter('c').add(2, { x: 1 });
    main.getMeter('m').createCounter('c').add(3, { x: 1 });
    expect(sumOf(findRecord(await main.collect(), 'c', { x: 1 }))).toBe(5);
  });

  it('observables registered in a worker are not run by the main thread\'s collection (documented), and say so', async () => {
    const main = new MeterProvider({ domain: 'wx-observable' });
    const w = startWorker({ mode: 'observable', domain: 'wx-observable' });
    await w.next('ready');
    const cs = await main.collect();
    expect(maybeRecord(cs, 'worker.observed', { from: 'worker' })).toBeUndefined();
    // A synchronous gauge recorded in the worker is exported.
    expect(findRecord(cs, 'worker.gauge', { from: 'worker' }).aggregation).toEqual({ kind: 'lastValue', value: 7 });
    await stopWorker(w);
    // The attached provider warns when an observable is registered.
    const logger = installLogger();
    attachMeterProvider('wx-observable').getMeter('m').createObservableCounter('obs');
    expect(logger.lines.some((l) => /observable callbacks registered in an attached provider/.test(l.message))).toBe(true);
  });
});

describe('N workers x millions of updates while the main thread collects', () => {
  it('totals are exact; every collection is consistent and never goes backwards', async () => {
    const WORKERS = 2;
    const ITER = 4_000_000; // per worker: 3 updates each (fresh-literal add, bound add, histogram)
    const main = new MeterProvider({ domain: 'wx-hammer' });
    const meter = main.getMeter('workers-test');
    const requests = meter.createCounter('requests');
    const latency = meter.createHistogram('latency', { advice: { explicitBucketBoundaries: [1, 10, 50, 100] } });
    // Expected per series, from the same formula the workers use (computed before they
    // start, so that the main thread collects while they write).
    const perKey = new Float64Array(8);
    const perRoute = new Float64Array(2);
    for (let j = 0; j < ITER; j++) {
      perKey[(j & 3) + 4 * ((j >> 2) & 1)] += WORKERS * (1 + (j % 3));
      perRoute[j & 1] += WORKERS;
    }
    const want = new Map<string, number>();
    const wantHist = new Map<string, number>();
    for (let i = 0; i < 8; i++) want.set(attrKey({ method: METHODS[i & 3], route: ROUTES[i >> 2] }), perKey[i]);
    for (let i = 0; i < 2; i++) wantHist.set(attrKey({ route: ROUTES[i] }), perRoute[i]);

    const sync = new Int32Array(new SharedArrayBuffer(4));
    const ws = Array.from({ length: WORKERS }, () => startWorker({ mode: 'hammer', domain: 'wx-hammer', iterations: ITER, sync: sync.buffer }));
    await sleep(200); // let them start and block on `go`
    Atomics.store(sync, 0, 1);
    Atomics.notify(sync, 0);
    let done = 0;
    const finished = Promise.all(ws.map((w) => w.next('done', 120_000).then(() => done++)));

    let mainAdds = 0;
    // Per series (seriesId): the last exported value. A series nobody holds may be
    // reclaimed once exported (and come back as a new series): summing the last value
    // of every series a label set had gives everything recorded into it.
    const last = new Map<number, { name: string; key: string; v: number }>();
    const absorb = (cs: CheckpointSet) => {
      for (const name of ['requests', 'latency', 'bound']) {
        for (const r of recordsOf(cs, name)) {
          const v = r.aggregation.kind === 'histogram' ? r.aggregation.count : sumOf(r);
          const seen = last.get(r.seriesId);
          if (seen !== undefined) expect(v).toBeGreaterThanOrEqual(seen.v); // cumulative
          last.set(r.seriesId, { name, key: attrKey(r.attributes), v });
          if (r.aggregation.kind === 'histogram') {
            // A histogram's count is the sum of its buckets in every collection.
            expect(r.aggregation.count).toBe(r.aggregation.bucketCounts.reduce((a, b) => a + b, 0));
          }
        }
      }
    };
    const total = (name: string, attrs: Record<string, string>) => {
      let t = 0;
      for (const e of last.values()) if (e.name === name && e.key === attrKey(attrs)) t += e.v;
      return t;
    };
    let collections = 0;
    let midRun = 0;
    while (done < WORKERS) {
      // The main thread records into the same series meanwhile.
      requests.add(1, { method: 'GET', route: '/api/users' });
      latency.record(5, { route: '/api/users' });
      mainAdds++;
      absorb(await main.collect());
      collections++;
      if (done === 0) midRun++;
      await sleep(2);
    }
    await finished;
    const check = (when: string) => {
      for (const [k, v] of want) {
        const attrs = Object.fromEntries((JSON.parse(k) as [string, string, string][]).map(([a, , b]) => [a, b]));
        expect(total('requests', attrs), `${when}: ${k}`).toBe(v + (attrs.method === 'GET' && attrs.route === '/api/users' ? mainAdds : 0));
      }
      for (const [k, n] of wantHist) {
        const attrs = Object.fromEntries((JSON.parse(k) as [string, string, string][]).map(([a, , b]) => [a, b]));
        expect(total('latency', attrs), `${when}: ${k}`).toBe(n + (attrs.route === '/api/users' ? mainAdds : 0));
      }
      expect(total('bound', { shared: 'yes' }), when).toBe(WORKERS * ITER);
    };
    const cs = await main.collect(); // the workers are alive, idle
    absorb(cs);
    expect(recordsOf(cs, 'requests')).toHaveLength(8);
    check('workers alive');
    expect(midRun).toBeGreaterThan(3); // collections really ran while the workers wrote
    for (const w of ws) expect(await stopWorker(w)).toBe(0);
    // Folded on exit: the same totals, collection after collection.
    for (let i = 0; i < 3; i++) absorb(await main.collect());
    check('workers exited');
    console.log(`[workers] ${WORKERS} workers x ${ITER} rounds x 3 updates; ${collections} collections (${midRun} mid-run)`);
  }, 120_000);
});
