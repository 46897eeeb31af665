// The Prometheus endpoint bounded under clients that misbehave (issue 26):
//   - many clients that ask for a scrape of a large registry and never read: the process's
//     RSS (measured in a child process, test/fixtures/hostile-endpoint.js) stays within
//     the output budget plus slack, with the exporter's own server and with requestHandler
//     in a plain http.createServer; a client that reads is still served in full;
//   - a stalled scrape does not keep reclaimed label sets retired past writeTimeout;
//   - shutdown() finishes within its grace behind a stalled scraper;
//   - gzip: the body decodes to exactly the text (node:zlib, curl --compressed, the Python
//     parser), for every Accept-Encoding form.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import type { MetricProducer, PrometheusExporterOptions } from '../src';
import { native } from '../src/sdk/native';
import { sleep, until } from './helpers';
import { OM, pythonParse, request } from './prometheus-helpers';
import { ROOT } from './fixtures/worker-helpers';
import * as fs from 'node:fs';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 1 << 20;

/** The fixture process: its URL and a way to ask it for figures. */
async function endpoint(mode: 'builtin' | 'handler', series: number, exporter: PrometheusExporterOptions) {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cjs', 'index.js'))) throw new Error('dist/ is missing: run `npm run build:ts`');
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'hostile-endpoint.js'), JSON.stringify({ mode, series, exporter })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  cleanups.push(() => void child.kill('SIGKILL'));
  const lines: Record<string, number | string>[] = [];
  const waiting: (() => void)[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, number | string>);
    for (const w of waiting.splice(0)) w();
  });
  const next = async (): Promise<Record<string, number | string>> => {
    while (lines.length === 0) {
      if (child.exitCode !== null) throw new Error(`fixture exited (${child.exitCode})`);
      await new Promise<void>((r) => waiting.push(r));
    }
    return lines.shift()!;
  };
  const ask = async (cmd: string): Promise<Record<string, number>> => {
    child.stdin!.write(`${cmd}\n`);
    return (await next()) as Record<string, number>;
  };
  const { url } = (await next()) as { url: string };
  return { url, ask, child };
}

