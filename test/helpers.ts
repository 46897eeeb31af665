// Shared test helpers: a seeded PRNG, a capturing DiagLogger, lookups into a
// CheckpointSet, and a minimal context manager. Not a test file (no .test.ts suffix).
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn, type ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import { diag, DiagLogLevel, ROOT_CONTEXT, type Attributes, type Context, type ContextManager, type DiagLogger } from '@opentelemetry/api';
import { DataPointType, type ExponentialHistogram, type Histogram, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { expect } from 'vitest';
import type {
  CheckpointRecord,
  CheckpointSet,
  HistogramAggregation,
  LastValueAggregation,
  MetricProducer,
  MetricReader,
  SumAggregation,
} from '../src';
import { MeterProvider } from '../src';
import { resetDiagLimits } from '../src/sdk/diag';

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random integer in [lo, hi] (inclusive). */
export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export interface LogLine {
  level: 'error' | 'warn' | 'info' | 'debug' | 'verbose';
  message: string;
}

/** A DiagLogger that keeps every line. */
export class CapturingLogger implements DiagLogger {
  lines: LogLine[] = [];
  private push(level: LogLine['level'], message: string, args: unknown[]): void {
    this.lines.push({ level, message: [message, ...args.map((a) => String(a))].join(' ') });
  }
  error(message: string, ...args: unknown[]): void { this.push('error', message, args); }
  warn(message: string, ...args: unknown[]): void { this.push('warn', message, args); }
  info(message: string, ...args: unknown[]): void { this.push('info', message, args); }
  debug(message: string, ...args: unknown[]): void { this.push('debug', message, args); }
  verbose(message: string, ...args: unknown[]): void { this.push('verbose', message, args); }

  /** Warnings (and errors) from hotmeter. */
  get warnings(): string[] {
    return this.lines.filter((l) => (l.level === 'warn' || l.level === 'error') && l.message.includes('hotmeter')).map((l) => l.message);
  }
  clear(): void {
    this.lines = [];
  }
  /** True if some hotmeter warning contains every one of `parts`. */
  warned(...parts: string[]): boolean {
    return this.warnings.some((w) => parts.every((p) => w.includes(p)));
  }
}

/** Installs a fresh capturing logger at WARN and forgets the rate-limit windows. */
export function installLogger(): CapturingLogger {
  diag.disable();
  resetDiagLimits();
  const logger = new CapturingLogger();
  diag.setLogger(logger, DiagLogLevel.WARN);
  return logger;
}

export function uninstallLogger(): void {
  diag.disable();
  resetDiagLimits();
}

/** Canonical text of an attribute set, independent of key order (for test-side maps). */
export function attrKey(attrs: Attributes): string {
  const keys = Object.keys(attrs).sort();
  return JSON.stringify(keys.map((k) => [k, typeof attrs[k], attrs[k]]));
}

/** The records of instrument `name` (exact, case-sensitive match on the descriptor name). */
export function recordsOf(cs: CheckpointSet, name: string): CheckpointRecord[] {
  return cs.records.filter((r) => r.descriptor.name === name);
}

/** The one record of `name` whose attributes equal `attrs` (deep, order-free); throws if 0 or >1. */
export function findRecord(cs: CheckpointSet, name: string, attrs: Attributes = {}): CheckpointRecord {
  const want = attrKey(attrs);
  const found = recordsOf(cs, name).filter((r) => attrKey(r.attributes) === want);
  if (found.length !== 1) {
    throw new Error(`expected exactly one record of ${name} ${want}, found ${found.length}: ` +
      JSON.stringify(recordsOf(cs, name).map((r) => r.attributes)));
  }
  return found[0];
}

export function maybeRecord(cs: CheckpointSet, name: string, attrs: Attributes = {}): CheckpointRecord | undefined {
  const want = attrKey(attrs);
  return recordsOf(cs, name).find((r) => attrKey(r.attributes) === want);
}

export function sumOf(r: CheckpointRecord): number {
  if (r.aggregation.kind !== 'sum') throw new Error(`not a sum: ${r.aggregation.kind}`);
  return (r.aggregation as SumAggregation).sum;
}

export function lastValueOf(r: CheckpointRecord): number {
  if (r.aggregation.kind !== 'lastValue') throw new Error(`not a lastValue: ${r.aggregation.kind}`);
  return (r.aggregation as LastValueAggregation).value;
}

export function histOf(r: CheckpointRecord): HistogramAggregation {
  if (r.aggregation.kind !== 'histogram') throw new Error(`not a histogram: ${r.aggregation.kind}`);
  return r.aggregation as HistogramAggregation;
}

/** Independent reference histogram: linear scan, upper-inclusive boundaries. */
export class RefHistogram {
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  buckets: number[];
  constructor(readonly boundaries: readonly number[]) {
    this.buckets = new Array(boundaries.length + 1).fill(0);
  }
  record(v: number): void {
    let i = 0;
    while (i < this.boundaries.length && !(v <= this.boundaries[i])) i++;
    this.buckets[i]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }
}

/** The OpenTelemetry default boundaries, written out here independently of src/. */
export const OTEL_DEFAULT_BOUNDARIES = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

/** A non-negative integer from the environment (fuzz seeds and call counts), or `dflt`. */
export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
}

