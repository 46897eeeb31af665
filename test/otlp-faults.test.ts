// OTLP exporter faults (issue 8): hotmeter's MeterProvider feeding OpenTelemetry JS's
// PeriodicExportingMetricReader + OTLPMetricExporter (HTTP/JSON and HTTP/protobuf), and
// hotmeter's own PushController with an OTLP exporter, against a loopback endpoint that
// is down, slow, answers 500, 503 or 429 + Retry-After, or destroys the connection
// mid-request. For each: the attempts and their spacing, no unhandled rejection,
// bounded concurrency, flat memory over 10,000 failed exports, and recovery (the data of
// later collections arrives, decoded and checked against everything recorded).
//
// Who does what. Retries are the OpenTelemetry exporter's, not hotmeter's:
//  * node_modules/@opentelemetry/otlp-exporter-base/build/src/retrying-transport.js:
//    up to 5 retries after the first attempt, backoff 1000 ms × 1.5^n (capped at
//    5000 ms) ± 20 % jitter, a server's Retry-After instead of the backoff, and no retry
//    that would start after the exporter's `timeoutMillis` deadline (default 10 s).
//  * .../transport/http-transport-utils.js (sendWithHttp): what is retryable: a network
//    error ECONNREFUSED / ECONNRESET / EPIPE / ETIMEDOUT / ..., a request timeout
//    (`req.setTimeout(timeoutMillis)` destroys the request), and HTTP 429, 502, 503, 504
//    (is-export-retryable.js). HTTP 500 and other 4xx/5xx are not retried.
//  * .../bounded-queue-export-promise-handler.js and otlp-export-delegate.js: at most
//    `concurrencyLimit` (default 30) sends in flight; beyond, export() fails at once with
//    "Concurrent export limit reached".
//  * node_modules/@opentelemetry/sdk-metrics/build/src/export/PeriodicExportingMetricReader.js:
//    one collect+export at a time (a tick that finds one running is skipped), each export
//    raced against `exportTimeoutMillis`, every failure sent to the global error handler
//    (diag.error): forceFlush() and the timer never reject.
// hotmeter's part: HotmeterMetricProducer (src/exporters/otlp/producer.ts) serializes
// collections and lets a failed one reject only to its caller (the reader, which
// handles it); PushController (src/controller/push.ts) runs one export at a time and
// skips ticks that find one in flight.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import { OTLPMetricExporter as JsonExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CheckpointSet,
  ExportResultCode,
  MeterProvider,
  PushController,
  toOtelResourceMetrics,
  type Exporter,
  type ExportResource,
  type ExportResult,
} from '../src';
import { resetDiagLimits } from '../src/sdk/diag';
import { sleep, until } from './helpers';
import { decodeProtobuf, normalize, type NRequest } from './otlp-receiver';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// ---------------------------------------------------------------------------------------
// Every promise of the pipeline must be handled: none may reach the process.

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

// ---------------------------------------------------------------------------------------
// A diag logger (every level) that keeps bounded state: counts of the lines the tests
// look for, the times of scheduled retries, the last lines.

const PATTERNS = {
  scheduled: 'Scheduling export retry',
  maxRetries: 'Export failed after maximum retry attempts',
  pastDeadline: 'exceeds remaining timeout',
  nonRetryable: 'Export failed with non-retryable error',
  readerFailed: 'metrics export failed',
  concurrency: 'Concurrent export limit reached',
  hotmeterExport: 'hotmeter: export failed',
} as const;
type Pattern = keyof typeof PATTERNS;

