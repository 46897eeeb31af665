// Streamed scrapes: the HTTP handler writes a large registry's text in parts (partBytes)
// while it sends it, so a scrape holds a few parts in memory, not its whole text.
//   - SharedStream (the sharing of one streamed collection by the scrapes that arrived
//     together) against a scripted PrometheusStream: which parts are written, when each is
//     given back, when the stream closes.
//   - The native stream: its parts, one after another, are the text of one collection;
//     wrong use is an exception, never a crash.
//   - Over HTTP: chunked responses equal to the text rendered whole, memory bounded by
//     parts (native stats().lentOutputChunks while the response is read), clients that go.
import * as http from 'node:http';
import * as net from 'node:net';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import type { PrometheusExporterOptions, PrometheusPart, PrometheusStream } from '../src';
import { OutputBudget } from '../src/exporters/prometheus/output-budget';
import { SharedStream } from '../src/exporters/prometheus/shared-stream';
import { native } from '../src/sdk/native';
import { sleep, until } from './helpers';
import { getAndLeave, OM, parseExposition, request } from './prometheus-helpers';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A PrometheusStream of `n` parts whose writes the test finishes (`finish`) and whose calls it sees. */
function scripted(n: number) {
  const log: string[] = [];
  const pending: ((p: PrometheusPart) => void)[] = [];
  let reads = 0;
  const stream: PrometheusStream = {
    parts: n,
    next: () => {
      const k = reads++;
      log.push(`next ${k}`);
      if (k >= n) return Promise.resolve(undefined);
      return new Promise<PrometheusPart>((resolve) => pending.push(resolve));
    },
    release: (part) => log.push(`release ${part.chunks[0].toString()}`),
    close: () => log.push('close'),
  };
  /** Finishes the oldest write in flight. */
  const finish = async (): Promise<void> => {
    for (let i = 0; i < 20 && pending.length === 0; i++) await sleep(0); // next() is called from a continuation
    const resolve = pending.shift();
    if (resolve === undefined) throw new Error('no write in flight');
    const k = reads - pending.length - 1;
    resolve({ chunks: [Buffer.from(String(k))], byteLength: 1 });
    await sleep(0);
  };
  return { stream, log, finish };
}

const text = (p: PrometheusPart | undefined): string => (p === undefined ? 'end' : p.chunks.map(String).join(''));

