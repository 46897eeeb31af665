// provider.shutdown(), in process: what the existing tests (bad-input, pipeline-push,
// otlp-*) leave out. The last export has everything, however shutdown is reached
// (concurrent calls, racing a forceFlush or a periodic export, observables); a failing
// or hanging exporter cannot make it reject or hang; afterwards recording calls of every
// kind are dropped without writing anything, with one diagnostic per instrument, and
// collect() / forceFlush() / a pull reader's collect() reject with a clear error.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CheckpointSet,
  ExportResultCode,
  MeterProvider,
  PullController,
  PushController,
  type ExportResult,
  type Exporter,
} from '../src';
import { resetDiagLimits } from '../src/sdk/diag';
import { CapturingLogger, findRecord, histOf, installLogger, lastValueOf, sleep, sumOf, uninstallLogger } from './helpers';

class Recorder implements Exporter {
  sets: CheckpointSet[] = [];
  events: string[] = [];
  constructor(public behaviour: 'ok' | 'reject' | 'failed' | 'hang' | 'slow' = 'ok') {}
  async export(set: CheckpointSet): Promise<ExportResult> {
    this.events.push('export');
    this.sets.push(set);
    if (this.behaviour === 'reject') throw new Error('backend down');
    if (this.behaviour === 'failed') return { code: ExportResultCode.FAILED, error: new Error('backend said no') };
    if (this.behaviour === 'hang') return new Promise(() => {});
    if (this.behaviour === 'slow') await sleep(100);
    return { code: ExportResultCode.SUCCESS };
  }
  async forceFlush(): Promise<void> {
    this.events.push('flush');
  }
  async shutdown(): Promise<void> {
    this.events.push('shutdown');
  }
}

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => uninstallLogger());

describe('shutdown() exports what was recorded', () => {
  it('concurrent shutdown() calls: one last export with everything, one exporter shutdown, both resolve', async () => {
    const exporter = new Recorder();
    const p = new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 60_000 })] });
    const c = p.getMeter('m').createCounter('c');
    c.add(5, { k: 'v' });
    const a = p.shutdown();
    const b = p.shutdown();
    c.add(1, { k: 'v' }); // after shutdown() began, before it finished: not promised either way
    await Promise.all([a, b]);
    expect(exporter.events).toEqual(['export', 'shutdown']);
    expect(sumOf(findRecord(exporter.sets[0], 'c', { k: 'v' }))).toBeGreaterThanOrEqual(5);
  });

  it('racing a forceFlush and a periodic export in flight: every value recorded is exported', async () => {
    const exporter = new Recorder('slow');
    const p = new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 30 })] });
    const c = p.getMeter('m').createCounter('c');
    const h = p.getMeter('m').createHistogram('h', { advice: { explicitBucketBoundaries: [1] } });
    let n = 0;
    const end = Date.now() + 150;
    while (Date.now() < end) {
      c.add(1, { k: 'v' });
      h.record(2);
      n++;
      if (n % 1000 === 0) await sleep(1); // let the timer fire: an export is in flight
    }
    const flush = p.forceFlush();
    await Promise.all([flush, p.shutdown()]);
    // Cumulative: a series' latest export holds its total. (A series idle for a whole
    // collection is reclaimed after it was exported, so it may be absent from the very
    // last export: its total went out before; memory follows the live series.)
    const latest = (name: string, attrs: Record<string, string> = {}) => {
      for (let i = exporter.sets.length - 1; i >= 0; i--) {
        const r = exporter.sets[i].records.find((x) => x.descriptor.name === name && JSON.stringify(x.attributes) === JSON.stringify(attrs));
        if (r !== undefined) return r;
      }
      throw new Error(`${name} never exported`);
    };
    expect(sumOf(latest('c', { k: 'v' }))).toBe(n);
    expect(histOf(latest('h')).bucketCounts).toEqual([0, n]);
    expect(exporter.events.slice(-2)).toEqual(['export', 'shutdown']);
    expect(exporter.events.filter((e) => e === 'shutdown')).toHaveLength(1);
  });

  it('with reclamation off, the last export has every series, idle ones included', async () => {
    const exporter = new Recorder();
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push], reclamation: false });
    const c = p.getMeter('m').createCounter('c');
    c.add(1, { k: 'idle' });
    await p.forceFlush();
    await p.forceFlush(); // idle for a whole collection
    c.add(2, { k: 'busy' });
    await p.shutdown();
    const last = exporter.sets.at(-1)!;
    expect(sumOf(findRecord(last, 'c', { k: 'idle' }))).toBe(1);
    expect(sumOf(findRecord(last, 'c', { k: 'busy' }))).toBe(2);
  });

  it('observable callbacks run for the last export, and never after', async () => {
    const exporter = new Recorder();
    const p = new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 60_000 })] });
    let calls = 0;
    p.getMeter('m').createObservableGauge('g').addCallback((r) => r.observe(++calls * 10, { k: 'v' }));
    await p.shutdown();
    expect(calls).toBe(1);
    expect(lastValueOf(findRecord(exporter.sets[0], 'g', { k: 'v' }))).toBe(10);
    await expect(p.collect()).rejects.toThrow('hotmeter: collect() after shutdown()');
    await sleep(20);
    expect(calls).toBe(1);
  });

  it('a pull reader is shut down too: its collect() rejects with a clear error', async () => {
    const pull = new PullController();
    const p = new MeterProvider({ readers: [pull] });
    p.getMeter('m').createCounter('c').add(3);
    expect(sumOf(findRecord(await pull.collect(), 'c'))).toBe(3);
    await p.shutdown();
    await expect(pull.collect()).rejects.toThrow('hotmeter: PullController.collect() after shutdown()');
  });
});

