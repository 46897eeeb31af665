// Summaries in a processShared provider are the fleet's: exact quantiles would keep each
// process's values in that process (handles-sketch.ts), so a scrape would show the
// quantiles of the process that answered beside the fleet's count and sum. A shared
// provider keeps a sketch instead (its cells are merged by every process's collection),
// with a diagnostic.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter, exactSelector } from '../src';
import { cleanupShared, installLogger, uninstallLogger } from './helpers';

const names: string[] = [];
afterAll(() => cleanupShared(names));

/** Starts test/fixtures/shared-summary.js; resolves once it recorded, with a way to end it. */
function startRecorder(name: string, value: number, count: number): Promise<() => Promise<void>> {
  const p = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'shared-summary.js'), name, String(value), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: p.stdout! });
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('exit', (code) => reject(new Error(`recorder exited ${code} before it was ready`)));
    lines.once('line', (l) => {
      expect(JSON.parse(l)).toEqual({ ready: true });
      resolve(
        () =>
          new Promise<void>((done) => {
            p.removeAllListeners('exit');
            p.on('exit', () => done());
            p.stdin!.end();
          }),
      );
    });
  });
}

/** The value of the sample of `metric` (with `label` among its labels, if given). */
function sample(text: string, metric: string, label?: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && (label === undefined || l.includes(label)));
  if (line === undefined) throw new Error(`no ${metric} ${label ?? ''} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('processShared summaries', () => {
  it('exact quantiles become a fleet-wide sketch, with a diagnostic', async () => {
    const name = `test-summary-${process.pid}-${Date.now()}`;
    names.push(name);
    // Another process records 300 values of 1000; this one 100 values of 1.
    const end = await startRecorder(name, 1000, 300);
    const logger = installLogger();
    try {
      const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
      const provider = new MeterProvider({ processShared: name, aggregationSelector: exactSelector, readers: [exporter] });
      const h = provider.getMeter('summary').createHistogram('shared.latency');
      for (let i = 0; i < 100; i++) h.record(1);
      const text = await exporter.render();
      expect(sample(text, 'shared_latency_count')).toBe(400);
      expect(sample(text, 'shared_latency_sum')).toBe(300 * 1000 + 100);
      // Of the fleet's 400 values, 300 are 1000: the median and the 0.99 quantile are 1000
      // (within the sketch's 1%); this process's own values alone would give 1.
      for (const q of ['0.5', '0.99']) {
        const v = sample(text, 'shared_latency', `quantile="${q}"`);
        expect(Math.abs(v - 1000)).toBeLessThanOrEqual(10);
      }
      expect(logger.warned('shared.latency', 'processShared', 'sketch')).toBe(true);
      await provider.shutdown();
    } finally {
      uninstallLogger();
      await end();
    }
  }, 60_000);
});
