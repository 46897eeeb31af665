// Delta OTLP: the producer keeps each series' previous cell in one pooled Float64Array
// (src/exporters/otlp/incremental.ts PrevCells); a series that expires gives its cell back
// and a new series takes it. The new series' deltas must be its own (nothing of the old
// series' state leaks in), and the pool must not grow when cells are given back.
import { AggregationTemporality as SdkTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader, type Histogram, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';

function points<T>(rm: ResourceMetrics | undefined, name: string): Map<string, T> {
  const out = new Map<string, T>();
  for (const sm of rm?.scopeMetrics ?? []) for (const m of sm.metrics) if (m.descriptor.name === name) for (const p of m.dataPoints) out.set(String(p.attributes.s), p.value as T);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('delta OTLP: pooled previous cells', () => {
  it('cells of expired series are reused by new series, whose deltas are exactly their own', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.DELTA);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader], reclaimIdleMillis: 1 });
    try {
      const meter = provider.getMeter('cells');
      const c = meter.createCounter('c');
      const h = meter.createHistogram('h', { advice: { explicitBucketBoundaries: [10, 100] } });
      const N = 200;
      const flush = async (): Promise<ResourceMetrics | undefined> => {
        exporter.reset();
        await reader.forceFlush();
        return exporter.getMetrics()[0];
      };
      // Old series: large values, two collections so each has a previous cell.
      for (let i = 0; i < N; i++) {
        c.add(1000, { s: `old${i}` });
        h.record(500, { s: `old${i}` });
      }
      await flush();
      for (let i = 0; i < N; i++) {
        c.add(1000, { s: `old${i}` });
        h.record(500, { s: `old${i}` });
      }
      expect(points<number>(await flush(), 'c').get('old0')).toBe(1000);
      const producer = (provider as unknown as { readers: { incremental: { prevCells: { top: number }; size: number } }[] }).readers[0];
      const top = producer.incremental.prevCells.top;
      expect(top).toBeGreaterThan(0);
      // Idle past reclaimIdleMillis: the old series expire and their entries go.
      for (let k = 0; k < 50 && producer.incremental.size > 0; k++) {
        await sleep(5);
        await flush();
      }
      expect(producer.incremental.size).toBe(0);
      // New series take the freed cells: deltas from zero, nothing of the old ones.
      for (let round = 1; round <= 3; round++) {
        for (let i = 0; i < N; i++) {
          c.add(round, { s: `new${i}` });
          h.record(5, { s: `new${i}` });
        }
        const rm = await flush();
        const sums = points<number>(rm, 'c');
        const hists = points<Histogram>(rm, 'h');
        expect(sums.size).toBe(N);
        for (let i = 0; i < N; i++) {
          expect(sums.get(`new${i}`), `round ${round} new${i}`).toBe(round);
          const v = hists.get(`new${i}`)!;
          expect(v.count).toBe(1);
          expect(v.sum).toBe(5);
          expect(v.buckets.counts).toEqual([1, 0, 0]);
        }
      }
      expect(producer.incremental.prevCells.top).toBe(top);
    } finally {
      await provider.shutdown();
    }
  });
});
