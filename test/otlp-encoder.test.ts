// hotmeter's sliced OTLP protobuf encoder and OTLPMetricExporter (issue 29).
//
// The encoder's output is compared byte for byte with @opentelemetry/otlp-transformer's
// ProtobufMetricsSerializer.serializeRequest (what @opentelemetry/exporter-metrics-otlp-proto
// sends) for ResourceMetrics built by hand to cover the data model's corners, and for
// ResourceMetrics produced by hotmeter's MeterProvider and by sdk-metrics'. The exporter is
// checked end to end against a loopback OTLP/HTTP server: headers, gzip, a retry after a
// 503, environment variables, the concurrency limit. That encoding yields to the event loop
// is checked structurally (callbacks run between its start and its end), never by timing.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { AggregationTemporalityPreference } from '@opentelemetry/exporter-metrics-otlp-http';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  DataPointType,
  InstrumentType,
  MeterProvider as SdkMeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { AggregationKind, MeterProvider, OTLPMetricExporter, encodeMetricsRequest } from '../src';
import { encodeMetricsRequestSync, type OtelResourceMetrics } from '../src/exporters/otlp';
import { decodeProtobuf, normalize } from './otlp-receiver';

const reference = (rm: ResourceMetrics | OtelResourceMetrics): Buffer => Buffer.from(ProtobufMetricsSerializer.serializeRequest(rm as ResourceMetrics)!);
const asOtel = (rm: ResourceMetrics): OtelResourceMetrics => rm as unknown as OtelResourceMetrics;

/** Checks the encoder against the transformer, synchronously and in the smallest slices. */
async function expectSameBytes(rm: OtelResourceMetrics): Promise<Buffer> {
  const want = reference(rm);
  expect(Buffer.from(encodeMetricsRequestSync(rm)).equals(want)).toBe(true);
  expect(Buffer.from(await encodeMetricsRequest(rm, { sliceMs: 0, checkEvery: 1 })).equals(want)).toBe(true);
  expect(Buffer.from(await encodeMetricsRequest(rm)).equals(want)).toBe(true);
  return want;
}

// ---------------------------------------------------------------------------------------
// Hand-built ResourceMetrics.

const NOW: HrTime = [1_765_000_000, 123_456_789];
// Odd HrTimes too (fractional parts, a negative second): the transformer's arithmetic, exactly.
const TIMES: HrTime[] = [[0, 0], NOW, [2 ** 32 + 5, 999_999_999], [1, 1], [1_765_000_000, 0.1], [12.5, 3.7], [-1, 5], [2 ** 34 + 0.25, 999_999_999.9]];

const LONE = ['\uD800', '\uDFFF', 'a\uDC00b', '\uDC00\uD800', 'x\uD83D', '😀', 'é日本語\u2028'];

/** Every JS value an attribute can hold, as the transformer handles each. */
const EVERY_VALUE: Attributes = {
  str: 'plain',
  empty: '',
  bool: true,
  no: false,
  int: 42,
  neg: -7,
  zero: 0,
  negZero: -0,
  big: 2 ** 40,
  beyondSafe: 2 ** 60,
  int64Min: -(2 ** 63),
  int64Max: 2 ** 63, // out of int64: double_value
  dbl: 1.5,
  nan: NaN,
  inf: Infinity,
  ninf: -Infinity,
  tiny: 5e-324,
  strs: ['x', 'y', ...LONE],
  ints: [1, -2, 2 ** 33],
  dbls: [0.5, NaN],
  bools: [true, false],
  mixed: [1, 'a', true, null, undefined, 2.5] as unknown as string[],
  emptyArr: [],
  nul: null as unknown as string,
  undef: undefined,
  // Not AttributeValues, but the transformer encodes them: bytes, key-value lists, nothing.
  bytes: new Uint8Array([0, 1, 255]) as unknown as string,
  nested: { a: 1, b: { c: ['d'] }, e: null } as unknown as string,
  bigint: 10n as unknown as string,
  fn: (() => 1) as unknown as string,
  typed: new Float64Array([1.5, 2]) as unknown as string,
  '': 'empty key',
  '😀 key \uD800': 'unicode key',
};

