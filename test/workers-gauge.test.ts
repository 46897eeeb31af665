// A gauge written by several threads: the export holds the write that is last in time,
// whichever thread made it and whichever thread's cell the collection merges last, while
// the writing worker lives and after its cells were folded at its exit.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { findRecord, lastValueOf } from './helpers';
import { requireCompiledPackage, startWorker, stopWorker } from './fixtures/worker-helpers';
import type { Started } from './fixtures/worker-helpers';

beforeAll(() => requireCompiledPackage());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(domain: string) {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  // No reclamation: each check collects twice (text, then collect()), and idle series
  // going away is another subject (workers-reclaim.test.ts).
  const provider = new MeterProvider({ domain, readers: [exporter], reclamation: false });
  cleanups.push(() => provider.shutdown());
  // The fixture worker's meter: the same instrument there, so the same records.
  const gauge = provider.getMeter('workers-test').createGauge('room.temperature');
  return { exporter, provider, gauge };
}

/** The worker records `value` into room.temperature{room} and has done so on return. */
async function workerRecords(w: Started, value: number, room: string): Promise<void> {
  w.worker.postMessage({ type: 'gauge', name: 'room.temperature', value, attributes: { room } });
  await w.next('gauged');
}

async function expectExported(exporter: PrometheusExporter, provider: MeterProvider, room: string, value: number) {
  expect(await exporter.render()).toContain(`room_temperature{room="${room}"} ${value}\n`);
  expect(lastValueOf(findRecord(await provider.collect(), 'room.temperature', { room }))).toBe(value);
}

describe('a gauge written by the main thread and a worker', () => {
  it('exports the last write in time, not the last-merged thread\'s', async () => {
    const { exporter, provider, gauge } = setup('wg-order');
    const w = startWorker({ mode: 'idle', domain: 'wg-order' });
    await w.next('ready');
    gauge.record(20, { room: 'a' });
    await workerRecords(w, 99, 'a');
    gauge.record(21, { room: 'a' });
    gauge.record(23, { room: 'a' });
    await expectExported(exporter, provider, 'a', 23);
    // The worker writes last: its value.
    await workerRecords(w, 98, 'a');
    await expectExported(exporter, provider, 'a', 98);
    // The main thread again, then the worker exits: its folded cell is older.
    gauge.record(24, { room: 'a' });
    expect(await stopWorker(w)).toBe(0);
    await expectExported(exporter, provider, 'a', 24);
  });

  it('an exited worker\'s last write wins when it is the latest', async () => {
    const { exporter, provider, gauge } = setup('wg-exit');
    const w = startWorker({ mode: 'idle', domain: 'wg-exit' });
    await w.next('ready');
    gauge.record(20, { room: 'b' });
    gauge.record(21, { room: 'b' });
    await workerRecords(w, 99, 'b');
    expect(await stopWorker(w)).toBe(0);
    await expectExported(exporter, provider, 'b', 99);
    gauge.record(22, { room: 'b' });
    await expectExported(exporter, provider, 'b', 22);
  });

  it('a gauge only one thread writes keeps its last write', async () => {
    const { exporter, provider, gauge } = setup('wg-single');
    const w = startWorker({ mode: 'idle', domain: 'wg-single' });
    await w.next('ready');
    for (const v of [5, -3, 7.5]) gauge.record(v, { room: 'main-only' });
    for (const v of [1, 2, 3]) await workerRecords(w, v, 'worker-only');
    await expectExported(exporter, provider, 'main-only', 7.5);
    await expectExported(exporter, provider, 'worker-only', 3);
    expect(await stopWorker(w)).toBe(0);
    await expectExported(exporter, provider, 'worker-only', 3);
  });
});
