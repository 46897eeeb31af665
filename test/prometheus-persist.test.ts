// End to end with a real Prometheus (Debian package `prometheus`, as in
// prometheus-server.test.ts): a default MeterProvider's series persist between writes, so
// what Prometheus stores of a rarely incremented counter is the events sent (no reset, no
// gap) and an up-down counter's level is right after idle scrapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { MeterProvider, PrometheusExporter } from '../src';
import {
  freePort,
  orFalse,
  prometheusConfigDir,
  promQuery,
  requirePrometheus,
  spawnPrometheus,
  stopPrometheus,
  untilPrometheus,
  type VectorSample,
} from './prometheus-helpers';

let prometheus: ChildProcess | undefined;
let promLog = '';
let apiBase = '';
let dir = '';
let server: http.Server | undefined;
let provider: MeterProvider | undefined;
let scrapes = 0;

function query(q: string): Promise<VectorSample[]> {
  return promQuery(apiBase, q);
}

async function scalar(q: string): Promise<number | undefined> {
  const r = await query(q);
  return r.length === 1 ? Number(r[0].value[1]) : undefined;
}

function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  return untilPrometheus(prometheus, cond, what, () => promLog, ms, 100);
}

beforeAll(async () => {
  requirePrometheus();
  const exporter = new PrometheusExporter({ preventServerStart: true });
  provider = new MeterProvider({ readers: [exporter] }); // defaults: no expiry
  server = http.createServer((req, res) => {
    scrapes++;
    exporter.requestHandler(req, res);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const target = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  dir = prometheusConfigDir('hotmeter-persist-', '200ms', { persist: target });
  const port = await freePort();
  apiBase = `http://127.0.0.1:${port}`;
  prometheus = spawnPrometheus(dir, port, (text) => (promLog += text));
  await until(orFalse(async () => (await query('up == 1')).length === 1), 60_000, 'Prometheus to scrape the target');
}, 90_000);

afterAll(async () => {
  await stopPrometheus(prometheus);
  if (server !== undefined) await new Promise((r) => server!.close(r));
  await provider?.shutdown();
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('a real Prometheus scrapes a default provider', () => {
  it('a counter incremented every few scrapes: what Prometheus stores is the events sent, never reset; an up-down level survives idle scrapes', async () => {
    const m = provider!.getMeter('persist-e2e');
    const events = m.createCounter('events');
    const depth = m.createUpDownCounter('depth');
    depth.add(5, { q: 'a' });
    let sent = 0;
    // Six increments, each after at least three scrapes (the series is idle in between).
    for (let k = 0; k < 6; k++) {
      events.add(1, { kind: 'rare' });
      sent++;
      const at = scrapes;
      await until(async () => scrapes >= at + 3, 30_000, 'three scrapes');
    }
    depth.add(-1, { q: 'a' });
    await until(async () => (await scalar('depth{q="a"}')) === 4, 30_000, 'the new level to be scraped');
    await until(async () => (await scalar('events_total{kind="rare"}')) === sent, 30_000, 'the last increment to be scraped');
    // Over the whole run: never reset, never above the events sent; still there now.
    expect(await scalar('resets(events_total{kind="rare"}[5m])')).toBe(0);
    expect(await scalar('max_over_time(events_total{kind="rare"}[5m])')).toBe(sent);
    expect(await scalar('min_over_time(depth{q="a"}[5m])')).toBe(4);
    expect(await scalar('max_over_time(depth{q="a"}[5m])')).toBe(5);
    expect(await scalar('events_total{kind="rare"}')).toBe(sent);
  }, 90_000);
});
