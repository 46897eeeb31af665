// Cumulative series persist: by default a series once recorded stays in every cumulative
// export (Prometheus text, provider.collect(), cumulative OTLP through an sdk-metrics
// reader) with its value, for the life of the provider, as in prom-client and
// @opentelemetry/sdk-metrics. Dropping series is the user's choice: opt-in expiry
// (reclaimIdleMillis, waiting for every reader to DELIVER the final value) or remove().
import * as http from 'node:http';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AggregationTemporality as SdkTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckpointSet } from '../src';
import { ExportResultCode, MeterProvider, PrometheusExporter, PushController } from '../src';
import type { Exporter } from '../src/export/exporter';
import { native } from '../src/sdk/native';
import { findRecord, installLogger, lastValueOf, maybeRecord, sumOf, uninstallLogger, ManualReader } from './helpers';
import { parseExposition } from './prometheus-helpers';

afterEach(() => uninstallLogger());

/** A provider read three ways at each step: a Prometheus scrape, cumulative OTLP, collect(). */
function threeWays() {
  const prom = new PrometheusExporter({ preventServerStart: true });
  const otlp = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: otlp, exportIntervalMillis: 3_600_000 });
  const p = new MeterProvider({ readers: [prom, reader] });
  const meter = p.getMeter('persist');
  /** One step: every reader reads once; values of `name` by attribute `id`, per way. */
  const read = async (name: string, promName: string) => {
    const text = await prom.render();
    const fromProm = new Map<string, number>();
    for (const s of parseExposition(text)) if (s.name === promName && s.labels.id !== undefined) fromProm.set(s.labels.id, s.value);
    otlp.reset();
    await p.forceFlush();
    const fromOtlp = new Map<string, number>();
    const rms: ResourceMetrics[] = otlp.getMetrics();
    for (const rm of rms)
      for (const sm of rm.scopeMetrics)
        for (const m of sm.metrics)
          if (m.descriptor.name === name) for (const dp of m.dataPoints) fromOtlp.set(String(dp.attributes.id), dp.value as number);
    const cs = await p.collect();
    const fromCollect = new Map<string, number>();
    for (const r of cs.records) {
      if (r.descriptor.name !== name) continue;
      fromCollect.set(String(r.attributes.id), r.aggregation.kind === 'lastValue' ? lastValueOf(r) : sumOf(r));
    }
    return { prom: fromProm, otlp: fromOtlp, collect: fromCollect };
  };
  const expectEverywhere = (got: Awaited<ReturnType<typeof read>>, id: string, value: number | undefined, step: string) => {
    expect(got.prom.get(id), `Prometheus, ${step}`).toBe(value);
    expect(got.otlp.get(id), `OTLP, ${step}`).toBe(value);
    expect(got.collect.get(id), `collect(), ${step}`).toBe(value);
  };
  return { p, meter, read, expectEverywhere };
}

