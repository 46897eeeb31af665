// Prometheus exposition: names, units, escaping, content negotiation, every aggregation in
// both formats, the native serializer agreeing with the TypeScript one, the exporter's
// HTTP surface (own server, mounted handler, HEAD, errors, shared scrapes), reclamation
// through scrapes, and a large scrape that leaves the event loop free.
import { AggregationTemporality, AggregationType, InMemoryMetricExporter, InstrumentType, PeriodicExportingMetricReader, type AggregationOption } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregationKind,
  CheckpointSet,
  MeterProvider,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  PrometheusExporter,
  toPrometheusText,
  type MetricProducer,
} from '../src';
import { negotiateFormat } from '../src/exporters/prometheus/negotiate';
import { familyName, formatValue, sanitizeLabelName, sanitizeMetricName, unitSuffix } from '../src/exporters/prometheus/naming';
import { native } from '../src/sdk/native';
import { installLogger, prng, uninstallLogger } from './helpers';
import { HOSTILE, MERGED, OM, parseExposition, recordCollisions, recordEverything, request, sampleKey, VIEWS } from './prometheus-helpers';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  uninstallLogger();
});

function exporterFor(options: ConstructorParameters<typeof MeterProvider>[0] = {}, exp: ConstructorParameters<typeof PrometheusExporter>[0] = {}) {
  const exporter = new PrometheusExporter({ preventServerStart: true, ...exp });
  const provider = new MeterProvider({ ...options, readers: [exporter] });
  cleanups.push(() => provider.shutdown());
  return { exporter, provider };
}

describe('naming', () => {
  it('sanitizes metric and label names as the OpenTelemetry rules say', () => {
    expect(sanitizeMetricName('http.server.duration')).toBe('http_server_duration');
    expect(sanitizeMetricName('a..b--c/d')).toBe('a_b_c_d');
    expect(sanitizeMetricName('a:b')).toBe('a:b');
    expect(sanitizeMetricName('9lives')).toBe('_9lives');
    expect(sanitizeLabelName('a:b')).toBe('a_b');
    expect(sanitizeLabelName('__meta')).toBe('_meta');
    expect(sanitizeLabelName('größe')).toBe('gr_e');
    expect(sanitizeLabelName('1st')).toBe('_1st');
    expect(sanitizeLabelName('.')).toBe('_');
    expect(sanitizeLabelName('🚀x')).toBe('_x');
  });

  it('turns units into words and adds them once', () => {
    expect(unitSuffix('s', false)).toBe('seconds');
    expect(unitSuffix('ms', false)).toBe('milliseconds');
    expect(unitSuffix('By/s', false)).toBe('bytes_per_second');
    expect(unitSuffix('{request}', false)).toBe('');
    expect(unitSuffix('{packet}/s', false)).toBe('per_second');
    expect(unitSuffix('1', true)).toBe('ratio');
    expect(unitSuffix('1', false)).toBe('');
    expect(unitSuffix('%', true)).toBe('percent');
    expect(unitSuffix('constructor', false)).toBe('constructor');
    expect(familyName('http.server.request.duration', 's', 'counter', false)).toEqual({
      family: 'http_server_request_duration_seconds_total',
      sample: 'http_server_request_duration_seconds_total',
      unit: 'seconds',
    });
    expect(familyName('http.server.request.duration', 's', 'counter', true).family).toBe('http_server_request_duration_seconds');
    expect(familyName('requests_total', '', 'counter', true)).toEqual({ family: 'requests', sample: 'requests_total', unit: '' });
    expect(familyName('queue.size_bytes', 'By', 'gauge', false).family).toBe('queue_size_bytes');
    expect(familyName('cpu.utilization', '1', 'gauge', false).family).toBe('cpu_utilization_ratio');
  });
});

