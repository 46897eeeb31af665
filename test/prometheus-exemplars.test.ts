// A real Prometheus server (Debian package `prometheus`, 2.42) started with
// `--enable-feature=exemplar-storage` scrapes the exporter (OpenMetrics text; with
// `native-histograms` too, the protobuf format) and returns the exemplars of measurements
// made in a sampled span from /api/v1/query_exemplars, with the span's trace id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AsyncLocalStorage } from 'node:async_hooks';
import { ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Context, ContextManager } from '@opentelemetry/api';
import { MeterProvider, PrometheusExporter } from '../src';
import { freePort, getJson, spawnPrometheus } from './prometheus-helpers';

class AlsContextManager implements ContextManager {
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

interface ExemplarResult {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const UNSAMPLED_TRACE = '11111111111111111111111111111111';

beforeAll(() => {
  const version = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  if (version.error !== undefined) {
    throw new Error(`the prometheus server is required by this test (${version.error.message}): apt-get install prometheus, as .ci/run does`);
  }
  context.setGlobalContextManager(new AlsContextManager());
});

for (const features of [['exemplar-storage'], ['exemplar-storage', 'native-histograms']]) {
  describe(`a real Prometheus with --enable-feature=${features.join(',')}`, () => {
    let prometheus: ChildProcess | undefined;
    let promLog = '';
    let apiBase = '';
    let dir = '';
    let provider: MeterProvider | undefined;
    let server: http.Server | undefined;
    const typesServed: string[] = [];
    const start = Date.now() / 1000 - 60;

    async function exemplars(q: string): Promise<ExemplarResult[]> {
      const r = (await getJson(`${apiBase}/api/v1/query_exemplars?query=${encodeURIComponent(q)}&start=${start}&end=${Date.now() / 1000 + 60}`)) as {
        status: string;
        data: ExemplarResult[];
      };
      expect(r.status).toBe('success');
      return r.data;
    }

    beforeAll(async () => {
      const exporter = new PrometheusExporter({ preventServerStart: true });
      provider = new MeterProvider({ readers: [exporter], reclamation: false });
      const m = provider.getMeter('e2e');
      const latency = m.createHistogram('ex.latency', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1] } });
      const requests = m.createCounter('ex.requests');
      const sampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: false });
      const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: UNSAMPLED_TRACE, spanId: SPAN, traceFlags: 0, isRemote: false });
      latency.record(0.05, { route: '/a' }); // no span
      context.with(unsampled, () => latency.record(2, { route: '/a' }));
      context.with(sampled, () => {
        latency.record(0.5, { route: '/a' });
        requests.add(7, { route: '/a' });
      });
      server = http.createServer((req, res) => {
        const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => http.ServerResponse;
        (res as unknown as { writeHead: (...a: unknown[]) => http.ServerResponse }).writeHead = (...a: unknown[]) => {
          const h = a[1] as Record<string, string> | undefined;
          if (h?.['content-type']) typesServed.push(h['content-type']);
          return writeHead(...a);
        };
        exporter.requestHandler(req, res);
      });
      await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
      const target = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotmeter-prom-exemplars-'));
      fs.writeFileSync(
        path.join(dir, 'prometheus.yml'),
        ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: ex', `    static_configs: [{ targets: ['${target}'] }]`, ''].join('\n'),
      );
      const port = await freePort();
      apiBase = `http://127.0.0.1:${port}`;
      prometheus = spawnPrometheus(dir, port, (text) => (promLog += text), [`--enable-feature=${features.join(',')}`]);
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          const found = await exemplars('ex_requests_total');
          if (found.length > 0) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline || prometheus.exitCode !== null) throw new Error(`Prometheus stored no exemplar:\n${promLog}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }, 90_000);

    afterAll(async () => {
      if (prometheus !== undefined && prometheus.exitCode === null) {
        const exited = new Promise((r) => prometheus?.once('exit', r));
        prometheus.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
      }
      await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
      await provider?.shutdown();
      if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
    }, 30_000);

    it('scraped the format that carries exemplars', () => {
      expect(typesServed[0]).toMatch(features.includes('native-histograms') ? /^application\/vnd\.google\.protobuf/ : /^application\/openmetrics-text/);
      expect(promLog).not.toMatch(/level=(error|warn).*(scrape|exemplar)/i);
    });

    it('returns the sampled span\'s exemplar of the histogram bucket and the counter, and no other', async () => {
      const hist = await exemplars('ex_latency_seconds_bucket');
      // `le` as the scrape wrote it: "1" in the text, "1.0" where Prometheus formats a
      // protobuf bucket's bound.
      const byLe = hist.map((s) => [Number(s.seriesLabels.le), s.exemplars.map((e) => [e.labels.trace_id, e.labels.span_id, Number(e.value)])]);
      expect(byLe).toEqual([[1, [[TRACE, SPAN, 0.5]]]]);
      const counter = await exemplars('ex_requests_total');
      expect(counter).toHaveLength(1);
      expect(counter[0].seriesLabels).toMatchObject({ __name__: 'ex_requests_total', route: '/a' });
      expect(counter[0].exemplars.map((e) => [e.labels, Number(e.value)])).toEqual([[{ trace_id: TRACE, span_id: SPAN }, 7]]);
      // The exemplar's time is the measurement's (seconds), not the scrape's.
      expect(counter[0].exemplars[0].timestamp).toBeGreaterThanOrEqual(start);
      expect(counter[0].exemplars[0].timestamp).toBeLessThanOrEqual(Date.now() / 1000);
    });
  });
}
