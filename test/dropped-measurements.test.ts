// A dropped measurement (a value the instrument rejects) leaves no trace in any export:
// its label set gets no record, so neither the Prometheus text nor collect() (nor OTLP,
// built from it) shows a series for it. The diagnostic stays.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attributes } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import { MeterProvider, PrometheusExporter } from '../src';
import type { CheckpointSet } from '../src';
import { CapturingLogger, findRecord, histOf, installLogger, lastValueOf, maybeRecord, recordsOf, sumOf, uninstallLogger } from './helpers';

let log: CapturingLogger;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(() => {
  log = installLogger();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  uninstallLogger();
});

function setup() {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const provider = new MeterProvider({ readers: [exporter] });
  cleanups.push(() => provider.shutdown());
  return { exporter, provider, meter: provider.getMeter('dropped') };
}

interface Exported {
  text: string;
  cs: CheckpointSet;
}

async function exportBoth(exporter: PrometheusExporter, provider: MeterProvider): Promise<Exported> {
  const text = await exporter.render();
  return { text, cs: await provider.collect() };
}

/** The sample lines of the metric family `family` (its name, or its name plus a suffix). */
function samples(text: string, family: string): string[] {
  return text.split('\n').filter((l) => {
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0];
    return name !== undefined && (name === family || /^_(total|bucket|count|sum|created)$/.test(name.slice(family.length))) && name.startsWith(family);
  });
}