class CountingLogger implements DiagLogger {
  counts = new Map<Pattern, number>();
  scheduledAt: number[] = [];
  last: string[] = [];
  private line(message: string, args: unknown[], withArgs: boolean): void {
    // Arguments are big objects at debug level (whole requests): only errors keep them.
    const text = withArgs ? [message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ') : message;
    for (const [k, p] of Object.entries(PATTERNS) as [Pattern, string][]) {
      if (text.includes(p)) this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    }
    if (text.includes(PATTERNS.scheduled) && this.scheduledAt.length < 100) this.scheduledAt.push(Date.now());
    this.last.push(text.slice(0, 300));
    if (this.last.length > 200) this.last.splice(0, 100);
  }
  count(p: Pattern): number {
    return this.counts.get(p) ?? 0;
  }
  error(m: string, ...a: unknown[]): void { this.line(m, a, true); }
  warn(m: string, ...a: unknown[]): void { this.line(m, a, true); }
  info(m: string, ...a: unknown[]): void { this.line(m, a, true); }
  debug(m: string, ...a: unknown[]): void { this.line(m, a, false); }
  verbose(m: string, ...a: unknown[]): void { this.line(m, a, false); }
}

let log: CountingLogger;

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
beforeEach(() => {
  diag.disable();
  resetDiagLimits();
  log = new CountingLogger();
  diag.setLogger(log, { logLevel: DiagLogLevel.ALL, suppressOverrideMessage: true });
});
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  diag.disable();
  resetDiagLimits();
  expect(unhandled.map(String)).toEqual([]);
});

// ---------------------------------------------------------------------------------------
// The fault-injecting endpoint.

type Fault = 'ok' | 'slow' | '500' | '503' | '429' | 'destroy';

