// Drop-in evidence: the same recordings, made through @opentelemetry/api, into
// @opentelemetry/sdk-metrics' own MeterProvider and into hotmeter's, each read by an
// sdk-metrics PeriodicExportingMetricReader with an InMemoryMetricExporter. The
// ResourceMetrics the two exporters receive must agree: scopes, metric descriptors,
// point types, temporality, monotonicity, attributes, values, bucket boundaries and
// counts, exponential histogram buckets. Only timestamps differ (checked for sanity),
// and the documented differences are normalised explicitly:
//  * a delta histogram's min/max: sdk-metrics keeps per-interval extremes, hotmeter's
//    cumulative cells know them only when the interval moved them (else unset); when
//    hotmeter sets them they must equal sdk-metrics';
//  * a delta exponential histogram: sdk-metrics starts each interval at the maximum
//    scale, hotmeter keeps the cumulative scale; compared at the lower of the two scales.
import { metrics as apiMetrics, ValueType, type Attributes, type Meter as ApiMeter } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality as SdkTemporality,
  AggregationType,
  InMemoryMetricExporter,
  MeterProvider as SdkMeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { AggregationKind, MeterProvider } from '../src';
import { alignExponential, checkKnownMinMax, checkTimes, compareSums, normalize, prng, randInt, withoutMinMax } from './helpers';

const HOSTILE = ['quote " inside', 'new\nline', 'back\\slash', 'unicode ✓ 日本語 😀', '{k="v"}', ''];
const ATTRS: Attributes[] = [
  {},
  { method: 'GET', status: 200, ok: true, ratio: 0.5 },
  { method: 'POST', status: 500, ok: false, ratio: 1.25 },
  { list: ['a', 'b'], nums: [1, 2.5], flags: [true] },
  ...HOSTILE.map((h, i) => ({ hostile: h, i })),
];

interface Instruments {
  record(rand: () => number, round: number, attrs: Attributes): void;
}

/** Creates the same instruments on any @opentelemetry/api Meter and records the same way. */
function instruments(meter: ApiMeter, meter2: ApiMeter, observed: { total: number; gauge: number }): Instruments {
  const counter = meter.createCounter('requests', { valueType: ValueType.INT, description: 'requests "served"\n✓', unit: '{request}' });
  const dcounter = meter.createCounter('bytes', { unit: 'By' });
  const updown = meter.createUpDownCounter('inflight');
  const hist = meter.createHistogram('latency', { unit: 's', advice: { explicitBucketBoundaries: [0.01, 0.1, 1, 10] } });
  const defHist = meter.createHistogram('size');
  const exp = meter.createHistogram('exp', { unit: 'ms' });
  const gauge = meter.createGauge('temperature');
  const ocounter = meter.createObservableCounter('o.counter', { valueType: ValueType.INT });
  const oupdown = meter.createObservableUpDownCounter('o.updown');
  const ogauge = meter.createObservableGauge('o.gauge');
  ocounter.addCallback((r) => {
    r.observe(observed.total, { src: 'a' });
    r.observe(observed.total * 2, { src: 'b', hostile: HOSTILE[1] });
  });
  oupdown.addCallback((r) => r.observe(-observed.total / 4 - 0.5, { src: 'a' }));
  ogauge.addCallback((r) => r.observe(observed.gauge, { src: HOSTILE[3] }));
  const other = meter2.createCounter('other.count');
  return {
    record(rand, round, attrs) {
      counter.add(randInt(rand, 1, 9), attrs);
      dcounter.add(randInt(rand, 1, 4096) / 64, attrs);
      // Never nets to zero in an interval: hotmeter tells updates by a changed value, so
      // an up-down series whose updates cancel out exports no delta point (sdk-metrics
      // exports a 0).
      updown.add(randInt(rand, -9, 9) + 1 / 1024, attrs);
      hist.record([0, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50][randInt(rand, 0, 8)], attrs);
      defHist.record(randInt(rand, 0, 20000), attrs);
      exp.record(round === 0 && randInt(rand, 0, 3) === 0 ? 0 : rand() * 10 ** randInt(rand, -3, 3 + round), attrs);
      gauge.record(randInt(rand, -100, 100) / 4, attrs);
      if (attrs === ATTRS[1]) other.add(1.5, { k: 'v' });
    },
  };
}