describe('cumulative series persist by default', () => {
  it('a counter written once stays in scrapes 1..5 with its value (Prometheus, OTLP, collect())', async () => {
    const { p, meter, read, expectEverywhere } = threeWays();
    const c = meter.createCounter('once');
    c.add(200, { id: 'a' });
    for (let i = 1; i <= 5; i++) expectEverywhere(await read('once', 'once_total'), 'a', 200, `scrape ${i}`);
    await p.shutdown();
  });

  it('a rarely written counter keeps accumulating (increase() over it is the events sent)', async () => {
    const { p, meter, read, expectEverywhere } = threeWays();
    const c = meter.createCounter('rare');
    let total = 0;
    for (let round = 0; round < 4; round++) {
      c.add(round + 1, { id: 'r' });
      total += round + 1;
      for (let i = 0; i < 3; i++) expectEverywhere(await read('rare', 'rare_total'), 'r', total, `round ${round}, scrape ${i}`);
    }
    await p.shutdown();
  });

  it('an UpDownCounter keeps its level: add(5), idle scrapes, add(-1) exports 4', async () => {
    const { p, meter, read, expectEverywhere } = threeWays();
    const u = meter.createUpDownCounter('level');
    u.add(5, { id: 'q' });
    for (let i = 0; i < 3; i++) expectEverywhere(await read('level', 'level'), 'q', 5, `idle scrape ${i}`);
    u.add(-1, { id: 'q' });
    expectEverywhere(await read('level', 'level'), 'q', 4, 'after add(-1)');
    await p.shutdown();
  });

  it('a gauge recorded once stays', async () => {
    const { p, meter, read, expectEverywhere } = threeWays();
    const g = meter.createGauge('temp');
    g.record(21.5, { id: 'lab' });
    for (let i = 1; i <= 5; i++) expectEverywhere(await read('temp', 'temp'), 'lab', 21.5, `scrape ${i}`);
    await p.shutdown();
  });

  it('many scrapes in flight (clients that do not read) never empty a normal scrape', async () => {
    const prom = new PrometheusExporter({ host: '127.0.0.1', port: 0 });
    const p = new MeterProvider({ readers: [prom] });
    await prom.ready();
    p.getMeter('persist').createCounter('demo').add(200, { id: 'x' });
    const port = Number(new URL(prom.url).port);
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        const s = net.connect(port, '127.0.0.1');
        sockets.push(s);
        s.on('error', () => undefined);
        // Wait for its response to start (its collection has run), then never read more.
        await new Promise<void>((resolve) => {
          s.once('data', () => {
            s.pause();
            resolve();
          });
          s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
        });
      }
      const body = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        http
          .get(prom.url, { agent: false }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (b += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
          })
          .on('error', reject);
      });
      expect(body.status).toBe(200);
      expect(body.body).toMatch(/^demo_total\{id="x"[^}]*\} 200$/m);
    } finally {
      for (const s of sockets) s.destroy();
      await p.shutdown();
    }
  });
});

