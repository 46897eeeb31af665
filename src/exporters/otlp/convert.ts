// CheckpointSet -> OpenTelemetry JS ResourceMetrics: the data model every OpenTelemetry JS
// PushMetricExporter consumes (OTLP over HTTP/JSON, HTTP/protobuf and gRPC, console,
// in-memory, vendors' exporters). hotmeter never writes OTLP itself.
//
// Mapping (hotmeter aggregation -> sdk-metrics DataPointType):
//   sum                              SUM (isMonotonic from the instrument), int or double
//   lastValue                        GAUGE
//   histogram                        HISTOGRAM (explicit bounds, counts, count, sum, min, max)
//   exponentialHistogram             EXPONENTIAL_HISTOGRAM (scale, zeroCount, positive, negative)
//   minMaxSumCount, sketch, exact    HISTOGRAM with no bounds: one bucket holding every value,
//                                    with count, sum, min and max. sdk-metrics' data model has
//                                    no summary, so quantiles cannot travel through its exporters.
// min and max are left unset when nothing was recorded or, for delta points, when the
// interval's extremes are unknown (`hasMinMax: false`).
import type { Attributes, AttributeValue, HrTime } from '@opentelemetry/api';
import { hasMinMax } from '../../export/batchers/merge';
import type { Aggregation } from '../../export/checkpoint-set';
import { AggregationTemporality } from '../../export/temporality';
import { Descriptor, InstrumentationScope, InstrumentKind } from '../../sdk/descriptor';
import type { ExponentialDelta } from './exponential-delta';
import {
  OtelAggregationTemporality,
  OtelDataPoint,
  OtelDataPointType,
  OtelExponentialHistogram,
  OtelHistogram,
  OtelInstrumentType,
  OtelMetricData,
  OtelMetricDescriptor,
  OtelResource,
  OtelResourceMetrics,
  OtelScopeMetrics,
} from './types';

const INSTRUMENT_TYPES: Record<InstrumentKind, OtelInstrumentType> = {
  [InstrumentKind.COUNTER]: 'COUNTER',
  [InstrumentKind.UP_DOWN_COUNTER]: 'UP_DOWN_COUNTER',
  [InstrumentKind.HISTOGRAM]: 'HISTOGRAM',
  [InstrumentKind.GAUGE]: 'GAUGE',
  [InstrumentKind.OBSERVABLE_COUNTER]: 'OBSERVABLE_COUNTER',
  [InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER]: 'OBSERVABLE_UP_DOWN_COUNTER',
  [InstrumentKind.OBSERVABLE_GAUGE]: 'OBSERVABLE_GAUGE',
};

/** The OpenTelemetry JS `InstrumentType` of a hotmeter instrument kind. */
export function otelInstrumentType(kind: InstrumentKind): OtelInstrumentType {
  return INSTRUMENT_TYPES[kind];
}

/** Milliseconds since the epoch as an OpenTelemetry `HrTime` ([seconds, nanoseconds]). */
export function toHrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  const ns = Math.round((ms - s * 1000) * 1e6);
  return ns >= 1e9 ? [s + 1, ns - 1e9] : [s, ns];
}

/**
 * A Resource as @opentelemetry/resources defines it, over fixed attributes (hotmeter's
 * resources have no asynchronous attributes).
 */
export class StaticResource implements OtelResource {
  readonly asyncAttributesPending = false;
  readonly attributes: Attributes;
  readonly schemaUrl: string | undefined;

  /** @param attributes copied (shallow) and frozen. */
  constructor(attributes: Attributes, schemaUrl?: string) {
    this.attributes = Object.freeze({ ...attributes });
    this.schemaUrl = typeof schemaUrl === 'string' && schemaUrl !== '' ? schemaUrl : undefined;
  }

  /** Resolves at once: every attribute is known. */
  waitForAsyncAttributes(): Promise<void> {
    return Promise.resolve();
  }

  /** This resource's attributes overridden by `other`'s (the semantics of @opentelemetry/resources). */
  merge(other: OtelResource | null): OtelResource {
    if (other === null || other === undefined) return this;
    return new StaticResource({ ...this.attributes, ...other.attributes }, other.schemaUrl ?? this.schemaUrl);
  }

  /** The attributes as [key, value] pairs. */
  getRawAttributes(): [string, AttributeValue | undefined][] {
    return Object.entries(this.attributes);
  }
}

/**
 * An OpenTelemetry Resource for a provider's `resource` option: an actual
 * @opentelemetry/resources Resource is used as it is; a plain `{ attributes, schemaUrl? }`
 * becomes a {@link StaticResource}.
 */
