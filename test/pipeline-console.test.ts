// ConsoleMetricExporter: readable lines, captured from a test stream.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AggregationTemporality,
  ConsoleMetricExporter,
  ExportResultCode,
  MeterProvider,
  PushController,
} from '../src';
import { prometheusLabelEncoder } from '../src';
import { CapturingLogger, installLogger, uninstallLogger } from './helpers';

class Sink {
  chunks: string[] = [];
  write(s: string): boolean {
    this.chunks.push(s);
    return true;
  }
  get lines(): string[] {
    return this.chunks.join('').split('\n').filter((l) => l !== '');
  }
}

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => uninstallLogger());

describe('ConsoleMetricExporter', () => {
  it('prints every series: name, labels, kind and values, one write per export', async () => {
    const sink = new Sink();
    const exporter = new ConsoleMetricExporter({ stream: sink });
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push], resource: { attributes: { 'service.name': 'svc' } } });
    const m = p.getMeter('console');
    m.createCounter('requests').add(5, { method: 'GET', status: 200 });
    m.createHistogram('latency', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1] } }).record(0.5, { route: '/' });
    m.createGauge('temp').record(21.5);
    await p.forceFlush();
    expect(sink.chunks).toHaveLength(1);
    const lines = sink.lines;
    expect(lines[0]).toMatch(/^# collection \d+ at \d{4}-\d\d-\d\dT.*Z: 3 series, resource \{service\.name="svc"\}$/);
    expect(lines).toContainEqual(expect.stringMatching(/^requests\{method="GET",status=200\} COUNTER sum=5 \(\S+Z \.\. \S+Z\)$/));
    expect(lines).toContainEqual(
      expect.stringMatching(/^latency\{route="\/"\} \[s\] HISTOGRAM histogram count=1 sum=0\.5 min=0\.5 max=0\.5 buckets=\[<=0\.1:0, <=1:1, \+Inf:0\] /),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^temp\{\} GAUGE lastValue=21\.5 /));
    await p.shutdown();
    expect(sink.chunks).toHaveLength(2); // the last collection at shutdown
    expect(await exporter.export((await new MeterProvider().collect()), { attributes: {} })).toMatchObject({ code: ExportResultCode.FAILED });
  });

  it('delta: shows intervals, and unknown min/max as ?', async () => {
    const sink = new Sink();
    const exporter = new ConsoleMetricExporter({ stream: sink, temporality: AggregationTemporality.DELTA, header: false });
    const push = new PushController({ exporter, intervalMillis: 60_000, batcher: 'ungrouped' });
    const p = new MeterProvider({ readers: [push] });
    const h = p.getMeter('console').createHistogram('h', { advice: { explicitBucketBoundaries: [10] } });
    h.record(1);
    h.record(20);
    await p.forceFlush();
    h.record(5);
    await p.forceFlush();
    await p.forceFlush(); // nothing new: nothing printed
    const lines = sink.lines;
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^h\{\} HISTOGRAM histogram count=2 sum=21 min=1 max=20 buckets=\[<=10:1, \+Inf:1\]/);
    expect(lines[1]).toMatch(/^h\{\} HISTOGRAM histogram count=1 sum=5 min=\? max=\? buckets=\[<=10:1, \+Inf:0\]/);
    await p.shutdown();
  });

  it('an exporter-supplied encoder prints labels its way', async () => {
    const sink = new Sink();
    const exporter = new ConsoleMetricExporter({ stream: sink, labelEncoder: prometheusLabelEncoder, header: false });
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    p.getMeter('c').createCounter('c').add(1, { 'http.route': '/x' });
    await p.forceFlush();
    expect(sink.lines[0]).toMatch(/^c\{\{http_route="\/x"\}\} COUNTER sum=1 /);
    await p.shutdown();
  });

  it('a stream that throws makes the export FAILED, diagnosed, never thrown', async () => {
    const exporter = new ConsoleMetricExporter({ stream: { write: () => { throw new Error('EPIPE'); } } });
    const push = new PushController({ exporter, intervalMillis: 60_000 });
    const p = new MeterProvider({ readers: [push] });
    p.getMeter('c').createCounter('c').add(1);
    await expect(p.forceFlush()).rejects.toThrow('EPIPE');
    expect(log.warned('export failed', 'EPIPE')).toBe(true);
    expect(push.stats).toMatchObject({ exports: 1, failed: 1 });
    await p.shutdown().catch(() => undefined);
  });
});
