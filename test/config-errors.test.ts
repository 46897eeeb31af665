// Options hotmeter does not know or cannot honour are a TypeError naming the option when
// the provider is constructed, never silently ignored.
import {
  AggregationTemporality,
  AggregationType,
  InMemoryMetricExporter,
  InstrumentType,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';

type AnyOptions = ConstructorParameters<typeof MeterProvider>[0] & Record<string, unknown>;
const make = (o: unknown) => () => new MeterProvider(o as AnyOptions);
const view = (v: Record<string, unknown>) => make({ views: [{ instrumentName: 'x', ...v }] });

function readerWith(selectors: { aggregationSelector?: (t: InstrumentType) => unknown; cardinalitySelector?: (t: InstrumentType) => unknown }) {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  if (selectors.aggregationSelector !== undefined) Object.assign(exporter, { selectAggregation: selectors.aggregationSelector });
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  if (selectors.cardinalitySelector !== undefined) Object.assign(reader, { _cardinalitySelector: selectors.cardinalitySelector });
  return reader;
}

describe('MeterProvider options', () => {
  it('an unknown provider option', () => {
    expect(make({ metricReaders: [] })).toThrow(/unknown MeterProvider option metricReaders/);
    expect(make({ view: [] })).toThrow(TypeError);
  });
  it('sdkMetricsEnabled: true is not supported; false is the default', () => {
    expect(make({ sdkMetricsEnabled: true })).toThrow(/sdkMetricsEnabled/);
    expect(make({ sdkMetricsEnabled: false })).not.toThrow();
  });
  it('a resource without attributes, views or readers that are not arrays', () => {
    expect(make({ resource: 'svc' })).toThrow(/resource/);
    expect(make({ views: {} })).toThrow(/views must be an array/);
    expect(make({ readers: {} })).toThrow(/readers must be an array/);
  });
});

describe('view options', () => {
  it('an unknown view option', () => {
    expect(view({ aggregationType: AggregationType.SUM })).toThrow(/unknown view option aggregationType/);
    expect(view({ attributeProcessors: [] })).toThrow(/unknown view option attributeProcessors/);
  });
  it('an unknown aggregation type, or an unknown key beside type and options', () => {
    expect(view({ aggregation: { type: 9 } })).toThrow(/view\.aggregation\.type 9/);
    expect(view({ aggregation: { type: AggregationType.SUM, temporality: 1 } })).toThrow(/view\.aggregation\.temporality/);
    expect(view({ aggregation: 'sum' })).toThrow(/view\.aggregation/);
  });
  it('aggregation options the type does not take', () => {
    expect(view({ aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [1], buckets: 3 } } })).toThrow(
      /view\.aggregation\.options\.buckets/,
    );
    expect(view({ aggregation: { type: AggregationType.SUM, options: { monotonic: true } } })).toThrow(/view\.aggregation\.options\.monotonic/);
    expect(view({ aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxScale: 3 } } })).toThrow(/options\.maxScale/);
  });
  it('bad aggregation option values', () => {
    expect(view({ aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [5, 1] } } })).toThrow(/boundaries/);
    expect(view({ aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 1 } } })).toThrow(/maxSize/);
    expect(view({ aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { recordMinMax: 'no' } } })).toThrow(/recordMinMax/);
    expect(view({ explicitBucketBoundaries: [1, 1] })).toThrow(/explicitBucketBoundaries/);
  });
  it('an aggregation the selected instrument type cannot take', () => {
    expect(make({ views: [{ instrumentType: InstrumentType.HISTOGRAM, aggregation: { type: AggregationType.SUM } }] })).toThrow(/SUM.*HISTOGRAM/);
    expect(make({ views: [{ instrumentType: InstrumentType.COUNTER, aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM } }] })).toThrow(
      /HISTOGRAM.*COUNTER/,
    );
  });
  it('attributesProcessors that are not processors', () => {
    expect(view({ attributesProcessors: [{}] })).toThrow(/attributesProcessors/);
    expect(view({ attributesProcessors: (a: unknown) => a })).toThrow(/attributesProcessors/);
  });
  it('bad limits, and both names of the limit', () => {
    expect(view({ aggregationCardinalityLimit: 0 })).toThrow(/aggregationCardinalityLimit/);
    expect(view({ aggregationCardinalityLimit: 5, cardinalityLimit: 5 })).toThrow(/not both/);
  });
  it('selection and renaming as sdk-metrics requires', () => {
    expect(make({ views: [{ name: 'x' }] })).toThrow(/selection criterion/);
    expect(make({ views: [{ instrumentType: InstrumentType.COUNTER, name: 'x' }] })).toThrow(/renames/);
    expect(view({ instrumentUnit: 5 })).toThrow(/instrumentUnit must be a string/);
  });
});

describe('reader options (sdk-metrics readers)', () => {
  it('an aggregationSelector asking for an aggregation the instrument type cannot take', () => {
    const r = readerWith({ aggregationSelector: (t) => (t === InstrumentType.HISTOGRAM ? { type: AggregationType.SUM } : { type: AggregationType.DEFAULT }) });
    expect(make({ readers: [r] })).toThrow(/selectAggregation\(HISTOGRAM\).*SUM/);
  });
  it('an aggregationSelector returning an unknown type or option', () => {
    expect(make({ readers: [readerWith({ aggregationSelector: () => ({ type: 42 }) })] })).toThrow(/selectAggregation\(COUNTER\)\.type 42/);
    expect(
      make({ readers: [readerWith({ aggregationSelector: () => ({ type: AggregationType.DEFAULT, options: { boundaries: [1] } }) })] }),
    ).toThrow(/options\.boundaries/);
  });
  it('a cardinalitySelector returning something other than a positive integer', () => {
    expect(make({ readers: [readerWith({ cardinalitySelector: () => 0 })] })).toThrow(/selectCardinalityLimit\(COUNTER\)/);
  });
});