async function run(temporality: SdkTemporality, rounds: number, hotmeterOptions: { reclamation?: boolean }): Promise<void> {
  const resource = resourceFromAttributes({ 'service.name': 'parity', 'service.version': HOSTILE[0], n: 3 });
  const views = { sdk: [{ instrumentName: 'exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }] };
  const sdkExporter = new InMemoryMetricExporter(temporality);
  const sdkReader = new PeriodicExportingMetricReader({ exporter: sdkExporter, exportIntervalMillis: 3_600_000 });
  const sdk = new SdkMeterProvider({ resource, readers: [sdkReader], views: views.sdk });
  const hmExporter = new InMemoryMetricExporter(temporality);
  const hmReader = new PeriodicExportingMetricReader({ exporter: hmExporter, exportIntervalMillis: 3_600_000 });
  const hm = new MeterProvider({
    resource,
    readers: [hmReader],
    views: [{ instrumentName: 'exp', aggregation: AggregationKind.EXPONENTIAL_HISTOGRAM }],
    ...hotmeterOptions,
  });
  const observed = { total: 0, gauge: 0 };
  const both = [sdk, hm].map((p) =>
    instruments(p.getMeter('parity.scope', '2.0.0', { schemaUrl: 'https://opentelemetry.io/schemas/1.24.0' }), p.getMeter('second'), observed),
  );
  // The global provider plays no part; make sure of it.
  expect(apiMetrics.getMeterProvider()).not.toBe(hm);
  try {
    for (let n = 0; n < rounds; n++) {
      // Identical random streams for both providers.
      const rands = [prng(1000 + n), prng(1000 + n)];
      const pick = prng(77 + n);
      for (const attrs of ATTRS) {
        if (n > 0 && pick() < 0.3) continue; // some series sit out some rounds
        const times = randInt(pick, 1, 5);
        for (let k = 0; k < times; k++) both.forEach((inst, i) => inst.record(rands[i], n, attrs));
      }
      observed.total += n === 2 ? 0 : 10 + n;
      observed.gauge = n * 1.5 - 2;
      await sdkReader.forceFlush();
      await hmReader.forceFlush();
      const sdkRm = sdkExporter.getMetrics()[n];
      const hmRm = hmExporter.getMetrics()[n];
      expect(sdkRm, `round ${n}: sdk-metrics exported`).toBeDefined();
      expect(hmRm, `round ${n}: hotmeter exported`).toBeDefined();
      expect(hmRm.resource).toBe(resource); // the user's Resource object, as sdk-metrics passes it
      checkTimes(hmRm, sdkRm);
      checkKnownMinMax(hmRm, sdkRm);
      compareSums(hmRm, sdkRm);
      alignExponential(hmRm, sdkRm);
      const drop = withoutMinMax(hmRm);
      if (temporality === SdkTemporality.CUMULATIVE) expect([...drop.min, ...drop.max]).toEqual([]);
      expect(normalize(hmRm), `round ${n}`).toEqual(normalize(sdkRm, drop));
    }
  } finally {
    await sdk.shutdown();
    await hm.shutdown();
  }
}

describe('hotmeter ResourceMetrics equal @opentelemetry/sdk-metrics\' for the same recordings', () => {
  it('cumulative, every instrument kind, over several exports (reclamation off: sdk-metrics keeps idle series)', async () => {
    await run(SdkTemporality.CUMULATIVE, 5, { reclamation: false });
  });

  it('delta, every instrument kind, over several exports (series sitting out rounds are reclaimed and come back)', async () => {
    await run(SdkTemporality.DELTA, 6, {});
  });
});

describe('parity: observations made during another reader\'s collection', () => {
  // Callbacks run in every reader's collection. A series observed only in a cumulative
  // reader's collection, between two of a delta reader's, counts for the delta reader too,
  // in sdk-metrics as here: its next export carries the change even if its own
  // collection's callbacks did not observe the series.
  it('a delta reader exports what a callback observed for another reader, as sdk-metrics does', async () => {
    const run = async (peer: 'hotmeter' | 'sdk'): Promise<string[]> => {
      const cumulative = new InMemoryMetricExporter(SdkTemporality.CUMULATIVE);
      const cReader = new PeriodicExportingMetricReader({ exporter: cumulative, exportIntervalMillis: 3_600_000 });
      const delta = new InMemoryMetricExporter(SdkTemporality.DELTA);
      const dReader = new PeriodicExportingMetricReader({ exporter: delta, exportIntervalMillis: 3_600_000 });
      const provider = peer === 'hotmeter' ? new MeterProvider({ readers: [cReader, dReader] }) : new SdkMeterProvider({ readers: [cReader, dReader] });
      let value = 10;
      let observe = true;
      provider.getMeter('m').createObservableCounter('obs').addCallback((r) => {
        if (observe) r.observe(value, { s: 'x' });
      });
      const points = (e: InMemoryMetricExporter): string => {
        const out: unknown[] = [];
        for (const rm of e.getMetrics()) for (const sm of rm.scopeMetrics) for (const m of sm.metrics) for (const d of m.dataPoints) out.push(d.value);
        e.reset();
        return JSON.stringify(out);
      };
      const log: string[] = [];
      await dReader.forceFlush();
      log.push(points(delta));
      value = 20;
      await cReader.forceFlush();
      log.push(points(cumulative));
      observe = false;
      await dReader.forceFlush();
      log.push(points(delta));
      observe = true;
      value = 25;
      await dReader.forceFlush();
      log.push(points(delta));
      await provider.shutdown();
      return log;
    };
    const sdk = await run('sdk');
    expect(sdk).toEqual(['[10]', '[20]', '[10]', '[5]']);
    expect(await run('hotmeter')).toEqual(sdk);
  });
});
