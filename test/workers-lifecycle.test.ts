// Workers that exit or are terminated: nothing they wrote before exiting is lost (their
// cells are folded into the records by the environment cleanup hook, then freed), the
// process does not crash, and starting and terminating workers in a loop keeps memory
// flat (arenas freed, records reclaimed once exported).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it, beforeAll } from 'vitest';
import { MeterProvider } from '../src';
import { native } from '../src/sdk/native';
import { findRecord, histOf, maybeRecord, recordsOf, sumOf } from './helpers';
import { requireCompiledPackage, startWorker, stopWorker, sleep } from './fixtures/worker-helpers';

beforeAll(() => requireCompiledPackage());

describe('worker.terminate() in the middle of a hot loop', () => {
  it('keeps every acknowledged update and never invents one', async () => {
    const BATCH = 1000;
    const main = new MeterProvider({ domain: 'wl-terminate' });
    const rows: string[] = [];
    for (let round = 0; round < 6; round++) {
      const before = await main.collect();
      const base = (name: string) => recordsOf(before, name).reduce((a, r) => a + (r.aggregation.kind === 'histogram' ? r.aggregation.count : sumOf(r)), 0);
      const c0 = base('term.count');
      const h0 = base('term.hist');
      const b0 = base('term.bound');
      const progress = new Float64Array(new SharedArrayBuffer(8));
      const w = startWorker({ mode: 'terminate', domain: 'wl-terminate', batch: BATCH, progress: progress.buffer });
      await w.next('running');
      await sleep(5 + round * 7); // mid-loop, at a different point each round
      await w.worker.terminate();
      expect(await w.exited).toBe(1); // terminated
      const acked = progress[0];
      const cs = await main.collect();
      const total = (name: string) => recordsOf(cs, name).reduce((a, r) => a + (r.aggregation.kind === 'histogram' ? r.aggregation.count : sumOf(r)), 0);
      const c = total('term.count') - c0;
      const h = total('term.hist') - h0;
      const b = total('term.bound') - b0;
      for (const [name, got] of [['count', c], ['hist', h], ['bound', b]] as const) {
        expect(got, `${name}: acked ${acked} batches`).toBeGreaterThanOrEqual(acked * BATCH);
        expect(got, `${name}: acked ${acked} batches`).toBeLessThanOrEqual((acked + 1) * BATCH);
      }
      // Histograms stay self-consistent: count is the bucket total.
      for (const r of recordsOf(cs, 'term.hist')) {
        const agg = histOf(r);
        expect(agg.count).toBe(agg.bucketCounts.reduce((a, x) => a + x, 0));
      }
      rows.push(`acked ${acked} batches, collected ${c} / ${h} / ${b}`);
    }
    console.log(`[workers] terminate mid-write:\n  ${rows.join('\n  ')}`);
  }, 60_000);
});

describe('starting and terminating workers in a loop', () => {
  it('arenas are freed, records reclaimed, RSS bounded, totals exact, no crash', async () => {
    const ITERATIONS = 100;
    const LABEL_SETS = 50; // new label sets per generation, each a counter and a histogram series
    const main = new MeterProvider({ domain: 'wl-churn', reclaimIdleMillis: 1 }); // expiry on
    const baseRecords = native().stats().records;
    const baseArena = native().stats().arenaBytes;
    let rssAt20 = 0;
    let recordsAt20 = 0;
    const maxRecords: number[] = [];
    let exportedShared = 0;
    let seenGenerations = 0;
    for (let gen = 0; gen < ITERATIONS; gen++) {
      const w = startWorker({ mode: 'churn', domain: 'wl-churn', gen, labelSets: LABEL_SETS });
      await w.next('done');
      if (gen % 2 === 0) {
        await w.worker.terminate();
      } else {
        expect(await stopWorker(w)).toBe(0);
      }
      await w.exited;
      // The worker's arena is gone with it.
      expect(native().stats().arenaBytes).toBe(baseArena);
      const cs = await main.collect();
      exportedShared = sumOf(findRecord(cs, 'churn.count', { shared: 'yes' }));
      // This generation's series were exported (before any reclamation).
      if (maybeRecord(cs, 'churn.count', { gen, i: 0 }) !== undefined) seenGenerations++;
      maxRecords.push(native().stats().records);
      if (gen === 20) {
        global.gc?.();
        rssAt20 = process.memoryUsage().rss;
        recordsAt20 = native().stats().records;
      }
    }
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 5)); // idle longer than reclaimIdleMillis
      await main.collect();
    }
    const end = native().stats();
    const rssEnd = process.memoryUsage().rss;
    expect(exportedShared).toBe(ITERATIONS); // one add per generation, none lost
    expect(seenGenerations).toBe(ITERATIONS); // each generation's series was exported
    // Records follow the live label sets: with every worker gone (their bound handles'
    // references with them) and everything exported, nothing remains.
    expect(end.records - baseRecords).toBe(0);
    expect(Math.max(...maxRecords.slice(20)) - baseRecords).toBeLessThanOrEqual(Math.max(...maxRecords.slice(0, 20)) - baseRecords);
    expect(end.arenaBytes).toBe(baseArena);
    const growthMb = (rssEnd - rssAt20) / 2 ** 20;
    console.log(
      `[workers] ${ITERATIONS} workers started and stopped: records ${baseRecords} -> ${recordsAt20} (gen 20) -> ${end.records}, ` +
        `arena bytes ${end.arenaBytes}, RSS ${(rssAt20 / 2 ** 20).toFixed(1)} MB (gen 20) -> ${(rssEnd / 2 ** 20).toFixed(1)} MB`,
    );
    expect(growthMb).toBeLessThan(64);
  }, 120_000);
});

describe('the process goes away under recording workers', () => {
  const script = path.join(__dirname, 'fixtures', 'worker-process-exit.js');
  /** Runs the fixture in a child process (asynchronously: this test's event loop stays free). */
  const run = (mode: string) =>
    new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [script, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (status, signal) => {
        clearTimeout(timer);
        resolve({ status, signal, stdout, stderr });
      });
    });

  it('process.exit() in the main thread while workers are mid-loop: the requested exit code, no crash', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await run('main-exit');
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.status).toBe(7);
    }
  }, 60_000);

  it('worker.terminate() landing inside native calls (every add a native acquire) never aborts the process', async () => {
    const r = await run('terminate-native');
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.stdout).toContain('survived 40');
    expect(r.status).toBe(0);
  }, 60_000);

  it('a worker calling process.exit() mid-loop: its records survive, the process carries on', async () => {
    const r = await run('worker-exit');
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('collected some');
    expect(r.status).toBe(0);
  }, 60_000);
});
