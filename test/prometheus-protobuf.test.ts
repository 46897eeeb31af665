// The Prometheus protobuf exposition (delimited io.prometheus.client.MetricFamily messages),
// decoded with protobufjs from test/fixtures/prometheus-proto/metrics.proto: the same
// families, help, types, series and values as the text format of the same registry, in
// one piece and streamed in parts; exponential histograms as native histograms whose
// buckets are checked against buckets computed here; content negotiation.
import { afterEach, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregationKind,
  histogramSelector,
  MeterProvider,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_PROTOBUF_CONTENT_TYPE,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  PrometheusExporter,
} from '../src';
import { negotiateFormat } from '../src/exporters/prometheus/negotiate';
import { native } from '../src/sdk/native';
import {
  canonical,
  decode,
  type Family,
  type Histogram,
  MERGED,
  type Metric,
  nativeBuckets,
  parseExposition,
  recordCollisions,
  recordEverything,
  type Sample,
  sampleKey,
  samplesOf,
  VIEWS,
} from './prometheus-helpers';

/** What Prometheus 2.42 sends when started with --enable-feature=native-histograms. */
const PROM_NATIVE_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const TEXT_ACCEPT = 'text/plain;version=0.0.4';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(options: ConstructorParameters<typeof MeterProvider>[0] = {}, exp: ConstructorParameters<typeof PrometheusExporter>[0] = {}) {
  const exporter = new PrometheusExporter({ preventServerStart: true, ...exp });
  const provider = new MeterProvider({ ...options, readers: [exporter] });
  cleanups.push(() => provider.shutdown());
  return { exporter, provider };
}

/**
 * Two providers with the same recordings, one scraped as protobuf and one as text: a scrape
 * takes the values exact summaries hold, so one registry cannot be scraped twice alike.
 */
function twins(
  record: (p: MeterProvider) => void,
  options: ConstructorParameters<typeof MeterProvider>[0] = {},
  exp: ConstructorParameters<typeof PrometheusExporter>[0] = {},
): { pb: PrometheusExporter; text: PrometheusExporter } {
  const a = setup(options, exp);
  const b = setup(options, exp);
  record(a.provider);
  record(b.provider);
  return { pb: a.exporter, text: b.exporter };
}

async function scrapeBytes(exporter: PrometheusExporter, accept: string): Promise<{ contentType: string; body: Buffer }> {
  const s = await exporter.scrape(accept);
  try {
    return { contentType: s.contentType, body: Buffer.concat(s.chunks as Buffer[]) };
  } finally {
    s.release();
  }
}

/** The text's families that have samples: name -> [help, type], in order. */
function textFamilies(text: string): [string, string, string][] {
  const help = new Map<string, string>();
  const out: [string, string, string][] = [];
  let pending: [string, string] | undefined;
  for (const line of text.split('\n')) {
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m !== null) {
      help.set(m[1], m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)));
      continue;
    }
    m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m !== null) {
      pending = [m[1], m[2]];
      continue;
    }
    if (line !== '' && pending !== undefined) {
      out.push([pending[0], help.get(pending[0]) ?? '', pending[1].toUpperCase()]);
      pending = undefined;
    }
  }
  return out;
}

/** The protobuf's families as [name, help, type], a family split over messages once. */
function protoFamilies(families: Family[]): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const f of families) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] === f.name) {
      expect([f.help, f.type]).toEqual([last[1], last[2]]);
      continue;
    }
    out.push([f.name, f.help, f.type]);
  }
  return out;
}

/**
 * The protobuf says what the text says: families (name, help, type) in order, and every
 * sample. A native histogram's buckets are at schema <= 8 while the text writes the state's
 * own scale (up to 20, whose boundaries include schema 8's): its cumulative count at each
 * native bound u must be the text's at the largest `le` <= u (the text lists every bound of
 * its finer scale from its lowest used bucket to its highest).
 */