class FaultServer {
  /** What the next requests get: `plan` first, one entry per request, then `fault`. */
  fault: Fault = 'ok';
  plan: Fault[] = [];
  /** 'slow' answers (200) after this long. */
  slowMs = 5_000;
  /** The Retry-After of a 429. */
  retryAfter = '1';
  /** Arrival times of requests (the first 1000), and how many arrived. */
  times: number[] = [];
  count = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Requests whose client went away before an answer. */
  abandoned = 0;
  /** Decoded bodies of the requests answered 200 (the last 50). */
  received: NRequest[] = [];
  port = 0;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/metrics`;
  }

  /** Listens on `port` (0: a free one; the same port again: the endpoint comes back). */
  async start(port = this.port): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and drops every connection: the port refuses connections. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.count++;
    if (this.times.length < 1000) this.times.push(Date.now());
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let settled = false;
    const settle = (): void => {
      if (!settled) {
        settled = true;
        this.inFlight--;
      }
    };
    res.on('close', () => {
      if (!res.writableFinished) this.abandoned++;
      settle();
    });
    const fault = this.plan.length > 0 ? this.plan.shift()! : this.fault;
    if (fault === 'destroy') {
      // Mid-request: the headers are in, the body may not be.
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      switch (fault) {
        case '500':
        case '503':
          res.writeHead(Number(fault), { 'content-type': 'text/plain' }).end('no\n');
          return;
        case '429':
          res.writeHead(429, { 'retry-after': this.retryAfter, 'content-type': 'text/plain' }).end('slow down\n');
          return;
        case 'slow': {
          const t = setTimeout(() => this.ok(req, res, chunks), this.slowMs);
          res.on('close', () => clearTimeout(t));
          return;
        }
        default:
          this.ok(req, res, chunks);
      }
    });
  }

  private ok(req: http.IncomingMessage, res: http.ServerResponse, chunks: Buffer[]): void {
    if (res.destroyed) return;
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
    const type = String(req.headers['content-type'] ?? '');
    const decoded = type.startsWith('application/json') ? normalize(JSON.parse(body.toString('utf8')), 'json') : normalize(decodeProtobuf(body), 'protobuf');
    this.received.push(...decoded);
    if (this.received.length > 50) this.received.splice(0, this.received.length - 50);
    res.writeHead(200, { 'content-type': type.startsWith('application/json') ? 'application/json' : 'application/x-protobuf' }).end(type.startsWith('application/json') ? '{}' : '');
  }
}

async function faultServer(): Promise<FaultServer> {
  const fs = new FaultServer();
  await fs.start(0);
  cleanups.push(() => fs.stop());
  return fs;
}

/** The value of sum metric `name` in the last request that has it (summed over its points). */
function lastSum(fs: FaultServer, name: string): number | undefined {
  for (let i = fs.received.length - 1; i >= 0; i--) {
    const ms = fs.received[i].scopes.flatMap((s) => s.metrics.filter((m) => m.name === name));
    if (ms.length === 0) continue;
    expect(ms).toHaveLength(1);
    expect(ms[0].type).toBe('sum');
    expect(ms[0].temporality).toBe(2); // CUMULATIVE
    return ms[0].points.reduce((a, p) => a + (p.asInt ?? p.asDouble ?? NaN), 0);
  }
  return undefined;
}

/** An http.Agent factory (the exporter's `httpAgentOptions` may be one) that notes when each connection is opened. */
function countingAgent(): { factory: () => Promise<http.Agent>; times: number[] } {
  const times: number[] = [];
  class CountingAgent extends http.Agent {
    override createConnection(...args: Parameters<http.Agent['createConnection']>): ReturnType<http.Agent['createConnection']> {
      times.push(Date.now());
      return super.createConnection(...args);
    }
  }
  // One connection per request, so connections are attempts.
  const agent = new CountingAgent({ keepAlive: false });
  return { factory: async () => agent, times };
}

/** Gaps between consecutive times. */
function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]);
}

/**
 * The spacing retrying-transport.js gives retry n (0-based): 1000 × 1.5^n ms, capped at
 * 5000, ± 20 %. Timers never fire early (1 ms of rounding allowed); the upper end gets
 * generous slack for a loaded machine (the request itself also takes time).
 */
function expectBackoff(gapsMs: number[]): void {
  gapsMs.forEach((g, n) => {
    const nominal = Math.min(1000 * 1.5 ** n, 5000);
    expect(g, `gap before retry ${n + 1}`).toBeGreaterThanOrEqual(nominal * 0.8 - 2);
    expect(g, `gap before retry ${n + 1}`).toBeLessThanOrEqual(Math.min(nominal * 1.2, 5000) + 2_000);
  });
}

/** hotmeter's MeterProvider with an OpenTelemetry PeriodicExportingMetricReader and OTLP exporter. */
function otelPipeline(exporterOptions: Record<string, unknown>, readerOptions: { exportIntervalMillis?: number; exportTimeoutMillis?: number } = {}, proto = false) {
  const exporter = proto ? new ProtoExporter(exporterOptions) : new JsonExporter(exporterOptions);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: readerOptions.exportIntervalMillis ?? 3_600_000,
    exportTimeoutMillis: readerOptions.exportTimeoutMillis ?? 60_000,
  });
  const provider = new MeterProvider({ readers: [reader] });
  cleanups.push(() => provider.shutdown());
  const counter = provider.getMeter('faults').createCounter('faults.requests');
  return { provider, reader, exporter, counter };
}

/** A hotmeter Exporter that sends through an OpenTelemetry OTLP exporter (what a PushController user would write). */
class OtlpPushExporter implements Exporter {
  constructor(readonly otlp: JsonExporter) {}
  export(set: CheckpointSet, resource: ExportResource): Promise<ExportResult> {
    const rm = toOtelResourceMetrics(set, { resource });
    return new Promise((resolve) =>
      this.otlp.export(rm as never, (r) => resolve({ code: r.code === 0 ? ExportResultCode.SUCCESS : ExportResultCode.FAILED, error: r.error })),
    );
  }
  forceFlush(): Promise<void> {
    return this.otlp.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.otlp.shutdown();
  }
}

// ---------------------------------------------------------------------------------------

describe('PeriodicExportingMetricReader + OTLPMetricExporter on hotmeter: faults', () => {
  it('endpoint down (connection refused): retried with backoff until the exporter timeout, then FAILED without a rejection; once it is up, everything recorded arrives', async () => {
    const fs = await faultServer();
    await fs.stop(); // the port now refuses connections
    const { factory, times } = countingAgent();
    const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 5_000, httpAgentOptions: factory });
    counter.add(5, { route: '/a' });
    const t0 = Date.now();
    await expect(provider.forceFlush()).resolves.toBeUndefined();
    // 1 + retries: 0, ~1000, ~2500, (~4750 if still before the deadline).
    expect(times.length).toBeGreaterThanOrEqual(3);
    expect(times.length).toBeLessThanOrEqual(6);
    expectBackoff(gaps(times));
    // No attempt is scheduled past the deadline (timers may fire late on a loaded machine).
    expect(times[times.length - 1] - t0).toBeLessThanOrEqual(5_000 + 2_000);
    expect(log.count('scheduled')).toBe(times.length - 1);
    expect(log.count('readerFailed')).toBe(1);
    expect(log.count('pastDeadline') + log.count('maxRetries')).toBe(1);
    // Recovery.
    counter.add(7, { route: '/a' });
    await fs.start();
    await provider.forceFlush();
    expect(fs.count).toBe(1);
    expect(lastSum(fs, 'faults.requests')).toBe(12);
  }, 60_000);

  it('slow endpoint (answers after the exporter timeout): the request is abandoned at timeoutMillis and not retried past the deadline; later collections arrive once it is fast', async () => {
    const fs = await faultServer();
    fs.fault = 'slow';
    fs.slowMs = 10_000;
    const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 1_500 });
    counter.add(1);
    const t0 = Date.now();
    await provider.forceFlush();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1_500 - 50);
    expect(took).toBeLessThan(1_500 + 5_000);
    expect(fs.count).toBe(1);
    await until(() => fs.abandoned === 1, 5_000, 'the server sees the client give up');
    expect(fs.inFlight).toBe(0);
    expect(log.count('readerFailed')).toBe(1);
    // No retry was scheduled past the deadline, and none arrives later.
    await sleep(1_500);
    expect(fs.count).toBe(1);
    fs.fault = 'ok';
    counter.add(2);
    await provider.forceFlush();
    expect(fs.count).toBe(2);
    expect(lastSum(fs, 'faults.requests')).toBe(3);
  }, 60_000);

  it('HTTP 500 is not retried (OpenTelemetry JS retries only 429/502/503/504); HTTP 503 is, with backoff; then recovery', async () => {
    const fs = await faultServer();
    fs.fault = '500';
    const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 5_000 });
    counter.add(1);
    await provider.forceFlush();
    await sleep(1_500); // a retry would have come by now (backoff ≤ 1200 ms)
    expect(fs.count).toBe(1);
    expect(log.count('nonRetryable')).toBe(1);
    expect(log.count('scheduled')).toBe(0);
    fs.fault = '503';
    fs.times = [];
    counter.add(1);
    await provider.forceFlush();
    expect(fs.times.length).toBeGreaterThanOrEqual(3); // 0, ~1000, ~2500 (~4750) within 5 s
    expectBackoff(gaps(fs.times));
    expect(log.count('readerFailed')).toBe(2);
    fs.fault = 'ok';
    counter.add(1);
    await provider.forceFlush();
    expect(lastSum(fs, 'faults.requests')).toBe(3);
  }, 60_000);

  it('HTTP 429 with Retry-After: the retry waits what the server asked (not the backoff) and the data arrives; a Retry-After past the deadline is not waited for', async () => {
    const fs = await faultServer();
    fs.plan = ['429', '429'];
    fs.retryAfter = '2'; // 2000 ms: outside the backoff's first two ranges (800-1200, 1200-1800)
    const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 10_000 });
    counter.add(4, { k: 'v' });
    await provider.forceFlush();
    expect(fs.times).toHaveLength(3);
    for (const g of gaps(fs.times)) {
      expect(g).toBeGreaterThanOrEqual(2_000 - 2);
      expect(g).toBeLessThan(2_000 + 2_000);
    }
    expect(log.count('readerFailed')).toBe(0);
    expect(lastSum(fs, 'faults.requests')).toBe(4);
    // Retry-After: 30 with 10 s left: given up at once.
    fs.fault = '429';
    fs.retryAfter = '30';
    counter.add(1, { k: 'v' });
    const t0 = Date.now();
    await provider.forceFlush();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(fs.times).toHaveLength(4);
    expect(log.count('pastDeadline')).toBe(1);
    expect(log.count('readerFailed')).toBe(1);
    fs.fault = 'ok';
    await provider.forceFlush();
    expect(lastSum(fs, 'faults.requests')).toBe(5);
  }, 60_000);

  for (const proto of [false, true]) {
    it(`connection destroyed mid-request (${proto ? 'http/protobuf' : 'http/json'}): retried with backoff, and the retry delivers`, async () => {
      const fs = await faultServer();
      fs.plan = ['destroy', 'destroy'];
      const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 10_000 }, {}, proto);
      counter.add(9);
      await provider.forceFlush();
      expect(fs.times).toHaveLength(3);
      expectBackoff(gaps(fs.times));
      expect(log.count('scheduled')).toBe(2);
      expect(log.count('readerFailed')).toBe(0);
      expect(fs.received.at(-1)!.encoding).toBe(proto ? 'protobuf' : 'json');
      expect(lastSum(fs, 'faults.requests')).toBe(9);
    }, 60_000);
  }

  it('bounded concurrency: exports abandoned by the reader\'s timeout leave at most concurrencyLimit requests in flight; the rest fail at once', async () => {
    const fs = await faultServer();
    fs.fault = 'slow';
    fs.slowMs = 60_000; // never answers in time
    // The reader gives each export 50 ms and ticks every 50 ms; the exporter keeps its
    // request 3 s. Without a bound, ~60 requests would pile up.
    const { provider, counter } = otelPipeline(
      { url: fs.url, timeoutMillis: 3_000, concurrencyLimit: 3 },
      { exportIntervalMillis: 50, exportTimeoutMillis: 50 },
    );
    // Bound: the series is held, so every collection exports it (an unbound series that
    // stays idle is reclaimed and stops being exported; the reader then skips the export).
    const bound = counter.bind({});
    cleanups.push(() => bound.unbind());
    bound.add(1);
    const tStart = Date.now();
    await until(() => log.count('concurrency') >= 5, 20_000, 'the exporter refuses beyond its limit');
    await sleep(500);
    expect(fs.maxInFlight).toBe(3);
    // A request slot frees only when a request times out (3 s): 3 per 3 s at most.
    expect(fs.count).toBeLessThanOrEqual(3 * (Math.ceil((Date.now() - tStart) / 3_000) + 1));
    // Shutting down waits for the requests in flight (each ends at its 3 s timeout).
    const t0 = Date.now();
    await provider.shutdown();
    expect(Date.now() - t0).toBeLessThan(3_000 + 5_000);
    await until(() => fs.inFlight === 0, 5_000, 'requests closed');
    expect(fs.maxInFlight).toBe(3);
  }, 60_000);

  it('10,000 failed exports (connection refused) do not grow the heap; the next collection after recovery carries everything', async () => {
    const fs = await faultServer();
    await fs.stop();
    // timeoutMillis below the first backoff: one attempt per export, no retry.
    const { provider, counter } = otelPipeline({ url: fs.url, timeoutMillis: 200 });
    const h = provider.getMeter('faults').createHistogram('faults.latency');
    let recorded = 0;
    let heapAt1000 = 0;
    const t0 = Date.now();
    for (let i = 1; i <= 10_000; i++) {
      counter.add(1, { route: '/a' });
      h.record(i % 100, { route: '/a' });
      recorded++;
      await provider.forceFlush();
      if (i === 1_000) {
        gc();
        await sleep(0);
        gc();
        heapAt1000 = process.memoryUsage().heapUsed;
      }
    }
    const elapsed = Date.now() - t0;
    gc();
    await sleep(0);
    gc();
    const growth = process.memoryUsage().heapUsed - heapAt1000;
    expect(log.count('readerFailed')).toBe(10_000);
    expect(log.count('scheduled')).toBe(0);
    expect(growth, `heap grew ${(growth / 1048576).toFixed(2)} MiB over 9,000 failed exports (${elapsed} ms)`).toBeLessThan(4 * 1024 * 1024);
    await fs.start();
    counter.add(1, { route: '/a' });
    recorded++;
    await provider.forceFlush();
    expect(fs.count).toBe(1);
    expect(lastSum(fs, 'faults.requests')).toBe(recorded);
  }, 180_000);
});

describe('PushController + an OTLP exporter: faults', () => {
  it('a slow endpoint: at most one export in flight; ticks that find one are skipped; each export carries everything so far', async () => {
    const fs = await faultServer();
    fs.fault = 'slow';
    fs.slowMs = 300;
    const push = new PushController({
      exporter: new OtlpPushExporter(new JsonExporter({ url: fs.url, timeoutMillis: 5_000 })),
      intervalMillis: 20,
      timeoutMillis: 10_000,
    });
    const provider = new MeterProvider({ readers: [push] });
    cleanups.push(() => provider.shutdown());
    const counter = provider.getMeter('faults').createCounter('faults.requests').bind({});
    cleanups.push(() => counter.unbind());
    let maxRuns = 0;
    let n = 0;
    while (fs.received.length < 4) {
      counter.add(1);
      n++;
      maxRuns = Math.max(maxRuns, push.stats.inFlight);
      await sleep(5);
      if (n > 5_000) throw new Error('the slow endpoint answered fewer than 4 exports');
    }
    expect(fs.maxInFlight).toBe(1);
    expect(maxRuns).toBe(1);
    expect(push.stats.skipped).toBeGreaterThan(0);
    expect(push.stats.timedOut).toBe(0);
    fs.fault = 'ok';
    await provider.forceFlush();
    expect(lastSum(fs, 'faults.requests')).toBe(n);
  }, 60_000);

  it('an endpoint down, then 500, then hanging: the controller never has two runs, abandons a hanging one at its timeout, and recovers', async () => {
    const fs = await faultServer();
    await fs.stop();
    const otlp = new JsonExporter({ url: fs.url, timeoutMillis: 300, concurrencyLimit: 2 });
    const push = new PushController({ exporter: new OtlpPushExporter(otlp), intervalMillis: 20, timeoutMillis: 100 });
    const provider = new MeterProvider({ readers: [push] });
    cleanups.push(() => provider.shutdown().catch(() => undefined));
    const counter = provider.getMeter('faults').createCounter('faults.requests').bind({});
    cleanups.push(() => counter.unbind());
    let n = 0;
    let maxRuns = 0;
    const drive = async (ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        counter.add(1);
        n++;
        maxRuns = Math.max(maxRuns, push.stats.inFlight);
        await sleep(5);
      }
    };
    await drive(500); // down
    const afterDown = push.stats;
    expect(afterDown.failed).toBeGreaterThan(3);
    await fs.start();
    fs.fault = '500';
    await drive(500);
    expect(fs.count).toBeGreaterThan(3);
    expect(push.stats.failed).toBeGreaterThan(afterDown.failed);
    fs.fault = 'slow';
    fs.slowMs = 60_000;
    await drive(1_000);
    expect(push.stats.timedOut).toBeGreaterThan(0);
    // Abandoned runs' requests still go on until the exporter's own timeout: at most its concurrencyLimit.
    expect(fs.maxInFlight).toBeLessThanOrEqual(2);
    expect(maxRuns).toBe(1);
    expect(log.count('hotmeterExport')).toBeGreaterThan(0);
    fs.fault = 'ok';
    await until(() => fs.inFlight === 0, 5_000, 'hanging requests timed out');
    await provider.forceFlush();
    expect(lastSum(fs, 'faults.requests')).toBe(n);
  }, 60_000);

  it('10,000 failed exports (HTTP 500) do not grow the heap; the next export after recovery carries everything', async () => {
    const fs = await faultServer();
    fs.fault = '500';
    const push = new PushController({
      exporter: new OtlpPushExporter(new JsonExporter({ url: fs.url, timeoutMillis: 2_000 })),
      intervalMillis: 3_600_000, // driven by forceFlush only
      timeoutMillis: 5_000,
    });
    const provider = new MeterProvider({ readers: [push] });
    cleanups.push(() => provider.shutdown());
    const counter = provider.getMeter('faults').createCounter('faults.requests');
    let failures = 0;
    let heapAt1000 = 0;
    for (let i = 1; i <= 10_000; i++) {
      counter.add(1, { route: '/a' });
      await push.forceFlush().catch(() => failures++);
      if (i === 1_000) {
        gc();
        await sleep(0);
        gc();
        heapAt1000 = process.memoryUsage().heapUsed;
      }
    }
    gc();
    await sleep(0);
    gc();
    const growth = process.memoryUsage().heapUsed - heapAt1000;
    expect(failures).toBe(10_000);
    expect(fs.count).toBe(10_000);
    expect(push.stats.failed).toBe(10_000);
    expect(growth, `heap grew ${(growth / 1048576).toFixed(2)} MiB over 9,000 failed exports`).toBeLessThan(4 * 1024 * 1024);
    fs.fault = 'ok';
    counter.add(1, { route: '/a' });
    await push.forceFlush();
    expect(lastSum(fs, 'faults.requests')).toBe(10_001);
  }, 180_000);
});