export function toOtelResource(resource: { attributes: Attributes } | undefined | null): OtelResource {
  const r = resource as Partial<OtelResource> | undefined | null;
  if (r !== undefined && r !== null && typeof r.merge === 'function' && typeof r.getRawAttributes === 'function') return r as OtelResource;
  const attrs = r !== undefined && r !== null && r.attributes !== null && typeof r.attributes === 'object' ? r.attributes : {};
  return new StaticResource(attrs, r?.schemaUrl);
}

/** A record ready for conversion: a hotmeter record, or an exponential histogram interval. */
export interface OtelPointSource {
  readonly descriptor: Descriptor;
  readonly scope: InstrumentationScope;
  readonly attributes: Attributes;
  readonly startTime: number;
  readonly endTime: number;
  readonly aggregation: Aggregation | ExponentialDeltaAggregation;
}

/** An interval of an exponential histogram (see exponential-delta.ts) as the converter takes it. */
export interface ExponentialDeltaAggregation extends ExponentialDelta {
  readonly kind: 'exponentialHistogramDelta';
}

/** Options of {@link toOtelResourceMetrics}. */
export interface ToResourceMetricsOptions {
  /** Default: the provider's resource as given, else an empty one. */
  resource?: OtelResource | { attributes: Attributes };
  /**
   * The temporality the points have, per instrument kind. Default CUMULATIVE, which is
   * what a CheckpointSet from `provider.collect()` holds; pass the batcher's when its
   * output is delta.
   */
  temporality?: (kind: InstrumentKind) => AggregationTemporality;
}

function metricKind(a: OtelPointSource['aggregation']): OtelDataPointType {
  switch (a.kind) {
    case 'sum':
      return OtelDataPointType.SUM;
    case 'lastValue':
      return OtelDataPointType.GAUGE;
    case 'exponentialHistogram':
    case 'exponentialHistogramDelta':
      return OtelDataPointType.EXPONENTIAL_HISTOGRAM;
    default:
      return OtelDataPointType.HISTOGRAM;
  }
}

/** A finite number, or undefined (OTLP: unset). */
function finite(v: number): number | undefined {
  return Number.isFinite(v) ? v : undefined;
}

function histogramValue(a: Aggregation): OtelHistogram {
  switch (a.kind) {
    case 'histogram': {
      const known = a.count > 0 && hasMinMax(a);
      return {
        // Shared, not copied: each collection builds its own arrays, and exporters only read them.
        buckets: { boundaries: a.boundaries as number[], counts: a.bucketCounts as number[] },
        count: a.count,
        sum: a.sum,
        min: known ? finite(a.min) : undefined,
        max: known ? finite(a.max) : undefined,
      };
    }
    case 'minMaxSumCount':
    case 'sketch':
    case 'exact': {
      const known = a.count > 0 && hasMinMax(a);
      return {
        buckets: { boundaries: [], counts: [a.count] },
        count: a.count,
        sum: a.sum,
        min: known ? finite(a.min) : undefined,
        max: known ? finite(a.max) : undefined,
      };
    }
    default:
      throw new TypeError(`hotmeter: ${a.kind} is not a histogram`);
  }
}

function exponentialValue(a: ExponentialDelta): OtelExponentialHistogram {
  return {
    count: a.count,
    sum: a.sum,
    scale: a.scale,
    zeroCount: a.zeroCount,
    positive: { offset: a.positive.offset, bucketCounts: a.positive.bucketCounts as number[] },
    negative: { offset: a.negative.offset, bucketCounts: a.negative.bucketCounts as number[] },
    min: a.count > 0 && a.min !== undefined ? finite(a.min) : undefined,
    max: a.count > 0 && a.max !== undefined ? finite(a.max) : undefined,
  };
}

interface Building {
  readonly order: number;
  readonly metric: OtelMetricData;
}

/**
 * Converts records (a CheckpointSet, or a batcher's output) to OpenTelemetry JS
 * `ResourceMetrics`: one ScopeMetrics per instrumentation scope, one MetricData per
 * instrument (in first-seen order), one data point per record. Metrics and scopes
 * without points are left out, as @opentelemetry/sdk-metrics does.
 */