describe('content negotiation', () => {
  it('picks OpenMetrics for Prometheus and the text format otherwise', () => {
    expect(negotiateFormat(OM)).toEqual({ openMetrics: true, contentType: OPENMETRICS_CONTENT_TYPE });
    expect(negotiateFormat('application/openmetrics-text')).toMatchObject({ openMetrics: true });
    expect(negotiateFormat('application/openmetrics-text; version=0.0.1')).toMatchObject({ openMetrics: true });
    expect(negotiateFormat('application/openmetrics-text; version=2.0.0')).toMatchObject({ openMetrics: false });
    expect(negotiateFormat(OM, false)).toEqual({ openMetrics: false, contentType: PROMETHEUS_TEXT_CONTENT_TYPE });
    expect(negotiateFormat(undefined).openMetrics).toBe(false);
    expect(negotiateFormat('').openMetrics).toBe(false);
    expect(negotiateFormat('text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5').openMetrics).toBe(false);
    expect(negotiateFormat('text/plain;q=0.3, application/openmetrics-text;q=0.8').openMetrics).toBe(true);
    expect(negotiateFormat('application/openmetrics-text;q=0, */*').openMetrics).toBe(false);
    expect(negotiateFormat('application/json').openMetrics).toBe(false);
    expect(negotiateFormat(['application/openmetrics-text', 'text/plain']).openMetrics).toBe(true);
    expect(negotiateFormat('garbage;;;=,;q=x').openMetrics).toBe(false);
  });
});

/** Compares two expositions line by line; numbers may differ by a few ulps (exp(): C++ vs JS). */
function expectSameText(a: string, b: string): void {
  const al = a.split('\n');
  const bl = b.split('\n');
  expect(al.length).toBe(bl.length);
  const num = /-?\d+(\.\d+)?(e[+-]\d+)?/g;
  for (let i = 0; i < al.length; i++) {
    if (al[i] === bl[i]) continue;
    const an = al[i].match(num) ?? [];
    const bn = bl[i].match(num) ?? [];
    expect(al[i].replace(num, '#'), `line ${i}`).toBe(bl[i].replace(num, '#'));
    expect(an.length).toBe(bn.length);
    for (let k = 0; k < an.length; k++) {
      const x = Number(an[k]);
      const y = Number(bn[k]);
      expect(Math.abs(x - y) <= 1e-12 * Math.max(Math.abs(x), Math.abs(y)), `line ${i}: ${al[i]} vs ${bl[i]}`).toBe(true);
    }
  }
}