/** A sample line's labels, without `le` / `quantile`, as `k="v"` strings, sorted. */
function labelsOf(line: string): string[] {
  const body = /^[^{ ]*\{(.*)\} /.exec(line)?.[1] ?? '';
  return [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
    .filter((m) => m[1] !== 'le' && m[1] !== 'quantile')
    .map((m) => `${m[1]}="${m[2]}"`)
    .sort();
}

/** No series of `name` (Prometheus family `family`) has exactly these attributes, in either export. */
function expectNoSeries(e: Exported, name: string, family: string, attrs: Attributes): void {
  expect(maybeRecord(e.cs, name, attrs), `${name} ${JSON.stringify(attrs)} in collect()`).toBeUndefined();
  const want = Object.entries(attrs).map(([k, v]) => `${k}="${String(v)}"`).sort().join(',');
  const lines = samples(e.text, family).filter((l) => labelsOf(l).join(',') === want);
  expect(lines, `${family} ${JSON.stringify(attrs)} in the Prometheus text`).toEqual([]);
}

describe('a dropped measurement creates no series', () => {
  it('gauge.record(NaN / Infinity / a string, attributes)', async () => {
    const { exporter, provider, meter } = setup();
    const g = meter.createGauge('room.temperature');
    g.record(21.5, { room: 'a' });
    g.record(NaN, { room: 'b' });
    g.record(Infinity, { room: 'c' });
    g.record(-Infinity, { room: 'c' });
    g.record('22' as never, { room: 'd' });
    g.record(NaN);
    const e = await exportBoth(exporter, provider);
    expect(e.text).toContain('room_temperature{room="a"} 21.5\n');
    for (const room of ['b', 'c', 'd']) expectNoSeries(e, 'room.temperature', 'room_temperature', { room });
    expectNoSeries(e, 'room.temperature', 'room_temperature', {});
    expect(recordsOf(e.cs, 'room.temperature')).toHaveLength(1);
    expect(log.warned('room.temperature', 'measurement NaN dropped')).toBe(true);
    expect(log.warned('room.temperature', 'of type string dropped')).toBe(true);
  });

  it('a rejected counter increment, histogram value or up-down counter value', async () => {
    const { exporter, provider, meter } = setup();
    const c = meter.createCounter('jobs');
    const h = meter.createHistogram('latency', { unit: 'ms' });
    const u = meter.createUpDownCounter('queue.depth');
    c.add(-1, { q: 'neg' });
    c.add(NaN, { q: 'nan' });
    c.add(-2);
    h.record(-5, { route: '/neg' });
    h.record(Infinity, { route: '/inf' });
    h.record(-1);
    u.add(NaN, { q: 'nan' });
    u.add(Infinity);
    c.add(3, { q: 'ok' });
    const e = await exportBoth(exporter, provider);
    expect(e.text).toContain('jobs_total{q="ok"} 3\n');
    expectNoSeries(e, 'jobs', 'jobs_total', { q: 'neg' });
    expectNoSeries(e, 'jobs', 'jobs_total', { q: 'nan' });
    expectNoSeries(e, 'jobs', 'jobs_total', {});
    expect(recordsOf(e.cs, 'latency')).toEqual([]);
    expect(samples(e.text, 'latency_milliseconds')).toEqual([]);
    expect(recordsOf(e.cs, 'queue.depth')).toEqual([]);
    expect(samples(e.text, 'queue_depth')).toEqual([]);
    expect(log.warned('jobs', 'measurement -1 dropped', 'non-negative')).toBe(true);
    expect(log.warned('latency', 'measurement -5 dropped')).toBe(true);
    expect(log.warned('queue.depth', 'measurement NaN dropped')).toBe(true);
  });

  it('observations of NaN or Infinity (callbacks and batch callbacks)', async () => {
    const { exporter, provider, meter } = setup();
    const og = meter.createObservableGauge('cpu.temp');
    og.addCallback((r) => {
      r.observe(50, { core: '0' });
      r.observe(NaN, { core: '1' });
      r.observe(Infinity, { core: '2' });
      r.observe(NaN);
    });
    const oc = meter.createObservableCounter('bytes.read');
    const ou = meter.createObservableUpDownCounter('conns');
    meter.addBatchObservableCallback(
      (r) => {
        r.observe(oc, 10, { dev: 'sda' });
        r.observe(oc, -Infinity, { dev: 'sdb' });
        r.observe(ou, NaN, { pool: 'x' });
        r.observe(ou, 'many' as never, { pool: 'y' });
      },
      [oc, ou],
    );
    for (let pass = 0; pass < 2; pass++) {
      const e = await exportBoth(exporter, provider);
      expect(e.text).toContain('cpu_temp{core="0"} 50\n');
      expect(lastValueOf(findRecord(e.cs, 'cpu.temp', { core: '0' }))).toBe(50);
      for (const core of ['1', '2']) expectNoSeries(e, 'cpu.temp', 'cpu_temp', { core });
      expectNoSeries(e, 'cpu.temp', 'cpu_temp', {});
      expect(sumOf(findRecord(e.cs, 'bytes.read', { dev: 'sda' }))).toBe(10);
      expectNoSeries(e, 'bytes.read', 'bytes_read', { dev: 'sdb' });
      expect(recordsOf(e.cs, 'conns')).toEqual([]);
      expect(samples(e.text, 'conns')).toEqual([]);
    }
    expect(log.warned('cpu.temp', 'measurement NaN dropped')).toBe(true);
    expect(log.warned('conns', 'of type string dropped')).toBe(true);
  });

  it('recordBatch with valid and invalid values: the valid ones recorded, the invalid ones leave no series', async () => {
    const { exporter, provider, meter } = setup();
    const c = meter.createCounter('b.count');
    const h = meter.createHistogram('b.hist', { advice: { explicitBucketBoundaries: [1, 10] } });
    const g = meter.createGauge('b.gauge');
    const u = meter.createUpDownCounter('b.udc');
    const bad = meter.createCounter('b.bad');
    meter.recordBatch({ k: 'v' }, [
      [c, 2],
      [h, -1],
      [g, NaN],
      [u, -3],
      [bad, -1],
      [h, 5],
    ]);
    meter.recordBatch({ k: 'w' }, [
      [g, Infinity],
      [c, 1],
    ]);
    const e = await exportBoth(exporter, provider);
    expect(sumOf(findRecord(e.cs, 'b.count', { k: 'v' }))).toBe(2);
    expect(sumOf(findRecord(e.cs, 'b.count', { k: 'w' }))).toBe(1);
    expect(sumOf(findRecord(e.cs, 'b.udc', { k: 'v' }))).toBe(-3);
    expect(histOf(findRecord(e.cs, 'b.hist', { k: 'v' })).count).toBe(1);
    expectNoSeries(e, 'b.gauge', 'b_gauge', { k: 'v' });
    expectNoSeries(e, 'b.gauge', 'b_gauge', { k: 'w' });
    expectNoSeries(e, 'b.bad', 'b_bad_total', { k: 'v' });
    expect(e.text).toContain('b_count_total{k="v"} 2\n');
    expect(e.text).toContain('b_hist_count{k="v"} 1\n');
  });

  it('INT value types: a non-finite value leaves no series; a fraction is truncated and recorded', async () => {
    const { exporter, provider, meter } = setup();
    const c = meter.createCounter('int.count', { valueType: ValueType.INT });
    const g = meter.createGauge('int.gauge', { valueType: ValueType.INT });
    c.add(NaN, { k: 'nan' });
    c.add(-1, { k: 'neg' });
    c.add(2.7, { k: 'frac' });
    g.record(Infinity, { k: 'inf' });
    g.record(-2.5, { k: 'frac' });
    const e = await exportBoth(exporter, provider);
    expectNoSeries(e, 'int.count', 'int_count_total', { k: 'nan' });
    expectNoSeries(e, 'int.count', 'int_count_total', { k: 'neg' });
    expectNoSeries(e, 'int.gauge', 'int_gauge', { k: 'inf' });
    expect(sumOf(findRecord(e.cs, 'int.count', { k: 'frac' }))).toBe(2);
    expect(lastValueOf(findRecord(e.cs, 'int.gauge', { k: 'frac' }))).toBe(-2);
  });

  it('a label set already recorded keeps its aggregate: an invalid value changes nothing', async () => {
    const { exporter, provider, meter } = setup();
    const c = meter.createCounter('seen.count');
    const g = meter.createGauge('seen.gauge');
    // Enough uses that the label set is cached (trie), then invalid values on it.
    for (let i = 0; i < 4; i++) {
      c.add(1, { k: 'v' });
      g.record(i, { k: 'v' });
    }
    c.add(-1, { k: 'v' });
    c.add(NaN, { k: 'v' });
    g.record(NaN, { k: 'v' });
    const e = await exportBoth(exporter, provider);
    expect(sumOf(findRecord(e.cs, 'seen.count', { k: 'v' }))).toBe(4);
    expect(lastValueOf(findRecord(e.cs, 'seen.gauge', { k: 'v' }))).toBe(3);
    expect(e.text).toContain('seen_gauge{k="v"} 3\n');
  });

  it('bound handles: an invalid value does not change the aggregate', async () => {
    const { exporter, provider, meter } = setup();
    const g = meter.createGauge('bound.gauge').bind({ room: 'x' });
    const c = meter.createCounter('bound.count').bind({ k: 'v' });
    const h = meter.createHistogram('bound.hist', { advice: { explicitBucketBoundaries: [10] } }).bind({ k: 'v' });
    g.record(17);
    g.record(NaN);
    g.record(Infinity);
    c.add(2);
    c.add(-1);
    c.add(NaN);
    h.record(4);
    h.record(-4);
    const e = await exportBoth(exporter, provider);
    expect(lastValueOf(findRecord(e.cs, 'bound.gauge', { room: 'x' }))).toBe(17);
    expect(e.text).toContain('bound_gauge{room="x"} 17\n');
    expect(sumOf(findRecord(e.cs, 'bound.count', { k: 'v' }))).toBe(2);
    const hist = histOf(findRecord(e.cs, 'bound.hist', { k: 'v' }));
    expect([hist.count, hist.sum, hist.min, hist.max]).toEqual([1, 4, 4, 4]);
    g.unbind();
    c.unbind();
    h.unbind();
  });
});