describe('a failing or hanging exporter cannot make shutdown() reject or hang', () => {
  for (const behaviour of ['reject', 'failed'] as const) {
    it(`last export ${behaviour === 'reject' ? 'rejects' : 'resolves FAILED'}: shutdown() resolves, with a diagnostic; recording is off`, async () => {
      const exporter = new Recorder(behaviour);
      const p = new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 60_000 })] });
      const c = p.getMeter('m').createCounter('c');
      c.add(1);
      await expect(p.shutdown()).resolves.toBeUndefined();
      expect(exporter.events).toEqual(['export', 'shutdown']);
      expect(log.warned('reader shutdown failed')).toBe(true);
      expect(() => c.add(1)).not.toThrow();
      await expect(p.forceFlush()).rejects.toThrow('hotmeter: forceFlush() after shutdown()');
    });
  }

  it('an export that never settles: shutdown() resolves after the controller timeout', async () => {
    const exporter = new Recorder('hang');
    const p = new MeterProvider({ readers: [new PushController({ exporter, intervalMillis: 60_000, timeoutMillis: 150 })] });
    p.getMeter('m').createCounter('c').add(1);
    const t0 = Date.now();
    await expect(p.shutdown()).resolves.toBeUndefined();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(2_000);
    expect(log.warned('did not finish within 150 ms')).toBe(true);
  });
});

describe('after shutdown: dropped, not written; one diagnostic; collect and forceFlush reject', () => {
  it('10,000 calls of every recording kind write nothing (seen from a provider sharing the domain)', async () => {
    // `other` shares the records of `p` (the same named domain) and keeps collecting.
    const p = new MeterProvider({ domain: 'shutdown-lifecycle' });
    const other = new MeterProvider({ domain: 'shutdown-lifecycle', reclamation: false });
    const m = p.getMeter('m');
    const c = m.createCounter('sd.c');
    const u = m.createUpDownCounter('sd.u');
    const h = m.createHistogram('sd.h', { advice: { explicitBucketBoundaries: [1, 10] } });
    const g = m.createGauge('sd.g');
    const bound = c.bind({ route: '/bound' });
    const boundH = h.bind({ route: '/bound' });
    c.add(2, { route: '/a' });
    u.add(-3, { route: '/a' });
    h.record(5, { route: '/a' });
    g.record(7, { route: '/a' });
    bound.add(4);
    boundH.record(20);
    m.recordBatch({ route: '/batch' }, [[c, 1], [h, 1]]);
    const before = await other.collect();
    const snapshot = (cs: CheckpointSet) =>
      cs.records.map((r) => [r.descriptor.name, JSON.stringify(r.attributes), JSON.stringify(r.aggregation)]).sort();

    await p.shutdown();
    log.clear();
    resetDiagLimits();
    for (let i = 0; i < 10_000; i++) {
      c.add(1, { route: '/a' });
      c.add(1, { route: `/new${i % 10}` });
      c.add(1);
      u.add(1, { route: '/a' });
      h.record(1, { route: '/a' });
      g.record(i, { route: '/a' });
      bound.add(1);
      boundH.record(1);
      c.bind({ route: '/late' }).add(1);
      m.recordBatch({ route: '/batch' }, [[c, 1], [h, 1]]);
    }
    const after = await other.collect();
    expect(snapshot(after)).toEqual(snapshot(before));
    expect(sumOf(findRecord(after, 'sd.c', { route: '/bound' }))).toBe(4);

    // One diagnostic per instrument (rate-limited: once per 10 s), never one per call.
    const lines = log.warnings.filter((w) => /after shutdown/.test(w));
    for (const name of ['sd.c', 'sd.u', 'sd.h', 'sd.g']) {
      expect(lines.filter((w) => w.includes(`${name}: measurement after shutdown dropped`)), name).toHaveLength(1);
    }
    expect(log.warnings.length).toBeLessThanOrEqual(6);

    await expect(p.collect()).rejects.toThrow('hotmeter: collect() after shutdown()');
    await expect(p.forceFlush()).rejects.toThrow('hotmeter: forceFlush() after shutdown()');
    await expect(p.shutdown()).resolves.toBeUndefined();
    await other.shutdown();
  });
});
