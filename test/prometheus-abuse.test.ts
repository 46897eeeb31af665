// The Prometheus endpoint under abuse (issue 8): the exporter's own node:http server on
// 127.0.0.1 against many concurrent scrapes, clients that trickle their headers or never
// read their response, too many connections, unknown paths and methods, oversized
// headers; and the consistency of every scrape while worker threads record into a
// histogram without pause (its +Inf bucket equals its count, buckets never decrease).
//
// How collections are counted: the test wraps the producer the MeterProvider hands the
// exporter (setMetricProducer), counting collectPrometheus calls in flight and keeping a
// WeakRef to every scrape's chunks, so "held" and "released" are observed, not guessed.
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MeterProvider, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PrometheusExporter } from '../src';
import type { MetricProducer, PrometheusCollectOptions, PrometheusExporterOptions, PrometheusPayload, PrometheusStream } from '../src';
import { requireCompiledPackage, ROOT } from './fixtures/worker-helpers';
import { sleep, until } from './helpers';
import { OM, parseExposition, request, type Sample } from './prometheus-helpers';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// Every promise of the pipeline must be handled: none may reach the process.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

interface Spy {
  collections: number;
  /** Collections whose text (a streamed one: its first part) is written. */
  done: number;
  /** Collections not yet done. */
  inFlight: number;
  maxInFlight: number;
  /** Per collection, its parts' chunks, weakly (one part for a collectPrometheus one). */
  held: WeakRef<object>[][];
}

/** An exporter whose collections the test can count and whose scrapes it can watch being released. */
function spiedExporter(options: PrometheusExporterOptions): { exporter: PrometheusExporter; spy: Spy } {
  const exporter = new PrometheusExporter({ port: 0, ...options });
  const spy: Spy = { collections: 0, done: 0, inFlight: 0, maxInFlight: 0, held: [] };
  const start = (): void => {
    spy.collections++;
    spy.inFlight++;
    spy.maxInFlight = Math.max(spy.maxInFlight, spy.inFlight);
  };
  const attach = exporter.setMetricProducer.bind(exporter);
  exporter.setMetricProducer = (p: MetricProducer): void =>
    attach({
      ...p,
      collectPrometheus: async (o: PrometheusCollectOptions): Promise<PrometheusPayload> => {
        start();
        try {
          const r = await p.collectPrometheus!(o);
          spy.held.push([new WeakRef(r.chunks as object)]);
          spy.done++;
          return r;
        } finally {
          spy.inFlight--;
        }
      },
      // The HTTP handler's path: a collection is in flight until its first part is written.
      streamPrometheus: async (o: PrometheusCollectOptions, partBytes?: number): Promise<PrometheusStream> => {
        start();
        let stream: PrometheusStream;
        try {
          stream = await p.streamPrometheus!(o, partBytes);
        } catch (e) {
          spy.inFlight--;
          throw e;
        }
        const held: WeakRef<object>[] = [];
        spy.held.push(held);
        let pending = true; // no part written yet
        const settle = (): void => {
          if (pending) spy.inFlight--;
          pending = false;
        };
        return {
          parts: stream.parts,
          next: async () => {
            const first = pending;
            try {
              const part = await stream.next();
              if (part !== undefined) held.push(new WeakRef(part.chunks as object));
              if (first) spy.done++;
              return part;
            } finally {
              if (first) settle();
            }
          },
          release: (part) => stream.release(part),
          close: () => {
            settle();
            stream.close();
          },
        };
      },
    });
  return { exporter, spy };
}

/** Collections with a part still alive (after a GC: not released, or still referenced). */
function alive(held: WeakRef<object>[][]): number {
  return held.filter((parts) => parts.some((w) => w.deref() !== undefined)).length;
}

function serverOf(exporter: PrometheusExporter): http.Server {
  return (exporter as unknown as { server: http.Server }).server;
}

function connections(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}

/** Writes `text` on a raw connection and resolves with everything received until the server closes. */
function raw(port: number, text: string): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    s.setEncoding('latin1');
    s.on('data', (c: string) => (data += c));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? String(e)));
    s.on('close', () => resolve({ data, error }));
  });
}

/** Checks one exposition: parseable, the format announced, a histogram's invariants. Returns its samples. */
function checkExposition(r: Response, openMetrics: boolean): Sample[] {
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe(openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_TEXT_CONTENT_TYPE);
  expect(Buffer.byteLength(r.body)).toBe(Number(r.headers['content-length']));
  if (openMetrics) expect(r.body.endsWith('# EOF\n')).toBe(true);
  else expect(r.body).not.toContain('# EOF');
  const samples = parseExposition(r.body);
  checkHistograms(samples);
  return samples;
}

