// A cumulative OTLP producer keeps an entry per record (src/exporters/otlp/incremental.ts);
// a mode 1 collection lists every live record, and an entry it did not list is gone
// (removed, or reclaimed by another reader's pass). The walk over every entry that finds
// them is skipped when the pass listed as many entries as are held: these tests check
// that skipping never keeps an entry of a gone record, nor a point of one.
import { AggregationTemporality as SdkTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';

type Producer = { incremental: { size: number } };

function sums(rm: ResourceMetrics | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const sm of rm?.scopeMetrics ?? []) for (const m of sm.metrics) for (const p of m.dataPoints) out.set(String(p.attributes.s), p.value as number);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cumulative OTLP: entries of gone records', () => {
  it('remove() and clear(): the entries go at the next collection, with or without new series in it', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    try {
      const c = provider.getMeter('sweep').createCounter('c');
      const flush = async (): Promise<Map<string, number>> => {
        exporter.reset();
        await reader.forceFlush();
        return sums(exporter.getMetrics()[0]);
      };
      const producer = (provider as unknown as { readers: Producer[] }).readers[0];
      for (let i = 0; i < 50; i++) c.add(i + 1, { s: `a${i}` });
      expect((await flush()).size).toBe(50);
      expect(producer.incremental.size).toBe(50);
      // Idle collections list every entry.
      expect((await flush()).size).toBe(50);
      expect(producer.incremental.size).toBe(50);
      // Ten removed, nothing new: the count listed falls short of the count held.
      for (let i = 0; i < 10; i++) c.remove({ s: `a${i}` });
      let got = await flush();
      expect(got.size).toBe(40);
      expect(got.has('a0')).toBe(false);
      expect(producer.incremental.size).toBe(40);
      // Ten removed and ten new in the same collection: as many listed as before.
      for (let i = 10; i < 20; i++) c.remove({ s: `a${i}` });
      for (let i = 0; i < 10; i++) c.add(7, { s: `b${i}` });
      got = await flush();
      expect(got.size).toBe(40);
      expect(got.has('a10')).toBe(false);
      expect(got.get('b3')).toBe(7);
      expect(producer.incremental.size).toBe(40);
      c.clear();
      expect((await flush()).size).toBe(0);
      expect(producer.incremental.size).toBe(0);
    } finally {
      await provider.shutdown();
    }
  });

  it('records reclaimed by another reader: the entries go, and a new series in their slots starts from zero', async () => {
    const cumulative = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const delta = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const r1 = new PeriodicExportingMetricReader({ exporter: cumulative, exportIntervalMillis: 3_600_000 });
    const r2 = new PeriodicExportingMetricReader({ exporter: delta, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [r1, r2], reclaimIdleMillis: 1 });
    try {
      const c = provider.getMeter('sweep').createCounter('c');
      const producer = (provider as unknown as { readers: Producer[] }).readers[0];
      for (let i = 0; i < 30; i++) c.add(5, { s: `old${i}` });
      await r1.forceFlush();
      await r2.forceFlush();
      expect(producer.incremental.size).toBe(30);
      // The series go idle; the delta reader's passes reclaim them (the cumulative reader
      // does not collect meanwhile), then new series are written.
      for (let k = 0; k < 20; k++) {
        await sleep(5);
        await r2.forceFlush();
      }
      for (let i = 0; i < 30; i++) c.add(2, { s: `new${i}` });
      cumulative.reset();
      await r1.forceFlush();
      const got = sums(cumulative.getMetrics()[0]);
      expect([...got.keys()].filter((k) => k.startsWith('old'))).toEqual([]);
      expect(got.size).toBe(30);
      for (let i = 0; i < 30; i++) expect(got.get(`new${i}`)).toBe(2);
      expect(producer.incremental.size).toBe(30);
    } finally {
      await provider.shutdown();
    }
  });
});

describe('OTLP: records removed before their attributes were decoded', () => {
  it('their points leave the export (never sent without attributes) and their entries go', async () => {
    const { GONE } = await import('../src/sdk/collection');
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    try {
      const m = provider.getMeter('gone');
      const c = m.createCounter('c');
      const h = m.createHistogram('h');
      for (let i = 0; i < 40; i++) {
        c.add(i + 1, { s: `k${i}` });
        h.record(i, { s: `k${i}` });
      }
      // As a native decode answers for records removed after the pass: every third one gone.
      const producer = (provider as unknown as { readers: { source: { collectChanges: (mode: number) => Promise<{ attributes: (ids: readonly number[]) => unknown[] }> } }[] }).readers[0];
      const src = producer.source;
      const orig = src.collectChanges;
      src.collectChanges = async (mode: number) => {
        const col = await orig.call(src, mode);
        const attributes = col.attributes;
        col.attributes = (ids) => attributes(ids).map((a, k) => (k % 3 === 0 ? GONE : a));
        return col;
      };
      exporter.reset();
      await reader.forceFlush();
      src.collectChanges = orig;
      const rm = exporter.getMetrics()[0];
      let points = 0;
      for (const sm of rm.scopeMetrics) {
        for (const metric of sm.metrics) {
          for (const p of metric.dataPoints) {
            points++;
            expect(typeof p.attributes.s, `${metric.descriptor.name} ${JSON.stringify(p.attributes)}`).toBe('string');
          }
        }
      }
      expect(points).toBeGreaterThan(0);
      expect(points).toBeLessThan(80);
      const producerState = (provider as unknown as { readers: Producer[] }).readers[0];
      expect(producerState.incremental.size).toBe(points);
    } finally {
      await provider.shutdown();
    }
  });
});