/** A client that sends GET and never reads a byte of the answer. */
function staller(url: string, headers = ''): net.Socket {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname, () => socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`));
  socket.pause();
  socket.on('error', () => undefined);
  cleanups.push(() => void socket.destroy());
  return socket;
}

/** GET with its body as raw bytes. */
function getRaw(url: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent: false }, (res) => {
      const bufs: Buffer[] = [];
      res.on('data', (c: Buffer) => bufs.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(bufs) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('clients that never read: memory stays within the output budget', () => {
  // 100,000 series of ~330 bytes: a ~33 MB text; 2 MiB parts; a 16 MiB budget.
  const SERIES = 100_000;
  const BUDGET = 16 * MiB;
  // RSS beyond the budget: the JS heap of 40 connections, allocator and page-cache noise.
  // Without the budget, 40 stallers hold 2-3 parts (4-6 MiB) and a snapshot (~6 MB) each.
  const SLACK = 48 * MiB;

  for (const mode of ['builtin', 'handler'] as const) {
    it(`40 stalled clients (${mode === 'builtin' ? "the exporter's own server" : 'requestHandler in a plain http.createServer'}): RSS within budget + slack; a reading client is served in full`, async () => {
      const ep = await endpoint(mode, SERIES, { partBytes: 2 * MiB, outputBudgetBytes: BUDGET });
      const whole = await getRaw(ep.url); // warm: the output pool, the stashed snapshot
      expect(whole.status).toBe(200);
      expect(whole.body.length).toBeGreaterThan(30_000_000);
      await getRaw(ep.url);
      const { rss: base } = await ep.ask('mark');
      for (let i = 0; i < 40; i++) {
        staller(ep.url);
        await sleep(100); // each its own collection, not one shared by all
      }
      await sleep(1_000);
      // A client that reads gets everything, while the stallers are still connected or
      // being closed to make room.
      const during = await getRaw(ep.url);
      expect(during.status).toBe(200);
      expect(during.body.equals(whole.body)).toBe(true);
      const { peak, held } = await ep.ask('peak');
      console.info(`${mode}: 40 stalled clients, peak RSS ${((peak - base) / MiB).toFixed(1)} MiB over the baseline (budget ${BUDGET / MiB} MiB)`);
      expect(peak - base).toBeLessThan(BUDGET + SLACK);
      expect(held).toBeLessThanOrEqual(BUDGET + 2 * MiB); // one part's estimate may be short
    }, 60_000);
  }

  it('stalled clients are closed after writeTimeout (requestHandler in a plain server, where node sets no socket timeout)', async () => {
    const ep = await endpoint('handler', 60_000, { partBytes: 1 * MiB, writeTimeoutMillis: 1_000 });
    staller(ep.url);
    staller(ep.url);
    await until(async () => (await ep.ask('conns')).conns === 2, 10_000, 'both connected');
    await sleep(300); // their responses are being written, and stall
    // Closed by the server (the paused clients never see it: they read nothing).
    await until(async () => (await ep.ask('conns')).conns === 0, 15_000, 'stalled connections closed at writeTimeout');
    expect((await ep.ask('conns')).responses).toBe(0);
    // What they held went back to the budget with them.
    await until(async () => (await ep.ask('peak')).held === 0, 5_000, 'the budget back to 0');
  }, 30_000);
});

describe('the output budget with clients that do read', () => {
  it('open streams whose snapshots alone exceed the budget still all progress: slow readers arriving one after another, some sharing a collection, each get the whole text', async () => {
    // 4 KiB parts, a 64 KiB budget, a snapshot of ~5,000 records (a few hundred KB) per scrape.
    const exporter = new PrometheusExporter({ port: 0, partBytes: 4096, outputBudgetBytes: 64 << 10, writeTimeoutMillis: 5_000 });
    const provider = new MeterProvider({ readers: [exporter], reclamation: false, cardinalityLimit: 5_010 });
    cleanups.push(() => provider.shutdown());
    const c = provider.getMeter('budget').createCounter('budget.requests');
    for (let i = 0; i < 5_000; i++) c.add(i, { route: `/api/v1/items/${i}` });
    await exporter.ready();
    const whole = Buffer.from(await exporter.render());
    const slowRead = (pauseMs: number): Promise<{ status: number; body: Buffer }> =>
      new Promise((resolve, reject) => {
        const req = http.request(exporter.url, { agent: false }, (res) => {
          const bufs: Buffer[] = [];
          res.on('data', (b: Buffer) => {
            bufs.push(b);
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(bufs) }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    const reads: Promise<{ status: number; body: Buffer }>[] = [];
    for (let i = 0; i < 6; i++) {
      // Two at once share a collection, one reading slower than the other; the next pair
      // gets a collection (and a snapshot) of its own.
      reads.push(slowRead(1), slowRead(4));
      await sleep(30);
    }
    for (const r of await Promise.all(reads)) {
      expect(r.status).toBe(200);
      expect(r.body.equals(whole)).toBe(true);
    }
    // Every byte taken from the budget was given back (parts, snapshots, part 0 reservations).
    const budget = (exporter as unknown as { budget: { held: number; responses: number } }).budget;
    await until(() => budget.held === 0 && budget.responses === 0, 5_000, 'the budget back to 0');
  }, 60_000);
});

describe('a stalled scrape and retired label sets', () => {
  it('a scrape stalled in a plain server keeps reclaimed label sets retired only until writeTimeout closes it', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true, partBytes: 64 << 10, writeTimeoutMillis: 1_000 });
    const provider = new MeterProvider({ readers: [exporter], reclaimIdleMillis: 1, cardinalityLimit: 100_000 });
    cleanups.push(() => provider.shutdown());
    const meter = provider.getMeter('stall');
    // Kept series: enough text (~9 MB) that the stalled client's socket cannot take it all.
    const kept = meter.createUpDownCounter('stall.kept'); // never reclaimed (a level)
    for (let i = 0; i < 30_000; i++) kept.add(1, { route: `/api/v1/items/${i}/${'x'.repeat(250)}` });
    const server = http.createServer(exporter.requestHandler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/metrics`;
    staller(url);
    const conns = (): Promise<number> => new Promise((r) => server.getConnections((_e, n) => r(n ?? 0)));
    let open = true;
    await sleep(300); // its snapshot is taken, its first parts are written
    // Churn: series that live and go (reclaimed) while the staller holds its snapshot.
    const churn = meter.createCounter('stall.churn');
    let maxWhileOpen = 0;
    for (let round = 0; open && round < 200; round++) {
      for (let i = 0; i < 50; i++) churn.add(1, { id: `r${round}-${i}` });
      await sleep(5);
      await exporter.render();
      maxWhileOpen = Math.max(maxWhileOpen, native().stats().retiredLabelSets);
      open = (await conns()) > 0;
    }
    expect(open).toBe(false); // closed by the server at writeTimeout, not by the test
    expect(maxWhileOpen).toBeGreaterThan(0); // it did keep sets retired while it was open
    // Its pin went with it: churn goes on, nothing stays retired.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 50; i++) churn.add(1, { id: `after${round}-${i}` });
      await sleep(5);
      await exporter.render();
    }
    await until(() => native().stats().retiredLabelSets === 0, 5_000, 'no label set retired once the staller is gone');
  }, 60_000);
});

describe('shutdown() behind a stalled scraper', () => {
  for (const mode of ['builtin', 'handler'] as const) {
    it(`finishes within shutdownGraceMillis and closes the stalled scrape (${mode})`, async () => {
      const ep = await endpoint(mode, 60_000, { partBytes: 1 * MiB, shutdownGraceMillis: 500 });
      staller(ep.url);
      await until(async () => (await ep.ask('conns')).conns === 1, 10_000, 'the staller connected');
      await sleep(300); // its response is being written, and stalls
      // The grace plus what the final collection takes; the stalled scrape alone would
      // hold the old shutdown for one to two idleTimeouts (30 s each).
      const r = await Promise.race([ep.ask('shutdown'), sleep(20_000).then(() => ({ shutdownMs: Infinity }))]);
      console.info(`${mode}: shutdown() with a stalled scraper took ${r.shutdownMs} ms (grace 500 ms)`);
      expect(r.shutdownMs).toBeLessThan(20_000);
      const after = await ep.ask('conns');
      expect(after.conns).toBe(0);
      expect(after.responses).toBe(0);
    }, 60_000);
  }
});

