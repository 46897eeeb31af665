// MeterProvider({ processShared }): records shared by the processes of one host.
// The fixtures (test/fixtures/cluster-app.js, shared-recorder.js) load the compiled
// package (dist/cjs: `npm run build:ts`); this file loads src/ and joins the same
// segments through the same native addon.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Worker } from 'node:worker_threads';
import { AggregationTemporality as SdkTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { afterAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderings } = require('./fixtures/shared-render.js') as { renderings: (p: MeterProvider, e: PrometheusExporter) => Promise<Renderings> };
interface Renderings {
  text: string;
  openMetrics: string;
  protobuf: string;
  protobufType: string;
  records: string[];
}
import { cleanupShared, installLogger, processSharedSegmentPath, sharedNames, startCommandChild, uninstallLogger, until } from './helpers';
import { freePort, request } from './prometheus-helpers';

const fixtures = path.join(__dirname, 'fixtures');
const { names, uniqueName } = sharedNames();

const segmentPath = processSharedSegmentPath;

afterAll(() => cleanupShared(names));

/** Runs a shared-recorder process to its end; resolves its JSON line. */
function runRecorder(name: string, iterations: number, labelSets: number, collectEvery: number): Promise<{ pid: number; collections: number; errors: string[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(fixtures, 'shared-recorder.js'), name, String(iterations), String(labelSets), String(collectEvery)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`recorder exited ${code}: ${out}${err}`));
      resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}'));
    });
  });
}

type Totals = Map<string, number>;
async function totals(provider: MeterProvider): Promise<Totals> {
  const cs = await provider.collect();
  const m: Totals = new Map();
  for (const r of cs.records) {
    const a = r.aggregation as { kind: string; sum?: number; count?: number };
    m.set(`${r.descriptor.name}${JSON.stringify(r.attributes)}`, a.kind === 'sum' ? (a.sum as number) : (a.count as number));
  }
  return m;
}

describe('processShared: argument checks', () => {
  it('rejects an empty name and a name with a domain, with a TypeError', () => {
    expect(() => new MeterProvider({ processShared: '' })).toThrow(TypeError);
    expect(() => new MeterProvider({ processShared: 'x', domain: 'y' })).toThrow(TypeError);
  });

  it('creates its segment 0600 and refuses a symlink planted at its path', async () => {
    const name = uniqueName('perm');
    const p = new MeterProvider({ processShared: name });
    const st = fs.lstatSync(segmentPath(name));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(os.userInfo().uid);
    await p.shutdown();

    const evil = uniqueName('symlink');
    const target = path.join(os.tmpdir(), `shm-target-${process.pid}`);
    fs.writeFileSync(target, 'not a segment');
    fs.symlinkSync(target, segmentPath(evil));
    try {
      // O_NOFOLLOW: the link itself is refused, whatever it points at.
      expect(() => new MeterProvider({ processShared: evil })).toThrow(TypeError);
      expect(() => new MeterProvider({ processShared: evil })).toThrow(/symbolic links/);
      expect(fs.readFileSync(target, 'utf8')).toBe('not a segment');
    } finally {
      fs.unlinkSync(segmentPath(evil));
      fs.unlinkSync(target);
    }
  });

  it('cleanupProcessShared removes a segment no live process uses, and refuses one in use', async () => {
    const name = uniqueName('cleanup');
    const p = new MeterProvider({ processShared: name });
    p.getMeter('m').createCounter('c').add(1);
    expect(() => MeterProvider.cleanupProcessShared(name)).toThrow(/in use/);
    await p.shutdown();
    expect(MeterProvider.cleanupProcessShared(name)).toBe(true);
    expect(fs.existsSync(segmentPath(name))).toBe(false);
    expect(MeterProvider.cleanupProcessShared(name)).toBe(false);
  });
});

