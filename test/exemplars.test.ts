// Exemplars (OpenTelemetry's exemplar model): measurements made inside a sampled span are
// offered, with the span's trace and span ids, to a reservoir per record: one exemplar per
// bucket of an explicit-bucket histogram, one per counter and exponential histogram
// series, none for up-down counters and gauges. They are exported on OpenMetrics `_bucket`
// and `_total` lines (read back with the Python OpenMetrics parser) and in the protobuf
// exposition (Bucket.exemplar, Counter.exemplar, a native histogram's exemplars, decoded
// with protobufjs); text 0.0.4 has none. Series merged at export show each slot's latest. The filter (trace_based by default, always_on,
// always_off) is a MeterProvider option. A worker thread's exemplars reach the main
// thread's scrape. The context manager is a minimal AsyncLocalStorage one (no tracer SDK).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { context, trace } from '@opentelemetry/api';
import { AggregationKind, MeterProvider, PrometheusExporter } from '../src';
import type { MeterProviderOptions } from '../src';
import { native } from '../src/sdk/native';
import { AlsContextManager } from './helpers';
import { OM, protobufScrape, pythonSamples, type PySample } from './prometheus-helpers';
import { requireCompiledPackage } from './fixtures/worker-helpers';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';

/** Runs fn inside a span context with these ids and flags (1: sampled). */
function inSpan(fn: () => void, traceFlags = 1, traceId = TRACE, spanId = SPAN): void {
  context.with(trace.setSpanContext(context.active(), { traceId, spanId, traceFlags, isRemote: false }), fn);
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

beforeAll(() => {
  context.setGlobalContextManager(new AlsContextManager());
});

function setup(options: MeterProviderOptions = {}) {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ ...options, readers: [exporter] });
  cleanups.push(() => provider.shutdown());
  const m = provider.getMeter('ex');
  const histogram = m.createHistogram('ex.latency', { advice: { explicitBucketBoundaries: [1, 10] } });
  const counter = m.createCounter('ex.requests');
  return { exporter, provider, histogram, counter };
}

function withExemplars(samples: PySample[]): PySample[] {
  return samples.filter((s) => s.exemplar !== null);
}

describe('exemplars in the OpenMetrics text', () => {
  it('a histogram bucket and a counter carry the exemplar of a measurement in a sampled span; the Python parser reads them', async () => {
    const { exporter, histogram, counter } = setup();
    const before = Date.now();
    histogram.record(0.5, { route: '/a' }); // no span
    inSpan(() => {
      histogram.record(5, { route: '/a' });
      counter.add(3, { route: '/a' });
    });
    inSpan(() => histogram.record(7, { route: '/a' }), 0); // a span that is not sampled
    counter.add(1, { route: '/a' }); // no span: the counter's exemplar stays the sampled one
    const text = await exporter.render(OM);
    const after = Date.now();
    const ex = withExemplars(pythonSamples(text));
    expect(ex.map((s) => [s.name, s.labels.le ?? '', s.value])).toEqual([
      ['ex_latency_bucket', '10', 3],
      ['ex_requests_total', '', 4],
    ]);
    for (const s of ex) {
      expect(s.exemplar!.labels).toEqual({ trace_id: TRACE, span_id: SPAN });
      expect(s.exemplar!.timestamp).toBeGreaterThanOrEqual(Math.floor(before / 1000));
      expect(s.exemplar!.timestamp).toBeLessThanOrEqual(after / 1000 + 1);
    }
    expect(ex.map((s) => s.exemplar!.value)).toEqual([5, 3]);
    // The exemplar's label set is within OpenMetrics' 128 characters.
    const line = text.split('\n').find((l) => l.startsWith('ex_latency_bucket') && l.includes(' # '))!;
    expect(line).toMatch(/^ex_latency_bucket\{route="\/a",otel_scope_name="ex",le="10"\} 3 # \{trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}"\} 5 \d+(\.\d+)?$/);
    expect(line.slice(line.indexOf('# {') + 2, line.lastIndexOf('}') + 1).length).toBeLessThanOrEqual(130);
  });

  it('the last sampled measurement of a bucket wins; each bucket keeps its own; text 0.0.4 has none', async () => {
    const { exporter, histogram } = setup();
    inSpan(() => histogram.record(0.5), 1, TRACE, '1111111111111111');
    inSpan(() => histogram.record(2), 1, TRACE, '2222222222222222');
    inSpan(() => histogram.record(3), 1, 'ffffffffffffffffffffffffffffff01', '3333333333333333');
    inSpan(() => histogram.record(100), 1, TRACE, '4444444444444444');
    const ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.map((s) => [s.labels.le, s.exemplar!.value, s.exemplar!.labels.trace_id, s.exemplar!.labels.span_id])).toEqual([
      ['1', 0.5, TRACE, '1111111111111111'],
      ['10', 3, 'ffffffffffffffffffffffffffffff01', '3333333333333333'],
      ['+Inf', 100, TRACE, '4444444444444444'],
    ]);
    const text = await exporter.render('text/plain;version=0.0.4');
    expect(text).toContain('ex_latency_bucket');
    expect(text).not.toContain('#  {');
    expect(text).not.toContain('trace_id');
  });

  it('always_off keeps none, even in a sampled span', async () => {
    const { exporter, histogram, counter } = setup({ exemplarFilter: 'always_off' });
    inSpan(() => {
      histogram.record(5);
      counter.add(1);
    });
    const samples = pythonSamples(await exporter.render(OM));
    expect(samples.some((s) => s.name === 'ex_latency_bucket' && s.value === 1)).toBe(true);
    expect(withExemplars(samples)).toEqual([]);
  });

  it('always_on keeps measurements outside any span too (without trace ids)', async () => {
    const { exporter, histogram, counter } = setup({ exemplarFilter: 'always_on' });
    histogram.record(5);
    counter.add(2);
    inSpan(() => histogram.record(0.5), 0); // not sampled: offered all the same, with its ids
    const ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.map((s) => [s.name, s.exemplar!.value, s.exemplar!.labels])).toEqual([
      ['ex_latency_bucket', 0.5, { trace_id: TRACE, span_id: SPAN }],
      ['ex_latency_bucket', 5, {}],
      ['ex_requests_total', 2, {}],
    ]);
  });

  it('exemplarFilter takes the three filters; anything else is a TypeError', async () => {
    for (const exemplarFilter of ['trace_based', 'always_on', 'always_off'] as const) await new MeterProvider({ exemplarFilter }).shutdown();
    expect(() => new MeterProvider({ exemplarFilter: 'sometimes' as never })).toThrow(TypeError);
  });
});

