// The OTLP producer converts a collection's records in parts, as the native pass hands
// them on while it reads the rest (collectStream). Whatever the part size, including one
// record per part, the export must be exactly the one a single part gives: every point of
// sdk-metrics' export, cumulative and delta, over several collections with records
// created, written, left idle and removed in between.
import {
  AggregationTemporality as SdkTemporality,
  InMemoryMetricExporter,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { native } from '../src/sdk/native';
import { setStreamPartRecords } from '../src/sdk/meter-provider';

afterEach(() => setStreamPartRecords(4096));

type Provider = { getMeter(name: string): { createCounter(n: string): { add(v: number, a: object): void }; createHistogram(n: string, o?: object): { record(v: number, a: object): void }; createUpDownCounter(n: string): { add(v: number, a: object): void } } };

function points(rm: ResourceMetrics | undefined): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const sm of rm?.scopeMetrics ?? []) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints) {
        const v = p.value as { buckets?: { counts: number[] }; count?: number; sum?: number };
        out.set(`${m.descriptor.name}|${JSON.stringify(p.attributes)}`, typeof v === 'number' ? v : { counts: v.buckets?.counts, count: v.count, sum: v.sum });
      }
    }
  }
  return out;
}

async function run(temporality: SdkTemporality, make: (reader: PeriodicExportingMetricReader) => Provider & { shutdown(): Promise<void> }): Promise<Map<string, unknown>[]> {
  const exporter = new InMemoryMetricExporter(temporality);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = make(reader);
  const m = provider.getMeter('stream');
  const c = m.createCounter('c');
  const u = m.createUpDownCounter('u');
  const h = m.createHistogram('h', { advice: { explicitBucketBoundaries: [1, 10, 100] } });
  const out: Map<string, unknown>[] = [];
  let rnd = 7;
  const rand = (n: number): number => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % n);
  try {
    for (let round = 0; round < 5; round++) {
      const writes = round === 0 ? 900 : 150;
      for (let k = 0; k < writes; k++) {
        const i = round === 0 ? k % 300 : rand(400); // new series in later rounds too
        c.add(1 + (i % 3), { s: `k${i}` });
        if (i % 2 === 0) h.record(i % 150, { s: `k${i}` });
        if (i % 5 === 0) u.add(i % 7 === 0 ? -2 : 3, { s: `k${i}` });
      }
      exporter.reset();
      await reader.forceFlush();
      out.push(points(exporter.getMetrics()[0]));
    }
  } finally {
    await provider.shutdown();
  }
  return out;
}

describe('OTLP producer: records converted in parts as the pass hands them on', () => {
  for (const temporality of [SdkTemporality.CUMULATIVE, SdkTemporality.DELTA]) {
    const name = temporality === SdkTemporality.DELTA ? 'delta' : 'cumulative';
    it(`${name}: parts of 1, 7 and 4096 records give sdk-metrics' points`, async () => {
      const expected = await run(temporality, (reader) => new SdkMeterProvider({ readers: [reader] }) as unknown as Provider & { shutdown(): Promise<void> });
      expect(expected[0].size).toBeGreaterThan(500);
      for (const every of [1, 7, 4096]) {
        setStreamPartRecords(every);
        const got = await run(temporality, (reader) => new MeterProvider({ readers: [reader] }) as unknown as Provider & { shutdown(): Promise<void> });
        for (let round = 0; round < expected.length; round++) expect(got[round], `${name}, parts of ${every}, round ${round}`).toEqual(expected[round]);
      }
    });
  }

  it('a large collection comes in parts of the given size, every record once', async () => {
    const n = native() as unknown as { collectStream: (...a: unknown[]) => Promise<Float64Array> };
    const orig = n.collectStream;
    const seen: number[] = [];
    n.collectStream = (...a: unknown[]) => {
      const onPart = a[6] as (p: Float64Array) => void;
      a[6] = (p: Float64Array) => {
        seen.push(p.length);
        onPart(p);
      };
      return orig.apply(n, a);
    };
    setStreamPartRecords(100);
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    try {
      const c = provider.getMeter('parts').createCounter('c');
      for (let i = 0; i < 1000; i++) c.add(i, { s: `k${i}` });
      await reader.forceFlush();
      expect(seen.length).toBe(10); // 1000 records, 100 per part; the promise's tail is empty
      expect(points(exporter.getMetrics()[0]).size).toBe(1000);
    } finally {
      n.collectStream = orig;
      await provider.shutdown();
    }
  });
});

describe('collectStream (binding)', () => {
  it('wrong arguments are a TypeError; an onPart that throws rejects the promise, and the process goes on', async () => {
    const b = native() as unknown as { collectStream: (...a: unknown[]) => Promise<Float64Array>; registerDomain(n: string): number };
    const d = b.registerDomain('stream-binding');
    expect(() => b.collectStream(d, false, undefined, 0, 1, undefined, () => undefined)).toThrow(TypeError);
    expect(() => b.collectStream(d, false, undefined, 0, 0, undefined, () => undefined, 1)).toThrow(/mode must be 1 or 2/);
    expect(() => b.collectStream(d, false, undefined, 0, 2, undefined, 'f', 1)).toThrow(/onPart must be a function/);
    expect(() => b.collectStream(d, false, undefined, 0, 2, undefined, () => undefined, 0)).toThrow(/every must be >= 1/);
    const provider = new MeterProvider();
    try {
      const c = provider.getMeter('throwing').createCounter('c');
      for (let i = 0; i < 10; i++) c.add(1, { s: `k${i}` });
      const domain = (provider as unknown as { domain: number }).domain;
      let calls = 0;
      await expect(
        b.collectStream(domain, false, undefined, 0, 1, undefined, () => {
          calls++;
          throw new Error('onPart failed');
        }, 3),
      ).rejects.toThrow('onPart failed');
      expect(calls).toBe(3); // every part was still offered
      const cs = await provider.collect();
      expect(cs.size).toBe(10);
    } finally {
      await provider.shutdown();
    }
  });
});