describe('processShared: independently started processes', () => {
  it('sum every process, live or exited, in any process that collects', async () => {
    const name = uniqueName('spawned');
    const collector = new MeterProvider({ processShared: name });
    const meter = collector.getMeter('shared');
    meter.createCounter('shared_ops').add(5, { k: 'v0' });
    meter.createCounter('shared_bound');
    meter.createHistogram('shared_lat');
    const results = await Promise.all([runRecorder(name, 1000, 10, 250), runRecorder(name, 1000, 10, 250), runRecorder(name, 1000, 10, 0)]);
    for (const r of results) expect(r.errors).toEqual([]);
    const t = await totals(collector);
    expect(t.get('shared_ops{"k":"v0"}')).toBe(3 * 100 + 5);
    for (let i = 1; i < 10; i++) expect(t.get(`shared_ops{"k":"v${i}"}`)).toBe(300);
    expect(t.get('shared_bound{"pid":"any"}')).toBe(3 * 1000 * 2);
    for (let i = 0; i < 10; i++) expect(t.get(`shared_lat{"k":"v${i}"}`)).toBe(300);
    // The recorders exited: folded, their slots and slabs free again.
    expect(collector.processSharedStats()).toMatchObject({ processes: 1, series: 21 });
    await collector.shutdown();
  });

  it('stress: many processes writing and collecting at once give exact totals, never going back', async () => {
    const name = uniqueName('stress');
    const collector = new MeterProvider({ processShared: name });
    const meter = collector.getMeter('shared');
    meter.createCounter('shared_ops');
    meter.createCounter('shared_bound');
    meter.createHistogram('shared_lat');
    const procs = 6;
    const iterations = 19_200; // 300 rounds per label set
    const labelSets = 64;
    let running = true;
    const seen = new Map<string, number>();
    const wentBack: string[] = [];
    const watcher = (async () => {
      while (running) {
        for (const [k, v] of await totals(collector)) {
          if (v < (seen.get(k) ?? 0)) wentBack.push(`${k}: ${seen.get(k)} -> ${v}`);
          seen.set(k, v);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const runs = [];
    for (let i = 0; i < procs; i++) runs.push(runRecorder(name, iterations, labelSets, 1000));
    const results = await Promise.all(runs);
    running = false;
    await watcher;
    for (const r of results) expect(r.errors).toEqual([]);
    expect(wentBack).toEqual([]);
    const t = await totals(collector);
    for (let i = 0; i < labelSets; i++) {
      expect(t.get(`shared_ops{"k":"v${i}"}`)).toBe((procs * iterations) / labelSets);
      expect(t.get(`shared_lat{"k":"v${i}"}`)).toBe((procs * iterations) / labelSets);
    }
    expect(t.get('shared_bound{"pid":"any"}')).toBe(procs * iterations * 2);
    await collector.shutdown();
  }, 120_000);

  it('a fleet restarting processes all day stays bounded: slabs and slots of exited processes are reused', async () => {
    const name = uniqueName('restarts');
    const collector = new MeterProvider({ processShared: name });
    collector.getMeter('shared').createCounter('shared_ops');
    const slabs: number[] = [];
    for (let i = 0; i < 12; i++) {
      await runRecorder(name, 200, 5, 0);
      const t = await totals(collector);
      expect(t.get('shared_ops{"k":"v0"}')).toBe((i + 1) * 40);
      slabs.push(collector.processSharedStats()!.slabs);
    }
    // One slab of dead-process accumulators; none of the 12 exited processes' slabs.
    expect(Math.max(...slabs)).toBe(1);
    expect(collector.processSharedStats()).toMatchObject({ processes: 1, slabs: 1, series: 11 });
    await collector.shutdown();
  }, 120_000);
});

describe('processShared: instruments only another process created', () => {
  /** Starts test/fixtures/shared-creator.js; resolves once it has recorded (it lives until its stdin ends). */
  async function startCreator(name: string): Promise<{ creator: ChildProcess; theirs: Renderings }> {
    const creator = spawn(process.execPath, [path.join(fixtures, 'shared-creator.js'), name], { stdio: ['pipe', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: creator.stdout! }).once('line', resolve);
      creator.on('error', reject);
    });
    const theirs = JSON.parse(line) as Renderings & { error?: string };
    expect(theirs.error).toBeUndefined();
    return { creator, theirs };
  }

  it('a process that never created them exports them as their creator does, in every format, before and after the creator exits', async () => {
    const name = uniqueName('foreign');
    const { creator, theirs } = await startCreator(name);
    expect(theirs.records.length).toBeGreaterThan(10);
    expect(theirs.text).toMatch(/^lazy_latency_milliseconds_bucket\{.*le="10".*\} /m);
    expect(theirs.text).toMatch(/^lazy_quantiles\{.*quantile="0.75".*\} /m);
    // This process has the provider and exporter, and creates no instrument.
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const mine = new MeterProvider({ processShared: name, readers: [exporter] });
    try {
      expect(await renderings(mine, exporter)).toEqual(theirs);
      const exited = new Promise((r) => creator.on('close', r));
      creator.stdin!.end();
      await exited;
      // Folded into the records: the same export.
      expect(await renderings(mine, exporter)).toEqual(theirs);
    } finally {
      creator.kill();
      await mine.shutdown();
    }
  }, 60_000);

  it('an identity registered with other buckets takes the first registration\'s, and a name of another kind records nothing: each with a diagnostic', async () => {
    const name = uniqueName('mismatch');
    const { creator, theirs } = await startCreator(name);
    const log = installLogger();
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const mine = new MeterProvider({ processShared: name, readers: [exporter] });
    try {
      const meter = mine.getMeter('lazy-meter', '1.2.3');
      // The creator's lazy.latency has buckets [1, 10, 100].
      const h = meter.createHistogram('lazy.latency', { unit: 'ms', description: 'latency', advice: { explicitBucketBoundaries: [5] } });
      expect(log.warned('lazy.latency', 'registered first', 'the first registration')).toBe(true);
      h.record(7, { route: '/r0' });
      // The creator's lazy.requests is a counter.
      const u = meter.createUpDownCounter('LAZY.requests', { unit: '{request}', description: 'requests only this process served' });
      expect(log.warned('LAZY.requests', 'another kind, unit or value type', 'records nothing')).toBe(true);
      u.add(5, { route: '/r0' });
      const text = await exporter.render('text/plain');
      const bucket = (body: string, le: string): number =>
        sample(body, new RegExp(`^lazy_latency_milliseconds_bucket\\{route="/r0"[^}]*le="${le}"\\} (\\S+)`, 'm'));
      expect(bucket(text, '1')).toBe(bucket(theirs.text, '1'));
      expect(bucket(text, '10')).toBe(bucket(theirs.text, '10') + 1);
      expect(bucket(text, '100')).toBe(bucket(theirs.text, '100') + 1);
      expect(text).not.toMatch(/le="5"/);
      // lazy.requests: the creator's counter only, unchanged.
      const linesOf = (body: string): string[] => body.split('\n').filter((l) => /lazy_requests/i.test(l));
      expect(linesOf(text)).toEqual(linesOf(theirs.text));
      expect(linesOf(text).length).toBeGreaterThan(3);
    } finally {
      uninstallLogger();
      creator.kill();
      await mine.shutdown();
    }
  }, 60_000);
});

describe('processShared: observable instruments', () => {
  /** A started test/fixtures/shared-observer.js: its first JSON line, and a way to make it collect again. */
  interface Observer {
    proc: ChildProcess;
    first: Renderings & { error?: string };
    collect(): Promise<Renderings>;
    exit(): Promise<void>;
  }
  async function startObserver(name: string, counter: number, gauge: number, queued: number, collectFirst: boolean): Promise<Observer> {
    const proc = spawn(process.execPath, [path.join(fixtures, 'shared-observer.js'), name, String(counter), String(gauge), String(queued), collectFirst ? '1' : '0'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const rl = readline.createInterface({ input: proc.stdout! });
    const waiting: ((line: string) => void)[] = [];
    rl.on('line', (l) => waiting.shift()?.(l));
    const next = (): Promise<Renderings> =>
      new Promise((resolve, reject) => {
        waiting.push((l) => {
          const r = JSON.parse(l) as Renderings & { error?: string };
          if (r.error !== undefined) reject(new Error(r.error));
          else resolve(r);
        });
        proc.once('error', reject);
      });
    const first = await next();
    return {
      proc,
      first,
      collect: () => {
        const r = next();
        proc.stdin!.write('collect\n');
        return r;
      },
      exit: async () => {
        const closed = new Promise((r) => proc.on('close', r));
        proc.stdin!.end();
        await closed;
      },
    };
  }

  const value = (body: string, metric: RegExp): number | undefined => {
    const m = metric.exec(body);
    return m === null ? undefined : Number(m[1]);
  };
  const COUNTER = /^obs_requests_total\{[^}]*route="\/a"[^}]*\} (\S+)/m;
  const GAUGE = /^obs_temperature_celsius\{[^}]*room="a"[^}]*\} (\S+)/m;
  const QUEUED = /^obs_queued\{[^}]*queue="q"[^}]*\} (\S+)/m;
  /** name -> value of the obs.* series in a collect()'s records. */
  async function observed(provider: MeterProvider): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of (await provider.collect()).records) {
      if (!r.descriptor.name.startsWith('obs.')) continue;
      const a = r.aggregation as { kind: string; sum?: number; value?: number };
      out[r.descriptor.name] = (a.kind === 'sum' ? a.sum : a.value) as number;
    }
    return out;
  }

  /** OTLP points of the obs.* metrics in one export of `e`: name -> value. */
  async function otlp(r: PeriodicExportingMetricReader, e: InMemoryMetricExporter): Promise<Record<string, number>> {
    e.reset();
    await r.forceFlush();
    const out: Record<string, number> = {};
    for (const rm of e.getMetrics()) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          if (!m.descriptor.name.startsWith('obs.')) continue;
          expect(m.dataPoints.length).toBe(1);
          out[m.descriptor.name] = m.dataPoints[0].value as number;
        }
      }
    }
    return out;
  }

  it('a process that never created them exports every process\'s last observation in every scrape and format, live or exited, never dropping a series', async () => {
    const name = uniqueName('observables');
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const cumulative = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const cReader = new PeriodicExportingMetricReader({ exporter: cumulative, exportIntervalMillis: 3_600_000 });
    const delta = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const dReader = new PeriodicExportingMetricReader({ exporter: delta, exportIntervalMillis: 3_600_000 });
    const mine = new MeterProvider({ processShared: name, readers: [exporter, cReader, dReader] });
    let observer: Observer | undefined;
    try {
      // Created, never observed (its callbacks never ran): no series anywhere.
      observer = await startObserver(name, 7, 21.5, 3, false);
      expect(await observed(mine)).toEqual({});
      expect(await exporter.render('text/plain')).not.toMatch(/^obs_/m);
      // Observed once, in the creator's collections: every scrape here shows the same
      // series with the same values as the creator's, again and again.
      const theirs = await observer.collect();
      expect(value(theirs.text, COUNTER)).toBe(7);
      expect(value(theirs.text, GAUGE)).toBe(21.5);
      expect(value(theirs.text, QUEUED)).toBe(3);
      const fleet = { 'obs.requests': 7, 'obs.temperature': 21.5, 'obs.queued': 3 };
      let deltaSum = 0;
      let deltaQueued = 0;
      for (let scrape = 0; scrape < 3; scrape++) {
        expect(await renderings(mine, exporter), `scrape ${scrape}`).toEqual(theirs);
        expect(await observed(mine), `scrape ${scrape}`).toEqual(fleet);
        expect(await otlp(cReader, cumulative), `scrape ${scrape}`).toEqual(fleet);
        // Delta: the counter's points add up to its total (never restarted from 0).
        const d = await otlp(dReader, delta);
        deltaSum += d['obs.requests'] ?? 0;
        deltaQueued += d['obs.queued'] ?? 0;
        expect(deltaSum, `scrape ${scrape}`).toBe(7);
        expect(deltaQueued, `scrape ${scrape}`).toBe(3);
      }
      // The creator exits: its counter and gauge observations stay (folded); its up-down
      // counter's level goes with it (the series stays, at 0: no live process observes it).
      await observer.exit();
      observer = undefined;
      const after = { ...fleet, 'obs.queued': 0 };
      for (let scrape = 0; scrape < 2; scrape++) {
        const r = await renderings(mine, exporter);
        for (const body of [r.text, r.openMetrics]) {
          expect([value(body, COUNTER), value(body, GAUGE), value(body, QUEUED)], `after exit, scrape ${scrape}`).toEqual([7, 21.5, 0]);
        }
        expect(r.records.map((x) => (JSON.parse(x) as { v: unknown }).v)).toEqual([
          { kind: 'sum', sum: 0, monotonic: false },
          { kind: 'sum', sum: 7, monotonic: true },
          { kind: 'lastValue', value: 21.5 },
        ]);
        expect(await observed(mine)).toEqual(after);
        expect(await otlp(cReader, cumulative)).toEqual(after);
        // Delta: the drop is a change of -3, once.
        const d = await otlp(dReader, delta);
        deltaSum += d['obs.requests'] ?? 0;
        expect(d['obs.queued']).toBe(scrape === 0 ? -3 : 0);
        deltaQueued += d['obs.queued'] ?? 0;
        expect(deltaSum).toBe(7);
        expect(deltaQueued).toBe(0);
      }
    } finally {
      observer?.proc.kill();
      await mine.shutdown();
    }
  }, 60_000);

  it('collect() of a provider without readers shows another process\'s observations in every call', async () => {
    const name = uniqueName('observables-direct');
    const observer = await startObserver(name, 7, 21.5, 3, true);
    const mine = new MeterProvider({ processShared: name });
    try {
      for (let call = 0; call < 3; call++) {
        expect(await observed(mine), `call ${call}`).toEqual({ 'obs.requests': 7, 'obs.temperature': 21.5, 'obs.queued': 3 });
      }
    } finally {
      observer.proc.kill();
      await mine.shutdown();
    }
  }, 60_000);

  it('observed by several processes: sums add every process\'s own observation, a gauge is the latest observation of any process', async () => {
    const name = uniqueName('observables-both');
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const mine = new MeterProvider({ processShared: name, readers: [exporter] });
    let observer: Observer | undefined;
    try {
      observer = await startObserver(name, 7, 21.5, 3, true);
      const meter = mine.getMeter('obs-meter');
      meter.createObservableCounter('obs.requests', { description: 'observed requests' }).addCallback((r) => r.observe(5, { route: '/a' }));
      meter.createObservableGauge('obs.temperature', { unit: 'Cel' }).addCallback((r) => r.observe(18, { room: 'a' }));
      meter.createObservableUpDownCounter('obs.queued').addCallback((r) => r.observe(-1, { queue: 'q' }));
      // This process's callbacks run in its collections: its gauge observation is the latest.
      for (let scrape = 0; scrape < 2; scrape++) {
        const text = await exporter.render('text/plain');
        expect(value(text, COUNTER)).toBe(12);
        expect(value(text, GAUGE)).toBe(18);
        expect(value(text, QUEUED)).toBe(2);
        expect(await observed(mine)).toEqual({ 'obs.requests': 12, 'obs.temperature': 18, 'obs.queued': 2 });
      }
      // The creator collects: its observation of the gauge is now the latest, in its scrape...
      const theirs = await observer.collect();
      expect(value(theirs.text, COUNTER)).toBe(12);
      expect(value(theirs.text, GAUGE)).toBe(21.5);
      expect(value(theirs.text, QUEUED)).toBe(2);
      // ...and after this process's next observation, its own again.
      expect(value(await exporter.render('text/plain'), GAUGE)).toBe(18);
      // The creator exits: its counter observation stays in the sum, its up-down counter
      // level goes with it; the gauge is this process's.
      await observer.exit();
      observer = undefined;
      expect(await observed(mine)).toEqual({ 'obs.requests': 12, 'obs.temperature': 18, 'obs.queued': -1 });
    } finally {
      observer?.proc.kill();
      await mine.shutdown();
    }
  }, 60_000);

  it('a SIGKILLed process\'s up-down counter level leaves the fleet sum; its observable counter contribution stays', async () => {
    const name = uniqueName('observables-killed');
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const delta = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const dReader = new PeriodicExportingMetricReader({ exporter: delta, exportIntervalMillis: 3_600_000 });
    const mine = new MeterProvider({ processShared: name, readers: [exporter, dReader] });
    const observers: Observer[] = [];
    try {
      // Three workers, each observing its own level (queued) and its own count (requests).
      for (const [requests, queued] of [[7, 1], [70, 20], [700, 300]]) observers.push(await startObserver(name, requests, 21.5, queued, true));
      let requestsSeen = 0;
      const check = async (requests: number, queued: number, when: string): Promise<void> => {
        const text = await exporter.render('text/plain');
        expect([value(text, COUNTER), value(text, QUEUED)], when).toEqual([requests, queued]);
        const o = await observed(mine);
        expect([o['obs.requests'], o['obs.queued']], when).toEqual([requests, queued]);
        expect(o['obs.requests'], `${when}: the observable counter never goes back`).toBeGreaterThanOrEqual(requestsSeen);
        requestsSeen = o['obs.requests'];
      };
      await check(777, 321, 'all alive');
      expect((await otlp(dReader, delta))['obs.queued']).toBe(321);
      // SIGKILL the second: it never detaches; the next collection finds it dead.
      const killed = observers.splice(1, 1)[0];
      const gone = new Promise((r) => killed.proc.on('exit', r));
      killed.proc.kill('SIGKILL');
      await gone;
      await check(777, 301, 'after the kill');
      expect((await otlp(dReader, delta))['obs.queued']).toBe(-20);
      // The survivors observe again (each its own level): the same sums, here and there.
      for (const o of observers) {
        const theirs = await o.collect();
        expect([value(theirs.text, COUNTER), value(theirs.text, QUEUED)]).toEqual([777, 301]);
      }
      await check(777, 301, 'after the survivors observed again');
      expect((await otlp(dReader, delta))['obs.queued']).toBe(0);
    } finally {
      for (const o of observers) o.proc.kill();
      await mine.shutdown();
    }
  }, 60_000);
});