describe('SharedStream', () => {
  it('readers that joined before the first part share every part; a part goes back once all of them passed it', async () => {
    const { stream, log, finish } = scripted(3);
    const shared = new SharedStream(Promise.resolve(stream));
    const [a, b] = await Promise.all([shared.join(), shared.join()]);
    expect(a.parts).toBe(3);
    const a0 = a.part(0);
    const b0 = b.part(0); // the same write, not a second one
    expect(shared.canJoin).toBe(true);
    await finish();
    expect([text(await a0), text(await b0)]).toEqual(['0', '0']);
    expect(log).toEqual(['next 0']);
    // Part 0 is written: a later scrape would need it back, so it starts its own.
    expect(shared.canJoin).toBe(false);
    expect(() => shared.join()).toThrow(/no longer takes readers/);

    a.passed(0);
    const a1 = a.part(1);
    await finish();
    expect(log).not.toContain('release 0'); // b still sends it
    b.passed(0);
    await sleep(0);
    expect(log).toContain('release 0');
    expect(text(await a1)).toBe('1');
    a.passed(1);
    expect(text(await b.part(1))).toBe('1'); // written once, read twice
    b.passed(1);
    const a2 = a.part(2);
    await finish();
    expect(text(await a2)).toBe('2');
    expect(text(await a.part(3))).toBe('end');
    a.passed(2);
    a.leave();
    await sleep(0);
    expect(log).not.toContain('close');
    expect(text(await b.part(2))).toBe('2');
    b.passed(2);
    b.leave();
    await sleep(0);
    // (A release follows its part's write asynchronously: compared as a set.)
    expect(new Set(log)).toEqual(new Set(['next 0', 'next 1', 'release 0', 'next 2', 'release 1', 'release 2', 'close']));
    expect(log).toHaveLength(7);
    b.leave(); // again: nothing
    expect(log.filter((l) => l === 'close')).toHaveLength(1);
  });

  it('with an output budget: a part ahead of need only when it fits; a stream holding no part always writes one; every byte goes back', async () => {
    const budget = new OutputBudget(10, 10_000, 1_000); // 10 bytes; parts estimated at 4
    const a = scripted(4);
    const A = new SharedStream(Promise.resolve(a.stream), budget, 4);
    const ra = await A.join();
    const a0 = ra.part(0);
    await a.finish(); // 1 byte
    expect(text(await a0)).toBe('0');
    ra.prefetch(1); // 1 + 4 fits
    await a.finish();
    expect(budget.held).toBe(2);
    // A second collection whose snapshot alone is over the budget.
    const b = scripted(2);
    const B = new SharedStream(Promise.resolve({ ...b.stream, heldBytes: 20 }), budget, 4);
    const rb = await B.join();
    await sleep(0);
    expect(budget.held).toBe(22);
    const b0 = rb.part(0); // holds no part: written though the budget is full
    await b.finish();
    expect(text(await b0)).toBe('0');
    ra.passed(0);
    ra.prefetch(2); // no room: not written ahead
    await sleep(0);
    expect(a.log).toEqual(['next 0', 'next 1', 'release 0']);
    const a2 = ra.part(2); // A still holds part 1: waits for room
    await sleep(0);
    expect(a.log).not.toContain('next 2');
    ra.passed(1); // A holds nothing now: part 2 goes
    await a.finish();
    expect(text(await a2)).toBe('2');
    rb.leave();
    ra.leave();
    await sleep(0);
    expect(new Set(b.log)).toEqual(new Set(['next 0', 'release 0', 'close'])); // a release follows asynchronously
    expect(a.log).toContain('close');
    expect(budget.held).toBe(0);
  });

  it('when the last reader leaves, what was written goes back (a part being written once it is done), and nothing more is written', async () => {
    const { stream, log, finish } = scripted(5);
    const shared = new SharedStream(Promise.resolve(stream));
    const a = await shared.join();
    const p0 = a.part(0);
    await finish();
    await p0;
    const p1 = a.part(1); // prefetched while part 0 is sent
    await until(() => log.includes('next 1'), 1_000, 'part 1 being written');
    a.part(2).catch(() => undefined); // queued behind it
    a.leave(); // the client went away
    await sleep(0);
    expect(new Set(log)).toEqual(new Set(['next 0', 'next 1', 'release 0', 'close']));
    await finish();
    expect(text(await p1)).toBe('1');
    await sleep(0);
    expect(new Set(log)).toEqual(new Set(['next 0', 'next 1', 'release 0', 'close', 'release 1'])); // no 'next 2'
    expect(log).toHaveLength(5);
    expect(shared.canJoin).toBe(false);
  });

  it('a collection that fails to open rejects every reader, with nothing left unhandled', async () => {
    const shared = new SharedStream(Promise.reject(new Error('shut down')));
    const [a, b] = [shared.join(), shared.join()]; // joined while it was opening
    await expect(a).rejects.toThrow('shut down');
    await expect(b).rejects.toThrow('shut down');
    expect(shared.canJoin).toBe(false); // a later scrape tries a collection of its own
  });
});

/** A provider with `n` counter series (~260 bytes of text each) and a 16-bucket histogram series. */
function setup(n: number, options: PrometheusExporterOptions = {}) {
  const exporter = new PrometheusExporter({ port: 0, ...options });
  const provider = new MeterProvider({ readers: [exporter], cardinalityLimit: n + 10, reclamation: false });
  cleanups.push(() => provider.shutdown());
  const meter = provider.getMeter('stream');
  const requests = meter.createCounter('stream.requests');
  for (let i = 0; i < n; i++) requests.add(i, { route: `/api/v1/items/${i}/${'x'.repeat(200)}` });
  meter.createHistogram('stream.latency', { unit: 's' }).record(0.25, { route: '/' });
  return { exporter, provider, requests };
}