/** What the fuzz tests' own hostile getters and traps throw; hotmeter must let it through untouched. */
export class HostileError extends Error {}
export const trap = (): never => {
  throw new HostileError('hostile trap');
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every `stepMs` until it holds; throws after `ms`, naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string, stepMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms: ${what}`);
    await sleep(stepMs);
  }
}

/** A reader a test drives by hand: collect() collects now (counted as delivered when taken). */
export class ManualReader implements MetricReader {
  producer!: MetricProducer;
  setMetricProducer(p: MetricProducer): void {
    this.producer = p;
  }
  collect(): Promise<CheckpointSet> {
    return this.producer.collect();
  }
}

/**
 * processShared names unique to this run and test file: uniqueName(tag) makes one and
 * keeps it in `names`, for cleanupShared(names) in afterAll.
 */
export function sharedNames(): { names: string[]; uniqueName: (tag: string) => string } {
  const names: string[] = [];
  const uniqueName = (tag: string): string => {
    const n = `test-${tag}-${process.pid}-${Date.now()}-${names.length}`;
    names.push(n);
    return n;
  };
  return { names, uniqueName };
}

/**
 * Kills the children and removes the processShared segments a test file made (afterAll):
 * a segment still used by a process of a failed test is left for the next run's cleanup.
 */
export function cleanupShared(names: readonly string[], children: readonly ChildProcess[] = []): void {
  for (const c of children) c.kill('SIGKILL');
  for (const n of names) {
    try {
      MeterProvider.cleanupProcessShared(n);
    } catch {
      // still in use by a live process
    }
  }
}

/**
 * The shared memory file of a processShared name for this user (as
 * native/core/shared_segment.cc's PathFor: FNV-1a 64 of the name's UTF-8).
 */
export function processSharedSegmentPath(name: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(name, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `/dev/shm/hotmeter-${process.getuid?.() ?? 0}-${h.toString(16).padStart(16, '0')}`;
}

/** A minimal AsyncLocalStorage context manager (no tracer SDK): enough for spans set with `context.with`. */
export class AlsContextManager implements ContextManager {
  private readonly als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

// ---- OTLP comparison with @opentelemetry/sdk-metrics (otlp-sdk-parity, differential) ----
// The documented differences these normalise are described in otlp-sdk-parity.test.ts.

export type Norm = Record<string, unknown>;

/** A scope's identity (one instrument name may be in several scopes). */
export function scopeId(scope: { name: string; version?: string; schemaUrl?: string }): string {
  return `${scope.name}@${scope.version ?? ''}+${scope.schemaUrl ?? ''}`;
}

/** A comparable form of sdk-metrics ResourceMetrics: no times, order-free. */
export function normalize(rm: ResourceMetrics, opts: Drop = {}): Norm {
  return {
    scopes: rm.scopeMetrics
      .map((sm) => ({
        scope: { name: sm.scope.name, version: sm.scope.version || undefined, schemaUrl: sm.scope.schemaUrl || undefined },
        metrics: sm.metrics
          .map((m) => normalizeMetric(m, opts, scopeId(sm.scope)))
          .sort((a, b) => String(a.name).localeCompare(String(b.name))),
      }))
      .sort((a, b) => scopeId(a.scope).localeCompare(scopeId(b.scope))),
  };
}

export interface Drop {
  min?: Set<string>;
  max?: Set<string>;
}

export function normalizeMetric(m: MetricData, opts: Drop, scope = ''): Norm {
  const d = m.descriptor;
  const points = (m.dataPoints as { attributes: Attributes; value: unknown }[])
    .map((p) => ({ key: attrKey(p.attributes), attributes: p.attributes, value: normalizeValue(m.dataPointType, p.value, opts, `${scope}/${d.name}${attrKey(p.attributes)}`) }))
    .sort((a, b) => a.key.localeCompare(b.key));
  return {
    name: d.name,
    description: d.description,
    unit: d.unit,
    valueType: d.valueType,
    dataPointType: m.dataPointType,
    temporality: m.dataPointType === DataPointType.GAUGE ? undefined : m.aggregationTemporality,
    isMonotonic: m.dataPointType === DataPointType.SUM ? m.isMonotonic : undefined,
    points,
  };
}

export function normalizeValue(type: DataPointType, v: unknown, drop: Drop, key: string): unknown {
  switch (type) {
    case DataPointType.HISTOGRAM:
    case DataPointType.EXPONENTIAL_HISTOGRAM: {
      const h = v as Histogram | ExponentialHistogram;
      // Sums are compared apart (compareSums): a delta sum from cumulative cells is a
      // difference of two large sums, exact only to their rounding.
      return { ...h, min: drop.min?.has(key) ? undefined : h.min, max: drop.max?.has(key) ? undefined : h.max, sum: undefined };
    }
    default:
      return round(v as number);
  }
}

/** Rounds away floating-point noise (sums added in different orders). */
export function round(v: number | undefined): number | undefined {
  return v === undefined ? undefined : Number(v.toPrecision(12));
}

/** Exponential buckets lowered from scale `from` to `to` and trimmed. */
export function lower(b: { offset: number; bucketCounts: number[] }, from: number, to: number): { offset: number; bucketCounts: number[] } {
  const f = 2 ** (from - to);
  const acc = new Map<number, number>();
  b.bucketCounts.forEach((c, k) => {
    if (c === 0) return;
    const i = Math.floor((b.offset + k) / f);
    acc.set(i, (acc.get(i) ?? 0) + c);
  });
  if (acc.size === 0) return { offset: 0, bucketCounts: [] };
  const lo = Math.min(...acc.keys());
  const hi = Math.max(...acc.keys());
  const counts = new Array<number>(hi - lo + 1).fill(0);
  for (const [i, c] of acc) counts[i - lo] = c;
  return { offset: lo, bucketCounts: counts };
}

/**
 * Brings the exponential histogram points of `a` and `b` (same metric, same attributes)
 * to a common scale, in place, so that they can be compared.
 */
export function alignExponential(a: ResourceMetrics, b: ResourceMetrics): void {
  const points = (rm: ResourceMetrics) => {
    const out = new Map<string, { value: ExponentialHistogram }>();
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        if (m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
        for (const p of m.dataPoints) out.set(`${scopeId(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`, p as { value: ExponentialHistogram });
      }
    }
    return out;
  };
  const pb = points(b);
  for (const [k, p] of points(a)) {
    const q = pb.get(k);
    if (q === undefined) continue;
    const s = Math.min(p.value.scale, q.value.scale);
    for (const x of [p, q]) {
      const v = x.value;
      (x as { value: ExponentialHistogram }).value = {
        ...v,
        positive: lower(v.positive, v.scale, s),
        negative: lower(v.negative, v.scale, s),
        scale: s,
      };
    }
  }
}

/**
 * The (metric, attributes) keys whose histogram points hotmeter exported without min or
 * max. Explicit-bucket histograms know both or neither (the batchers' hasMinMax);
 * exponential ones each separately.
 */
export function withoutMinMax(rm: ResourceMetrics): Required<Drop> {
  const out = { min: new Set<string>(), max: new Set<string>() };
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
      for (const p of m.dataPoints) {
        const v = p.value as Histogram;
        const key = `${scopeId(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`;
        if (m.dataPointType === DataPointType.HISTOGRAM) expect(v.min === undefined, key).toBe(v.max === undefined);
        if (v.min === undefined) out.min.add(key);
        if (v.max === undefined) out.max.add(key);
      }
    }
  }
  return out;
}

/** min/max hotmeter did export equal sdk-metrics'. */
export function checkKnownMinMax(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const index = new Map<string, Histogram>();
  for (const sm of sdk.scopeMetrics) for (const m of sm.metrics) for (const p of m.dataPoints) index.set(`${scopeId(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`, p.value as Histogram);
  for (const sm of hm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
      for (const p of m.dataPoints) {
        const v = p.value as Histogram;
        const s = index.get(`${scopeId(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`)!;
        if (v.min !== undefined) expect(v.min).toBe(s.min);
        if (v.max !== undefined) expect(v.max).toBe(s.max);
      }
    }
  }
}

/** Histogram sums agree to within the rounding of the cumulative sums they come from. */
export function compareSums(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const sums = (rm: ResourceMetrics) => {
    const out = new Map<string, number>();
    for (const sm of rm.scopeMetrics) {
      for (const m of sm.metrics) {
        if (m.dataPointType !== DataPointType.HISTOGRAM && m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) continue;
        for (const p of m.dataPoints) out.set(`${scopeId(sm.scope)}/${m.descriptor.name}${attrKey(p.attributes)}`, (p.value as Histogram).sum!);
      }
    }
    return out;
  };
  const a = sums(hm);
  const b = sums(sdk);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, v] of a) expect(Math.abs(v - b.get(k)!), `${k}: ${v} vs ${b.get(k)}`).toBeLessThanOrEqual(1e-6 + 1e-12 * Math.abs(v));
}

/** Times: start <= end, and hotmeter's end within a second of sdk-metrics'. */
export function checkTimes(hm: ResourceMetrics, sdk: ResourceMetrics): void {
  const sdkEnd = sdk.scopeMetrics[0].metrics[0].dataPoints[0].endTime;
  const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
  for (const sm of hm.scopeMetrics) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints) {
        expect(ms(p.startTime) <= ms(p.endTime)).toBe(true);
        expect(Math.abs(ms(p.endTime) - ms(sdkEnd))).toBeLessThan(1000);
        expect(Number.isInteger(p.endTime[0]) && Number.isInteger(p.endTime[1]) && p.endTime[1] < 1e9).toBe(true);
      }
    }
  }
}

/**
 * A child process of a command-driven fixture (test/fixtures/json-commands.js), started
 * with `node script ...args` and ready: send() writes one JSON command and resolves with
 * its one-line JSON answer (rejects with an answer's `error`); exit() ends its stdin and
 * waits for it to close.
 */
export async function startCommandChild<R extends { error?: string }>(script: string, args: string[]) {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: proc.stdout! });
  const waiting: ((line: string) => void)[] = [];
  rl.on('line', (l) => waiting.shift()?.(l));
  const next = (): Promise<R> =>
    new Promise((resolve, reject) => {
      waiting.push((l) => {
        const r = JSON.parse(l) as R;
        if (r.error !== undefined) reject(new Error(r.error));
        else resolve(r);
      });
    });
  await next();
  return {
    proc,
    send: (c: object): Promise<R> => {
      const r = next();
      proc.stdin!.write(`${JSON.stringify(c)}\n`);
      return r;
    },
    exit: async (): Promise<void> => {
      const closed = new Promise((r) => proc.on('close', r));
      proc.stdin!.end();
      await closed;
    },
  };
}