describe('processShared: worker threads', () => {
  it('a worker thread records into the shared records; its counts stay after it exits', async () => {
    const name = uniqueName('worker');
    const main = new MeterProvider({ processShared: name });
    const ops = main.getMeter('shared').createCounter('shared_ops');
    ops.add(1, { k: 'main' });
    const code = `
      const { workerData } = require('node:worker_threads');
      const { MeterProvider } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'cjs'))});
      const p = new MeterProvider({ processShared: workerData.name });
      const ops = p.getMeter('shared').createCounter('shared_ops');
      for (let i = 0; i < 1000; i++) ops.add(1, { k: i % 2 ? 'main' : 'worker' });
    `;
    const w = new Worker(code, { eval: true, workerData: { name } });
    await new Promise((resolve, reject) => {
      w.on('exit', resolve);
      w.on('error', reject);
    });
    const t = await totals(main);
    expect(t.get('shared_ops{"k":"main"}')).toBe(501);
    expect(t.get('shared_ops{"k":"worker"}')).toBe(500);
    // Another process sees the thread's counts too.
    await runRecorder(name, 0, 1, 0);
    expect((await totals(main)).get('shared_ops{"k":"worker"}')).toBe(500);
    await main.shutdown();
  });
});

// The cluster application's primary: events by JSON line.
class ClusterApp {
  readonly proc: ChildProcess;
  private readonly lines: unknown[] = [];
  private waiters: (() => void)[] = [];
  constructor(name: string, appPort: number, metricsPort: number) {
    this.proc = spawn(process.execPath, [path.join(fixtures, 'cluster-app.js'), name, String(appPort), String(metricsPort), '3'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l));
      for (const w of this.waiters.splice(0)) w();
    });
  }
  async next<T>(key: string): Promise<T> {
    for (;;) {
      const i = this.lines.findIndex((l) => typeof l === 'object' && l !== null && key in l);
      if (i >= 0) return this.lines.splice(i, 1)[0] as T;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }
  async exit(): Promise<void> {
    const closed = new Promise((r) => this.proc.on('close', r));
    this.send('exit');
    await closed;
  }
}

