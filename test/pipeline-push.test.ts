// PushController: periodic export, shutdown's last collection, forceFlush, exporter
// temporality, and failing / slow / hanging exporters (bounded, never stopping).
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AggregationTemporality,
  CheckpointSet,
  ExportResultCode,
  InstrumentKind,
  MeterProvider,
  PushController,
  type ExportOptions,
  type ExportResult,
  type Exporter,
} from '../src';
import { CapturingLogger, findRecord, installLogger, sleep, sumOf, uninstallLogger, until } from './helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Polls every 2 ms for up to 3 s (the shared until, with this file's timing). */
const waitFor = (cond: () => boolean, what: string): Promise<void> => until(cond, 3_000, what, 2);

type Mode = 'ok' | 'throw' | 'reject' | 'failed' | 'hang' | 'hang-abortable' | 'slow';

/** An exporter whose behaviour the test picks, recording what it saw. */
class TestExporter implements Exporter {
  sets: CheckpointSet[] = [];
  keep = true;
  calls = 0;
  active = 0;
  maxActive = 0;
  shutdowns = 0;
  events: string[] = [];
  weak: WeakRef<CheckpointSet>[] = [];
  constructor(
    public mode: Mode = 'ok',
    readonly temporality?: AggregationTemporality,
    public slowMs = 25,
  ) {}
  export(set: CheckpointSet, _resource: unknown, options?: ExportOptions): Promise<ExportResult> {
    this.calls++;
    this.events.push('export');
    if (this.keep) this.sets.push(set);
    else this.weak.push(new WeakRef(set));
    switch (this.mode) {
      case 'ok':
        return Promise.resolve({ code: ExportResultCode.SUCCESS });
      case 'throw':
        throw new Error('boom (sync)');
      case 'reject':
        return Promise.reject(new Error('boom (async)'));
      case 'failed':
        return Promise.resolve({ code: ExportResultCode.FAILED, error: new Error('backend said no') });
      case 'hang':
        return new Promise(() => {});
      case 'hang-abortable':
        return new Promise((_, reject) => options?.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
      case 'slow':
        this.active++;
        this.maxActive = Math.max(this.maxActive, this.active);
        return sleep(this.slowMs).then(() => {
          this.active--;
          return { code: ExportResultCode.SUCCESS };
        });
    }
  }
  async forceFlush(): Promise<void> {
    this.events.push('flush');
  }
  async shutdown(): Promise<void> {
    this.shutdowns++;
    this.events.push('shutdown');
  }
}

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => uninstallLogger());

