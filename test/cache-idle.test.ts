// cacheIdleMillis: a thread gives back its cached references of a series only once the
// series has been idle that long (default 60 s), not after the first collection that saw
// it idle: a series written now and then keeps its cache, and its next write takes no
// native lookup. The series and its value stay exported either way.
import { describe, expect, it } from 'vitest';
import { AggregationTemporality as SdkTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { MeterProvider, PrometheusExporter } from '../src';
import { evictionStats } from '../src/sdk/worker-evict';
import { native } from '../src/sdk/native';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const N = 100;

/** Native lookups made by `f` (acquire calls of this thread). */
function acquiresDuring(f: () => void): number {
  const n = native() as unknown as { acquire: (...a: unknown[]) => unknown };
  const orig = n.acquire;
  let calls = 0;
  n.acquire = (...a: unknown[]) => {
    calls++;
    return orig.apply(n, a);
  };
  try {
    f();
  } finally {
    n.acquire = orig;
  }
  return calls;
}

async function setup(options: ConstructorParameters<typeof MeterProvider>[0]) {
  const p = new MeterProvider(options);
  const c = p.getMeter('cache-idle').createCounter('c');
  const writeAll = () => {
    for (let i = 0; i < N; i++) c.add(1, { k: `v${i}` });
  };
  writeAll();
  writeAll(); // the second use of a label set caches it
  await sleep(0); // first-use references go back after the write's turn
  await p.collect();
  return { p, writeAll };
}

function valuesOf(cs: Awaited<ReturnType<MeterProvider['collect']>>): number[] {
  const out: number[] = [];
  cs.forEach((r) => out.push((r.aggregation as { sum: number }).sum));
  return out;
}

describe('cacheIdleMillis', () => {
  it('default: collections of a series idle for less than a minute leave its cache; its next write takes no native lookup', async () => {
    const { p, writeAll } = await setup({});
    try {
      const before = evictionStats().staleIds;
      for (let k = 0; k < 3; k++) {
        await p.collect();
        await sleep(5);
      }
      expect(evictionStats().staleIds - before).toBe(0);
      expect(acquiresDuring(writeAll)).toBe(0);
      const cs = await p.collect();
      expect(valuesOf(cs)).toEqual(new Array(N).fill(3));
    } finally {
      await p.shutdown();
    }
  });

  it('default: Prometheus scrapes and OTLP flushes of a series idle for less than a minute leave its cache too', async () => {
    const prom = new PrometheusExporter({ preventServerStart: true });
    const otlp = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(SdkTemporality.DELTA), exportIntervalMillis: 3_600_000 });
    const { p, writeAll } = await setup({ readers: [prom, otlp] });
    try {
      const before = evictionStats().staleIds;
      for (let k = 0; k < 3; k++) {
        await prom.scrape();
        await otlp.forceFlush();
        await sleep(5);
      }
      expect(evictionStats().staleIds - before).toBe(0);
      expect(acquiresDuring(writeAll)).toBe(0);
      expect(await prom.render()).toContain('c_total{k="v7",otel_scope_name="cache-idle"} 3');
    } finally {
      await p.shutdown();
    }
  });

  it('cacheIdleMillis: a series idle for less keeps its cache', async () => {
    const { p, writeAll } = await setup({ cacheIdleMillis: 2000 });
    try {
      await p.collect(); // idle, but not for 2 s
      await p.collect();
      expect(acquiresDuring(writeAll)).toBe(0);
    } finally {
      await p.shutdown();
    }
  });

  it('a series idle past cacheIdleMillis gives its cache back; it stays exported, and its next write looks it up again', async () => {
    const { p, writeAll } = await setup({ cacheIdleMillis: 50 });
    try {
      await sleep(80);
      await p.collect(); // idle since a pass at least 50 ms ago: this thread lets go
      await p.collect();
      const cs = await p.collect();
      expect(valuesOf(cs)).toEqual(new Array(N).fill(2));
      expect(acquiresDuring(writeAll)).toBe(N);
      expect(valuesOf(await p.collect())).toEqual(new Array(N).fill(3));
    } finally {
      await p.shutdown();
    }
  });

  it('cacheIdleMillis: 0 gives caches back after one idle collection; bad values are a TypeError', async () => {
    const { p, writeAll } = await setup({ cacheIdleMillis: 0 });
    try {
      const before = evictionStats().staleIds;
      await p.collect();
      const { drainStale } = await import('../src/sdk/worker-evict');
      drainStale();
      expect(evictionStats().staleIds - before).toBe(N);
      expect(acquiresDuring(writeAll)).toBe(N);
    } finally {
      await p.shutdown();
    }
    expect(() => new MeterProvider({ cacheIdleMillis: -1 })).toThrow(TypeError);
    expect(() => new MeterProvider({ cacheIdleMillis: 'x' as unknown as number })).toThrow(TypeError);
  });
});
