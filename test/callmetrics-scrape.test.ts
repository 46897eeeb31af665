// MetricsEngine end to end: publishMetrics() on a local port, values read back from a real
// HTTP scrape, the output linted by `promtool check metrics` and parsed by the Python
// Prometheus client (both installed by CI: .ci/run).
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { MetricsEngine } from '../src';
import { prng } from './helpers';

const engines: MetricsEngine[] = [];
function engine(config: ConstructorParameters<typeof MetricsEngine>[0]): MetricsEngine {
  const e = new MetricsEngine(config);
  engines.push(e);
  return e;
}
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function scrape(e: MetricsEngine): Promise<string> {
  const url = e.url;
  if (url === undefined) throw new Error('not published');
  const r = await get(url);
  expect(r.status).toBe(200);
  return r.body;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the sample lines of the text format (label values unescaped). */
function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (m === null) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null;
    while ((lm = re.exec(body)) !== null) {
      labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[4];
    out.push({ name: m[1], labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

/** The value of the one sample `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`expected one ${name} ${JSON.stringify(labels)}, found ${found.length}`);
  return found[0].value;
}

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error !== undefined) {
    throw new Error(
      `promtool is required by this test and could not be run (${r.error.message}). ` +
        'Install it: apt-get install prometheus (Debian/Ubuntu), as .ci/run does.',
    );
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Families as the Python Prometheus client parses them: name -> type. */
function pythonParse(text: string): Record<string, string> {
  const script =
    'import sys, json\n' +
    'from prometheus_client.parser import text_string_to_metric_families\n' +
    'print(json.dumps({f.name: f.type for f in text_string_to_metric_families(sys.stdin.read())}))\n';
  const r = spawnSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(
      `the Python Prometheus client is required by this test (${r.error?.message ?? r.stderr.trim()}). ` +
        'Install it: apt-get install python3-prometheus-client, as .ci/run does.',
    );
  }
  return JSON.parse(r.stdout) as Record<string, string>;
}

describe('publishMetrics', () => {
  it('serves /metrics on 127.0.0.1 and values match the calls made', async () => {
    let t = 0;
    const e = engine({ port: 0, clock: () => t, quantiles: [0.5, 0.9, 0.99] });
    const url = await e.publishMetrics();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(await e.publishMetrics()).toBe(url);

    // 1000 calls of 1..1000 ms; 100 failing calls of 2 ms; 3 left in flight.
    const order = Array.from({ length: 1000 }, (_, i) => i + 1);
    const rand = prng(3);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const ms of order) {
      const end = e.recordCall('http', 'getUser');
      t += ms;
      end();
    }
    const failing = e.instrument('db', 'query', () => {
      t += 2;
      throw new Error('db down');
    });
    for (let i = 0; i < 100; i++) expect(() => failing()).toThrow('db down');
    for (let i = 0; i < 3; i++) e.recordCall('http', 'stream');

    const r = await get(url as string);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain/);
    const s = parseSamples(r.body);
    const user = { api_type: 'http', call_name: 'getUser' };
    const db = { api_type: 'db', call_name: 'query' };
    const stream = { api_type: 'http', call_name: 'stream' };

    expect(value(s, 'hotmeter_calls_total', { ...user, outcome: 'ok' })).toBe(1000);
    expect(value(s, 'hotmeter_calls_total', { ...user, outcome: 'error' })).toBe(0);
    expect(value(s, 'hotmeter_calls_total', { ...user, outcome: 'timeout' })).toBe(0);
    expect(value(s, 'hotmeter_call_duration_seconds_count', user)).toBe(1000);
    expect(value(s, 'hotmeter_call_duration_seconds_sum', user)).toBeCloseTo(500.5, 6);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = (Math.floor(q * 999) + 1) / 1000;
      const got = value(s, 'hotmeter_call_duration_seconds', { ...user, quantile: String(q) });
      expect(Math.abs(got - exact) / exact).toBeLessThanOrEqual(0.0101);
    }
    expect(value(s, 'hotmeter_call_last_duration_seconds', user)).toBeCloseTo(order[999] / 1000, 9);
    expect(value(s, 'hotmeter_calls_active', user)).toBe(0);

    expect(value(s, 'hotmeter_calls_total', { ...db, outcome: 'error' })).toBe(100);
    expect(value(s, 'hotmeter_calls_total', { ...db, outcome: 'ok' })).toBe(0);
    expect(value(s, 'hotmeter_call_duration_seconds_count', db)).toBe(100);
    expect(value(s, 'hotmeter_call_duration_seconds_sum', db)).toBeCloseTo(0.2, 9);

    expect(value(s, 'hotmeter_calls_active', stream)).toBe(3);
    expect(value(s, 'hotmeter_call_duration_seconds_count', stream)).toBe(0);
    // No call of `stream` ended: no last duration to show.
    expect(s.some((x) => x.name === 'hotmeter_call_last_duration_seconds' && x.labels.call_name === 'stream')).toBe(false);

    // The summary shows exactly the configured quantiles (advice.quantiles on the stream).
    const shown = new Set(s.filter((x) => x.name === 'hotmeter_call_duration_seconds' && x.labels.call_name === 'getUser').map((x) => x.labels.quantile));
    for (const q of ['0.5', '0.9', '0.99']) expect(shown.has(q)).toBe(true);
    const cs = await (e.meterProvider as NonNullable<typeof e.meterProvider>).collect();
    const d = cs.records.find((r) => r.descriptor.name === 'hotmeter.call.duration')?.descriptor;
    expect(d?.adviceQuantiles && [...d.adviceQuantiles]).toEqual([0.5, 0.9, 0.99]);
    expect([...shown].sort()).toEqual(['0.5', '0.9', '0.99']);
  });

  it('the call count and the summary count agree after thousands of concurrent calls', async () => {
    const e = engine({ port: 0 });
    await e.publishMetrics();
    const rand = prng(11);
    const f = e.instrument('http', 'fanout', async (ms: number, fail: boolean) => {
      await sleep(ms);
      if (fail) throw new Error('x');
    });
    const N = 4000;
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) all.push(f(Math.floor(rand() * 25), rand() < 0.25).catch(() => undefined));
    const during = parseSamples(await scrape(e));
    const a = { api_type: 'http', call_name: 'fanout' };
    const inFlight = value(during, 'hotmeter_calls_active', a);
    const doneDuring = value(during, 'hotmeter_calls_total', { ...a, outcome: 'ok' }) + value(during, 'hotmeter_calls_total', { ...a, outcome: 'error' });
    expect(inFlight + doneDuring).toBe(N);
    expect(value(during, 'hotmeter_call_duration_seconds_count', a)).toBe(doneDuring);
    await Promise.all(all);
    const s = parseSamples(await scrape(e));
    const ok = value(s, 'hotmeter_calls_total', { ...a, outcome: 'ok' });
    const error = value(s, 'hotmeter_calls_total', { ...a, outcome: 'error' });
    expect(ok + error).toBe(N);
    expect(error).toBeGreaterThan(0);
    expect(value(s, 'hotmeter_call_duration_seconds_count', a)).toBe(N);
    expect(value(s, 'hotmeter_calls_active', a)).toBe(0);
    expect(e.pendingCalls).toBe(0);
  });

  it('never-ending calls time out and are scraped as outcome="timeout"', async () => {
    const e = engine({ port: 0, callTimeoutMs: 50 });
    await e.publishMetrics();
    const ends = Array.from({ length: 3000 }, () => e.recordCall('queue', 'poll'));
    e.recordCall('queue', 'poll')();
    for (let i = 0; i < 1000 && e.pendingCalls > 0; i++) await sleep(5);
    expect(e.pendingCalls).toBe(0);
    const a = { api_type: 'queue', call_name: 'poll' };
    let s = parseSamples(await scrape(e));
    expect(value(s, 'hotmeter_calls_total', { ...a, outcome: 'timeout' })).toBe(3000);
    expect(value(s, 'hotmeter_calls_total', { ...a, outcome: 'ok' })).toBe(1);
    expect(value(s, 'hotmeter_calls_active', a)).toBe(0);
    expect(value(s, 'hotmeter_call_duration_seconds_count', a)).toBe(1);
    expect(e.pendingCalls).toBe(0);
    for (const end of ends) end();
    s = parseSamples(await scrape(e));
    expect(value(s, 'hotmeter_calls_total', { ...a, outcome: 'timeout' })).toBe(3000);
    expect(value(s, 'hotmeter_calls_total', { ...a, outcome: 'ok' })).toBe(1);
    expect(value(s, 'hotmeter_call_duration_seconds_count', a)).toBe(1);
  });

  it('passes `promtool check metrics` (lint included) with runtime metrics and awkward label values', async () => {
    const e = engine({ port: 0, runtimeMetrics: true, callTimeoutMs: 1000 });
    await e.publishMetrics();
    e.recordCall('http', 'GET /users/{id}')();
    e.recordCall('sql', 'SELECT "x" FROM t\nWHERE a = \'\\\'')(new Error('x'));
    await e.instrument('http', 'async', async () => sleep(1))();
    e.recordCall('http', 'pending');
    // Some garbage, so GC durations exist.
    const keep: unknown[] = [];
    for (let i = 0; i < 200_000; i++) keep.push({ i });
    keep.length = 0;
    await sleep(20);
    const text = await scrape(e);
    const r = promtoolCheck(text);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
    const labelled = parseSamples(text).find((x) => x.name === 'hotmeter_calls_total' && x.labels.api_type === 'sql');
    expect(labelled?.labels.call_name).toBe('SELECT "x" FROM t\nWHERE a = \'\\\'');

    const families = pythonParse(text);
    expect(families).toMatchObject({
      hotmeter_call_duration_seconds: 'summary',
      hotmeter_calls: 'counter',
      hotmeter_call_last_duration_seconds: 'gauge',
      hotmeter_calls_active: 'gauge',
      nodejs_eventloop_delay_p99_seconds: 'gauge',
      nodejs_eventloop_utilization_ratio: 'gauge',
      nodejs_eventloop_time_seconds: 'counter',
      v8js_gc_duration_seconds: 'histogram',
      v8js_memory_heap_used_bytes: 'gauge',
      v8js_memory_heap_limit_bytes: 'gauge',
      process_cpu_time_seconds: 'counter',
      process_memory_usage_bytes: 'gauge',
      v8js_resource_active: 'gauge',
    });
  });

  it('rejects when the port is taken, and can publish again afterwards', async () => {
    const blocker = http.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const e = engine({ port });
      await expect(e.publishMetrics()).rejects.toThrow(/EADDRINUSE/);
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      const url = await e.publishMetrics();
      expect(url).toBe(`http://127.0.0.1:${port}/metrics`);
      e.recordCall('a', 'b')();
      expect(value(parseSamples(await scrape(e)), 'hotmeter_calls_total', { api_type: 'a', outcome: 'ok' })).toBe(1);
    } finally {
      if (blocker.listening) blocker.close();
    }
  });

  it('shutdown() closes the port', async () => {
    const e = engine({ port: 0 });
    const url = (await e.publishMetrics()) as string;
    expect((await get(url)).status).toBe(200);
    await e.shutdown();
    await expect(get(url)).rejects.toThrow(/ECONNREFUSED/);
  });
});
