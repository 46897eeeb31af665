// Exemplars of process-shared series are the fleet's: one process's exemplar (a
// measurement in a sampled span) is exported by every process's scrape, also after the
// process that recorded it was SIGKILLed, until a newer one of its slot replaces it.
// The fixture (test/fixtures/shared-exemplar.js) loads the compiled package (dist/cjs:
// `npm run build:ts`); this file loads src/ and joins the same segment.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { context, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { native } from '../src/sdk/native';
import { AlsContextManager, cleanupShared, installLogger, uninstallLogger } from './helpers';
import { OM, protobufScrape, pythonSamples } from './prometheus-helpers';

const fixtures = path.join(__dirname, 'fixtures');
const TRACE_A = '0af7651916cd43dd8448eb211c80319c';
const SPAN_A = 'b7ad6b7169203331';
const TRACE_B = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_B = '00f067aa0ba902b7';

const names: string[] = [];
const children: ChildProcess[] = [];
beforeAll(() => {
  context.setGlobalContextManager(new AlsContextManager());
});
afterAll(() => cleanupShared(names, children));

interface PyExemplar {
  name: string;
  le: string;
  labels: Record<string, string>;
  value: number;
}

/** The exemplars of an OpenMetrics text, as the Python parser reads them. */
function pythonExemplars(text: string): PyExemplar[] {
  return pythonSamples(text)
    .filter((s) => s.exemplar !== null)
    .map((s) => ({ name: s.name, le: s.labels.le ?? '', labels: s.exemplar!.labels, value: s.exemplar!.value }));
}

/** [family, bucket bound or '', trace_id, value] of every exemplar in the protobuf format. */
async function protobufExemplars(exporter: PrometheusExporter): Promise<[string, string, string, number][]> {
  type Ex = { label: { name: string; value: string }[]; value: number };
  type Fam = { name: string; metric: { counter?: { exemplar?: Ex }; histogram?: { bucket: { upperBound: number; exemplar?: Ex }[] } }[] };
  const traceOf = (e: Ex) => e.label.find((l) => l.name === 'trace_id')?.value ?? '';
  const out: [string, string, string, number][] = [];
  for (const f of await protobufScrape<Fam>(exporter)) {
    for (const m of f.metric) {
      if (m.counter?.exemplar) out.push([f.name, '', traceOf(m.counter.exemplar), m.counter.exemplar.value]);
      for (const b of m.histogram?.bucket ?? []) {
        if (b.exemplar) out.push([f.name, String(b.upperBound), traceOf(b.exemplar), b.exemplar.value]);
      }
    }
  }
  return out;
}

/** Starts the fixture; resolves once it has recorded. */
async function startRecorder(name: string, traceId: string, spanId: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [path.join(fixtures, 'shared-exemplar.js'), name, traceId, spanId], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(p);
  const rl = readline.createInterface({ input: p.stdout! });
  await new Promise<void>((resolve, reject) => {
    rl.once('line', (l) => (l === 'done' ? resolve() : reject(new Error(l))));
    p.once('exit', (code) => reject(new Error(`recorder exited (${code})`)));
  });
  return p;
}

describe('processShared: exemplars are the fleet\'s', () => {
  it('another process\'s exemplar is scraped here (OpenMetrics, protobuf), stays after it is SIGKILLed, and a newer one here replaces it per slot', async () => {
    const name = `test-shared-exemplars-${process.pid}-${Date.now()}`;
    names.push(name);
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const provider = new MeterProvider({ processShared: name, readers: [exporter] });
    try {
      const m = provider.getMeter('ex');
      const histogram = m.createHistogram('ex.latency', { advice: { explicitBucketBoundaries: [1, 10] } });
      m.createCounter('ex.requests');
      const recorder = await startRecorder(name, TRACE_A, SPAN_A);
      const fromA = [
        { name: 'ex_latency_bucket', le: '10', labels: { trace_id: TRACE_A, span_id: SPAN_A }, value: 5 },
        { name: 'ex_requests_total', le: '', labels: { trace_id: TRACE_A, span_id: SPAN_A }, value: 3 },
      ];
      const protoFromA = [
        ['ex_latency', '10', TRACE_A, 5],
        ['ex_requests_total', '', TRACE_A, 3],
      ];
      expect(pythonExemplars(await exporter.render(OM))).toEqual(fromA);
      expect(await protobufExemplars(exporter)).toEqual(protoFromA);

      const killed = new Promise((r) => recorder.once('exit', r));
      recorder.kill('SIGKILL');
      await killed;
      // Twice: the first scrape reaps the dead process (folding its cells), the second reads the fold.
      for (let i = 0; i < 2; i++) expect(pythonExemplars(await exporter.render(OM))).toEqual(fromA);

      // A newer exemplar here replaces A's in its bucket only.
      context.with(trace.setSpanContext(context.active(), { traceId: TRACE_B, spanId: SPAN_B, traceFlags: 1, isRemote: false }), () => {
        histogram.record(7, { route: '/a' });
      });
      expect(pythonExemplars(await exporter.render(OM))).toEqual([
        { name: 'ex_latency_bucket', le: '10', labels: { trace_id: TRACE_B, span_id: SPAN_B }, value: 7 },
        fromA[1],
      ]);
    } finally {
      await provider.shutdown();
    }
  }, 60_000);

  it('an exemplar the segment has no room for is dropped with one diagnostic naming the instrument; the measurement is recorded', async () => {
    // A full segment cannot be made here (its capacity is 512 MiB of cells, 2M nodes):
    // the addon's answer for it (-1, core_shared_test shared_exemplar_cell_without_room_*
    // checks that ExemplarCell gives it) stands in.
    const name = `test-shared-exemplar-room-${process.pid}-${Date.now()}`;
    names.push(name);
    const logger = installLogger();
    const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const original = addon.exemplarCell;
    let asked = 0;
    addon.exemplarCell = () => {
      asked++;
      return -1;
    };
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
    const provider = new MeterProvider({ processShared: name, readers: [exporter] });
    try {
      const counter = provider.getMeter('ex').createCounter('ex.room');
      context.with(trace.setSpanContext(context.active(), { traceId: TRACE_A, spanId: SPAN_A, traceFlags: 1, isRemote: false }), () => {
        for (let i = 0; i < 3; i++) for (const route of ['/a', '/b', '/c']) counter.add(2, { route });
      });
      const samples = pythonSamples(await exporter.render(OM)).filter((x) => x.name === 'ex_room_total');
      expect(samples.map((x) => [x.labels.route, x.value, x.exemplar])).toEqual([
        ['/a', 6, null],
        ['/b', 6, null],
        ['/c', 6, null],
      ]);
      expect(asked).toBeGreaterThanOrEqual(3); // each series' handle asked (and gave up) once
      const warned = logger.warnings.filter((w) => w.includes('no room for an exemplar'));
      expect(warned.length).toBe(1);
      expect(warned[0]).toContain('ex.room');
    } finally {
      addon.exemplarCell = original;
      uninstallLogger();
      await provider.shutdown();
    }
  }, 60_000);
});