function expectSameAsText(families: Family[], text: string): void {
  expect(protoFamilies(families)).toEqual(textFamilies(text));
  const names = protoFamilies(families).map((f) => f[0]);
  expect(new Set(names).size, 'a family name in two places').toBe(names.length);
  const nativeBucketNames = new Set(families.filter((f) => f.metric.some((m) => m.histogram?.schema !== undefined)).map((f) => `${f.name}_bucket`));
  const fine = (s: Sample): boolean => nativeBucketNames.has(s.name) && s.labels.le !== '+Inf';
  const pb = samplesOf(families);
  const tx = parseExposition(text);
  expect(canonical(pb.filter((s) => !fine(s)))).toEqual(canonical(tx.filter((s) => !fine(s))));
  const series = (s: Sample): string => sampleKey({ name: s.name, labels: Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== 'le')), value: 0 });
  const textBuckets = new Map<string, [number, number][]>();
  for (const s of tx.filter(fine)) {
    const k = series(s);
    textBuckets.set(k, [...(textBuckets.get(k) ?? []), [Number(s.labels.le), s.value]]);
  }
  let checked = 0;
  for (const s of pb.filter(fine)) {
    const list = textBuckets.get(series(s));
    expect(list, series(s)).toBeDefined();
    const u = Number(s.labels.le);
    const below = (list ?? []).filter(([le]) => le <= u * (1 + 1e-12));
    expect(below.length, `${series(s)} le=${u}`).toBeGreaterThan(0);
    expect(s.value, `${series(s)} le=${u}`).toBe(below[below.length - 1][1]);
    checked++;
  }
  expect(checked).toBe(pb.filter(fine).length);
}