const HUGE: Attributes = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`key.${i}`, i % 3 === 0 ? `v${i}`.repeat(i % 50) : i % 3 === 1 ? i : i / 7]));

const FROZEN_SHARED: Attributes = Object.freeze({ 'http.route': '/api', 'http.status': 200, tags: Object.freeze(['a', 'ü']) as unknown as string[] });

const ATTRS: Attributes[] = [{}, EVERY_VALUE, HUGE, FROZEN_SHARED, ...LONE.map((s, i) => ({ [s]: s, i })), { only: 'x'.repeat(300) }];

function pt<T>(value: T, i: number, attributes?: Attributes): { startTime: HrTime; endTime: HrTime; attributes: Attributes; value: T } {
  return { startTime: TIMES[i % TIMES.length], endTime: TIMES[(i + 1) % TIMES.length], attributes: attributes ?? ATTRS[i % ATTRS.length], value };
}

function desc(name: string, valueType: ValueType, description = '', unit = ''): { name: string; description: string; unit: string; valueType: ValueType; type: InstrumentType } {
  return { name, description, unit, valueType, type: InstrumentType.COUNTER };
}

const NUMBERS = [0, 1, -1, 1.5, -2.75, 2 ** 40, -(2 ** 40), 2 ** 53 + 2, NaN, Infinity, -Infinity, -0, Number.MAX_VALUE, 5e-324];
const INTS = [0, 1, -1, 2 ** 31, 2 ** 32 + 1, -(2 ** 40), 2 ** 53 - 1, 1.5, -1.5, NaN];