/** Labels without `le`, as a key. */
function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.keys(labels).filter((k) => k !== 'le').sort().map((k) => [k, labels[k]]));
}

/**
 * For every histogram series of a scrape: bucket counts never decrease with `le`, the
 * `+Inf` bucket exists and equals `_count`. Returns the number of series checked.
 */
function checkHistograms(samples: Sample[]): number {
  const buckets = new Map<string, { le: number; v: number }[]>();
  const counts = new Map<string, number>();
  for (const s of samples) {
    if (s.name.endsWith('_bucket')) {
      const k = `${s.name.slice(0, -'_bucket'.length)} ${seriesKey(s.labels)}`;
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      expect(Number.isNaN(le), `le of ${JSON.stringify(s)}`).toBe(false);
      buckets.set(k, [...(buckets.get(k) ?? []), { le, v: s.value }]);
    } else if (s.name.endsWith('_count')) {
      counts.set(`${s.name.slice(0, -'_count'.length)} ${seriesKey(s.labels)}`, s.value);
    }
  }
  for (const [k, bs] of buckets) {
    bs.sort((a, b) => a.le - b.le);
    for (let i = 1; i < bs.length; i++) expect(bs[i].v, `${k} le=${bs[i].le} < le=${bs[i - 1].le}`).toBeGreaterThanOrEqual(bs[i - 1].v);
    expect(bs[bs.length - 1].le, `${k} has no +Inf bucket`).toBe(Infinity);
    expect(bs[bs.length - 1].v, `${k}: +Inf bucket != _count`).toBe(counts.get(k));
  }
  return buckets.size;
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  expect(unhandled.map(String)).toEqual([]);
});

function setup(options: PrometheusExporterOptions = {}, providerOptions: { domain?: string; cardinalityLimit?: number; reclamation?: boolean } = {}) {
  const { exporter, spy } = spiedExporter(options);
  const provider = new MeterProvider({ readers: [exporter], ...providerOptions });
  cleanups.push(() => provider.shutdown());
  const meter = provider.getMeter('abuse');
  const requests = meter.createCounter('abuse.requests');
  const latency = meter.createHistogram('abuse.latency', { unit: 's', advice: { explicitBucketBoundaries: [0.01, 0.1, 1] } });
  return { exporter, spy, provider, requests, latency };
}

describe('Prometheus endpoint: binding and limits', () => {
  it('binds to 127.0.0.1 by default, with bounded server limits', async () => {
    const { exporter } = setup();
    await exporter.ready();
    expect(exporter.host).toBe('127.0.0.1');
    const server = serverOf(exporter);
    const addr = server.address() as net.AddressInfo;
    expect(addr.address).toBe('127.0.0.1');
    expect(addr.family).toBe('IPv4');
    expect(exporter.url).toBe(`http://127.0.0.1:${addr.port}/metrics`);
    // Defaults: headers within 10 s (checked every second), 30 s of silence closes a
    // connection, 1024 connections, 16 KiB of headers.
    expect(server.headersTimeout).toBe(10_000);
    expect(server.requestTimeout).toBe(30_000);
    expect(server.timeout).toBe(30_000);
    expect(server.maxConnections).toBe(1024);
    expect(server.maxHeaderSize).toBe(16_384);
    // Not reachable through any other interface of this machine.
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    if (external !== undefined) {
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect(addr.port, external.address, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
      });
      expect(outcome, `connecting through ${external.address}`).toBe('ECONNREFUSED');
    }
    expect(() => new PrometheusExporter({ preventServerStart: true, maxConnections: 0 })).toThrow(TypeError);
    expect(() => new PrometheusExporter({ preventServerStart: true, headersTimeoutMillis: 1.5 })).toThrow(TypeError);
  });
});