describe('gzip', () => {
  function setup(n: number, options: PrometheusExporterOptions = {}) {
    const exporter = new PrometheusExporter({ port: 0, ...options });
    const provider = new MeterProvider({ readers: [exporter], reclamation: false, cardinalityLimit: n + 10 });
    cleanups.push(() => provider.shutdown());
    const meter = provider.getMeter('gz');
    const c = meter.createCounter('gz.requests');
    for (let i = 0; i < n; i++) c.add(i, { route: `/api/v1/items/${i}`, code: String(200 + (i % 5)) });
    meter.createHistogram('gz.latency', { unit: 's' }).record(0.25, { route: '/' });
    return exporter;
  }

  it('Accept-Encoding: gzip gets one gzip member that decodes to exactly the text (node:zlib, curl --compressed, the Python parser), both formats, one part or many', async () => {
    // (curl runs without the ASan preload of scripts/asan-node.sh: with it, curl hung.)
    const n = 20_000;
    for (const partBytes of [undefined, 4096]) {
      const exporter = setup(n, { partBytes });
      await exporter.ready();
      for (const accept of [undefined, OM]) {
        const plain = await getRaw(exporter.url, accept === undefined ? {} : { accept });
        expect(plain.headers['content-encoding']).toBeUndefined();
        const gz = await getRaw(exporter.url, { 'accept-encoding': 'gzip', ...(accept === undefined ? {} : { accept }) });
        expect(gz.status).toBe(200);
        expect(gz.headers['content-encoding']).toBe('gzip');
        expect(gz.headers.vary).toBe('Accept-Encoding');
        expect(gz.headers['content-length']).toBeUndefined();
        expect(gz.body.length).toBeLessThan(plain.body.length / 4);
        const text = zlib.gunzipSync(gz.body);
        expect(text.equals(plain.body)).toBe(true);
        const families = pythonParse(text.toString('utf8'), accept === OM);
        expect(families.find((f) => f.name === 'gz_requests')?.samples.filter((x) => x.name === 'gz_requests_total')).toHaveLength(n);
      }
      // Not spawnSync: the server runs on this thread.
      const curl = await new Promise<Buffer>((resolve, reject) =>
        execFile('curl', ['-sS', '--compressed', exporter.url], { encoding: 'buffer', maxBuffer: 64 * MiB, env: { ...process.env, LD_PRELOAD: '' } }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      expect(curl.equals((await getRaw(exporter.url)).body)).toBe(true);
      const budget = (exporter as unknown as { budget: { held: number } }).budget;
      await until(() => budget.held === 0, 5_000, 'parts and gzip state back to the budget');
    }
  }, 60_000);

  it('the whole-text path (a producer that does not stream) is gzipped the same way', async () => {
    const exporter = new PrometheusExporter({ port: 0 });
    const attach = exporter.setMetricProducer.bind(exporter);
    exporter.setMetricProducer = (p: MetricProducer): void => attach({ ...p, streamPrometheus: undefined });
    const provider = new MeterProvider({ readers: [exporter], reclamation: false, cardinalityLimit: 5_010 });
    cleanups.push(() => provider.shutdown());
    const c = provider.getMeter('gz').createCounter('gz.requests');
    for (let i = 0; i < 5_000; i++) c.add(i, { route: `/api/v1/items/${i}` });
    await exporter.ready();
    const plain = await getRaw(exporter.url);
    expect(plain.headers['content-length']).toBe(String(plain.body.length));
    const gz = await getRaw(exporter.url, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).equals(plain.body)).toBe(true);
  });

  it('Accept-Encoding forms: q=0 and identity get plain text; x-gzip and * get gzip; compression: false never compresses', async () => {
    const exporter = setup(100);
    await exporter.ready();
    for (const [ae, enc] of [
      ['gzip;q=0', undefined],
      ['identity', undefined],
      ['deflate, br', undefined],
      ['x-gzip', 'gzip'],
      ['*', 'gzip'],
      ['br;q=1.0, gzip;q=0.8, *;q=0.1', 'gzip'],
      ['*, gzip;q=0', undefined],
    ] as const) {
      const r = await getRaw(exporter.url, { 'accept-encoding': ae });
      expect(r.headers['content-encoding'], ae).toBe(enc);
      const body = enc === 'gzip' ? zlib.gunzipSync(r.body) : r.body;
      expect(body.toString()).toContain('gz_requests_total{');
    }
    const off = setup(100, { compression: false });
    await off.ready();
    const r = await request(off.url, 'GET', { 'accept-encoding': 'gzip' });
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers.vary).toBeUndefined();
    expect(r.body).toContain('gz_requests_total{');
    expect(() => new PrometheusExporter({ preventServerStart: true, compression: 10 })).toThrow(TypeError);
  });
});