describe('protobuf content negotiation', () => {
  it('answers protobuf to what Prometheus sends with native histograms on, text and OpenMetrics otherwise', async () => {
    expect(negotiateFormat(PROM_NATIVE_ACCEPT, true, true)).toMatchObject({ protobuf: true, openMetrics: false, contentType: PROMETHEUS_PROTOBUF_CONTENT_TYPE });
    expect(negotiateFormat(PROM_NATIVE_ACCEPT, true, false)).toMatchObject({ openMetrics: true, contentType: OPENMETRICS_CONTENT_TYPE });
    expect(negotiateFormat(PROM_NATIVE_ACCEPT, false, false).contentType).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    // Another message type or encoding is not this format.
    expect(negotiateFormat('application/vnd.google.protobuf;proto=io.prometheus.client.Other;encoding=delimited', true, true).contentType).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(negotiateFormat('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text', true, true).contentType).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    // Preference order decides.
    expect(negotiateFormat(`application/openmetrics-text;version=1.0.0,${PROM_NATIVE_ACCEPT.split(',')[0]};q=0.5`, true, true).openMetrics).toBe(true);

    const { exporter } = setup();
    expect(exporter.negotiate(PROM_NATIVE_ACCEPT).contentType).toBe(PROMETHEUS_PROTOBUF_CONTENT_TYPE);
    const off = setup({}, { protobuf: false }).exporter;
    expect(off.negotiate(PROM_NATIVE_ACCEPT).contentType).toBe(OPENMETRICS_CONTENT_TYPE);
    // render() returns a string: the best text format the header accepts.
    expect(await exporter.render(PROM_NATIVE_ACCEPT)).toMatch(/# EOF\n$/);
  });
});

describe('protobuf options reaching the binding', () => {
  it('throws TypeError for a bad protobuf flag or target_info labels', () => {
    const { provider } = setup();
    provider.getMeter('m').createCounter('c').add(1);
    const n = native();
    const domain = (provider as unknown as { domain: number }).domain;
    for (const bad of [{ protobuf: 1 }, { protobuf: 'yes' }, { targetInfo: 'a' }, { targetInfo: ['a'] }, { targetInfo: ['a', 1] }, { targetInfo: [{}, 'v'] }, { targetInfo: ['k', 'x'.repeat(17 << 20)] }]) {
      expect(() => n.openPrometheusStream(domain, false, undefined, null, bad as never), JSON.stringify(bad).slice(0, 60)).toThrow(TypeError);
    }
    const ok = n.openPrometheusStream(domain, false, undefined, null, { protobuf: true, targetInfo: ['k', 'v'] });
    n.closePrometheusStream(ok.stream);
  });
});

describe('protobuf exposition', () => {
  it('writes every family, help, type, series and value as the text format does', async () => {
    const t = twins(recordEverything, { views: VIEWS, resource: { attributes: { 'service.name': 'pb', 'a.b': 'x', a_b: 'y' } } });
    const pb = await scrapeBytes(t.pb, PROM_NATIVE_ACCEPT);
    expect(pb.contentType).toBe(PROMETHEUS_PROTOBUF_CONTENT_TYPE);
    const text = await t.text.render(TEXT_ACCEPT);
    const families = decode(pb.body);
    expectSameAsText(families, text);
    const types = new Set(families.map((f) => f.type));
    expect([...types].sort()).toEqual(['COUNTER', 'GAUGE', 'HISTOGRAM', 'SUMMARY']);
    // target_info first, with the resource's labels merged as the text merges them.
    expect(families[0].name).toBe('target_info');
    expect(families[0].metric[0].label).toContainEqual({ name: 'a_b', value: 'x;y' });
    // The exponential histogram is a native one; the explicit-bucket one classic.
    const exp = families.find((f) => f.name === 'lat_exp_bytes');
    expect(exp?.metric[0].histogram?.schema).toBeTypeOf('number');
    expect(exp?.metric[0].histogram?.bucket).toEqual([]);
    const rpc = families.find((f) => f.name === 'rpc_duration_seconds');
    expect(rpc?.metric[0].histogram?.schema).toBeUndefined();
    expect(rpc?.metric[0].histogram?.bucket?.length).toBe(5);
  });

  it('leaves out scope labels and target_info when told to, as the text does', async () => {
    const t = twins(recordEverything, { views: VIEWS, resource: { attributes: { 'service.name': 'pb' } } }, { withoutScopeInfo: true, withoutTargetInfo: true });
    const families = decode((await scrapeBytes(t.pb, PROM_NATIVE_ACCEPT)).body);
    expectSameAsText(families, await t.text.render(TEXT_ACCEPT));
    expect(families.some((f) => f.name === 'target_info')).toBe(false);
    expect(families.flatMap((f) => f.metric.flatMap((m) => m.label ?? [])).some((l) => l.name.startsWith('otel_scope'))).toBe(false);
  });

  it('merges colliding records into one series as the text does', async () => {
    const t = twins(recordCollisions, { views: VIEWS });
    const families = decode((await scrapeBytes(t.pb, PROM_NATIVE_ACCEPT)).body);
    expectSameAsText(families, await t.text.render(TEXT_ACCEPT));
    const keys = new Set(canonical(samplesOf(families).map((s) => ({ ...s, labels: Object.fromEntries(Object.entries(s.labels).filter(([k]) => !k.startsWith('otel_scope'))) }))));
    for (const [name, labels, value] of MERGED) expect(keys, name).toContain(canonical([{ name, labels, value }])[0]);
  });

  it('writes the native and the classic histograms of one family in separate messages', async () => {
    const record = (p: MeterProvider): void => {
      const a = p.getMeter('a').createHistogram('mixed', { advice: { explicitBucketBoundaries: [1, 10] } });
      const b = p.getMeter('b').createHistogram('mixed');
      for (const v of [0.5, 5, 50]) {
        a.record(v, { k: 'x' });
        b.record(v, { k: 'x' });
      }
      a.record(2, { k: 'y' });
    };
    const t = twins(record, { views: [{ instrumentName: 'mixed', meterName: 'b', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }] });
    const families = decode((await scrapeBytes(t.pb, PROM_NATIVE_ACCEPT)).body);
    expectSameAsText(families, await t.text.render(TEXT_ACCEPT));
    expect(families.map((f) => f.name)).toEqual(['mixed', 'mixed']);
    expect(families.map((f) => f.metric.map((m) => m.histogram?.schema !== undefined))).toEqual([[false, false], [true]]);
  });

  it('streams in parts over HTTP: a family cut into several messages reads as the text', async () => {
    const t = twins(
      (p) => {
        recordEverything(p);
        const bulk = p.getMeter('bulk').createCounter('bulk.items');
        for (let i = 0; i < 2000; i++) bulk.add(i, { item: `item-${i}`, shard: `s${i % 7}` });
      },
      { views: VIEWS },
      { partBytes: 4096 },
    );
    const urls = new Map<PrometheusExporter, string>();
    for (const e of [t.pb, t.text]) {
      const server = http.createServer(e.requestHandler);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise((r) => server.close(r)));
      urls.set(e, `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    }
    const get = (e: PrometheusExporter, accept: string): Promise<{ type: string; chunked: boolean; body: Buffer }> =>
      new Promise((resolve, reject) => {
        http
          .get(urls.get(e) ?? '', { headers: { accept }, agent: false }, (res) => {
            const parts: Buffer[] = [];
            res.on('data', (c: Buffer) => parts.push(c));
            res.on('end', () => resolve({ type: String(res.headers['content-type']), chunked: res.headers['content-length'] === undefined, body: Buffer.concat(parts) }));
          })
          .on('error', reject);
      });
    const pb = await get(t.pb, PROM_NATIVE_ACCEPT);
    expect(pb.type).toBe(PROMETHEUS_PROTOBUF_CONTENT_TYPE);
    expect(pb.chunked).toBe(true);
    const families = decode(pb.body);
    expect(families.filter((f) => f.name === 'bulk_items_total').length).toBeGreaterThan(1);
    const text = (await get(t.text, TEXT_ACCEPT)).body.toString('utf8');
    expectSameAsText(families, text);
  });
});

/** The OpenTelemetry index of v > 0 at `scale`: bucket (b^i, b^(i+1)], b = 2^(2^-scale). */
function otelIndex(v: number, scale: number): number {
  const per = 2 ** scale;
  let i = Math.ceil(Math.log2(v) * per) - 1;
  while (2 ** ((i + 1) / per) < v) i++;
  while (2 ** (i / per) >= v) i--;
  return i;
}

/** The expected native histogram of `values`: scale fitting maxSize buckets per sign, clamped to 8. */
function expectedNative(values: number[], maxSize = 160, maxScale = 20): { schema: number; positive: Map<number, number>; negative: Map<number, number>; zero: number } {
  const fits = (s: number, vs: number[]): boolean => vs.length === 0 || otelIndex(Math.max(...vs), s) - otelIndex(Math.min(...vs), s) + 1 <= maxSize;
  const pos = values.filter((v) => v > 0);
  const neg = values.filter((v) => v < 0).map((v) => -v);
  let scale = maxScale;
  while (!(fits(scale, pos) && fits(scale, neg))) scale--;
  const schema = Math.min(scale, 8);
  const count = (vs: number[]): Map<number, number> => {
    const m = new Map<number, number>();
    // Prometheus index i holds (b^(i-1), b^i]: the OpenTelemetry index at the schema, plus one.
    for (const v of vs) m.set(otelIndex(v, schema) + 1, (m.get(otelIndex(v, schema) + 1) ?? 0) + 1);
    return m;
  };
  return { schema, positive: count(pos), negative: count(neg), zero: values.filter((v) => v === 0).length };
}

describe('native histograms', () => {
  async function nativeOf(values: number[], selector?: ReturnType<typeof histogramSelector>): Promise<{ h: Histogram; text: string }> {
    const { exporter, provider } = setup(selector ? { aggregationSelector: selector } : { views: [{ instrumentName: 'h', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }] });
    const h = provider.getMeter('m').createHistogram('h');
    for (const v of values) h.record(v);
    const families = decode((await scrapeBytes(exporter, PROM_NATIVE_ACCEPT)).body);
    const text = await exporter.render(TEXT_ACCEPT);
    expectSameAsText(families, text);
    expect(families).toHaveLength(1);
    expect(families[0].metric).toHaveLength(1);
    return { h: families[0].metric[0].histogram ?? {}, text };
  }

  it('puts values in the buckets computed here, with zeros, count, sum and a positive zero threshold', async () => {
    const values = [0, 0, 0, 0.001, 0.5, 1, 1, 2, 3, 1000, 12345.678, 7, 7, 7.5];
    const { h } = await nativeOf(values);
    const want = expectedNative(values);
    expect(h.schema).toBe(want.schema);
    expect(h.schema).toBeLessThan(8); // the values span enough octaves to downscale below 8
    expect(h.zeroCount).toBe(3);
    expect(h.zeroThreshold).toBeGreaterThan(0);
    expect(h.zeroThreshold).toBeLessThan(1e-300);
    expect(h.sampleCount).toBe(values.length);
    expect(h.sampleSum).toBeCloseTo(values.reduce((a, b) => a + b, 0), 9);
    const [pos, neg] = nativeBuckets(h);
    expect(Object.fromEntries(pos)).toEqual(Object.fromEntries(want.positive));
    expect(neg.size).toBe(0);
    expect(h.negativeSpan).toEqual([]);
  });

  it('downscales a state at scale 20 to schema 8 by merging buckets', async () => {
    const values = [3, 3.0001, 3.001];
    const { h } = await nativeOf(values);
    // Three values this close keep OpenTelemetry's scale high (above 8).
    expect(expectedNative(values, 160, 20).schema).toBe(8);
    expect(h.schema).toBe(8);
    const [pos] = nativeBuckets(h);
    expect(Object.fromEntries(pos)).toEqual(Object.fromEntries(expectedNative(values).positive));
    // 3, 3.0001 and 3.001 are in (2^(405/256), 2^(406/256)] = (2.9939.., 3.0020..]: index 406
    // (OpenTelemetry's 405).
    expect(2 ** (405 / 256)).toBeLessThan(3);
    expect(2 ** (406 / 256)).toBeGreaterThan(3.001);
    expect([...pos.keys()]).toEqual([406]);
    expect(pos.get(406)).toBe(3);
  });

  it('writes spans with offsets from the previous span and zero-filled short gaps', async () => {
    // At schema 8 (the values span 100 buckets: scale 9 would need 200): 1 is index 0,
    // 2^(1.5/256) index 2 (one empty bucket between: filled), 2^(99.5/256) index 100 (a gap
    // of 97: a new span).
    const values = [1, 1, 2 ** (1.5 / 256), 2 ** (99.5 / 256), 2 ** (99.5 / 256), 2 ** (99.5 / 256)];
    const { h } = await nativeOf(values);
    expect(h.schema).toBe(8);
    expect(h.positiveSpan).toEqual([
      { offset: 0, length: 3 },
      { offset: 97, length: 1 },
    ]);
    expect(h.positiveDelta).toEqual([2, -2, 1, 2]);
  });

  it('falls back to classic buckets below Prometheus schema -4', async () => {
    const values = [1, 10, 1e6];
    // Scale -6: buckets (2^(64 i), 2^(64 (i + 1))]; the text's and the protobuf's classic
    // buckets are compared by nativeOf.
    const { h } = await nativeOf(values, histogramSelector(AggregationKind.EXPONENTIAL_HISTOGRAM, { maxScale: -6 }));
    expect(h.schema).toBeUndefined();
    expect(h.bucket?.map((b) => [b.upperBound, b.cumulativeCount])).toEqual([
      [0, 0],
      [1, 1],
      [2 ** 64, 3],
    ]);
  });
});

describe('created timestamps and units (client_model 0.4 and 0.6 fields)', () => {
  it('counters, histograms and summaries carry the created timestamp OpenMetrics writes as _created; families their UNIT; gauges neither', async () => {
    const { exporter, provider } = setup({
      views: [
        { instrumentName: 'ct.exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM },
        { instrumentName: 'ct.summary', aggregation: AggregationKind.MIN_MAX_SUM_COUNT },
      ],
    });
    const m = provider.getMeter('ct');
    m.createCounter('ct.requests').add(1);
    m.createHistogram('ct.latency', { unit: 's' }).record(0.5);
    m.createHistogram('ct.exp', { unit: 'By' }).record(3);
    m.createHistogram('ct.summary').record(2);
    m.createUpDownCounter('ct.inflight').add(1);
    const text = await exporter.render(OPENMETRICS_CONTENT_TYPE);
    const families = decode((await scrapeBytes(exporter, PROM_NATIVE_ACCEPT)).body) as (Family & { unit?: string })[];
    const createdOf = (family: string): number => Number(/^(\S+)_created(\{[^}]*\})? (\S+)$/m.exec(text.split('\n').filter((l) => l.startsWith(`${family}_created`)).join('\n'))![3]);
    const unitOf = (family: string): string | undefined => new RegExp(`^# UNIT ${family} (\\S+)$`, 'm').exec(text)?.[1];
    type Ts = { seconds: number; nanos?: number };
    const ms = (t: Ts | undefined) => (t === undefined ? undefined : t.seconds * 1000 + (t.nanos ?? 0) / 1e6);
    const metricOf = (name: string) => families.find((f) => f.name === name)!.metric[0] as Metric & {
      counter?: { createdTimestamp?: Ts };
      histogram?: { createdTimestamp?: Ts };
      summary?: { createdTimestamp?: Ts };
      gauge?: object;
    };
    const expected: [string, string, (m: ReturnType<typeof metricOf>) => Ts | undefined][] = [
      ['ct_requests_total', 'ct_requests', (x) => x.counter?.createdTimestamp],
      ['ct_latency_seconds', 'ct_latency_seconds', (x) => x.histogram?.createdTimestamp],
      ['ct_exp_bytes', 'ct_exp_bytes', (x) => x.histogram?.createdTimestamp],
      ['ct_summary', 'ct_summary', (x) => x.summary?.createdTimestamp],
    ];
    for (const [name, omFamily, created] of expected) {
      const c = ms(created(metricOf(name)));
      expect(c, name).toBeGreaterThan(0);
      expect(c, name).toBe(Math.round(createdOf(omFamily) * 1000));
    }
    expect(metricOf('ct_exp_bytes').histogram?.schema).toBeTypeOf('number'); // a native histogram
    expect(metricOf('ct_inflight').gauge).toBeDefined();
    expect(text).not.toContain('ct_inflight_created');
    for (const f of families) expect(f.unit || undefined, f.name).toBe(unitOf(f.name));
    expect(families.find((f) => f.name === 'ct_latency_seconds')!.unit).toBe('seconds');
    expect(families.find((f) => f.name === 'ct_exp_bytes')!.unit).toBe('bytes');
  });
});