function handBuilt(): ResourceMetrics {
  const metrics = [];
  for (const valueType of [ValueType.INT, ValueType.DOUBLE]) {
    const values = valueType === ValueType.INT ? INTS : NUMBERS;
    for (const temporality of [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE, 7 as AggregationTemporality]) {
      for (const isMonotonic of [true, false]) {
        metrics.push({
          descriptor: desc(`sum.${valueType}.${temporality}.${isMonotonic}`, valueType, 'a sum ✓', 'By'),
          aggregationTemporality: temporality,
          dataPointType: DataPointType.SUM,
          isMonotonic,
          dataPoints: values.map((v, i) => pt(v, i)),
        });
      }
    }
    metrics.push({
      descriptor: desc(`gauge.${valueType}`, valueType, '', '°C'),
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.GAUGE,
      dataPoints: values.map((v, i) => pt(v, i + 1)),
    });
  }
  const histograms = [
    { buckets: { boundaries: [1, 10, 100], counts: [1, 2, 3, 2 ** 33] }, count: 2 ** 33 + 6, sum: 123.5, min: -1, max: 1e9 },
    { buckets: { boundaries: [], counts: [5] }, count: 5, sum: 10, min: 1, max: 3 },
    { buckets: { boundaries: [], counts: [] }, count: 0, sum: undefined, min: undefined, max: undefined },
    { buckets: { boundaries: [0.5], counts: [1, 0] }, count: 1, sum: NaN, min: Infinity, max: -Infinity },
    { buckets: { boundaries: Array.from({ length: 300 }, (_, i) => i / 3), counts: Array.from({ length: 301 }, (_, i) => i) }, count: 45_150, sum: 1 },
  ];
  for (const temporality of [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE]) {
    metrics.push({
      descriptor: desc(`histogram.${temporality}`, ValueType.DOUBLE, 'latency', 's'),
      aggregationTemporality: temporality,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: histograms.map((h, i) => pt(h, i)),
    });
  }
  const exponential = [
    { count: 10, sum: 5.5, scale: 0, zeroCount: 1, positive: { offset: 0, bucketCounts: [1, 2, 3] }, negative: { offset: -3, bucketCounts: [4] }, min: -9, max: 9 },
    { count: 0, sum: undefined, scale: 20, zeroCount: 0, positive: { offset: 0, bucketCounts: [] }, negative: { offset: 0, bucketCounts: [] } },
    { count: 2 ** 35, sum: 1, scale: -10, zeroCount: 2 ** 34, positive: { offset: 2 ** 20, bucketCounts: [2 ** 35, 0, 127, 128, 16384] }, negative: { offset: -(2 ** 20), bucketCounts: [0] }, min: 0, max: 1 },
    { count: 3, sum: NaN, scale: -1, zeroCount: 3, positive: { offset: 5, bucketCounts: Array.from({ length: 160 }, (_, i) => i * 1000) }, negative: { offset: 1, bucketCounts: [1] }, min: NaN },
  ];
  for (const temporality of [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE]) {
    metrics.push({
      descriptor: desc(`exp.${temporality}`, ValueType.DOUBLE, 'exponential'),
      aggregationTemporality: temporality,
      dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM,
      dataPoints: exponential.map((h, i) => pt(h, i)),
    });
  }
  // The same frozen attributes object in every point type (its cached bytes take each field number).
  metrics.push(
    { descriptor: desc('shared.sum', ValueType.INT), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: [pt(3, 0, FROZEN_SHARED)] },
    { descriptor: desc('shared.histogram', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM, dataPoints: [pt(histograms[0], 0, FROZEN_SHARED)] },
    { descriptor: desc('shared.exp', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM, dataPoints: [pt(exponential[0], 0, FROZEN_SHARED)] },
    { descriptor: desc('no.points', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.DELTA, dataPointType: DataPointType.SUM, isMonotonic: false, dataPoints: [] },
    { descriptor: desc('unknown.type', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.DELTA, dataPointType: 9 as DataPointType, dataPoints: [pt(1, 0)] },
    { descriptor: desc('no.attributes', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.DELTA, dataPointType: DataPointType.GAUGE, dataPoints: [{ ...pt(1, 0), attributes: undefined }] },
  );
  const third = Math.ceil(metrics.length / 3);
  return {
    resource: { ...resourceFromAttributes({ 'service.name': 'enc ✓', n: 3, f: 0.5, ok: true, list: ['a', 'b'] }), schemaUrl: 'https://opentelemetry.io/schemas/1.24.0', attributes: { 'service.name': 'enc ✓', n: 3, f: 0.5, ok: true, list: ['a', 'b'], lone: '\uD800' } },
    scopeMetrics: [
      { scope: { name: 'scope.a', version: '1.0.0', schemaUrl: 'https://example.com/schema' }, metrics: metrics.slice(0, third) },
      { scope: { name: 'scope.b ü' }, metrics: metrics.slice(third, 2 * third) },
      { scope: { name: '', version: '', attributes: { scoped: 'yes', n: 1 }, droppedAttributesCount: 2 } as never, metrics: metrics.slice(2 * third) },
      { scope: { name: 'empty.scope', version: '2' }, metrics: [] },
    ],
  } as unknown as ResourceMetrics;
}

describe('encoder: the transformer\'s bytes', () => {
  it('every data point type, value type, temporality, attribute value type, unicode and lone surrogates, several scopes, resource schemaUrl', async () => {
    const rm = handBuilt();
    const bytes = await expectSameBytes(asOtel(rm));
    // And the bytes are OTLP: the official proto files decode them to what was given.
    const [req] = normalize(decodeProtobuf(bytes), 'protobuf');
    expect(req.scopes.map((s) => s.name)).toEqual(['scope.a', 'scope.b ü', '', 'empty.scope']);
    expect(req.scopes[0].schemaUrl).toBe('https://example.com/schema');
    expect(req.resource.lone).toBe('\uFFFD');
    expect(req.scopes.flatMap((s) => s.metrics).length).toBe(rm.scopeMetrics.reduce((n, s) => n + s.metrics.length, 0));
  });

  it('a resource without schemaUrl or attributes, and an empty request', async () => {
    await expectSameBytes(asOtel({ resource: resourceFromAttributes({}), scopeMetrics: [] }));
    await expectSameBytes(asOtel({ resource: { attributes: undefined } as never, scopeMetrics: [{ scope: { name: 's' }, metrics: [] }] }));
  });

  it('attributes objects that change between requests are encoded anew; frozen ones keep their bytes', async () => {
    const attrs: Record<string, string | number> = { k: 'v1' };
    const frozen = Object.freeze({ k: 'frozen' });
    const rm = (): OtelResourceMetrics =>
      asOtel({
        resource: resourceFromAttributes({ r: 1 }),
        scopeMetrics: [
          {
            scope: { name: 's' },
            metrics: [{ descriptor: desc('c', ValueType.INT), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: [pt(1, 0, attrs), pt(2, 0, frozen)] }],
          },
        ],
      } as unknown as ResourceMetrics);
    await expectSameBytes(rm());
    attrs.k = 'a longer value than before';
    attrs.n = 5;
    await expectSameBytes(rm());
    // A frozen object whose array value is not frozen can change too: not cached.
    const arr = ['a'];
    const shallow = Object.freeze({ arr });
    const one = asOtel({ resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: 's' }, metrics: [{ descriptor: desc('g', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints: [pt(1, 0, shallow)] }] }] } as unknown as ResourceMetrics);
    await expectSameBytes(one);
    arr.push('b', 'c');
    await expectSameBytes(one);
  });

  it('rejects, rather than sending corrupt bytes, when a point changes between its two passes', async () => {
    for (const replacement of [{ i: 0, added: 'x'.repeat(100) }, {}]) {
      const points = Array.from({ length: 50 }, (_, i) => pt(i, 0, { i }));
      const rm = asOtel({ resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: 's' }, metrics: [{ descriptor: desc('c', ValueType.INT), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: points }] }] } as unknown as ResourceMetrics);
      const pending = encodeMetricsRequest(rm, { sliceMs: 0, checkEvery: 1 });
      // After the first slice (point 0 sized), before the second pass reaches it: larger, then smaller.
      setImmediate(() => (points[0].attributes = replacement));
      await expect(pending).rejects.toThrow(/changed while they were being encoded/);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Real producers.

const BOUNDS = [0.001, 0.01, 0.1, 1, 10];

/** Creates every instrument kind on `meter`; the returned function records `n` rounds on them. */
function instruments(meter: import('@opentelemetry/api').Meter): (n: number) => void {
  const c = meter.createCounter('requests', { description: 'Requests ✓', unit: '{request}' });
  const ci = meter.createCounter('bytes', { valueType: ValueType.INT, unit: 'By' });
  const ud = meter.createUpDownCounter('inflight', { valueType: ValueType.INT });
  const h = meter.createHistogram('duration', { unit: 's', advice: { explicitBucketBoundaries: BOUNDS } });
  const e = meter.createHistogram('exp');
  const g = meter.createGauge('temperature');
  meter.createObservableGauge('observed').addCallback((r) => r.observe(2.5, { source: 'cb' }));
  return (n) => {
    for (let i = 0; i < n; i++) {
      const attrs = { 'http.route': `/r/${i % 37}`, method: ['GET', 'POST'][i & 1], status: 200 + (i % 3), ok: i % 2 === 0, uni: `ü${i % 5}\uD800` };
      c.add(i * 0.25, attrs);
      ci.add(i, attrs);
      ud.add(i % 2 ? -i : i, attrs);
      h.record((i % 97) / 10, attrs);
      e.record(i % 2 ? -(i % 13) * 1.7 : (i % 11) * 3.1, attrs);
      g.record(i - 10, attrs);
    }
  };
}

function record(meter: import('@opentelemetry/api').Meter, n: number): void {
  instruments(meter)(n);
}

const ALL_TYPES = new Set([DataPointType.SUM, DataPointType.HISTOGRAM, DataPointType.EXPONENTIAL_HISTOGRAM, DataPointType.GAUGE]);

class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

describe('encoder: ResourceMetrics of real producers', () => {
  // Each producer with its exponential-histogram view, and its shutdown.
  const producers = {
    "sdk-metrics' MeterProvider": (reader: CollectingReader) =>
      new SdkMeterProvider({
        resource: resourceFromAttributes({ 'service.name': 'sdk' }),
        readers: [reader],
        views: [{ instrumentName: 'exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }],
      }),
    "hotmeter's MeterProvider": (reader: CollectingReader) =>
      new MeterProvider({
        resource: resourceFromAttributes({ 'service.name': 'hotmeter', n: 1 }),
        readers: [reader],
        views: [{ instrumentName: 'exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }],
      }),
  };
  for (const temporality of [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]) {
    for (const [name, make] of Object.entries(producers)) {
      it(`${name} (${temporality === AggregationTemporality.DELTA ? 'delta' : 'cumulative'})`, async () => {
        const reader = new CollectingReader({ aggregationTemporalitySelector: () => temporality });
        const provider = make(reader);
        try {
          const first = instruments(provider.getMeter('a.scope', '1.2.3', { schemaUrl: 'https://opentelemetry.io/schemas/1.24.0' }));
          const second = instruments(provider.getMeter('second'));
          for (let k = 0; k < 3; k++) {
            first(500 - k * 100);
            second(50);
            const { resourceMetrics } = await reader.collect();
            expect(new Set(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.dataPointType)))).toEqual(ALL_TYPES);
            await expectSameBytes(asOtel(resourceMetrics));
          }
        } finally {
          await provider.shutdown();
        }
      });
    }
  }
});

// ---------------------------------------------------------------------------------------
// Slices.

function bigRequest(labelSets: number): ResourceMetrics {
  const attrs = Array.from({ length: labelSets }, (_, i) => Object.freeze({ 'http.route': `/api/v1/resource/${i}`, 'http.request.method': 'GET', 'http.response.status_code': 200 + (i % 5) }));
  const counts = Array.from({ length: 16 }, (_, i) => i);
  return {
    resource: resourceFromAttributes({ 'service.name': 'big' }),
    scopeMetrics: [
      {
        scope: { name: 'bench', version: '1.0.0' },
        metrics: [
          { descriptor: desc('requests', ValueType.DOUBLE), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: attrs.map((a, i) => pt(i, 1, a)) },
          {
            descriptor: desc('duration', ValueType.DOUBLE, 'Request duration', 's'),
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.HISTOGRAM,
            dataPoints: attrs.map((a, i) => pt({ buckets: { boundaries: BOUNDS.concat([20, 30, 40, 50, 60, 70, 80, 90, 100, 200]), counts }, count: 120, sum: i, min: 0, max: 15 }, 1, a)),
          },
        ],
      },
    ],
  } as unknown as ResourceMetrics;
}

describe('encoder: slices', () => {
  it('yields to the event loop between slices: timers and I/O callbacks run while a large request is encoded', async () => {
    const rm = asOtel(bigRequest(5_000));
    let turns = 0;
    let encoding = true;
    const spin = (): void => {
      if (!encoding) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const pending = encodeMetricsRequest(rm, { sliceMs: 0 }); // yield at every check (every 256 points)
    const bytes = await pending;
    encoding = false;
    // 10,000 points, a check every 256 in each of two passes: ~80 slices, each a turn of the loop.
    expect(turns).toBeGreaterThan(10);
    expect(Buffer.from(bytes).equals(reference(rm))).toBe(true);
  });

  it('a slice boundary after every point (and after every few) leaves the bytes intact', async () => {
    const rm = asOtel(bigRequest(700));
    const want = reference(rm);
    for (const checkEvery of [1, 2, 3, 7, 256]) {
      expect(Buffer.from(await encodeMetricsRequest(rm, { sliceMs: 0, checkEvery })).equals(want), `checkEvery ${checkEvery}`).toBe(true);
    }
    // Two requests sharing attributes objects, encoded at once, interleaving their slices.
    const [a, b] = await Promise.all([encodeMetricsRequest(rm, { sliceMs: 0, checkEvery: 1 }), encodeMetricsRequest(asOtel(handBuilt()), { sliceMs: 0, checkEvery: 1 })]);
    expect(Buffer.from(a).equals(want)).toBe(true);
    expect(Buffer.from(b).equals(reference(handBuilt()))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
// The exporter, end to end.

interface Received {
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

async function server(statuses: number[] = []): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
      received.push({ headers: req.headers, body });
      const status = statuses.shift() ?? 200;
      res.writeHead(status, { 'content-type': 'application/x-protobuf', ...(status === 503 ? { 'retry-after': '0' } : {}) });
      res.end();
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/metrics`,
    received,
    close: () => {
      s.closeAllConnections();
      return new Promise<void>((r) => s.close(() => r()));
    },
  };
}

const exportOnce = (exporter: OTLPMetricExporter, rm: OtelResourceMetrics): Promise<{ code: number; error?: Error }> => new Promise((resolve) => exporter.export(rm, resolve));

describe('OTLPMetricExporter (hotmeter\'s)', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('posts the transformer\'s bytes with the configured headers, gzip, and retries after a 503', async () => {
    const srv = await server([503]);
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, headers: { 'x-api-key': 'secret' }, compression: 'gzip', timeoutMillis: 10_000 });
    cleanup.push(() => exporter.shutdown());
    const rm = asOtel(handBuilt());
    const result = await exportOnce(exporter, rm);
    expect(result).toEqual({ code: 0 });
    expect(srv.received.length).toBe(2); // the 503, then the retry
    const want = reference(rm);
    for (const r of srv.received) {
      expect(r.headers['x-api-key']).toBe('secret');
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(r.headers['content-type']).toBe('application/x-protobuf');
      expect(r.body.equals(want)).toBe(true);
    }
  });

  it('in a PeriodicExportingMetricReader under hotmeter\'s MeterProvider: every point arrives, decoded by the official protos', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, temporalityPreference: AggregationTemporalityPreference.DELTA, encoding: { sliceMs: 0, checkEvery: 8 } });
    expect(exporter.selectAggregationTemporality('COUNTER')).toBe(AggregationTemporality.DELTA);
    expect(exporter.selectAggregationTemporality('UP_DOWN_COUNTER')).toBe(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const hm = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'e2e' }), readers: [reader] });
    cleanup.push(() => hm.shutdown());
    record(hm.getMeter('e2e'), 200);
    await reader.forceFlush();
    expect(srv.received.length).toBe(1);
    const [req] = normalize(decodeProtobuf(srv.received[0].body), 'protobuf');
    expect(req.resource['service.name']).toBe('e2e');
    const byName = new Map(req.scopes[0].metrics.map((m) => [m.name, m]));
    expect(byName.get('bytes')!.temporality).toBe(1); // DELTA
    expect(byName.get('bytes')!.points.reduce((s, p) => s + (p.asInt ?? 0), 0)).toBe((199 * 200) / 2);
    expect(byName.get('duration')!.points.reduce((s, p) => s + (p.count ?? 0), 0)).toBe(200);
  });

  it('honours OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, _HEADERS and _TEMPORALITY_PREFERENCE as the upstream exporter does', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const saved = { ...process.env };
    cleanup.push(() => {
      for (const k of ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_HEADERS', 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = srv.url;
    process.env.OTEL_EXPORTER_OTLP_METRICS_HEADERS = 'x-from-env=yes';
    process.env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE = 'delta';
    const exporter = new OTLPMetricExporter();
    cleanup.push(() => exporter.shutdown());
    expect(exporter.selectAggregationTemporality('HISTOGRAM')).toBe(AggregationTemporality.DELTA);
    const rm = asOtel(bigRequest(3));
    expect(await exportOnce(exporter, rm)).toEqual({ code: 0 });
    expect(srv.received[0].headers['x-from-env']).toBe('yes');
    expect(srv.received[0].body.equals(reference(rm))).toBe(true);
  });

  it('fails an export beyond concurrencyLimit at once, counting exports still encoding', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, concurrencyLimit: 1 });
    cleanup.push(() => exporter.shutdown());
    const rm = asOtel(bigRequest(20));
    const first = exportOnce(exporter, rm);
    let second: { code: number; error?: Error } | undefined;
    exporter.export(rm, (r) => (second = r)); // the first is still encoding
    // Refused in the call, as the upstream delegate refuses (not after encoding it).
    expect(second?.code).toBe(1);
    expect(String(second?.error)).toMatch(/Concurrent export limit reached/);
    expect(await first).toEqual({ code: 0 });
    expect(await exportOnce(exporter, rm)).toEqual({ code: 0 });
    expect(srv.received.length).toBe(2);
  });

  it('forceFlush waits for an export that is still encoding', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, encoding: { sliceMs: 0, checkEvery: 1 } });
    cleanup.push(() => exporter.shutdown());
    let result: { code: number } | undefined;
    exporter.export(asOtel(bigRequest(200)), (r) => (result = r));
    await exporter.forceFlush();
    expect(result).toEqual({ code: 0 });
    expect(srv.received.length).toBe(1);
  });

  it('the event loop turns while the exporter encodes (a slice per point here; every 256 points and ~5 ms by default)', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, encoding: { sliceMs: 0, checkEvery: 1 } });
    cleanup.push(() => exporter.shutdown());
    let turns = 0;
    let exporting = true;
    const spin = (): void => {
      if (!exporting) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const rm = asOtel(bigRequest(200)); // 400 points, two passes: ~800 slices
    const r = await exportOnce(exporter, rm);
    exporting = false;
    expect(r).toEqual({ code: 0 });
    expect(turns).toBeGreaterThan(400);
    expect(srv.received[0].body.equals(reference(rm))).toBe(true);
  });

  it('its own metrics (setSelfObsMeterProvider) count the data points of the ResourceMetrics exported, as the upstream exporter\'s', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url });
    cleanup.push(() => exporter.shutdown());
    const selfReader = new CollectingReader();
    const self = new SdkMeterProvider({ readers: [selfReader] });
    cleanup.push(() => self.shutdown());
    exporter.setSelfObsMeterProvider(self);
    expect(await exportOnce(exporter, asOtel(bigRequest(7)))).toEqual({ code: 0 });
    const { resourceMetrics } = await selfReader.collect();
    const exported = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'otel.sdk.exporter.metric_data_point.exported');
    expect(exported?.dataPoints.reduce((n, p) => n + (p.value as number), 0)).toBe(14);
    expect(exported?.dataPoints[0].attributes['otel.component.type']).toBe('otlp_http_metric_exporter');
  });

  it('an export whose metrics cannot be encoded fails through its callback, and nothing is sent', async () => {
    const srv = await server();
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url, concurrencyLimit: 1 });
    cleanup.push(() => exporter.shutdown());
    const broken = asOtel({ resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: undefined }, metrics: [] }] } as unknown as ResourceMetrics);
    expect(() => reference(broken)).toThrow(); // the upstream exporter cannot either
    const r = await exportOnce(exporter, broken);
    expect(r.code).toBe(1);
    expect(r.error).toBeInstanceOf(Error);
    expect(await exportOnce(exporter, asOtel(bigRequest(1)))).toEqual({ code: 0 }); // the failed export left no slot taken
    expect(srv.received.length).toBe(1);
  });

  it('reports a failed export when the server rejects the request', async () => {
    const srv = await server([400]);
    cleanup.push(srv.close);
    const exporter = new OTLPMetricExporter({ url: srv.url });
    cleanup.push(() => exporter.shutdown());
    const r = await exportOnce(exporter, asOtel(bigRequest(2)));
    expect(r.code).toBe(1);
    expect(srv.received.length).toBe(1);
  });
});