const lent = (): number => native().stats().lentOutputChunks;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Output chunks lent once earlier tests' Buffers are collected and given back. */
async function baseline(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(20); // Buffer finalizers run after the GC, from the event loop
  }
  return lent();
}

describe('the native Prometheus stream', () => {
  it('its parts, one after another, are the text of one collection; then null', async () => {
    const { exporter } = setup(10, { preventServerStart: true });
    const whole = await exporter.render();
    const producer = (exporter as unknown as { producer: { streamPrometheus: (o: object, partBytes?: number) => Promise<PrometheusStream> } }).producer;
    const stream = await producer.streamPrometheus({ openMetrics: false, withoutScopeInfo: false, withoutTargetInfo: false, summaryQuantiles: [0.5] }, 4096);
    expect(stream.parts).toBe(1);
    const only = await stream.next();
    expect(only?.chunks.map(String).join('')).toBe(whole);
    expect(await stream.next()).toBeUndefined();
    stream.close();
    stream.close();
  });

  it('cuts a large text into parts of about partBytes; wrong use throws, never crashes', async () => {
    const { exporter, provider } = setup(20_000, { preventServerStart: true });
    const whole = await exporter.render();
    const producer = (exporter as unknown as { producer: { streamPrometheus: (o: object, partBytes?: number) => Promise<PrometheusStream> } }).producer;
    const options = { openMetrics: false, withoutScopeInfo: false, withoutTargetInfo: false, summaryQuantiles: [0.5] };
    const stream = await producer.streamPrometheus(options, 1 << 20);
    // ~5.3 MB in parts of ~1 MiB (the plan estimates; within 20% here).
    expect(stream.parts).toBeGreaterThanOrEqual(4);
    expect(stream.parts).toBeLessThanOrEqual(7);
    const parts: string[] = [];
    for (;;) {
      const p = await stream.next();
      if (p === undefined) break;
      expect(p.byteLength).toBeLessThan(2 << 20);
      parts.push(p.chunks.map(String).join(''));
      stream.release(p);
      expect(p.chunks.every((c) => c.length === 0)).toBe(true); // given back: empty
    }
    expect(parts).toHaveLength(stream.parts);
    expect(parts.join('')).toBe(whole);
    for (const part of parts) expect(part.endsWith('\n')).toBe(true); // whole lines
    stream.close();

    // The binding: a read in flight, a closed stream, something that is not a stream.
    const n = native();
    const domain = (provider as unknown as { domain: number }).domain;
    const info = n.openPrometheusStream(domain, false, undefined, null, { partBytes: 4096 });
    const first = n.readPrometheusStream(info.stream);
    expect(() => n.readPrometheusStream(info.stream)).toThrow(/in flight/);
    await first;
    n.closePrometheusStream(info.stream);
    expect(() => n.readPrometheusStream(info.stream)).toThrow(/closed/);
    n.closePrometheusStream(info.stream);
    for (const bad of [undefined, null, 1, 'x', {}, [], Buffer.alloc(8), new Float64Array(2)]) {
      expect(() => n.readPrometheusStream(bad as never)).toThrow(TypeError);
      expect(() => n.closePrometheusStream(bad as never)).toThrow(TypeError);
    }
    for (const pb of [-1, 0, 4095, 2 ** 31, NaN, '8', {}]) {
      expect(() => n.openPrometheusStream(domain, false, undefined, null, { partBytes: pb as never })).toThrow(TypeError);
    }
    expect(() => n.openPrometheusStream(0, false, undefined, null)).toThrow(TypeError);
    expect(() => new PrometheusExporter({ preventServerStart: true, partBytes: 100 })).toThrow(TypeError);
  });

  it('an open stream keeps the label sets of series reclaimed while it is read; closing it frees them', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter], reclaimIdleMillis: 1 }); // expiry on
    cleanups.push(() => provider.shutdown());
    const counter = provider.getMeter('retire').createCounter('retire.once');
    for (let i = 0; i < 50; i++) counter.add(i + 1, { id: `once-${i}` });
    const producer = (exporter as unknown as { producer: { streamPrometheus: (o: object, partBytes?: number) => Promise<PrometheusStream> } }).producer;
    const options = { openMetrics: false, withoutScopeInfo: false, withoutTargetInfo: false, summaryQuantiles: [0.5] };
    const held = await producer.streamPrometheus(options, 4096); // its snapshot points at the 50 label sets
    // Scrapes go on while it is held: the idle series are exported, let go, then reclaimed.
    for (let k = 0; k < 6 && native().stats().retiredLabelSets < 50; k++) {
      await new Promise((r) => setTimeout(r, 5)); // idle longer than reclaimIdleMillis
      await exporter.render();
    }
    expect(native().stats().retiredLabelSets).toBe(50);
    expect(await exporter.render()).not.toContain('once-');
    for (let i = 0; i < 50; i++) counter.add(1000, { id: `anew-${i}` }); // sets of the same sizes
    let text = '';
    for (;;) {
      const part = await held.next();
      if (part === undefined) break;
      text += part.chunks.map(String).join('');
      held.release(part);
    }
    for (let i = 0; i < 50; i++) expect(text).toMatch(new RegExp(`^retire_once_total\\{id="once-${i}"[^}]*\\} ${i + 1}$`, 'm'));
    expect(text).not.toContain('anew-');
    held.close(); // the last pin: the retired sets are freed now
    expect(native().stats().retiredLabelSets).toBe(0);
  });

  it('overlapping streams (a new one opened before the older one closes) keep only the sets reclaimed while the oldest is open', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter], reclaimIdleMillis: 1 }); // expiry on
    cleanups.push(() => provider.shutdown());
    const counter = provider.getMeter('retire').createCounter('retire.overlap');
    const producer = (exporter as unknown as { producer: { streamPrometheus: (o: object, partBytes?: number) => Promise<PrometheusStream> } }).producer;
    const options = { openMetrics: false, withoutScopeInfo: false, withoutTargetInfo: false, summaryQuantiles: [0.5] };
    let older = await producer.streamPrometheus(options, 4096);
    const seen: number[] = [];
    for (let round = 0; round < 5; round++) {
      // 50 series that live and go while `older` is open: retired, not freed.
      for (let i = 0; i < 50; i++) counter.add(1, { id: `r${round}-${i}` });
      const target = native().stats().retiredLabelSets + 50;
      for (let k = 0; k < 10 && native().stats().retiredLabelSets < target; k++) {
        await new Promise((r) => setTimeout(r, 5)); // idle longer than reclaimIdleMillis
        await exporter.render();
      }
      expect(native().stats().retiredLabelSets).toBe(50);
      // A stalled scrape's successor opens before it closes (scrapes always overlap).
      const newer = await producer.streamPrometheus(options, 4096);
      older.close(); // no pin taken before those 50 were retired is held any more
      seen.push(native().stats().retiredLabelSets);
      older = newer;
    }
    older.close();
    expect(seen).toEqual([0, 0, 0, 0, 0]);
    expect(native().stats().retiredLabelSets).toBe(0);
  });
});

