// Attribute keys that are also Object.prototype's names (`__proto__` above all) stay
// plain keys through collect() and the OTLP conversion: two label sets that differ only
// by one stay two series, and no value becomes a prototype.
import { JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import {
  AggregationTemporality as SdkTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { Attributes } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { installLogger, recordsOf, sumOf, uninstallLogger } from './helpers';

beforeEach(() => installLogger());
afterEach(() => uninstallLogger());

// JSON.parse makes own `__proto__` properties (an object literal would set the prototype).
const plain: Attributes = { a: 1 };
const withString = JSON.parse('{"a": 1, "__proto__": "x"}') as Attributes;
const withArray = JSON.parse('{"a": 1, "__proto__": ["p", "q"]}') as Attributes;
const others = JSON.parse('{"constructor": "c", "toString": "t", "hasOwnProperty": "h"}') as Attributes;

function expectPlain(attrs: Attributes): void {
  expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
}

describe('the __proto__ attribute key', () => {
  it('collect() keeps it as an own key: three series, decoded apart', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c');
    for (let i = 0; i < 3; i++) {
      c.add(1, plain);
      c.add(2, withString);
      c.add(4, withArray);
      c.add(8, others);
    }
    c.bind(withString).add(16);
    const records = recordsOf(await p.collect(), 'c');
    expect(records.length).toBe(4);
    const byKeys = new Map(records.map((r) => [JSON.stringify(Object.entries(r.attributes).sort()), r]));
    for (const r of records) expectPlain(r.attributes);
    expect(sumOf(byKeys.get(JSON.stringify([['a', 1]]))!)).toBe(3);
    expect(sumOf(byKeys.get(JSON.stringify([['__proto__', 'x'], ['a', 1]]))!)).toBe(6 + 16);
    expect(sumOf(byKeys.get(JSON.stringify([['__proto__', ['p', 'q']], ['a', 1]]))!)).toBe(12);
    const o = byKeys.get(JSON.stringify([['constructor', 'c'], ['hasOwnProperty', 'h'], ['toString', 't']]))!;
    expect(sumOf(o)).toBe(24);
    const arr = records.find((r) => Array.isArray(Object.getOwnPropertyDescriptor(r.attributes, '__proto__')?.value))!;
    expect(Object.prototype.hasOwnProperty.call(arr.attributes, '__proto__')).toBe(true);
    expect(Array.isArray(arr.attributes)).toBe(false);
    await p.shutdown();
  });

  it('the OTLP conversion and its JSON keep it', async () => {
    const exporter = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const p = new MeterProvider({ readers: [reader] });
    const c = p.getMeter('m').createCounter('c');
    c.add(1, plain);
    c.add(2, withString);
    c.add(4, withArray);
    await p.forceFlush();
    const rm = exporter.getMetrics().at(-1)!;
    const points = rm.scopeMetrics[0].metrics[0].dataPoints;
    expect(points.length).toBe(3);
    const keys = points.map((pt) => Object.keys(pt.attributes).sort().join(',')).sort();
    expect(keys).toEqual(['__proto__,a', '__proto__,a', 'a']);
    for (const pt of points) expectPlain(pt.attributes);
    const json = JSON.parse(new TextDecoder().decode(JsonMetricsSerializer.serializeRequest(rm)!)) as {
      resourceMetrics: { scopeMetrics: { metrics: { sum: { dataPoints: { attributes: { key: string; value: unknown }[]; asDouble?: number }[] } }[] }[] }[];
    };
    const dps = json.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints;
    const protoValues = dps.flatMap((dp) => dp.attributes.filter((a) => a.key === '__proto__').map((a) => JSON.stringify(a.value))).sort();
    expect(protoValues).toEqual([JSON.stringify({ arrayValue: { values: [{ stringValue: 'p' }, { stringValue: 'q' }] } }), JSON.stringify({ stringValue: 'x' })].sort());
    await p.shutdown();
  });
});