function sample(body: string, metric: RegExp): number {
  const m = body.match(metric);
  if (m === null) throw new Error(`no ${metric} in scrape:\n${body.slice(0, 2000)}`);
  return Number(m[1]);
}

describe('processShared: node:cluster behind one app port and one metrics port', () => {
  it('every scrape, whichever worker serves it, shows exactly the requests made; a SIGKILLed worker loses nothing', async () => {
    const name = uniqueName('cluster');
    const appPort = await freePort();
    const metricsPort = await freePort();
    const app = new ClusterApp(name, appPort, metricsPort);
    try {
      const { ready } = await app.next<{ ready: number[] }>('ready');
      expect(ready).toHaveLength(3);
      const answeredBy = new Map<number, number>();
      const hit = async (): Promise<void> => {
        const r = await request(`http://127.0.0.1:${appPort}/hit`);
        expect(r.status).toBe(200);
        const pid = Number(r.body);
        answeredBy.set(pid, (answeredBy.get(pid) ?? 0) + 1);
      };
      let requests = 0;
      let previous = 0;
      const scrapers = new Set<number>();
      const scrapeAll = async (times: number): Promise<void> => {
        for (let i = 0; i < times; i++) {
          const r = await request(`http://127.0.0.1:${metricsPort}/metrics`);
          expect(r.status).toBe(200);
          const hits = sample(r.body, /^app_hits_total\{[^}]*route="\/hit"[^}]*\} (\S+)/m);
          const count = sample(r.body, /^app_latency\w*_count\{[^}]*route="\/hit"[^}]*\} (\S+)/m);
          expect(hits).toBe(requests);
          expect(count).toBe(requests);
          expect(hits).toBeGreaterThanOrEqual(previous);
          previous = hits;
          scrapers.add(sample(r.body, /^scrape_pid\{[^}]*\} (\S+)/m));
          // Made by one worker only: every worker's scrape shows it as that worker would.
          expect(r.body).toContain('# HELP app_lazy_size_bytes made lazily\n# TYPE app_lazy_size_bytes histogram\n');
          expect(sample(r.body, /^app_lazy_size_bytes_bucket\{[^}]*route="\/lazy"[^}]*le="10"\} (\S+)/m)).toBe(0);
          expect(sample(r.body, /^app_lazy_size_bytes_bucket\{[^}]*route="\/lazy"[^}]*le="100"\} (\S+)/m)).toBe(1);
          expect(sample(r.body, /^app_lazy_size_bytes_sum\{[^}]*route="\/lazy"[^}]*\} (\S+)/m)).toBe(50);
        }
      };
      const lazy = await request(`http://127.0.0.1:${appPort}/lazy`);
      const lazyPid = Number(lazy.body);
      expect(ready).toContain(lazyPid);
      for (; requests < 60; requests++) await hit();
      // Round-robin: every worker answered requests.
      expect([...answeredBy.keys()].sort()).toEqual([...ready].sort());
      await scrapeAll(6);
      // Scrapes too reached more than one worker, each showing the fleet's counts.
      expect(scrapers.size).toBeGreaterThan(1);
      // So at least one scrape came from a worker that never created app_lazy_size.
      expect([...scrapers].some((pid) => pid !== lazyPid)).toBe(true);
      for (const pid of scrapers) expect(ready).toContain(pid);

      // SIGKILL a worker that counted requests; a replacement joins.
      const victim = ready[0];
      expect(answeredBy.get(victim)).toBeGreaterThan(0);
      app.send(`kill ${victim}`);
      const { by } = await app.next<{ replaced: number; by: number }>('replaced');
      expect(by).not.toBe(victim);
      await scrapeAll(3);
      for (; requests < 100; requests++) await hit();
      expect(answeredBy.get(by)).toBeGreaterThan(0);
      await scrapeAll(6);
    } finally {
      await app.exit();
    }
    // The whole fleet is gone: a new process of the name sees its totals and reclaims it.
    const after = new MeterProvider({ processShared: name });
    after.getMeter('cluster-app').createCounter('app_hits');
    const t = await totals(after);
    expect(t.get('app_hits{"route":"/hit"}')).toBe(100);
    expect(after.processSharedStats()).toMatchObject({ processes: 1 });
    await after.shutdown();
  }, 60_000);
});

