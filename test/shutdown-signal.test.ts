// A process that exits through signal handlers the user installs flushes first:
// examples/graceful-shutdown.js records (continuously, or a fixed amount), exports through
// a PushController to a JSON-lines file, and on SIGTERM / SIGINT (or 'beforeExit') calls
// `await provider.shutdown()`. The last export must hold exactly what the process had
// recorded when shutdown began (it prints that snapshot), later recording must be
// dropped with one diagnostic, and collect() / forceFlush() must reject clearly.
// The child loads the compiled package (dist/, `npm run build:ts`), as applications do.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from './helpers';

const root = path.resolve(__dirname, '..');
const example = path.join(root, 'examples', 'graceful-shutdown.js');
let dir: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js'))) throw new Error('dist/ is missing: run `npm run build:ts`');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotmeter-shutdown-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Recorded {
  requests: Record<string, number>;
  latencyCount: number;
  latencySum: number;
}
interface Event {
  event: string;
  [k: string]: unknown;
}
interface Series {
  name: string;
  attributes: Record<string, string | number>;
  sum: number;
  count?: number;
}
interface ExportLine {
  export: number;
  series: Series[];
}

interface Child {
  events: Event[];
  stderr: () => string;
  waitFor: (event: string, timeoutMs?: number) => Promise<Event>;
  kill: (signal: NodeJS.Signals) => void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  out: string;
}

let seq = 0;
function start(args: string[]): Child {
  const out = path.join(dir, `exports-${++seq}.jsonl`);
  const proc = spawn(process.execPath, [example, '--out', out, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Event[] = [];
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, nl);
      stdout = stdout.slice(nl + 1);
      if (line.trim() !== '') events.push(JSON.parse(line) as Event);
    }
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      for (const w of waiters.splice(0)) w();
      resolve({ code, signal });
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  const waitFor = async (event: string, timeoutMs = 20_000): Promise<Event> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events.find((x) => x.event === event);
      if (e !== undefined) return e;
      if (done) throw new Error(`child exited without "${event}"; stderr:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`no "${event}" within ${timeoutMs} ms; stderr:\n${stderr}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return { events, stderr: () => stderr, waitFor, kill: (s) => proc.kill(s), exited, out };
}

function exportsOf(file: string): ExportLine[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ExportLine);
}

/** The totals an export shows, in the shape of the child's `recorded` snapshot. */
function totalsOf(e: ExportLine): Recorded {
  const requests: Record<string, number> = {};
  let latencyCount = 0;
  let latencySum = 0;
  for (const s of e.series) {
    if (s.name === 'app.requests') requests[`${s.attributes.route} ${s.attributes.status}`] = s.sum;
    if (s.name === 'app.latency') {
      latencyCount += s.count ?? 0;
      latencySum += s.sum;
    }
  }
  return { requests, latencyCount, latencySum };
}

/** Everything a clean shutdown must show. Returns the number of requests recorded. */
async function expectFlushed(c: Child, reason: string): Promise<number> {
  const { code, signal } = await c.exited;
  expect({ code, signal }, c.stderr()).toEqual({ code: 0, signal: null });
  const shutdown = c.events.find((e) => e.event === 'shutdown')!;
  expect(shutdown.reason).toBe(reason);
  const recorded = shutdown.recorded as Recorded;
  const exports = exportsOf(c.out);
  expect(exports.length).toBeGreaterThan(0);
  const last = exports.at(-1)!;
  // The final export holds exactly what was recorded before shutdown began.
  expect(totalsOf(last)).toEqual(recorded);
  const exit = c.events.find((e) => e.event === 'exit')!;
  expect(exit.exports).toBe(exports.length);
  // Afterwards: two recording calls dropped with one diagnostic; collect / forceFlush reject.
  const after = c.events.find((e) => e.event === 'after-shutdown')!;
  expect(after.collect).toBe('rejected: hotmeter: collect() after shutdown()');
  expect(after.forceFlush).toBe('rejected: hotmeter: forceFlush() after shutdown()');
  expect(c.stderr().match(/app\.requests: measurement after shutdown dropped/g)).toHaveLength(1);
  expect(c.stderr()).not.toMatch(/Error|Unhandled/);
  return Object.values(recorded.requests).reduce((a, b) => a + b, 0);
}

describe('a process that exits through its own signal handlers flushes first', () => {
  it('SIGTERM while recording continuously, exporting every 50 ms: the last export has everything', async () => {
    const c = start(['--interval', '50']);
    await c.waitFor('ready');
    await sleep(600);
    c.kill('SIGTERM');
    const n = await expectFlushed(c, 'SIGTERM');
    expect(n).toBeGreaterThan(1000);
    expect(exportsOf(c.out).length).toBeGreaterThan(1); // periodic exports ran before it
  });

  it('SIGINT with a 60 s interval: the only export is the shutdown one, with everything', async () => {
    const c = start(['--interval', '60000']);
    await c.waitFor('ready');
    await sleep(400);
    c.kill('SIGINT');
    const n = await expectFlushed(c, 'SIGINT');
    expect(n).toBeGreaterThan(1000);
    expect(exportsOf(c.out)).toHaveLength(1);
  });

  it('SIGTERM after a fixed amount of work, while idle', async () => {
    const c = start(['--records', '12345']);
    await c.waitFor('idle');
    c.kill('SIGTERM');
    expect(await expectFlushed(c, 'SIGTERM')).toBe(12345);
  });

  it('SIGTERM while a slow export is in flight: shutdown waits for it, then exports the rest', async () => {
    const c = start(['--interval', '100', '--export-delay', '300']);
    await c.waitFor('ready');
    await sleep(700); // an export is running or about to
    c.kill('SIGTERM');
    const n = await expectFlushed(c, 'SIGTERM');
    expect(n).toBeGreaterThan(1000);
  });

  it("'beforeExit': a job that runs out of work flushes without any signal", async () => {
    const c = start(['--exit', 'beforeExit', '--records', '20000']);
    expect(await expectFlushed(c, 'beforeExit')).toBe(20000);
    expect(exportsOf(c.out)).toHaveLength(1);
  });

  it('for comparison: without a handler, SIGTERM kills the process and the unexported data is lost', async () => {
    const c = start(['--exit', 'none']);
    await c.waitFor('ready');
    await sleep(300);
    c.kill('SIGTERM');
    expect(await c.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(exportsOf(c.out)).toHaveLength(0);
    expect(c.events.some((e) => e.event === 'shutdown')).toBe(false);
  });

  it('a second signal during a slow shutdown forces the exit at once', async () => {
    const c = start(['--export-delay', '5000']);
    await c.waitFor('ready');
    await sleep(300);
    c.kill('SIGTERM');
    await c.waitFor('shutdown');
    const t0 = Date.now();
    c.kill('SIGTERM');
    expect((await c.exited).code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(3000); // well before the 5 s export ends
    expect(c.events.some((e) => e.event === 'forced')).toBe(true);
    expect(exportsOf(c.out)).toHaveLength(0);
  });
});