describe('Prometheus endpoint under abuse', () => {
  it('200 concurrent scrapes while recording continues: every one 200 and parseable; collections shared, at most one in flight per format', async () => {
    // Reclamation off: a burst of scrapes can run several collections between two
    // batches of the writer, which makes its series idle for a whole collection interval
    // and so reclaimable (they come back from zero). Exact totals are checked here.
    const { exporter, spy, requests, latency } = setup({}, { reclamation: false });
    await exporter.ready();
    let recorded = 0;
    let recording = true;
    const writer = (async () => {
      while (recording) {
        for (let i = 0; i < 200; i++) {
          requests.add(1, { route: `/r${i % 8}` });
          latency.record((i % 50) / 100, { route: `/r${i % 8}` });
        }
        recorded += 200;
        await new Promise((r) => setImmediate(r));
      }
    })();
    await sleep(20);
    const formats = Array.from({ length: 200 }, (_, i) => i % 2 === 0);
    const responses = await Promise.all(formats.map((om) => request(exporter.url, 'GET', om ? { accept: OM } : {})));
    recording = false;
    await writer;
    let maxSeen = 0;
    responses.forEach((r, i) => {
      const samples = checkExposition(r, formats[i]);
      const total = samples.filter((s) => s.name === 'abuse_requests_total').reduce((a, s) => a + s.value, 0);
      expect(total).toBeGreaterThan(0);
      expect(total).toBeLessThanOrEqual(recorded);
      maxSeen = Math.max(maxSeen, total);
    });
    expect(maxSeen).toBeGreaterThan(0);
    // 200 scrapes, far fewer collections: concurrent scrapes of one format share one.
    expect(spy.maxInFlight).toBeLessThanOrEqual(2);
    expect(spy.collections).toBeLessThan(200);
    // Everything recorded is in the next scrape.
    const last = parseExposition((await request(exporter.url)).body);
    expect(last.filter((s) => s.name === 'abuse_requests_total').reduce((a, s) => a + s.value, 0)).toBe(recorded);
  });

  it('unknown paths: 404; methods other than GET and HEAD: 405 with Allow; methods node does not know: 400; none of them collects', async () => {
    const { exporter, spy, requests } = setup({}, { reclamation: false });
    await exporter.ready();
    requests.add(3);
    const base = exporter.url.replace('/metrics', '');
    for (const p of ['/', '/metric', '/metrics/', '/metricsX', '/metrics/x', '/other', '/%6Detrics']) {
      const r = await request(base + p);
      expect(r.status, p).toBe(404);
      expect(r.body).toBe('not found\n');
    }
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND']) {
      const r = await request(exporter.url, m);
      expect(r.status, m).toBe(405);
      expect(r.headers.allow, m).toBe('GET, HEAD');
    }
    // llhttp rejects methods it does not know before any handler runs.
    const brew = await raw((serverOf(exporter).address() as net.AddressInfo).port, 'BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(brew.data.startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(spy.collections).toBe(0);
    // A query string is not part of the path; HEAD answers GET's headers without a body.
    const get = await request(`${exporter.url}?x=1`);
    expect(get.status).toBe(200);
    const head = await request(exporter.url, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-type']).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(Number(head.headers['content-length'])).toBe(Buffer.byteLength(get.body));
    expect(spy.collections).toBe(2);
  });

  it('oversized request headers: 431 and the connection closed; headers under the limit and later scrapes are served', async () => {
    const { exporter, spy } = setup();
    await exporter.ready();
    const port = (serverOf(exporter).address() as net.AddressInfo).port;
    const big = await raw(port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17_000)}\r\n\r\n`);
    expect(big.data.startsWith('HTTP/1.1 431 '), `got ${JSON.stringify(big.data.slice(0, 40))} ${big.error ?? ''}`).toBe(true);
    // Many headers adding up past the limit, too.
    const many = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(40)}\r\n`).join('');
    const manyR = await raw(port, `GET /metrics HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
    expect(manyR.data.startsWith('HTTP/1.1 431 ')).toBe(true);
    expect(spy.collections).toBe(0);
    // A long bearer token is fine.
    expect((await request(exporter.url, 'GET', { authorization: `Bearer ${'t'.repeat(8_000)}` })).status).toBe(200);
    expect((await request(exporter.url)).status).toBe(200);
  });

  it('a client trickling its headers (one byte per 100 ms) gets 408 at headersTimeout; scrapes are served meanwhile', async () => {
    const headersTimeoutMillis = 2_000;
    const { exporter, requests } = setup({ headersTimeoutMillis });
    await exporter.ready();
    requests.add(1);
    const port = (serverOf(exporter).address() as net.AddressInfo).port;
    const start = Date.now();
    let sent = 0;
    const trickle = new Promise<{ data: string; closedAfter: number }>((resolve) => {
      let data = '';
      const s = net.connect(port, '127.0.0.1');
      s.setEncoding('latin1');
      const text = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ';
      const timer = setInterval(() => {
        // The request line and headers, then an endless header value.
        if (!s.destroyed && s.writable) s.write(sent < text.length ? text[sent] : 'a');
        sent++;
      }, 100);
      s.on('data', (c: string) => (data += c));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(timer);
        resolve({ data, closedAfter: Date.now() - start });
      });
    });
    // Scrapes while the trickler holds its connection.
    const served: number[] = [];
    let done = false;
    void trickle.then(() => (done = true));
    while (!done) {
      served.push((await request(exporter.url)).status);
      await sleep(100);
    }
    const t = await trickle;
    expect(t.data.startsWith('HTTP/1.1 408 '), `got ${JSON.stringify(t.data.slice(0, 40))}`).toBe(true);
    // Not before the timeout; and within it plus node's check interval (500 ms here) and
    // scheduling slack on a loaded machine.
    expect(t.closedAfter).toBeGreaterThanOrEqual(headersTimeoutMillis - 100);
    expect(t.closedAfter).toBeLessThan(headersTimeoutMillis + 4_000);
    expect(sent).toBeGreaterThan(10);
    expect(served.length).toBeGreaterThanOrEqual(3);
    expect(served.every((s) => s === 200)).toBe(true);
  });

  it('clients that never read their response: other scrapes go on; after idleTimeout their connections close and their scrapes are released', async () => {
    const idleTimeoutMillis = 1_500;
    // Reclamation off: the series stay in every scrape though nothing updates them.
    const { exporter, spy, requests } = setup({ idleTimeoutMillis }, { cardinalityLimit: 30_000, reclamation: false });
    await exporter.ready();
    // Large enough that the kernel's socket buffers (on Linux the sender's grows up to
    // tcp_wmem's 4 MiB) cannot take it all: the rest waits in the server for 'drain'.
    for (let i = 0; i < 30_000; i++) requests.add(1, { route: `/api/v1/items/${i}/${'x'.repeat(256)}` });
    const first = await request(exporter.url);
    expect(first.status).toBe(200);
    const size = Buffer.byteLength(first.body);
    expect(size).toBeGreaterThan(8_000_000);
    const server = serverOf(exporter);
    const port = (server.address() as net.AddressInfo).port;
    const collectionsBefore = spy.collections;
    const stalled: net.Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.pause(); // never reads
      s.on('error', () => undefined);
      stalled.push(s);
      cleanups.push(() => void s.destroy());
      // Each staller its own collection (concurrent ones would share one).
      await until(() => spy.done > collectionsBefore + i, 20_000, `staller ${i}'s scrape`);
    }
    // Held while stalled: their scrapes are alive (proof that the writes did stall).
    await sleep(200);
    gc();
    expect(alive(spy.held.slice(-6))).toBeGreaterThanOrEqual(5);
    // Others are served meanwhile, in full.
    const during = await request(exporter.url);
    expect(during.status).toBe(200);
    expect(Buffer.byteLength(during.body)).toBe(size);
    // Silence closes them on the server side: node's socket timeout fires after one to
    // two idleTimeouts (the first one is skipped when the write queue moved since the last
    // check).
    const stallStart = Date.now();
    await until(async () => (await connections(server)) === 0, idleTimeoutMillis + 10_000, 'stalled connections closed');
    expect(Date.now() - stallStart).toBeLessThan(idleTimeoutMillis + 10_000);
    // And nothing of them is held any more.
    await sleep(50);
    gc();
    await sleep(0);
    gc();
    expect(alive(spy.held)).toBe(0);
  });

  it('a scrape written into the output blocks of collected earlier scrapes is the same text as a fresh one', async () => {
    // The native serializer pools its 2 MiB output blocks when their Buffers are
    // collected; the next scrape writes into them. Nothing of the last text may show.
    const { exporter, requests } = setup({ preventServerStart: true }, { cardinalityLimit: 40_000, reclamation: false });
    for (let i = 0; i < 25_000; i++) requests.add(i, { route: `/api/v1/items/${i}/${'x'.repeat(200)}` });
    const text = async (): Promise<string> => Buffer.concat((await exporter.scrape()).chunks).toString('utf8');
    const first = await text();
    expect(Buffer.byteLength(first)).toBeGreaterThan(3 * 2 ** 21); // several blocks
    for (let round = 0; round < 3; round++) {
      gc();
      await sleep(20); // Buffer finalizers run after the GC, from the event loop
      gc();
      await sleep(20);
      expect(await text()).toBe(first);
    }
    // One more series, into the same blocks: exactly one more line.
    requests.add(1, { route: 'one more' });
    gc();
    await sleep(20);
    const line = 'abuse_requests_total{route="one more",otel_scope_name="abuse"} 1\n';
    const withOne = await text();
    expect(withOne.length).toBe(first.length + line.length);
    expect(withOne.replace(line, '')).toBe(first);
  });

  it('connections beyond maxConnections are closed on arrival; the server serves again once they go', async () => {
    const { exporter } = setup({ maxConnections: 4 });
    await exporter.ready();
    const server = serverOf(exporter);
    const port = (server.address() as net.AddressInfo).port;
    const idle: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      idle.push(s);
      cleanups.push(() => void s.destroy());
    }
    await until(async () => (await connections(server)) === 4, 5_000, '4 connections');
    const extra = await raw(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(extra.data).toBe('');
    expect(await connections(server)).toBe(4);
    for (const s of idle) s.destroy();
    await until(async () => (await connections(server)) === 0, 5_000, 'connections gone');
    expect((await request(exporter.url)).status).toBe(200);
  });
});