describe('exemplars in the protobuf exposition', () => {
  it('Bucket.exemplar and Counter.exemplar carry the trace and span ids, value and timestamp', async () => {
    const { exporter, histogram, counter } = setup();
    const before = Date.now();
    inSpan(() => {
      histogram.record(5, { route: '/a' });
      histogram.record(50, { route: '/a' });
      counter.add(3, { route: '/a' });
    });
    histogram.record(0.5, { route: '/a' });
    const after = Date.now();
    type Ex = { label: { name: string; value: string }[]; value: number; timestamp: { seconds: number; nanos?: number } };
    const fams = await protobufScrape<{ name: string; metric: { counter?: { value: number; exemplar?: Ex }; histogram?: { bucket: { upperBound: number; cumulativeCount: number; exemplar?: Ex }[] } }[] }>(exporter);
    const ids = [
      { name: 'trace_id', value: TRACE },
      { name: 'span_id', value: SPAN },
    ];
    const stamp = (e: Ex) => e.timestamp.seconds * 1000 + (e.timestamp.nanos ?? 0) / 1e6;
    expect(fams.map((f) => f.name)).toEqual(['ex_latency', 'ex_requests_total']);
    const c = fams.find((f) => f.name === 'ex_requests_total')!.metric[0].counter!;
    expect(c.value).toBe(3);
    expect(c.exemplar).toMatchObject({ label: ids, value: 3 });
    expect(stamp(c.exemplar!)).toBeGreaterThanOrEqual(before);
    expect(stamp(c.exemplar!)).toBeLessThanOrEqual(after);
    const buckets = fams.find((f) => f.name === 'ex_latency')!.metric[0].histogram!.bucket;
    expect(buckets.map((b) => [b.upperBound, b.cumulativeCount, b.exemplar?.value])).toEqual([
      [1, 1, undefined],
      [10, 2, 5],
      [Infinity, 3, 50], // the +Inf bucket, written for its exemplar (as client_golang does)
    ]);
    expect(buckets[1].exemplar!.label).toEqual(ids);
  });
});

