// Several readers on one provider: every reader gets every instrument on every path
// (its own collections, provider.forceFlush(), provider.shutdown()), whatever the other
// readers collected in between. "Updated" is per reader: a record changed since this
// reader's previous collection, whichever reader's pass saw the change first.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AggregationTemporality as SdkTemporality,
  DataPointType,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AggregationTemporality,
  CheckpointSet,
  ExportResultCode,
  MeterProvider,
  PrometheusExporter,
  PullController,
  PushController,
  type ExportResult,
  type Exporter,
} from '../src';
import { installLogger, uninstallLogger } from './helpers';

class KeepExporter implements Exporter {
  sets: CheckpointSet[] = [];
  constructor(readonly temporality: AggregationTemporality) {}
  async export(set: CheckpointSet): Promise<ExportResult> {
    this.sets.push(set);
    return { code: ExportResultCode.SUCCESS };
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

const NAMES = ['c', 'g', 'h', 'oc', 'og', 'oud'];

/** Instruments of every kind; the observables observe `state.v` (and a second series). */
function instruments(p: MeterProvider, state: { v: number }) {
  const m = p.getMeter('multi');
  const c = m.createCounter('c');
  const g = m.createGauge('g');
  const h = m.createHistogram('h');
  m.createObservableCounter('oc').addCallback((r) => {
    r.observe(state.v, { s: 'a' });
    r.observe(state.v * 2, { s: 'b' });
  });
  m.createObservableGauge('og').addCallback((r) => r.observe(state.v / 2));
  m.createObservableUpDownCounter('oud').addCallback((r) => r.observe(-state.v));
  return {
    record(v: number) {
      c.add(v, { k: 'x' });
      g.record(v, { k: 'x' });
      h.record(v, { k: 'x' });
    },
  };
}

/** metric name -> sorted point values of a hotmeter CheckpointSet. */
function hotmeterPoints(set: CheckpointSet): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const r of set) {
    const a = r.aggregation;
    const v = a.kind === 'sum' ? a.sum : a.kind === 'lastValue' ? a.value : a.kind === 'histogram' ? a.count : NaN;
    (out[r.descriptor.name] ??= []).push(v);
  }
  for (const k in out) out[k].sort((x, y) => x - y);
  return out;
}

/** metric name -> sorted point values of sdk-metrics ResourceMetrics. */
function otelPoints(rm: ResourceMetrics): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints) {
        const v = m.dataPointType === DataPointType.HISTOGRAM ? (p.value as { count: number }).count : (p.value as number);
        (out[m.descriptor.name] ??= []).push(v);
      }
    }
  }
  for (const k in out) out[k].sort((x, y) => x - y);
  return out;
}

/** What a reader must get after recording `v` once (and observing `v`), delta or cumulative alike on a first export. */
function expected(v: number, total: number, count: number): Record<string, number[]> {
  return { c: [total], g: [v], h: [count], oc: [v, v * 2], og: [v / 2], oud: [-v] };
}

let restore: () => void = () => {};
beforeEach(() => {
  installLogger();
  restore = () => uninstallLogger();
});
afterEach(() => restore());