describe('PushController', () => {
  it('exports once per interval, on an unref’d timer', async () => {
    const exporter = new TestExporter();
    const push = new PushController({ exporter, intervalMillis: 20 });
    const p = new MeterProvider({ readers: [push] });
    const c = p.getMeter('push').createCounter('c');
    expect((push as unknown as { timer: NodeJS.Timeout }).timer.hasRef()).toBe(false);
    const t0 = Date.now();
    c.add(1);
    await waitFor(() => exporter.calls >= 10, '10 exports');
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(9 * 20 - 5); // not faster than the interval
    expect(elapsed).toBeLessThan(1_500);
    expect(push.stats).toMatchObject({ failed: 0, timedOut: 0 });
    expect(push.stats.collections).toBe(push.stats.exports);
    expect(sumOf(findRecord(exporter.sets[0], 'c'))).toBe(1);
    await p.shutdown();
    const after = exporter.calls;
    await sleep(60);
    expect(exporter.calls).toBe(after); // the timer is gone
  });

  it('shutdown exports a last collection with what was just recorded, then shuts the exporter down', async () => {
    const exporter = new TestExporter();
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    const c = p.getMeter('push').createCounter('c');
    const h = p.getMeter('push').createHistogram('h');
    c.add(7, { k: 'v' });
    h.record(3);
    await p.shutdown();
    expect(exporter.events).toEqual(['export', 'shutdown']);
    const last = exporter.sets.at(-1)!;
    expect(sumOf(findRecord(last, 'c', { k: 'v' }))).toBe(7);
    expect(findRecord(last, 'h').aggregation).toMatchObject({ count: 1, sum: 3 });
    await push.shutdown(); // idempotent
    await push.forceFlush(); // a no-op after shutdown
    expect(exporter.shutdowns).toBe(1);
    expect(exporter.calls).toBe(1);
  });

  it('delta temporality chosen by the exporter: exported deltas add up to the totals, last one included', async () => {
    const exporter = new TestExporter('ok', AggregationTemporality.DELTA);
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    const c = p.getMeter('push').createCounter('c');
    let total = 0;
    for (let i = 1; i <= 5; i++) {
      c.add(i);
      total += i;
      await p.forceFlush();
    }
    c.add(100);
    total += 100;
    await p.shutdown();
    const deltas = exporter.sets.flatMap((s) => s.records.map(sumOf));
    expect(deltas).toEqual([1, 2, 3, 4, 5, 100]);
    expect(deltas.reduce((a, b) => a + b)).toBe(total);
  });

  it('OpenTelemetry JS style selectAggregationTemporality is honoured', async () => {
    const exporter = new TestExporter();
    const select = (kind: InstrumentKind): AggregationTemporality =>
      kind === InstrumentKind.COUNTER ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
    const withSelect = Object.assign(exporter, { selectAggregationTemporality: select });
    const push = new PushController({ exporter: withSelect, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    const m = p.getMeter('push');
    m.createCounter('c').add(2);
    m.createUpDownCounter('u').add(2);
    await p.forceFlush();
    m.createCounter('c').add(3);
    m.createUpDownCounter('u').add(3);
    await p.forceFlush();
    const last = exporter.sets.at(-1)!;
    expect(sumOf(findRecord(last, 'c'))).toBe(3);
    expect(sumOf(findRecord(last, 'u'))).toBe(5);
    await p.shutdown();
  });

  it('forceFlush waits for a run in flight, then exports what was recorded before it', async () => {
    const exporter = new TestExporter('slow', undefined, 40);
    const push = new PushController({ exporter, intervalMillis: 10 });
    const p = new MeterProvider({ readers: [push] });
    const c = p.getMeter('push').createCounter('c');
    c.add(1);
    await waitFor(() => exporter.active === 1, 'an export in flight'); // a periodic export is in flight
    c.add(41);
    await p.forceFlush();
    expect(sumOf(findRecord(exporter.sets.at(-1)!, 'c'))).toBe(42);
    expect(exporter.maxActive).toBe(1);
    await p.shutdown();
  });

  for (const mode of ['throw', 'reject', 'failed', 'hang', 'hang-abortable'] as const) {
    it(`a failing exporter (${mode}) never stops collection and holds nothing`, async () => {
      const exporter = new TestExporter(mode);
      exporter.keep = false;
      const push = new PushController({ exporter, intervalMillis: 5, timeoutMillis: 15 });
      const p = new MeterProvider({ readers: [push] });
      // Held, so the record outlives idle intervals (reclamation is not under test here).
      const c = p.getMeter('push').createCounter('c').bind({});
      let maxInFlight = 0;
      for (let i = 0; i < 150; i++) {
        c.add(1);
        maxInFlight = Math.max(maxInFlight, push.stats.inFlight);
        await sleep(2);
      }
      const s = push.stats;
      expect(s.collections).toBeGreaterThanOrEqual(5);
      expect(s.exports).toBe(s.collections);
      expect(maxInFlight).toBeLessThanOrEqual(1);
      if (mode.startsWith('hang')) {
        expect(s.timedOut).toBeGreaterThanOrEqual(s.exports - 1);
        expect(log.warned('abandoned')).toBe(true);
        // The abortable exporter gave its calls up; the other one still holds them.
        if (mode === 'hang-abortable') expect(s.abandoned).toBe(0);
        else expect(s.abandoned).toBe(s.timedOut);
      } else {
        expect(s.failed).toBe(s.exports);
        expect(s.succeeded).toBe(0);
        expect(log.warned('export failed', mode === 'failed' ? 'backend said no' : 'boom')).toBe(true);
      }
      // The controller keeps no exported set alive (only the exporter could).
      await sleep(20);
      gc();
      await sleep(0);
      gc();
      const alive = exporter.weak.filter((w) => w.deref() !== undefined).length;
      expect(alive).toBeLessThanOrEqual(2);
      // The provider is unaffected: everything recorded is there.
      expect(sumOf(findRecord(await p.collect(), 'c'))).toBe(150);
      c.unbind();
      await p.shutdown().catch(() => undefined);
      expect(exporter.shutdowns).toBe(1);
    });
  }

  it('a slow exporter: ticks that find an export in flight are skipped, never overlapped', async () => {
    const exporter = new TestExporter('slow', undefined, 25);
    const push = new PushController({ exporter, intervalMillis: 5, timeoutMillis: 1_000 });
    const p = new MeterProvider({ readers: [push] });
    p.getMeter('push').createCounter('c').add(1);
    await waitFor(() => exporter.calls >= 4, '4 exports');
    expect(exporter.maxActive).toBe(1);
    expect(push.stats.skipped).toBeGreaterThan(0);
    expect(log.warned('skipped')).toBe(true);
    await p.shutdown();
    expect(exporter.maxActive).toBe(1);
  });

  it('a run that times out is abandoned and the next interval proceeds', async () => {
    const exporter = new TestExporter('slow', undefined, 60);
    const push = new PushController({ exporter, intervalMillis: 20, timeoutMillis: 10 });
    const p = new MeterProvider({ readers: [push] });
    p.getMeter('push').createCounter('c').add(1);
    await waitFor(() => push.stats.timedOut >= 3 && push.stats.succeeded >= 2, '3 timed out, 2 succeeded'); // late results still counted
    expect(push.stats.exports).toBeGreaterThanOrEqual(3);
    // Abandoned exports still running in the exporter: about timeout/interval of them.
    expect(push.stats.abandoned).toBeLessThanOrEqual(5);
    expect(log.warned('abandoned')).toBe(true);
    await expect(p.forceFlush()).rejects.toThrow(/timed out/);
    await p.shutdown().catch(() => undefined);
    await waitFor(() => push.stats.abandoned === 0, 'nothing abandoned');
  });

  it('rejects bad options', () => {
    expect(() => new PushController({} as never)).toThrow(TypeError);
    expect(() => new PushController({ exporter: new TestExporter(), intervalMillis: 0 })).toThrow(TypeError);
    expect(() => new PushController({ exporter: new TestExporter(), timeoutMillis: -1 })).toThrow(TypeError);
    expect(() => new PushController({ exporter: new TestExporter(), batcher: 'nope' as never })).toThrow(TypeError);
    const push = new PushController({ exporter: new TestExporter(), intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    expect(() => push.setMetricProducer({ collect: () => p.collect(), resource: p.resource })).toThrow(/one MeterProvider/);
    return p.shutdown();
  });
});