describe('processShared: remove() and clear() act on the whole fleet', () => {
  interface Out extends Renderings {
    otlp: { a: Record<string, string>; v: number }[];
    error?: string;
  }
  /** A started test/fixtures/shared-remover.js, driven by JSON commands. */
  async function startRemover(name: string) {
    const { send, exit } = await startCommandChild<Out>(path.join(fixtures, 'shared-remover.js'), [name]);
    return {
      add: (value: number, attrs: Record<string, string>) => send({ op: 'add', value, attrs }),
      bind: (attrs: Record<string, string>) => send({ op: 'bind', attrs }),
      boundAdd: (value: number) => send({ op: 'boundAdd', value }),
      remove: (attrs: Record<string, string>) => send({ op: 'remove', attrs }),
      clear: () => send({ op: 'clear' }),
      drain: () => send({ op: 'drain' }),
      collect: () => send({ op: 'collect' }),
      exit,
    };
  }

  /** route -> value of rm.requests in every format of one collection; all formats must agree. */
  function series(o: Out): Record<string, number> {
    const fromText = (body: string, name: string): Record<string, number> => {
      const m: Record<string, number> = {};
      for (const x of body.matchAll(new RegExp(`^${name}\\{[^}]*route="([^"]*)"[^}]*\\} (\\S+)`, 'gm'))) m[x[1]] = Number(x[2]);
      return m;
    };
    const text = fromText(o.text, 'rm_requests_total');
    const openMetrics = fromText(o.openMetrics, 'rm_requests_total');
    const records: Record<string, number> = {};
    for (const line of o.records) {
      const r = JSON.parse(line) as { d: { name: string }; a: { route: string }; v: { sum: number } };
      if (r.d.name === 'rm.requests') records[r.a.route] = r.v.sum;
    }
    const otlp: Record<string, number> = {};
    for (const p of o.otlp) otlp[p.a.route] = p.v;
    expect(openMetrics).toEqual(text);
    expect(records).toEqual(text);
    expect(otlp).toEqual(text);
    // protobuf: the label value of every series exported is in it, a removed one's not.
    const proto = Buffer.from(o.protobuf, 'base64').toString('latin1');
    for (const route of ['/x', '/y', '/z']) expect(proto.includes(route)).toBe(route in text);
    return text;
  }

  it('remove() in one process: gone from every process\'s exports; a later write from another starts from zero; a handle bound before writes nowhere', async () => {
    const name = uniqueName('remove');
    const a = await startRemover(name);
    const b = await startRemover(name);
    try {
      await a.add(5, { route: '/x' });
      await a.add(1, { route: '/y' });
      await b.add(7, { route: '/x' });
      await b.bind({ route: '/z' });
      await b.boundAdd(4);
      // Both have exported it (the OTLP conversions cache it).
      expect(series(await a.collect())).toEqual({ '/x': 12, '/y': 1, '/z': 4 });
      expect(series(await b.collect())).toEqual({ '/x': 12, '/y': 1, '/z': 4 });

      // Caches /x in B again (the collections evicted their idle references).
      await b.add(1, { route: '/x' });
      await a.remove({ route: '/x' });
      await a.remove({ route: '/z' });
      // B writes through its reference cached before the removal (no drain since): the
      // write goes nowhere, neither back into the removed series nor into a later one.
      await b.add(9, { route: '/x' });
      expect(series(await a.collect())).toEqual({ '/y': 1 });
      expect(series(await b.collect())).toEqual({ '/y': 1 });
      // B's handle bound before the removal writes into the removed series: never exported.
      await b.boundAdd(6);
      expect(series(await b.collect())).toEqual({ '/y': 1 });

      // B's cached reference goes at its next stale-queue drain (its timer's, here the
      // test's); then a write is a new series with only the new value, whichever process writes.
      await b.drain();
      await b.add(3, { route: '/x' });
      await b.add(1, { route: '/z' });
      expect(series(await a.collect())).toEqual({ '/x': 3, '/y': 1, '/z': 1 });
      await a.add(2, { route: '/x' });
      expect(series(await b.collect())).toEqual({ '/x': 5, '/y': 1, '/z': 1 });
      expect(series(await a.collect())).toEqual({ '/x': 5, '/y': 1, '/z': 1 });
    } finally {
      await a.exit();
      await b.exit();
    }
    // The old series' cells of the exited processes are not folded back into the new one.
    const after = new MeterProvider({ processShared: name });
    after.getMeter('rm-meter').createCounter('rm.requests');
    const t = await totals(after);
    expect(t.get('rm.requests{"route":"/x"}')).toBe(5);
    expect(t.get('rm.requests{"route":"/z"}')).toBe(1);
    await after.shutdown();
  }, 30_000);

  it('clear() in one process removes every process\'s series of the instrument, also ones it never wrote', async () => {
    const name = uniqueName('clear');
    const a = await startRemover(name);
    const b = await startRemover(name);
    try {
      await a.add(1, { route: '/x' });
      await b.add(2, { route: '/y' });
      await b.add(3, { route: '/x' });
      expect(series(await b.collect())).toEqual({ '/x': 4, '/y': 2 });
      // A has not collected since B made /y: it clears it all the same.
      await a.clear();
      expect(series(await a.collect())).toEqual({});
      expect(series(await b.collect())).toEqual({});
      await b.drain();
      await b.add(5, { route: '/y' });
      expect(series(await a.collect())).toEqual({ '/y': 5 });
      expect(series(await b.collect())).toEqual({ '/y': 5 });
    } finally {
      await a.exit();
      await b.exit();
    }
  }, 30_000);

  it('reclaimIdleMillis on a processShared provider applies to its series (no diagnostic saying they never expire); see process-shared-expiry.test.ts', async () => {
    const logs = installLogger();
    try {
      const p = new MeterProvider({ processShared: uniqueName('expiry'), reclaimIdleMillis: 1 });
      expect(logs.warnings.some((l) => /never expire/.test(l))).toBe(false);
      p.getMeter('m').createCounter('c').add(1, { k: 'v' });
      expect((await p.collect()).records.length).toBe(1);
      // Idle, unreferenced, delivered (collect() of a provider without readers): expires.
      await until(async () => (await p.collect()).records.length === 0, 10_000, 'the idle shared series expired');
      await p.shutdown();
    } finally {
      uninstallLogger();
    }
  });
});