describe('opt-in expiry (reclaimIdleMillis)', () => {
  it('expires an idle counter series, never an UpDownCounter; a returning series is a new series', async () => {
    const p = new MeterProvider({ reclaimIdleMillis: 5 });
    const m = p.getMeter('expiry');
    const c = m.createCounter('c');
    const u = m.createUpDownCounter('u');
    c.add(3, { id: 'x' });
    u.add(5, { id: 'x' });
    const first = findRecord(await p.collect(), 'c', { id: 'x' });
    let gone = false;
    for (let i = 0; i < 5 && !gone; i++) {
      await sleep(20); // idle longer than reclaimIdleMillis
      const cs = await p.collect();
      gone = maybeRecord(cs, 'c', { id: 'x' }) === undefined;
      expect(sumOf(findRecord(cs, 'u', { id: 'x' }))).toBe(5);
    }
    expect(gone).toBe(true);
    await sleep(20);
    u.add(-1, { id: 'x' });
    c.add(4, { id: 'x' });
    const cs = await p.collect();
    expect(sumOf(findRecord(cs, 'u', { id: 'x' }))).toBe(4);
    const again = findRecord(cs, 'c', { id: 'x' });
    expect(sumOf(again)).toBe(4);
    expect(again.seriesId).not.toBe(first.seriesId);
    expect(again.startTime).toBeGreaterThanOrEqual(first.endTime);
    expect(() => new MeterProvider({ reclaimIdleMillis: -1 })).toThrow(TypeError);
  });

  it('reclamation: false means no expiry', async () => {
    const p = new MeterProvider({ reclamation: false, reclaimIdleMillis: 1 });
    const c = p.getMeter('expiry').createCounter('c');
    c.add(2, { id: 'y' });
    for (let i = 0; i < 4; i++) {
      await sleep(5);
      expect(sumOf(findRecord(await p.collect(), 'c', { id: 'y' }))).toBe(2);
    }
  });

  it('a push reader whose exports fail keeps the series until an export delivers it', async () => {
    let fail = true;
    const exported: CheckpointSet[] = [];
    const exporter: Exporter = {
      export: async (set) => {
        exported.push(set);
        return fail ? { code: ExportResultCode.FAILED, error: new Error('collector down') } : { code: ExportResultCode.SUCCESS };
      },
      forceFlush: async () => undefined,
      shutdown: async () => undefined,
    };
    installLogger();
    const push = new PushController({ exporter, intervalMillis: 3_600_000, batcher: 'ungrouped' });
    const p = new MeterProvider({ readers: [push], reclaimIdleMillis: 1 });
    const c = p.getMeter('expiry').createCounter('c');
    c.add(7, { id: 'z' });
    for (let i = 0; i < 4; i++) {
      await sleep(5);
      await expect(push.forceFlush()).rejects.toThrow();
    }
    for (const set of exported) expect(sumOf(findRecord(set, 'c', { id: 'z' }))).toBe(7);
    fail = false;
    await sleep(5);
    await push.forceFlush(); // delivered now: the final value reached the collector
    expect(sumOf(findRecord(exported[exported.length - 1], 'c', { id: 'z' }))).toBe(7);
    let gone = false;
    for (let i = 0; i < 5 && !gone; i++) {
      await sleep(5);
      await push.forceFlush();
      gone = maybeRecord(exported[exported.length - 1], 'c', { id: 'z' }) === undefined;
    }
    expect(gone).toBe(true);
    await p.shutdown();
  });

  it('an OpenTelemetry push reader whose exports fail keeps the series until an export delivers it', async () => {
    let fail = true;
    const inner = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const origExport = inner.export.bind(inner);
    inner.export = (metrics, cb) => (fail ? cb({ code: 1, error: new Error('collector down') }) : origExport(metrics, cb));
    const reader = new PeriodicExportingMetricReader({ exporter: inner, exportIntervalMillis: 3_600_000 });
    const p = new MeterProvider({ readers: [reader], reclaimIdleMillis: 1 });
    const c = p.getMeter('expiry').createCounter('c');
    c.add(9, { id: 'o' });
    for (let i = 0; i < 4; i++) {
      await sleep(5);
      await p.forceFlush().catch(() => undefined);
    }
    fail = false;
    await sleep(5);
    await p.forceFlush();
    const value = (rm: ResourceMetrics | undefined) =>
      rm?.scopeMetrics.flatMap((sm) => sm.metrics).find((m) => m.descriptor.name === 'c')?.dataPoints.find((d) => d.attributes.id === 'o')?.value;
    expect(value(inner.getMetrics().at(-1))).toBe(9);
    await p.shutdown();
  });

  it('a scrape whose client left mid-response has not delivered: its series do not expire', async () => {
    const prom = new PrometheusExporter({ host: '127.0.0.1', port: 0, partBytes: 1 << 16 });
    const p = new MeterProvider({ readers: [prom], reclaimIdleMillis: 1, cardinalityLimit: 200_000 });
    await prom.ready();
    const c = p.getMeter('expiry').createCounter('big');
    const pad = 'x'.repeat(100);
    const N = 100_000; // ~15 MB of text: far more than the socket buffers hold
    for (let i = 0; i < N; i++) c.add(1, { id: `${pad}${i}` });
    const port = Number(new URL(prom.url).port);
    try {
      for (let k = 0; k < 3; k++) {
        // Read the start of the response, then go away.
        await new Promise<void>((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => undefined);
          s.once('data', () => {
            s.destroy();
            resolve();
          });
          s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        await sleep(10); // idle longer than reclaimIdleMillis
      }
      const text = await prom.render();
      expect(text.match(/^big_total\{/gm)).toHaveLength(N);
    } finally {
      await p.shutdown();
    }
  }, 60_000);

  it('a direct provider.collect() does not hold expiry back for the registered readers', async () => {
    const reader = new ManualReader();
    const p = new MeterProvider({ readers: [reader], reclaimIdleMillis: 1 });
    const c = p.getMeter('expiry').createCounter('c');
    await p.collect(); // one direct call, before the series exists
    c.add(1, { id: 'd' });
    let gone = false;
    for (let i = 0; i < 6 && !gone; i++) {
      await sleep(5);
      gone = maybeRecord(await reader.collect(), 'c', { id: 'd' }) === undefined;
    }
    expect(gone).toBe(true);
  });
});

describe('the cardinality limit counts series live or idle', () => {
  it('idle series keep their place; a removed or expired one frees it', async () => {
    const p = new MeterProvider({ cardinalityLimit: 3, reclaimIdleMillis: 1 });
    const m = p.getMeter('card');
    const c = m.createCounter('c');
    const u = m.createUpDownCounter('u', {});
    c.add(1, { id: 'a' });
    c.add(1, { id: 'b' }); // two series + the overflow series = 3
    u.add(1, { id: 'a' });
    u.add(1, { id: 'b' });
    await p.collect();
    u.add(1, { id: 'c' }); // up-down series never expire: idle ones still count
    expect(findRecord(await p.collect(), 'u', { 'otel.metric.overflow': true })).toBeDefined();
    u.remove({ id: 'a' }); // removed: no longer counts
    u.add(1, { id: 'd' });
    expect(sumOf(findRecord(await p.collect(), 'u', { id: 'd' }))).toBe(1);
    await sleep(5);
    await p.collect(); // the idle counter series expire
    c.add(1, { id: 'c' });
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'c' }))).toBe(1);
  });
});