export function toOtelResourceMetrics(records: Iterable<OtelPointSource>, options: ToResourceMetricsOptions = {}): OtelResourceMetrics {
  const resource = toOtelResource(options.resource);
  const temporality = options.temporality ?? (() => AggregationTemporality.CUMULATIVE);
  const scopes = new Map<string, { scope: OtelScopeMetrics; metrics: Map<Descriptor, Building> }>();
  let order = 0;
  // Points of one collection share their end time and mostly their start time: one
  // HrTime per distinct millisecond (exporters only read them).
  const times = new Map<number, HrTime>();
  const hr = (ms: number): HrTime => {
    let t = times.get(ms);
    if (t === undefined) times.set(ms, (t = toHrTime(ms)));
    return t;
  };
  for (const r of records) {
    const sc = r.scope;
    const scopeKey = `${sc.name}\0${sc.version ?? ''}\0${sc.schemaUrl ?? ''}`;
    let s = scopes.get(scopeKey);
    if (s === undefined) {
      const scope = { name: sc.name, version: sc.version || undefined, schemaUrl: sc.schemaUrl || undefined };
      s = { scope: { scope, metrics: [] }, metrics: new Map() };
      scopes.set(scopeKey, s);
    }
    let b = s.metrics.get(r.descriptor);
    if (b === undefined) {
      b = { order: order++, metric: newMetric(r, temporality(r.descriptor.kind)) };
      s.metrics.set(r.descriptor, b);
    }
    const startTime = hr(Math.min(r.startTime, r.endTime));
    const endTime = hr(r.endTime);
    const a = r.aggregation;
    const m = b.metric;
    // A view's recordMinMax: false (sdk-metrics): histogram points carry no min and max.
    const noMinMax = r.descriptor.recordMinMax === false;
    switch (m.dataPointType) {
      case OtelDataPointType.SUM:
      case OtelDataPointType.GAUGE: {
        const value = a.kind === 'sum' ? a.sum : a.kind === 'lastValue' ? a.value : NaN;
        (m.dataPoints as OtelDataPoint<number>[]).push({ startTime, endTime, attributes: r.attributes, value });
        break;
      }
      case OtelDataPointType.HISTOGRAM:
        m.dataPoints.push({ startTime, endTime, attributes: r.attributes, value: withoutMinMax(histogramValue(a as Aggregation), noMinMax) });
        break;
      case OtelDataPointType.EXPONENTIAL_HISTOGRAM: {
        const d = a.kind === 'exponentialHistogramDelta' ? a : a.kind === 'exponentialHistogram' ? cumulativeExponential(a) : undefined;
        if (d !== undefined) m.dataPoints.push({ startTime, endTime, attributes: r.attributes, value: withoutMinMax(exponentialValue(d), noMinMax) });
        break;
      }
    }
  }
  const scopeMetrics: OtelScopeMetrics[] = [];
  for (const s of scopes.values()) {
    const built = [...s.metrics.values()].filter((b) => b.metric.dataPoints.length > 0).sort((x, y) => x.order - y.order);
    if (built.length === 0) continue;
    s.scope.metrics = built.map((b) => b.metric);
    scopeMetrics.push(s.scope);
  }
  return { resource, scopeMetrics };
}

function withoutMinMax<T extends { min?: number; max?: number }>(v: T, drop: boolean): T {
  if (drop) {
    v.min = undefined;
    v.max = undefined;
  }
  return v;
}

function cumulativeExponential(a: Extract<Aggregation, { kind: 'exponentialHistogram' }>): ExponentialDelta {
  return { ...a, min: a.count > 0 ? a.min : undefined, max: a.count > 0 ? a.max : undefined };
}

function newMetric(r: OtelPointSource, t: AggregationTemporality): OtelMetricData {
  const d = r.descriptor;
  const descriptor: OtelMetricDescriptor = {
    name: d.name,
    description: d.description,
    unit: d.unit,
    valueType: d.valueType,
    type: otelInstrumentType(d.kind),
  };
  const aggregationTemporality: OtelAggregationTemporality = t === AggregationTemporality.DELTA ? 0 : 1;
  const kind = metricKind(r.aggregation);
  switch (kind) {
    case OtelDataPointType.SUM:
      return {
        descriptor,
        aggregationTemporality,
        dataPointType: OtelDataPointType.SUM,
        isMonotonic: d.monotonic,
        dataPoints: [],
      };
    case OtelDataPointType.GAUGE:
      return { descriptor, aggregationTemporality, dataPointType: OtelDataPointType.GAUGE, dataPoints: [] };
    case OtelDataPointType.EXPONENTIAL_HISTOGRAM:
      return { descriptor, aggregationTemporality, dataPointType: OtelDataPointType.EXPONENTIAL_HISTOGRAM, dataPoints: [] };
    default:
      return { descriptor, aggregationTemporality, dataPointType: OtelDataPointType.HISTOGRAM, dataPoints: [] };
  }
}
