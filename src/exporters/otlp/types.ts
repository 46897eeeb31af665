// The OpenTelemetry JS metrics data model (@opentelemetry/sdk-metrics 1.x/2.x: MetricData.ts,
// MetricProducer.ts, MetricReader.ts; @opentelemetry/resources' Resource), restated
// structurally so that hotmeter needs none of those packages at run time or compile
// time. Values of the enums are the ones sdk-metrics uses; hotmeter's ResourceMetrics
// are assignable to sdk-metrics' types (checked in test/otlp-types.test.ts).
import type { Attributes, AttributeValue, HrTime, ValueType } from '@opentelemetry/api';

/**
 * An aggregation temporality as sdk-metrics numbers it (DELTA 0, CUMULATIVE 1), as a
 * literal type: assignable both from hotmeter's `AggregationTemporality` and to
 * sdk-metrics' (two TypeScript enums never are to each other).
 */
export type OtelAggregationTemporality = 0 | 1;

/** sdk-metrics' `InstrumentType` (string enum). */
export type OtelInstrumentType =
  | 'COUNTER'
  | 'GAUGE'
  | 'HISTOGRAM'
  | 'UP_DOWN_COUNTER'
  | 'OBSERVABLE_COUNTER'
  | 'OBSERVABLE_GAUGE'
  | 'OBSERVABLE_UP_DOWN_COUNTER';

/**
 * sdk-metrics' `DataPointType`, same numbering (a constant object with literal types,
 * not an enum, so that the data types are assignable to sdk-metrics' own).
 */
export const OtelDataPointType = Object.freeze({
  HISTOGRAM: 0,
  EXPONENTIAL_HISTOGRAM: 1,
  GAUGE: 2,
  SUM: 3,
} as const);
/** A value of {@link OtelDataPointType}. */
export type OtelDataPointType = (typeof OtelDataPointType)[keyof typeof OtelDataPointType];

/** @opentelemetry/resources' `Resource` (2.x). */
export interface OtelResource {
  readonly asyncAttributesPending?: boolean;
  readonly attributes: Attributes;
  readonly schemaUrl?: string;
  waitForAsyncAttributes?(): Promise<void>;
  merge(other: OtelResource | null): OtelResource;
  getRawAttributes(): [string, AttributeValue | undefined | Promise<AttributeValue | undefined>][];
}

/** @opentelemetry/core's `InstrumentationScope`. */
export interface OtelInstrumentationScope {
  readonly name: string;
  readonly version?: string;
  readonly schemaUrl?: string;
}

/** sdk-metrics' `MetricDescriptor` (plus `type`, which 1.x exporters read). */
export interface OtelMetricDescriptor {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
  readonly valueType: ValueType;
  /** The instrument's type (sdk-metrics 1.x `InstrumentDescriptor.type`). */
  readonly type: OtelInstrumentType;
}

/** sdk-metrics' `DataPoint<T>`. */
export interface OtelDataPoint<T> {
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly attributes: Attributes;
  readonly value: T;
}

/** sdk-metrics' `Histogram` point value. */
export interface OtelHistogram {
  buckets: { boundaries: number[]; counts: number[] };
  sum?: number;
  count: number;
  min?: number;
  max?: number;
}

/** sdk-metrics' `ExponentialHistogram` point value. */
export interface OtelExponentialHistogram {
  count: number;
  sum?: number;
  scale: number;
  zeroCount: number;
  positive: { offset: number; bucketCounts: number[] };
  negative: { offset: number; bucketCounts: number[] };
  min?: number;
  max?: number;
}

interface OtelBaseMetricData {
  readonly descriptor: OtelMetricDescriptor;
  readonly aggregationTemporality: OtelAggregationTemporality;
  readonly dataPointType: OtelDataPointType;
}
export interface OtelSumMetricData extends OtelBaseMetricData {
  readonly dataPointType: typeof OtelDataPointType.SUM;
  readonly dataPoints: OtelDataPoint<number>[];
  readonly isMonotonic: boolean;
}
export interface OtelGaugeMetricData extends OtelBaseMetricData {
  readonly dataPointType: typeof OtelDataPointType.GAUGE;
  readonly dataPoints: OtelDataPoint<number>[];
}
export interface OtelHistogramMetricData extends OtelBaseMetricData {
  readonly dataPointType: typeof OtelDataPointType.HISTOGRAM;
  readonly dataPoints: OtelDataPoint<OtelHistogram>[];
}
export interface OtelExponentialHistogramMetricData extends OtelBaseMetricData {
  readonly dataPointType: typeof OtelDataPointType.EXPONENTIAL_HISTOGRAM;
  readonly dataPoints: OtelDataPoint<OtelExponentialHistogram>[];
}
/** sdk-metrics' `MetricData`. */
export type OtelMetricData = OtelSumMetricData | OtelGaugeMetricData | OtelHistogramMetricData | OtelExponentialHistogramMetricData;

/** sdk-metrics' `ScopeMetrics`. */
export interface OtelScopeMetrics {
  scope: OtelInstrumentationScope;
  metrics: OtelMetricData[];
}

/** sdk-metrics' `ResourceMetrics`: what an OpenTelemetry JS `PushMetricExporter` exports. */
export interface OtelResourceMetrics {
  resource: OtelResource;
  scopeMetrics: OtelScopeMetrics[];
}

/** sdk-metrics' `CollectionResult`. */
export interface OtelCollectionResult {
  resourceMetrics: OtelResourceMetrics;
  errors: unknown[];
}

/** sdk-metrics' `MetricCollectOptions`. */
export interface OtelMetricCollectOptions {
  timeoutMillis?: number;
}

/** sdk-metrics' `MetricProducer`. */
export interface OtelMetricProducer {
  collect(options?: OtelMetricCollectOptions): Promise<OtelCollectionResult>;
}

/**
 * The part of sdk-metrics' `IMetricReader` (`MetricReader`, `PeriodicExportingMetricReader`)
 * that hotmeter uses. Any object with these methods is taken for an OpenTelemetry JS reader
 * when given to hotmeter's `MeterProvider` as one of its `readers`.
 */
export interface OtelMetricReader {
  // Method syntax (bivariant parameters), so that sdk-metrics' MetricReader, whose
  // setMetricProducer takes sdk-metrics' MetricProducer type, is assignable.
  setMetricProducer(producer: OtelMetricProducer): void;
  selectAggregationTemporality(instrumentType: OtelInstrumentType): number;
  selectAggregation(instrumentType: OtelInstrumentType): unknown;
  collect(options?: unknown): Promise<unknown>;
  forceFlush(options?: unknown): Promise<void>;
  shutdown(options?: unknown): Promise<void>;
}