/** GET with a reader that records the output chunks lent at each data event, reading slowly. */
function slowGet(url: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; maxLent: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent: false }, (res) => {
      const bufs: Buffer[] = [];
      let maxLent = 0;
      res.on('data', (c: Buffer) => {
        bufs.push(c);
        maxLent = Math.max(maxLent, lent());
        // Let the server run ahead as far as it will.
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(bufs).toString('utf8'), maxLent }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('streamed HTTP scrapes', () => {
  it('a text of many parts is sent chunked and equals the text rendered whole (both formats); HEAD sends no body', async () => {
    const { exporter } = setup(20_000, { partBytes: 1 << 20 });
    await exporter.ready();
    for (const accept of [undefined, OM]) {
      const whole = await exporter.render(accept);
      const r = await request(exporter.url, 'GET', accept === undefined ? {} : { accept });
      expect(r.status).toBe(200);
      expect(r.headers['content-length']).toBeUndefined();
      expect(r.headers['transfer-encoding']).toBe('chunked');
      expect(r.body).toBe(whole);
      expect(parseExposition(r.body).filter((s) => s.name === 'stream_requests_total')).toHaveLength(20_000);
      if (accept === OM) expect(r.body.match(/# EOF\n/g)).toHaveLength(1);
    }
    const head = await request(exporter.url, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBeUndefined();
  });

  it('holds a few parts, not the whole text, while a slow client reads; every chunk is back afterwards', async () => {
    const { exporter } = setup(60_000, { partBytes: 2 << 20 });
    await exporter.ready();
    const before = await baseline();
    const whole = await exporter.render(); // ~16 MB
    await until(() => lent() === before, 2_000, 'render() gives its chunks back');
    const wholeChunks = Math.ceil(Buffer.byteLength(whole) / (2 << 20));
    expect(wholeChunks).toBeGreaterThanOrEqual(7);
    const r = await slowGet(exporter.url);
    expect(r.status).toBe(200);
    expect(r.body).toBe(whole);
    // Two parts (the one being sent, the next one written meanwhile) of about two chunks
    // each (one per serialization thread) at most, plus one whose release is on its way.
    expect(r.maxLent - before).toBeGreaterThan(0);
    expect(r.maxLent - before).toBeLessThanOrEqual(6);
    expect(r.maxLent - before).toBeLessThan(wholeChunks);
    await until(() => lent() === before, 2_000, 'every chunk given back');
  });

  it('a client that goes away mid-response: its parts go back, nothing more is written, the next scrape is whole', async () => {
    const { exporter } = setup(60_000, { partBytes: 1 << 20 });
    await exporter.ready();
    const before = await baseline();
    const whole = await exporter.render();
    await getAndLeave(exporter.url);
    await until(() => lent() === before, 5_000, 'parts back after the client left');
    const again = await request(exporter.url);
    expect(again.body).toBe(whole);
    await until(() => lent() === before, 2_000, 'parts back after a whole response');
  });

  it('a collection that cannot be opened (after shutdown) answers 500, each time', async () => {
    // Mounted in a server of its own: the provider's shutdown closes the exporter's server.
    const { exporter, provider } = setup(10, { partBytes: 4096, preventServerStart: true });
    const server = http.createServer(exporter.requestHandler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/metrics`;
    expect((await request(url)).status).toBe(200);
    await provider.shutdown();
    for (let k = 0; k < 2; k++) {
      const r = await request(url);
      expect(r.status).toBe(500);
      expect(r.body).toBe('collection failed\n');
    }
  });

  it('concurrent HTTP scrapes arriving together read one collection', async () => {
    const { exporter, provider } = setup(20_000, { partBytes: 1 << 20 });
    await exporter.ready();
    let opened = 0;
    const producer = (exporter as unknown as { producer: { streamPrometheus: (...a: unknown[]) => Promise<PrometheusStream> } }).producer;
    const open = producer.streamPrometheus;
    producer.streamPrometheus = (...a: unknown[]) => {
      opened++;
      return open(...a);
    };
    // Callbacks run first in a collection: one that waits holds the first part back, so the
    // five requests all arrive while the collection takes readers.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    provider.getMeter('stream').createObservableGauge('stream.gate').addCallback(async (o) => {
      await gate;
      o.observe(1);
    });
    const responses = Promise.all(Array.from({ length: 5 }, () => request(exporter.url)));
    await until(() => opened === 1, 2_000, 'the first scrape opened a collection');
    await sleep(200);
    release();
    const rs = await responses;
    expect(opened).toBe(1);
    for (const r of rs) {
      expect(r.status).toBe(200);
      expect(r.body).toBe(rs[0].body);
    }
    expect(parseExposition(rs[0].body).filter((s) => s.name === 'stream_requests_total')).toHaveLength(20_000);
  });
});