describe('the hot path with exemplars', () => {
  it('outside a span no native call is made; in a sampled span one per handle (its exemplar cell)', async () => {
    const { exporter, histogram, counter } = setup();
    const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const calls: string[] = [];
    const wrapped = Object.keys(addon).filter((k) => typeof addon[k] === 'function');
    const originals = new Map(wrapped.map((k) => [k, addon[k]]));
    for (const k of wrapped) {
      const fn = originals.get(k)!;
      addon[k] = function (this: unknown, ...args: unknown[]) {
        calls.push(k);
        return fn.apply(this, args);
      };
    }
    cleanups.push(() => {
      for (const [k, fn] of originals) addon[k] = fn;
    });
    const bound = histogram.bind({ route: '/b' });
    for (let i = 0; i < 3; i++) counter.add(1, { route: '/b' }); // cached by the third use
    calls.length = 0;
    for (let i = 0; i < 100; i++) {
      bound.record(i);
      counter.add(1, { route: '/b' });
    }
    expect(calls).toEqual([]);
    inSpan(() => {
      for (let i = 0; i < 100; i++) {
        bound.record(i);
        counter.add(1, { route: '/b' });
      }
    });
    expect(calls).toEqual(['exemplarCell', 'exemplarCell']);
    const ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.map((s) => [s.name, s.exemplar!.value])).toEqual([
      ['ex_latency_bucket', 1], // the last value of each bucket: (-inf, 1], (1, 10], (10, +Inf)
      ['ex_latency_bucket', 10],
      ['ex_latency_bucket', 99],
      ['ex_requests_total', 1],
    ]);
  });
});

describe('a worker thread\'s exemplars', () => {
  beforeAll(() => requireCompiledPackage());

  for (const exitAfter of [false, true]) {
    it(`reach the main thread's scrape (worker ${exitAfter ? 'exited' : 'alive'} at the scrape)`, async () => {
      const domain = `ex-worker-${exitAfter}`;
      const exporter = new PrometheusExporter({ preventServerStart: true });
      const provider = new MeterProvider({ domain, readers: [exporter] });
      cleanups.push(() => provider.shutdown());
      const traceId = exitAfter ? '11112222333344445555666677778888' : 'abcdef0123456789abcdef0123456789';
      const spanId = exitAfter ? '9999aaaabbbbcccc' : '0123456789abcdef';
      const w = new Worker(path.join(__dirname, 'fixtures', 'worker-exemplars.js'), { workerData: { domain, traceId, spanId, exitAfter } });
      const exited = new Promise<number>((resolve) => w.once('exit', resolve));
      await new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      });
      if (exitAfter) expect(await exited).toBe(0);
      const ex = withExemplars(pythonSamples(await exporter.render(OM)));
      if (!exitAfter) {
        w.postMessage('exit');
        expect(await exited).toBe(0);
      }
      expect(ex.map((s) => [s.name, s.labels.thread, s.labels.le ?? '', s.exemplar!.value, s.exemplar!.labels])).toEqual([
        ['ex_latency_bucket', 'worker', '10', 5, { trace_id: traceId, span_id: spanId }],
        ['ex_requests_total', 'worker', '', 2, { trace_id: traceId, span_id: spanId }],
      ]);
    });
  }
});

/** The MetricFamily messages of a protobuf scrape. */
async function protobufFamilies(exporter: PrometheusExporter) {
  type Ex = { label: { name: string; value: string }[]; value: number };
  type Metric = {
    label: { name: string; value: string }[];
    counter?: { value: number; exemplar?: Ex };
    histogram?: { schema?: number; bucket: { upperBound: number; exemplar?: Ex }[]; exemplars: Ex[] };
  };
  return protobufScrape<{ name: string; metric: Metric[] }>(exporter);
}

