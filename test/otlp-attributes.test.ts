// Attributes of series an OTLP producer exports: for records created in this thread they
// come from the canonical parts kept at creation (src/sdk/attribute-table.ts keepEncoded),
// not from the native records; they must equal what decoding the native records gives
// (attribute views, every value type, a `__proto__` key), be frozen and be shared by the
// records of one label set. Providers whose readers do not build attribute objects keep no
// parts.
import type { Attributes } from '@opentelemetry/api';
import { AggregationTemporality as SdkTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { native } from '../src/sdk/native';
import { attrKey } from './helpers';

const proto: Attributes = {};
Object.defineProperty(proto, '__proto__', { value: 'p', enumerable: true, writable: true, configurable: true });
const SETS: Attributes[] = [
  { route: '/a', code: 200, ok: true },
  { route: 'quote " and \\ and \n and é and 日本', code: -1.5, ok: false },
  { list: ['x', 'y"'], nums: [1, 2.5, -3], flags: [true, false], empty: '' },
  { dropped: 'by the view', route: '/b' },
  proto,
  {},
];

function exported(rm: ResourceMetrics, name: string): Attributes[] {
  const out: Attributes[] = [];
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) if (m.descriptor.name === name) for (const p of m.dataPoints) out.push(p.attributes);
  return out;
}

function write(provider: MeterProvider): void {
  const meter = provider.getMeter('attrs');
  const c = meter.createCounter('c');
  const h = meter.createHistogram('h');
  const v = meter.createCounter('v'); // the view below keeps only `route`
  for (const a of SETS) {
    c.add(1, a);
    h.record(2, a);
    v.add(1, a);
  }
  // A bound handle's series too.
  c.bind({ bound: 'yes' }).add(1);
}

const VIEWS = [{ instrumentName: 'v', attributeKeys: ['route'] }];

describe('OTLP attributes from the parts kept at record creation', () => {
  afterEach(() => vi.restoreAllMocks());

  it('equal the natively decoded ones (view filters, every value type, __proto__), frozen, one object per label set, without asking the native records', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const otlp = new MeterProvider({ readers: [reader], views: VIEWS });
    // The same writes, read by direct collect(): no reader builds objects, decoded natively.
    const direct = new MeterProvider({ views: VIEWS });
    try {
      write(otlp);
      write(direct);
      const labels = vi.spyOn(native(), 'recordLabels');
      await reader.forceFlush();
      expect(labels).not.toHaveBeenCalled();
      const set = await direct.collect();
      expect(labels).toHaveBeenCalled();
      const rm = exporter.getMetrics().at(-1)!;
      for (const name of ['c', 'h', 'v']) {
        const got = exported(rm, name);
        const want = set.records.filter((r) => r.descriptor.name === name).map((r) => r.attributes);
        expect(got.map(attrKey).sort(), name).toEqual(want.map(attrKey).sort());
        for (const a of got) {
          expect(Object.isFrozen(a)).toBe(true);
          for (const k of Object.keys(a)) if (Array.isArray(a[k])) expect(Object.isFrozen(a[k])).toBe(true);
        }
      }
      const protoOut = exported(rm, 'c').find((a) => Object.prototype.hasOwnProperty.call(a, '__proto__'))!;
      expect(Object.getPrototypeOf(protoOut)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(protoOut, '__proto__')!.value).toBe('p');
      expect(exported(rm, 'v').map(attrKey).sort()).toEqual([{}, { route: '/a' }, { route: '/b' }, { route: SETS[1].route }].map(attrKey).sort());
      // c and h were written with the same attribute sets: one object each.
      const byKey = new Map(exported(rm, 'c').map((a) => [attrKey(a), a]));
      for (const a of exported(rm, 'h')) expect(byKey.get(attrKey(a))).toBe(a);
    } finally {
      await otlp.shutdown();
      await direct.shutdown();
    }
  });

  it('a provider keeps the parts only when one of its readers builds attribute objects', async () => {
    const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(SdkTemporality.DELTA), exportIntervalMillis: 3_600_000 });
    const providers = {
      otlp: new MeterProvider({ readers: [reader] }),
      prometheus: new MeterProvider({ readers: [new PrometheusExporter({ port: 0 })] }),
      none: new MeterProvider(),
    };
    try {
      const keeps = (p: MeterProvider) => (p as unknown as { attributesOf: { keepEncoded: boolean } }).attributesOf.keepEncoded;
      expect(keeps(providers.otlp)).toBe(true);
      expect(keeps(providers.prometheus)).toBe(false);
      expect(keeps(providers.none)).toBe(false);
    } finally {
      for (const p of Object.values(providers)) await p.shutdown();
    }
  });
});
