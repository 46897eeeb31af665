// A real Prometheus server (Debian package `prometheus`, 2.42) started with
// `--enable-feature=exemplar-storage` scrapes the exporter (OpenMetrics text; with
// `native-histograms` too, the protobuf format) and returns the exemplars of measurements
// made in a sampled span from /api/v1/query_exemplars, with the span's trace id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { MeterProvider, PrometheusExporter } from '../src';
import { AlsContextManager } from './helpers';
import {
  freePort,
  getJson,
  orFalse,
  prometheusConfigDir,
  requirePrometheus,
  spawnPrometheus,
  stopPrometheus,
  untilPrometheus,
  watchWriteHead,
} from './prometheus-helpers';

interface ExemplarResult {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const UNSAMPLED_TRACE = '11111111111111111111111111111111';

beforeAll(() => {
  requirePrometheus();
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
        watchWriteHead(res, (_status, h) => {
          if (h?.['content-type']) typesServed.push(h['content-type']);
        });
        exporter.requestHandler(req, res);
      });
      await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
      const target = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      dir = prometheusConfigDir('hotmeter-prom-exemplars-', '1s', { ex: target });
      const port = await freePort();
      apiBase = `http://127.0.0.1:${port}`;
      prometheus = spawnPrometheus(dir, port, (text) => (promLog += text), [`--enable-feature=${features.join(',')}`]);
      await untilPrometheus(prometheus, orFalse(async () => (await exemplars('ex_requests_total')).length > 0), 'Prometheus to store an exemplar', () => promLog);
    }, 90_000);

    afterAll(async () => {
      await stopPrometheus(prometheus);
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
