// Push readers of a processShared fleet: every process's collection sees every process's
// counts, so each process's push reader exporting them would send the fleet's series once
// per process (a backend summing the fleet's instances counts every measurement N times).
// One process at a time pushes (the push lease: an flock the kernel drops when its holder
// dies); the others' push exports are empty, and the next process takes over when the
// holder dies. Every measurement is exported exactly once, across a SIGKILL.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { cleanupShared } from './helpers';

const names: string[] = [];
const procs: ChildProcess[] = [];
afterAll(() => cleanupShared(names, procs));

interface Pusher {
  proc: ChildProcess;
  /** Sends a command; resolves with the JSON line it answers. */
  send(line: string): Promise<Record<string, unknown>>;
}

async function startPusher(name: string, kind: 'otel' | 'controller', first: number, reclaimIdleMillis?: number): Promise<Pusher> {
  const args = [path.join(__dirname, 'fixtures', 'shared-pusher.js'), name, kind, String(first)];
  if (reclaimIdleMillis !== undefined) args.push(String(reclaimIdleMillis));
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.push(proc);
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => waiting.shift()?.(JSON.parse(l) as Record<string, unknown>));
  const next = (): Promise<Record<string, unknown>> => new Promise((resolve) => waiting.push(resolve));
  const ready = next();
  expect(await ready).toEqual({ ready: true });
  return {
    proc,
    send: (line) => {
      const answer = next();
      proc.stdin!.write(`${line}\n`);
      return answer;
    },
  };
}

const exported = async (p: Pusher): Promise<number> => {
  const r = await p.send('flush');
  expect(r.error).toBeUndefined();
  return r.exported as number;
};

describe('processShared push readers', () => {
  for (const kind of ['otel', 'controller'] as const) {
    it(`export the fleet's series from one process at a time (${kind})`, async () => {
      const name = `test-push-${kind}-${process.pid}-${Date.now()}`;
      names.push(name);
      const a = await startPusher(name, kind, 10);
      const b = await startPusher(name, kind, 5);
      // a collects first: it pushes the fleet's 15; b's export is empty.
      expect(await exported(a)).toBe(15);
      expect(await exported(b)).toBe(0);
      await a.send('add 1');
      await b.send('add 2');
      expect(await exported(b)).toBe(0);
      expect(await exported(a)).toBe(3);
      // The holder dies: the next push collection of b takes over. b's previous
      // collection came after a's last adds, so its delta is exactly what came since.
      await b.send('add 4');
      const gone = new Promise((resolve) => a.proc.once('exit', resolve));
      a.proc.kill('SIGKILL');
      await gone;
      expect(await exported(b)).toBe(4);
      // A new process joins: b keeps pushing, and pushes the newcomer's counts.
      const c = await startPusher(name, kind, 7);
      expect(await exported(c)).toBe(0);
      expect(await exported(b)).toBe(7);
      // A pull reader in this process still sees the whole fleet: 10 + 5 + 1 + 2 + 4 + 7.
      const prom = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
      const local = new MeterProvider({ processShared: name, readers: [prom] });
      expect(await prom.render()).toMatch(/^jobs_total\{[^}]*\} 29$/m);
      await local.shutdown();
      for (const p of [b, c]) {
        const exit = new Promise((resolve) => p.proc.once('exit', resolve));
        p.proc.stdin!.end();
        await exit;
      }
    }, 60_000);

    it(`with reclaimIdleMillis, a process that does not push never expires the fleet's series: its empty exports deliver nothing (${kind})`, async () => {
      const name = `test-push-expiry-${kind}-${process.pid}-${Date.now()}`;
      names.push(name);
      const idle = 20;
      const a = await startPusher(name, kind, 10, idle);
      const b = await startPusher(name, kind, 5, idle);
      expect(await exported(a)).toBe(15);
      expect(await exported(b)).toBe(0);
      // b writes, then collects on and on while the series is idle (long past
      // reclaimIdleMillis, its cached reference given back): nothing b exported counts
      // as delivered, so b does not expire the series before the holder pushed the 2.
      await b.send('add 2');
      for (let round = 0; round < 10; round++) {
        await new Promise((r) => setTimeout(r, idle * 2));
        expect(await exported(b)).toBe(0);
      }
      expect(await exported(a)).toBe(2);
      for (const p of [a, b]) {
        const exit = new Promise((resolve) => p.proc.once('exit', resolve));
        p.proc.stdin!.end();
        await exit;
      }
    }, 60_000);
  }
});