const idsOf = (traceId: string, spanId: string) => ({ trace_id: traceId, span_id: spanId });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('exemplars of an exponential histogram (a reservoir of one: the last sampled measurement)', () => {
  function expSetup() {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter], views: [{ instrumentName: 'ex.exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }] });
    cleanups.push(() => provider.shutdown());
    return { exporter, histogram: provider.getMeter('ex').createHistogram('ex.exp') };
  }

  it('OpenMetrics: on the bucket line that holds its value (le="0" for a zero); the Python parser reads it', async () => {
    const { exporter, histogram } = expSetup();
    for (let v = 1; v <= 10; v++) histogram.record(v);
    inSpan(() => histogram.record(5));
    let samples = pythonSamples(await exporter.render(OM));
    let ex = withExemplars(samples);
    expect(ex.map((s) => [s.name, s.exemplar!.value, s.exemplar!.labels])).toEqual([['ex_exp_bucket', 5, idsOf(TRACE, SPAN)]]);
    const buckets = samples.filter((s) => s.name === 'ex_exp_bucket');
    const at = buckets.indexOf(ex[0]);
    expect(Number(buckets[at].labels.le)).toBeGreaterThanOrEqual(5);
    expect(Number(buckets[at - 1].labels.le)).toBeLessThan(5);
    expect(buckets[at].value).toBe(6); // 1..5 and the 5 in the span
    inSpan(() => histogram.record(0), 1, TRACE, '2222222222222222');
    samples = pythonSamples(await exporter.render(OM));
    ex = withExemplars(samples);
    expect(ex.map((s) => [s.labels.le, s.exemplar!.value, s.exemplar!.labels])).toEqual([['0', 0, idsOf(TRACE, '2222222222222222')]]);
  });

  it('protobuf: in the native histogram\'s exemplars (Histogram.exemplars)', async () => {
    const { exporter, histogram } = expSetup();
    histogram.record(1);
    inSpan(() => histogram.record(3));
    const h = (await protobufFamilies(exporter)).find((f) => f.name === 'ex_exp')!.metric[0].histogram!;
    expect(h.schema).toBeDefined(); // a native histogram
    expect(h.exemplars.map((e) => [e.value, e.label])).toEqual([[3, [{ name: 'trace_id', value: TRACE }, { name: 'span_id', value: SPAN }]]]);
  });
});

describe('exemplars of series merged at export (records that render alike)', () => {
  it('records added into one series show, per slot, the latest exemplar of any of them; a lone series of the family keeps its own', async () => {
    const { exporter, histogram, counter } = setup();
    inSpan(() => counter.add(1, { code: 200 }), 1, TRACE, '1111111111111111');
    inSpan(() => histogram.record(0.5, { code: 200 }), 1, TRACE, '1111111111111111');
    await sleep(5);
    inSpan(() => counter.add(2, { code: '200' }), 1, TRACE, '2222222222222222');
    inSpan(() => histogram.record(5, { code: '200' }), 1, TRACE, '2222222222222222');
    inSpan(() => counter.add(4, { code: 404 }), 1, TRACE, '4444444444444444');
    let ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.map((s) => [s.name, s.labels.code, s.labels.le ?? '', s.value, s.exemplar!.value, s.exemplar!.labels.span_id])).toEqual([
      ['ex_latency_bucket', '200', '1', 1, 0.5, '1111111111111111'],
      ['ex_latency_bucket', '200', '10', 2, 5, '2222222222222222'],
      ['ex_requests_total', '200', '', 3, 2, '2222222222222222'],
      ['ex_requests_total', '404', '', 4, 4, '4444444444444444'],
    ]);
    await sleep(5);
    inSpan(() => counter.add(8, { code: 200 }), 1, TRACE, '3333333333333333');
    ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.filter((s) => s.name === 'ex_requests_total').map((s) => [s.labels.code, s.value, s.exemplar!.value, s.exemplar!.labels.span_id])).toEqual([
      ['200', 11, 8, '3333333333333333'],
      ['404', 4, 4, '4444444444444444'],
    ]);
    // The protobuf exposition shows the same.
    const fams = await protobufFamilies(exporter);
    const counters = fams.find((f) => f.name === 'ex_requests_total')!.metric;
    expect(counters.map((m) => [m.label.find((l) => l.name === 'code')!.value, m.counter!.value, m.counter!.exemplar!.value])).toEqual([
      ['200', 11, 8],
      ['404', 4, 4],
    ]);
    const buckets = fams.find((f) => f.name === 'ex_latency')!.metric[0].histogram!.bucket;
    expect(buckets.map((b) => b.exemplar?.value)).toEqual([0.5, 5]);
  });
});

describe('exemplars of a series a view reduced (attributeKeys)', () => {
  it('measurements whose dropped attributes differ share the series and its latest exemplar', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter], views: [{ instrumentName: 'ex.requests', attributeKeys: ['route'] }] });
    cleanups.push(() => provider.shutdown());
    const counter = provider.getMeter('ex').createCounter('ex.requests');
    inSpan(() => counter.add(1, { route: '/a', user: 'u1' }), 1, TRACE, '1111111111111111');
    await sleep(5);
    inSpan(() => counter.add(2, { route: '/a', user: 'u2' }), 1, TRACE, '2222222222222222');
    const ex = withExemplars(pythonSamples(await exporter.render(OM)));
    expect(ex.map((s) => [s.labels, s.value, s.exemplar!.value, s.exemplar!.labels])).toEqual([
      [{ route: '/a', otel_scope_name: 'ex' }, 3, 2, idsOf(TRACE, '2222222222222222')],
    ]);
  });
});

describe('up-down counters and gauges keep no exemplars (no format written carries them)', () => {
  it('a measurement in a sampled span asks for no exemplar cell', async () => {
    const { provider } = setup();
    const m = provider.getMeter('ex');
    const upDown = m.createUpDownCounter('ex.inflight');
    const gauge = m.createGauge('ex.temperature');
    const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const original = addon.exemplarCell;
    let cells = 0;
    addon.exemplarCell = function (this: unknown, ...args: unknown[]) {
      cells++;
      return original.apply(this, args);
    };
    cleanups.push(() => {
      addon.exemplarCell = original;
    });
    upDown.add(1, { k: 'v' });
    gauge.record(1, { k: 'v' });
    inSpan(() => {
      for (let i = 0; i < 10; i++) {
        upDown.add(1, { k: 'v' });
        gauge.record(i, { k: 'v' });
      }
    });
    expect(cells).toBe(0);
  });
});