for (const hotmeterTemporality of [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE]) {
  const sdkTemporality = hotmeterTemporality === AggregationTemporality.DELTA ? SdkTemporality.CUMULATIVE : SdkTemporality.DELTA;
  const label = `PushController ${AggregationTemporality[hotmeterTemporality]} + PeriodicExportingMetricReader ${SdkTemporality[sdkTemporality]}`;

  describe(`two readers (${label})`, () => {
    for (const order of ['push first', 'sdk first'] as const) {
      it(`forceFlush and shutdown give both readers every instrument (${order})`, async () => {
        const mine = new KeepExporter(hotmeterTemporality);
        const push = new PushController({ exporter: mine, intervalMillis: 3_600_000 });
        const sdkExporter = new InMemoryMetricExporter(sdkTemporality);
        const sdk = new PeriodicExportingMetricReader({ exporter: sdkExporter, exportIntervalMillis: 3_600_000 });
        const p = new MeterProvider({ readers: order === 'push first' ? [push, sdk] : [sdk, push] });
        const state = { v: 3 };
        const inst = instruments(p, state);
        inst.record(3);

        await p.forceFlush();
        expect(hotmeterPoints(mine.sets.at(-1)!)).toEqual(expected(3, 3, 1));
        expect(otelPoints(sdkExporter.getMetrics().at(-1)!)).toEqual(expected(3, 3, 1));

        // Second round: new values for everything, then the last export at shutdown.
        state.v = 5;
        inst.record(5);
        await p.forceFlush();
        const mineTotal = hotmeterTemporality === AggregationTemporality.DELTA ? 5 : 8;
        const mineCount = hotmeterTemporality === AggregationTemporality.DELTA ? 1 : 2;
        const sdkTotal = sdkTemporality === SdkTemporality.DELTA ? 5 : 8;
        const sdkCount = sdkTemporality === SdkTemporality.DELTA ? 1 : 2;
        // A delta observable (up-down) counter exports the difference between observations.
        const deltaObservables = { oc: [2, 4], oud: [-2] };
        const mineSecond = hotmeterPoints(mine.sets.at(-1)!);
        const sdkSecond = otelPoints(sdkExporter.getMetrics().at(-1)!);
        if (hotmeterTemporality === AggregationTemporality.DELTA) {
          expect(mineSecond).toEqual({ ...expected(5, mineTotal, mineCount), ...deltaObservables });
          expect(sdkSecond).toEqual(expected(5, sdkTotal, sdkCount));
        } else {
          expect(mineSecond).toEqual(expected(5, mineTotal, mineCount));
          expect(sdkSecond).toEqual({ ...expected(5, sdkTotal, sdkCount), ...deltaObservables });
        }

        state.v = 7;
        inst.record(7);
        const before = sdkExporter.getMetrics().length;
        await p.shutdown();
        const last = hotmeterPoints(mine.sets.at(-1)!);
        expect(Object.keys(last).sort()).toEqual(NAMES);
        expect(last.g).toEqual([7]);
        expect(last.og).toEqual([3.5]);
        expect(sdkExporter.getMetrics().length).toBe(before + 1);
        const sdkLast = otelPoints(sdkExporter.getMetrics().at(-1)!);
        expect(Object.keys(sdkLast).sort()).toEqual(NAMES);
        expect(sdkLast.g).toEqual([7]);
        expect(sdkLast.og).toEqual([3.5]);
      });
    }
  });
}

describe('a pull reader and a push reader', () => {
  it('each collection of one reader leaves the other its observations and first points', async () => {
    const pull = new PullController({ batcher: 'ungrouped', temporality: AggregationTemporality.DELTA });
    const mine = new KeepExporter(AggregationTemporality.CUMULATIVE);
    const push = new PushController({ exporter: mine, intervalMillis: 3_600_000 });
    const p = new MeterProvider({ readers: [pull, push] });
    const state = { v: 2 };
    const inst = instruments(p, state);
    inst.record(2);
    // Concurrent collections: both readers' callbacks run before either pass.
    const [pulled] = await Promise.all([pull.collect(), push.forceFlush()]);
    expect(hotmeterPoints(pulled)).toEqual(expected(2, 2, 1));
    expect(hotmeterPoints(mine.sets.at(-1)!)).toEqual(expected(2, 2, 1));
    // Sequential: the push reader's pass saw the gauge write first.
    inst.record(4);
    state.v = 4;
    await push.forceFlush();
    expect(hotmeterPoints(await pull.collect())).toEqual({ ...expected(4, 4, 1), oc: [2, 4], oud: [-2] });
    expect(hotmeterPoints(mine.sets.at(-1)!)).toEqual(expected(4, 6, 2));
    await p.shutdown();
  });
});

describe('a Prometheus exporter beside another reader', () => {
  /** The sample lines of the observables in a scrape. */
  const observed = (text: string) => text.split('\n').filter((l) => /^(oc|og|oud)[_{ ]/.test(l)).sort();

  for (const how of ['render', 'http (streamed)'] as const) {
    it(`a scrape (${how}) shows the observations another reader's pass saw first`, async () => {
      const prom = new PrometheusExporter({ preventServerStart: true });
      const pull = new PullController();
      const p = new MeterProvider({ readers: [prom, pull] });
      instruments(p, { v: 6 }).record(6);
      // Each scrape starts a collection of the other reader just before its own, so the
      // other reader's pass comes first and takes the callbacks' updates.
      let other: Promise<unknown> = Promise.resolve();
      const server = http.createServer((req, res) => {
        other = pull.collect();
        prom.requestHandler(req, res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      const scrape = async (): Promise<string> => {
        if (how === 'render') {
          other = pull.collect();
          return prom.render();
        }
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        return res.text();
      };
      try {
        for (let round = 0; round < 3; round++) {
          const text = await scrape();
          await other;
          expect(observed(text)).toEqual(['oc_total{s="a",otel_scope_name="multi"} 6', 'oc_total{s="b",otel_scope_name="multi"} 12', 'og{otel_scope_name="multi"} 3', 'oud{otel_scope_name="multi"} -6'].sort());
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
        await p.shutdown();
      }
    });
  }
});