describe('every aggregation, both formats', () => {
  for (const openMetrics of [false, true]) {
    for (const withoutScopeInfo of [false, true]) {
      it(`native output equals the TypeScript serializer (${openMetrics ? 'OpenMetrics' : 'text'}, scope labels ${withoutScopeInfo ? 'off' : 'on'})`, async () => {
        const resource = { attributes: { 'service.name': 'svc "x"', 'host.id': 7 } };
        const a = exporterFor({ resource, views: VIEWS }, { withoutScopeInfo });
        const b = new MeterProvider({ resource, views: VIEWS });
        cleanups.push(() => b.shutdown());
        const t0 = Date.now();
        recordEverything(a.provider);
        recordEverything(b);
        // The two providers' series start at different moments: `_created` (OpenMetrics)
        // must be a start time of this test, in seconds; the rest of the text must agree.
        const created = (text: string): string =>
          text.replace(/(^|\n)([a-zA-Z_:][a-zA-Z0-9_:]*_created(?:\{[^\n]*\})?) (\S+)(?=\n)/g, (_l, nl: string, id: string, v: string) => {
            expect(Number(v) * 1000, id).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000);
            expect(Number(v) * 1000, id).toBeLessThanOrEqual(Date.now());
            return `${nl}${id} T`;
          });
        const nativeText = created(await a.exporter.render(openMetrics ? OM : undefined));
        const tsText = created(toPrometheusText(await b.collect(), resource.attributes, { openMetrics, withoutScopeInfo }));
        expect(nativeText.includes('_created') && tsText.includes('_created')).toBe(openMetrics);
        expectSameText(nativeText, tsText);
        // And a second collection (no updates; observables observed again).
        expectSameText(
          created(await a.exporter.render(openMetrics ? OM : undefined)),
          created(toPrometheusText(await b.collect(), resource.attributes, { openMetrics, withoutScopeInfo })),
        );
      });
    }
  }

  it('writes what the conventions say (text format)', async () => {
    const { exporter, provider } = exporterFor({ resource: { attributes: { 'service.name': 'svc' } }, views: VIEWS });
    recordEverything(provider);
    const text = await exporter.render();
    const lines = text.split('\n');
    // HELP and TYPE once per family, families sorted.
    const types = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(new Set(types).size).toBe(types.length);
    const families = types.filter((t) => t !== 'target_info');
    expect(families).toEqual([...families].sort());
    expect(text.startsWith('# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{service_name="svc"} 1\n')).toBe(true);
    expect(text).toContain('# HELP http_requests_total Requests "served"\\nby route \\\\ method\n# TYPE http_requests_total counter\n');
    expect(text).toContain('http_requests_total{http_method="GET",ok="false",route="quote \\" inside",otel_scope_name="fmt",otel_scope_version="2.1.0"} 2\n');
    expect(text).toContain('http_requests_total{route="/x",otel_scope_name="other.scope"} 7\n');
    expect(text).toContain('http_requests_total{otel_scope_name="fmt",otel_scope_version="2.1.0"} 1.5\n');
    expect(text).toContain('# TYPE queue_depth gauge\n');
    expect(text).toContain('queue_depth{q="b",otel_scope_name="fmt",otel_scope_version="2.1.0"} -7.25\n');
    expect(text).toContain('temperature_celsius{room="kitchen",otel_scope_name="fmt",otel_scope_version="2.1.0"} -3.5\n');
    expect(text).toMatch(/rpc_duration_seconds_bucket\{exported_le="user-le",method="a",otel_scope_name="fmt",otel_scope_version="2.1.0",le="\+Inf"\} 167\n/);
    expect(text).toContain('# TYPE lat_sketch_milliseconds summary\n');
    const median = /lat_sketch_milliseconds\{exported_quantile="user-q",otel_scope_name="fmt",otel_scope_version="2.1.0",quantile="0.5"\} (\S+)\n/.exec(text);
    expect(Math.abs(Number(median?.[1]) - 500) / 500).toBeLessThanOrEqual(0.01);
    expect(text).toContain('lat_sketch_milliseconds_count{exported_quantile="user-q",otel_scope_name="fmt",otel_scope_version="2.1.0"} 1000\n');
    expect(lines.filter((l) => l.startsWith('lat_advised{')).map((l) => /quantile="([^"]+)"/.exec(l)?.[1])).toEqual(['0.25', '0.75']);
    expect(text).toContain('lat_mmsc{otel_scope_name="fmt",otel_scope_version="2.1.0",quantile="0"} 1\n');
    expect(text).toContain('lat_mmsc{otel_scope_name="fmt",otel_scope_version="2.1.0",quantile="1"} 10\n');
    expect(text).toContain('lat_exact{otel_scope_name="fmt",otel_scope_version="2.1.0",quantile="0.5"} 2.5\n');
    expect(text).toContain('lat_exact_sum{otel_scope_name="fmt",otel_scope_version="2.1.0"} 52.5\n');
    expect(text).toContain('lat_exp_bytes_bucket{otel_scope_name="fmt",otel_scope_version="2.1.0",le="0"} 1\n');
    expect(text).toContain('lat_exp_bytes_bucket{otel_scope_name="fmt",otel_scope_version="2.1.0",le="+Inf"} 200\n');
    expect(text).toContain('obs_level{k="v",otel_scope_name="fmt",otel_scope_version="2.1.0"} 42\n');
    expect(text).toContain('obs_count_bytes_total{otel_scope_name="fmt",otel_scope_version="2.1.0"} 1024\n');
    expect(text).toContain('obs_updown{otel_scope_name="fmt",otel_scope_version="2.1.0"} -1\n');
    expect(text).toContain('numbers_total{a_b="dot;underscore",arr="[\\"x\\",1,true]",b="false",f="1.5",n="200",otel_scope_name="fmt",otel_scope_version="2.1.0"} 1\n');
    expect(text).not.toContain('# EOF');
    expect(text).not.toContain('# UNIT');
  });

  it('writes OpenMetrics 1.0.0: families without _total, UNIT, info-typed target, # EOF', async () => {
    const { exporter, provider } = exporterFor({ resource: { attributes: { 'service.name': 'svc' } }, views: VIEWS });
    recordEverything(provider);
    const text = await exporter.render(OM);
    expect(text.startsWith('# HELP target Target metadata\n# TYPE target info\ntarget_info{service_name="svc"} 1\n')).toBe(true);
    expect(text).toContain('# HELP http_requests Requests \\"served\\"\\nby route \\\\ method\n# TYPE http_requests counter\n');
    expect(text).toContain('# TYPE rpc_duration_seconds histogram\n# UNIT rpc_duration_seconds seconds\n');
    expect(text).toContain('# TYPE obs_count_bytes counter\n# UNIT obs_count_bytes bytes\nobs_count_bytes_total{');
    expect(text).toContain('# TYPE temperature_celsius gauge\n# UNIT temperature_celsius celsius\n');
    expect(text.endsWith('\n# EOF\n')).toBe(true);
    expect(text.indexOf('# EOF')).toBe(text.length - 6);
  });

  it('formats numbers as JavaScript does, +Inf/-Inf/NaN as Prometheus does', async () => {
    const { exporter, provider } = exporterFor({ cardinalityLimit: 10_000 });
    const g = provider.getMeter('n').createGauge('value');
    const rand = prng(9);
    const values: number[] = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 123456789.125, 2 ** 53, 2 ** 60, 5e-324, Number.MAX_VALUE, -1.5e300, 1e-6];
    for (let i = 0; i < 2000; i++) {
      const buf = new Float64Array(1);
      new Uint32Array(buf.buffer).set([Math.floor(rand() * 2 ** 32), Math.floor(rand() * 2 ** 32)]);
      if (Number.isFinite(buf[0])) values.push(buf[0]);
      values.push((rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20));
    }
    values.forEach((v, i) => g.record(v, { i }));
    const text = await exporter.render(undefined);
    const got = new Map<number, string>();
    for (const l of text.split('\n')) {
      const m = /^value\{i="(\d+)",otel_scope_name="n"\} (\S+)$/.exec(l);
      if (m) got.set(Number(m[1]), m[2]);
    }
    expect(got.size).toBe(values.length);
    values.forEach((v, i) => expect(got.get(i)).toBe(formatValue(v)));
  });

  it('label values of any content round-trip exactly', async () => {
    const { exporter, provider } = exporterFor();
    const c = provider.getMeter('esc').createCounter('hostile');
    const rand = prng(5);
    const values = [...HOSTILE];
    for (let i = 0; i < 300; i++) {
      let s = '';
      const n = Math.floor(rand() * 12);
      for (let k = 0; k < n; k++) {
        const pick = rand();
        s += pick < 0.3 ? '\\"\n'[Math.floor(rand() * 3)] : pick < 0.5 ? String.fromCodePoint(0x1f300 + Math.floor(rand() * 200)) : String.fromCharCode(32 + Math.floor(rand() * 95));
      }
      values.push(s);
    }
    const unique = [...new Set(values)];
    unique.forEach((v, i) => c.add(i + 1, { v, k: 'const' }));
    // A lone surrogate becomes U+FFFD when recorded (the text is always valid UTF-8).
    c.add(1000, { v: 'lone \ud800 surrogate', k: 'const' });
    for (const accept of [undefined, OM]) {
      const text = await exporter.render(accept);
      const seen = new Map<string, number>();
      for (const line of text.split('\n')) {
        const m = /^hostile_total\{k="const",v="((?:[^"\\]|\\.)*)",otel_scope_name="esc"\} (\d+)$/.exec(line);
        if (!m) continue;
        seen.set(m[1].replace(/\\(.)/g, (_, ch: string) => (ch === 'n' ? '\n' : ch)), Number(m[2]));
      }
      unique.forEach((v, i) => expect(seen.get(v), JSON.stringify(v)).toBe(i + 1));
      expect(seen.get('lone \ufffd surrogate')).toBe(1000);
    }
  });
});