describe('Prometheus scrapes stay consistent under concurrent writers', () => {
  beforeAll(() => requireCompiledPackage());

  it('worker threads record into a histogram without pause: every scrape has +Inf == _count, non-decreasing buckets, counts that never go back; the last one has everything', async () => {
    const domain = 'prom-abuse-consistency';
    // Reclamation off: a series whose writers were descheduled across two scrapes could
    // be reclaimed and come back from zero, and the final total is checked exactly.
    const { exporter, latency } = setup({}, { domain, reclamation: false });
    await exporter.ready();
    const BOUNDS = [0.01, 0.1, 1];
    const ROUTES = ['/a', '/b', '/c'];
    const control = new Int32Array(new SharedArrayBuffer(4)); // 1: stop
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const hm = require(workerData.dist);
      const provider = hm.attachMeterProvider(workerData.domain);
      const meter = provider.getMeter('abuse');
      const h = meter.createHistogram('abuse.latency', { unit: 's', advice: { explicitBucketBoundaries: workerData.bounds } });
      const bound = h.bind({ route: '/bound' });
      const control = new Int32Array(workerData.control);
      let n = 0;
      while (Atomics.load(control, 0) === 0) {
        for (let i = 0; i < 1000; i++, n++) {
          h.record((n % 200) / 100, { route: workerData.routes[n % 3] });
          bound.record((n % 7) / 10);
        }
      }
      parentPort.postMessage({ records: n * 2 });
      parentPort.close();
    `;
    const workers = [0, 1].map(
      () =>
        new Worker(source, {
          eval: true,
          workerData: { dist: path.join(ROOT, 'dist', 'cjs'), domain, bounds: BOUNDS, routes: ROUTES, control: control.buffer },
        }),
    );
    const results = workers.map(
      (w) =>
        new Promise<number>((resolve, reject) => {
          w.once('message', (m: { records: number }) => resolve(m.records));
          w.once('error', reject);
        }),
    );
    cleanups.push(async () => {
      Atomics.store(control, 0, 1);
      await Promise.all(workers.map((w) => w.terminate()));
    });
    // The main thread records too, between scrapes.
    let mainRecords = 0;
    const last = new Map<string, number>();
    let scrapes = 0;
    let checkedSeries = 0;
    const deadline = Date.now() + 3_000;
    while (scrapes < 30 || Date.now() < deadline) {
      for (let i = 0; i < 100; i++, mainRecords++) latency.record(i / 100, { route: ROUTES[i % 3] });
      const om = scrapes % 2 === 0;
      const samples = checkExposition(await request(exporter.url, 'GET', om ? { accept: OM } : {}), om);
      checkedSeries += checkHistograms(samples);
      for (const s of samples.filter((x) => x.name === 'abuse_latency_seconds_count')) {
        const k = seriesKey(s.labels);
        expect(s.value, `count of ${k} went back`).toBeGreaterThanOrEqual(last.get(k) ?? 0);
        last.set(k, s.value);
      }
      scrapes++;
      if (scrapes > 200) break;
    }
    expect(checkedSeries).toBeGreaterThanOrEqual(scrapes * 3);
    Atomics.store(control, 0, 1);
    const workerRecords = (await Promise.all(results)).reduce((a, b) => a + b, 0);
    expect(workerRecords).toBeGreaterThan(0);
    const final = checkExposition(await request(exporter.url), false);
    const total = final.filter((s) => s.name === 'abuse_latency_seconds_count').reduce((a, s) => a + s.value, 0);
    expect(total).toBe(workerRecords + mainRecords);
  }, 60_000);
});