describe('remove() and clear()', () => {
  it('a removed series is gone from the next export; a later write starts a new series', async () => {
    const prom = new PrometheusExporter({ preventServerStart: true });
    const p = new MeterProvider({ readers: [prom] });
    const m = p.getMeter('rm');
    const c = m.createCounter('c');
    for (let i = 0; i < 3; i++) c.add(10, { id: 'a' }); // cached in the trie by now
    c.add(1, { id: 'b' });
    const before = findRecord(await p.collect(), 'c', { id: 'a' });
    expect(sumOf(before)).toBe(30);
    const records = native().stats().records;
    c.remove({ id: 'a' });
    expect(native().stats().records).toBe(records - 1); // nothing held it: freed at once
    expect(maybeRecord(await p.collect(), 'c', { id: 'a' })).toBeUndefined();
    expect(await prom.render()).not.toContain('id="a"');
    c.add(2, { id: 'a' });
    const after = findRecord(await p.collect(), 'c', { id: 'a' });
    expect(sumOf(after)).toBe(2);
    expect(after.seriesId).not.toBe(before.seriesId);
    expect(after.startTime).toBeGreaterThanOrEqual(before.startTime);
    expect(await prom.render()).toMatch(/^c_total\{id="a"[^}]*\} 2$/m);
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'b' }))).toBe(1); // others untouched
    await p.shutdown();
  });

  it('a handle bound before remove() writes into the removed series, never exported; bind again after', async () => {
    const p = new MeterProvider();
    const u = p.getMeter('rm').createUpDownCounter('u');
    const h = u.bind({ id: 'h' });
    h.add(5);
    u.remove({ id: 'h' });
    h.add(1);
    expect(maybeRecord(await p.collect(), 'u', { id: 'h' })).toBeUndefined();
    const h2 = u.bind({ id: 'h' });
    h2.add(3);
    expect(sumOf(findRecord(await p.collect(), 'u', { id: 'h' }))).toBe(3);
    const records = native().stats().records;
    h.unbind(); // the removed record's last reference: freed
    expect(native().stats().records).toBe(records - 1);
    h2.unbind();
  });

  it('clear() removes every series of the instrument, histograms and gauges too', async () => {
    const p = new MeterProvider();
    const m = p.getMeter('rm');
    const hist = m.createHistogram('h');
    const g = m.createGauge('g');
    for (let i = 0; i < 5; i++) {
      hist.record(i, { id: `s${i}` });
      hist.record(i, { id: `s${i}` });
      g.record(i, { id: `s${i}` });
    }
    expect((await p.collect()).records.filter((r) => r.descriptor.name === 'h')).toHaveLength(5);
    hist.clear();
    g.remove({ id: 's1' });
    const cs = await p.collect();
    expect(cs.records.filter((r) => r.descriptor.name === 'h')).toHaveLength(0);
    expect(cs.records.filter((r) => r.descriptor.name === 'g').map((r) => r.attributes.id).sort()).toEqual(['s0', 's2', 's3', 's4']);
    hist.record(1, { id: 's0' });
    expect((await p.collect()).records.filter((r) => r.descriptor.name === 'h')).toHaveLength(1);
  });

  it('never throws on bad attributes: a diagnostic, nothing removed', async () => {
    const logger = installLogger();
    const p = new MeterProvider();
    const c = p.getMeter('rm').createCounter('c');
    c.add(1, { id: 'keep' });
    const throwing = new Proxy({}, { ownKeys: () => { throw new Error('boom'); } });
    for (const bad of [null, 42, 'id', [1, 2], throwing, { id: {} }]) {
      expect(() => c.remove(bad as never)).not.toThrow();
    }
    expect(logger.warned('remove()')).toBe(true);
    c.remove({ id: 'never-recorded' });
    expect(sumOf(findRecord(await p.collect(), 'c', { id: 'keep' }))).toBe(1);
  });
});