describe('families and clashes', () => {
  it('drops an instrument whose names clash with a family of another type, with a diagnostic', async () => {
    const logger = installLogger();
    const { exporter, provider } = exporterFor({ resource: { attributes: { a: 'b' } } });
    const m = provider.getMeter('clash');
    m.createCounter('jobs').add(1);
    m.createGauge('jobs_total').record(5);
    m.createHistogram('t', { advice: { explicitBucketBoundaries: [1] } }).record(2);
    m.createGauge('t_count').record(9);
    m.createGauge('target_info').record(1);
    const text = await exporter.render();
    expect(text).toContain('jobs_total{otel_scope_name="clash"} 1\n');
    expect(text).not.toContain(' 5\n');
    expect(text).not.toContain('t_count{otel_scope_name="clash"} 9');
    expect(text.match(/^target_info/gm)).toHaveLength(1);
    expect(logger.warned('jobs_total', 'clash')).toBe(true);
    expect(logger.warned('t_count', 'clash')).toBe(true);
    // The TypeScript serializer leaves out the same instruments.
    expect(toPrometheusText(await provider.collect(), provider.resource.attributes, { withoutScopeInfo: false })).toBe(text);
  });
});

describe('one series per name and labels', () => {
  const sameLabels = (a: Record<string, string>, b: Record<string, string>): boolean =>
    JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

  it('merges records that render alike (typed attributes, sanitized names, re-registration) into one sample, with a diagnostic', async () => {
    const logger = installLogger();
    const { exporter, provider } = exporterFor({ views: VIEWS });
    recordCollisions(provider);
    const b = new MeterProvider({ views: VIEWS });
    cleanups.push(() => b.shutdown());
    recordCollisions(b);
    for (const accept of [undefined, OM]) {
      const text = await exporter.render(accept);
      const samples = parseExposition(text);
      // No name and labels twice.
      const ids = samples.map((x) => sampleKey({ ...x, value: 0 }));
      expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
      for (const [name, labels, value] of MERGED) {
        const found = samples.filter((x) => x.name === name && sameLabels(x.labels, { ...labels, otel_scope_name: 'dup' }));
        expect(found.map((x) => x.value), `${name} ${JSON.stringify(labels)}`).toEqual([value]);
      }
      // One family per name, with the first registration's description.
      expect(text.match(/^# TYPE jobs(_total)? counter$/gm)).toHaveLength(1);
      expect(text).toContain(accept === undefined ? '# HELP jobs_total first\n' : '# HELP jobs first\n');
      if (accept === undefined) {
        // Exact values (taken by this first collection): the quantiles of the series with
        // the larger count ({a: 1}: 1 and 2), count and sum of both.
        const q = samples.filter((x) => x.name === 'lat_exact' && x.labels.a === '1');
        expect(q.length).toBeGreaterThan(0);
        for (const x of q) expect([1, 2]).toContain(x.value);
        // The TypeScript serializer writes the same text for the same records.
        expectSameText(text, toPrometheusText(await b.collect(), undefined, { withoutScopeInfo: false }));
      }
    }
    expect(logger.warned('http.hits:', 'same Prometheus labels', 'values are added')).toBe(true);
    expect(logger.warned('flags:', 'same Prometheus labels')).toBe(true);
    expect(logger.warned('arrays:', 'same Prometheus labels')).toBe(true);
    expect(logger.warned('orders.placed and orders_placed', 'one series', 'values are added')).toBe(true);
    expect(logger.warned('jobs and jobs', 'one series')).toBe(true);
    expect(logger.warned('bytes.sent and bytes.sent', 'one series')).toBe(true);
    expect(logger.warned('temp:', 'updated last')).toBe(true);
    expect(logger.warned('lat.exact:', 'larger count')).toBe(true);
  });

  it('units: the same name with units that print alike is one series; units with other words are other families', async () => {
    installLogger();
    const { exporter, provider } = exporterFor();
    const m = provider.getMeter('u');
    m.createCounter('req.count', { unit: '{request}' }).add(2, { k: 'a' });
    m.createCounter('req.count', { unit: '1' }).add(3, { k: 'a' });
    m.createCounter('req.count').add(4, { k: 'a' });
    m.createHistogram('op.time', { unit: 's', advice: { explicitBucketBoundaries: [1] } }).record(0.5);
    m.createHistogram('op.time', { unit: 'ms', advice: { explicitBucketBoundaries: [1] } }).record(500);
    const samples = parseExposition(await exporter.render());
    expect(samples.filter((x) => x.name === 'req_count_total').map((x) => x.value)).toEqual([9]);
    expect(samples.filter((x) => x.name === 'op_time_seconds_count').map((x) => x.value)).toEqual([1]);
    expect(samples.filter((x) => x.name === 'op_time_milliseconds_count').map((x) => x.value)).toEqual([1]);
  });

  it('a gauge written twice keeps the value updated last (the first while both are)', async () => {
    installLogger();
    const { exporter, provider } = exporterFor();
    const m = provider.getMeter('g');
    const g = m.createGauge('level');
    const again = m.createGauge('level', { description: 'again' });
    g.record(1, { k: 1 });
    g.record(2, { k: '1' });
    again.record(3, { k: '1' });
    const value = async (): Promise<number[]> =>
      parseExposition(await exporter.render())
        .filter((x) => x.name === 'level')
        .map((x) => x.value);
    expect(await value()).toEqual([1]);
    g.record(5, { k: '1' });
    expect(await value()).toEqual([5]);
    again.record(7, { k: '1' });
    expect(await value()).toEqual([7]);
    expect(await value()).toEqual([7]);
    g.record(9, { k: 1 });
    expect(await value()).toEqual([9]);
  });

  it('a gauge written twice keeps the value updated last in the JavaScript writer too (a reader with its own aggregation), scrape after scrape', async () => {
    installLogger();
    // A reader with an aggregation of its own: the exporter renders CheckpointSets in JavaScript.
    class ExponentialExporter extends InMemoryMetricExporter {
      selectAggregation(type: InstrumentType): AggregationOption {
        return type === InstrumentType.HISTOGRAM ? { type: AggregationType.EXPONENTIAL_HISTOGRAM } : { type: AggregationType.DEFAULT };
      }
    }
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const other = new PeriodicExportingMetricReader({ exporter: new ExponentialExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [exporter, other] });
    cleanups.push(() => provider.shutdown());
    expect(exporter.negotiate(undefined).protobuf).not.toBe(true);
    const g = provider.getMeter('g').createGauge('level');
    const value = async (accept?: string): Promise<number[]> =>
      parseExposition(await exporter.render(accept))
        .filter((x) => x.name === 'level')
        .map((x) => x.value);
    g.record(7, { k: '1' });
    expect(await value()).toEqual([7]);
    g.record(0, { k: 1 });
    expect(await value()).toEqual([0]);
    // No write since: the same value, in either format (before: the first record's 7).
    expect(await value(OM)).toEqual([0]);
    expect(await value()).toEqual([0]);
    g.record(5, { k: '1' });
    await other.forceFlush(); // another reader's pass sees the update first
    expect(await value()).toEqual([5]);
    expect(await value()).toEqual([5]);
  });

  it('merges in the streamed path too, a part at a time', async () => {
    installLogger();
    const { exporter, provider } = exporterFor({ views: VIEWS }, { partBytes: 4096 });
    recordCollisions(provider);
    const bulk = provider.getMeter('dup').createCounter('bulk');
    for (let i = 0; i < 300; i++) {
      bulk.add(1, { i });
      bulk.add(2, { i: String(i) });
    }
    const server = http.createServer((req, res) => exporter.requestHandler(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const res = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, 'GET', { accept: OM });
    expect(res.headers['content-length']).toBeUndefined(); // streamed in parts
    const samples = parseExposition(res.body);
    const ids = samples.map((x) => sampleKey({ ...x, value: 0 }));
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    const bulkValues = samples.filter((x) => x.name === 'bulk_total').map((x) => x.value);
    expect(bulkValues).toHaveLength(300);
    expect(bulkValues.every((v) => v === 3)).toBe(true);
    for (const [name, labels, value] of MERGED.filter(([n]) => n.endsWith('_total'))) {
      const found = samples.filter((x) => x.name === name && sameLabels(x.labels, { ...labels, otel_scope_name: 'dup' }));
      expect(found.map((x) => x.value), name).toEqual([value]);
    }
  });
});

describe('OpenMetrics _created', () => {
  it('gives counter, histogram and summary series their start time in seconds; gauges and the text format have none', async () => {
    const { exporter, provider } = exporterFor({ views: VIEWS });
    const before = Date.now();
    recordEverything(provider);
    const after = Date.now();
    const text = await exporter.render(OM);
    const rendered = Date.now();
    const samples = parseExposition(text);
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    const seriesKey = (labels: Record<string, string>): string => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le' && k !== 'quantile').sort());
    let checked = 0;
    for (const [family, type] of types) {
      const created = samples.filter((x) => x.name === `${family}_created`);
      if (type === 'gauge' || type === 'info') {
        expect(created, family).toEqual([]);
        continue;
      }
      // One per series (the label sets of its _count or _total samples).
      const main = samples.filter((x) => x.name === (type === 'counter' ? `${family}_total` : `${family}_count`));
      expect(created.map((x) => seriesKey(x.labels)).sort(), family).toEqual(main.map((x) => seriesKey(x.labels)).sort());
      for (const c of created) {
        expect(Math.round(c.value * 1000)).toBeGreaterThanOrEqual(before);
        // A synchronous instrument's series starts at its first measurement; an observable's at
        // the first observation, made during the render.
        expect(Math.round(c.value * 1000), `${family} ${JSON.stringify(c.labels)}`).toBeLessThanOrEqual(family.startsWith('obs_') ? rendered : after);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect([...types.values()]).toEqual(expect.arrayContaining(['counter', 'histogram', 'summary']));
    // The line follows its series' samples.
    expect(text).toMatch(/\nhttp_requests_total\{route="\/x",otel_scope_name="other.scope"\} 7\nhttp_requests_created\{route="\/x",otel_scope_name="other.scope"\} \d+(\.\d+)?\n/);
    expect(await exporter.render()).not.toContain('_created');
  });
});

describe('the exporter over HTTP', () => {
  it('serves its endpoint with negotiation, HEAD, 404 and 405', async () => {
    const exporter = new PrometheusExporter({ port: 0, endpoint: '/prom' });
    const provider = new MeterProvider({ readers: [exporter] });
    cleanups.push(() => provider.shutdown());
    await exporter.ready();
    expect(exporter.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/prom$/);
    provider.getMeter('h').createCounter('hits').add(3, { a: 'é' });
    const text = await request(exporter.url);
    expect(text.status).toBe(200);
    expect(text.headers['content-type']).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(text.body).toBe('# HELP hits_total hits\n# TYPE hits_total counter\nhits_total{a="é",otel_scope_name="h"} 3\n');
    expect(Number(text.headers['content-length'])).toBe(Buffer.byteLength(text.body));
    const om = await request(exporter.url, 'GET', { accept: OM });
    expect(om.headers['content-type']).toBe(OPENMETRICS_CONTENT_TYPE);
    expect(om.body.endsWith('# EOF\n')).toBe(true);
    const head = await request(exporter.url, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await request(exporter.url.replace('/prom', '/other'))).status).toBe(404);
    expect((await request(exporter.url, 'POST')).status).toBe(405);
    const q = await request(`${exporter.url}?x=1`);
    expect(q.status).toBe(200);
  });

  it('requestHandler mounts in another server; openMetrics: false always answers text', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true, openMetrics: false });
    const provider = new MeterProvider({ readers: [exporter] });
    cleanups.push(() => provider.shutdown());
    provider.getMeter('h').createCounter('hits').add(1);
    const server = http.createServer((req, res) => (req.url === '/metrics' ? exporter.requestHandler(req, res) : res.end('app')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    const r = await request(url, 'GET', { accept: OM });
    expect(r.headers['content-type']).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(r.body).toContain('hits_total{otel_scope_name="h"} 1\n');
    const { contentType, stream } = await exporter.renderStream();
    expect(contentType).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    let streamed = '';
    for await (const c of stream) streamed += String(c);
    expect(streamed).toContain('hits_total');
  });

  it('answers 500 when the collection fails, and works with a producer that only has collect()', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const real = new MeterProvider();
    cleanups.push(() => real.shutdown());
    real.getMeter('p').createCounter('c').add(2);
    let fail = false;
    const producer: MetricProducer = {
      resource: { attributes: { 'service.name': 's' } },
      collect: async (): Promise<CheckpointSet> => {
        if (fail) throw new Error('boom');
        return real.collect();
      },
    };
    exporter.setMetricProducer(producer);
    const text = await exporter.render();
    expect(text).toContain('target_info{service_name="s"} 1');
    expect(text).toContain('c_total{otel_scope_name="p"} 2');
    fail = true;
    await expect(exporter.render()).rejects.toThrow('boom');
    const server = http.createServer(exporter.requestHandler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const installed = installLogger();
    const r = await request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    expect(r.status).toBe(500);
    expect(installed.lines.some((l) => l.message.includes('scrape failed'))).toBe(true);
    await expect(new PrometheusExporter({ preventServerStart: true }).render()).rejects.toThrow(/not attached/);
    expect(() => new PrometheusExporter({ preventServerStart: true, summaryQuantiles: [2] })).toThrow(TypeError);
  });

  it('concurrent scrapes of one format share a collection; scrapes after shutdown reject', async () => {
    const { exporter, provider } = exporterFor();
    let callbacks = 0;
    provider.getMeter('c').createObservableGauge('g').addCallback((r) => {
      callbacks++;
      r.observe(1);
    });
    const [a, b, c] = await Promise.all([exporter.scrape(), exporter.scrape(), exporter.scrape(OM)]);
    expect(a.chunks).toBe(b.chunks); // one collection (each caller has its own release())
    expect(c.chunks).not.toBe(a.chunks);
    expect(callbacks).toBe(2);
    await provider.shutdown();
    await expect(exporter.render()).rejects.toThrow(/after shutdown/);
  });
});

describe('collection semantics through scrapes', () => {
  it('scrapes reclaim idle records like collect() does (expiry on), and never lose an update', async () => {
    const { exporter, provider } = exporterFor({ reclaimIdleMillis: 1 });
    const c = provider.getMeter('r').createCounter('c');
    const before = native().stats().records;
    for (let i = 0; i < 50; i++) c.add(1, { i });
    expect(native().stats().records - before).toBe(50);
    expect((await exporter.render()).match(/^c_total/gm)).toHaveLength(50); // updated
    c.add(1, { i: 0 }); // the same series, through a fresh handle
    await new Promise((r) => setTimeout(r, 5)); // the others: idle longer than reclaimIdleMillis
    const third = await exporter.render();
    expect(third.match(/^c_total/gm)).toHaveLength(1); // the idle 49 were reclaimed
    expect(third).toContain('c_total{i="0",otel_scope_name="r"} 2\n');
    expect(native().stats().records - before).toBe(1);
  });

  it('exact summaries take the values since the previous collection', async () => {
    const { exporter, provider } = exporterFor({ views: [{ instrumentName: 'x', aggregation: AggregationKind.EXACT }] }, { summaryQuantiles: [0, 0.5, 1] });
    const h = provider.getMeter('e').createHistogram('x');
    for (const v of [5, 1, 3]) h.record(v);
    const first = await exporter.render();
    expect(first).toContain('x{otel_scope_name="e",quantile="0"} 1\nx{otel_scope_name="e",quantile="0.5"} 3\nx{otel_scope_name="e",quantile="1"} 5\n');
    h.record(10);
    const second = await exporter.render();
    expect(second).toContain('x{otel_scope_name="e",quantile="0.5"} 10\n');
    expect(second).toContain('x_count{otel_scope_name="e"} 4\n');
    expect(second).toContain('x_sum{otel_scope_name="e"} 19\n');
  });

  it('a scrape of 100,000 series leaves the event loop free while it is written', async () => {
    const { exporter, provider } = exporterFor({ cardinalityLimit: 200_000 });
    const m = provider.getMeter('big');
    const c = m.createCounter('big.requests');
    const h = m.createHistogram('big.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.001, 0.01, 0.1, 1, 10] } });
    for (let i = 0; i < 100_000; i++) {
      const attrs = { route: `/api/items/${i}`, method: i % 2 ? 'GET' : 'POST' };
      c.add(1, attrs);
      h.record((i % 100) / 10, attrs);
    }
    let ticks = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 1);
    const t0 = performance.now();
    const scrape = await exporter.scrape();
    const took = performance.now() - t0;
    clearInterval(timer);
    expect(scrape.byteLength).toBeGreaterThan(100_000 * 8 * 60);
    const text = Buffer.concat(scrape.chunks as Buffer[]).toString('utf8');
    expect(text.match(/^big_requests_total\{/gm)).toHaveLength(100_000);
    expect(text.match(/^big_duration_seconds_count\{/gm)).toHaveLength(100_000);
    // The event loop kept turning through the scrape: a timer tick every 10 ms on average
    // (a serialization on the JS thread would allow none), and no stall as long as the
    // scrape. (A garbage collection the new output triggers may pause it for a while.)
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(took / 10));
    expect(maxGap).toBeLessThan(took);
  }, 120_000);
});
