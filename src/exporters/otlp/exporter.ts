// An OTLP/HTTP protobuf metric exporter with the configuration and transport of
// @opentelemetry/exporter-metrics-otlp-proto's OTLPMetricExporter, whose request is
// encoded in slices (./protobuf-encoder) instead of in one synchronous call.
//
// It is built as that exporter builds itself (0.2xx): an OTLP/HTTP export delegate from
// @opentelemetry/otlp-exporter-base/node-http over the options convertLegacyHttpOptions
// derives from the configuration and the OTEL_EXPORTER_OTLP_(METRICS_)* variables (URL,
// headers, timeout, compression, concurrency limit, agent), so retries with backoff,
// headers, gzip and timeouts are the transport's own; and an OTLPMetricExporterBase from
// @opentelemetry/exporter-metrics-otlp-http for temporality and aggregation selection. The
// delegate serializes with a serializer that hands back the bytes encoded beforehand.
//
// Those packages are loaded when an exporter is constructed (hotmeter does not depend on
// them; whoever uses exporter-metrics-otlp-proto has them installed), from the
// application or else from where exporter-metrics-otlp-proto is installed.
import type { MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import type * as http from 'node:http';
import type * as https from 'node:https';
import { createRequire } from 'node:module';
import { ExportResultCode, type ExportResult } from '../../export/exporter';
import { encodeMetricsRequest, type MetricsEncodeOptions } from './protobuf-encoder';
import type { OtelInstrumentType, OtelResourceMetrics } from './types';

/**
 * The configuration of @opentelemetry/exporter-metrics-otlp-proto's `OTLPMetricExporter`
 * (`OTLPExporterNodeConfigBase & OTLPMetricExporterOptions`), restated structurally, plus
 * `encoding`.
 */
export interface OTLPMetricExporterOptions {
  /** Collector URL. Default: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics, http://localhost:4318/v1/metrics. */
  url?: string;
  /** Headers of every request, or a function that returns them (may be async; must not throw). */
  headers?: Record<string, string> | (() => Promise<Record<string, string>>);
  /** Time for one export, retries included, in milliseconds. Default 10000. */
  timeoutMillis?: number;
  /** Exports in flight at most (encoding or sending); more fail at once. Default 30. */
  concurrencyLimit?: number;
  /** `'gzip'` or `'none'` (default, or OTEL_EXPORTER_OTLP_METRICS_COMPRESSION). */
  compression?: 'gzip' | 'none';
  /** keepAlive of the HTTP(S) agent. Default true. */
  keepAlive?: boolean;
  /** Options of the HTTP(S) agent, or a factory of agents. */
  httpAgentOptions?: http.AgentOptions | https.AgentOptions | ((protocol: string) => http.Agent | https.Agent | Promise<http.Agent | https.Agent>);
  /** Prepended to the exporter's User-Agent. */
  userAgent?: string;
  /**
   * sdk-metrics' `AggregationTemporalityPreference` (DELTA 0, CUMULATIVE 1, LOWMEMORY 2) or
   * `AggregationTemporality`. Default: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, cumulative.
   */
  temporalityPreference?: number;
  /** sdk-metrics' `AggregationSelector`. */
  aggregationPreference?(instrumentType: OtelInstrumentType): unknown;
  /** A MeterProvider for the exporter's own metrics (experimental upstream). */
  selfObsMeterProvider?: ApiMeterProvider;
  /** How the request is encoded in slices (hotmeter's; the defaults suit every size). */
  encoding?: MetricsEncodeOptions;
}

/** The exporter's result callback's argument (@opentelemetry/core's `ExportResult`). */
type ResultCallback = (result: ExportResult) => void;

// The parts of the OpenTelemetry JS packages used here (0.2xx).
interface Serializer {
  serializeRequest(request: unknown): Uint8Array | undefined;
  deserializeResponse(data: Uint8Array): unknown;
}
interface ExporterBase {
  export(items: unknown, resultCallback: ResultCallback): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
  setMetrics(metrics: unknown): void;
  selectAggregationTemporality(instrumentType: OtelInstrumentType): number;
  selectAggregation(instrumentType: OtelInstrumentType): unknown;
}
interface Upstream {
  OTLPMetricExporterBase: new (delegate: unknown, config: OTLPMetricExporterOptions) => ExporterBase;
  convertLegacyHttpOptions(config: object, signal: string, path: string, headers: Record<string, string>): { concurrencyLimit: number; url: string };
  createOtlpHttpExportDelegate(options: unknown, serializer: Serializer, componentType: string, helper: unknown, meterProvider: ApiMeterProvider | undefined): unknown;
  createOtlpHttpExporterMetrics(componentType: string, helper: unknown, url: string | undefined, meterProvider: ApiMeterProvider): unknown;
  ProtobufMetricsSerializer: Serializer;
  MetricsExporterMetricsHelper: unknown;
}

/** exporter-metrics-otlp-proto's component type for its own metrics. */
const COMPONENT_TYPE = 'otlp_http_metric_exporter';

let upstream: Upstream | undefined;

function loadUpstream(): Upstream {
  if (upstream !== undefined) return upstream;
  const load = (req: NodeJS.Require): Upstream => {
    const base = req('@opentelemetry/exporter-metrics-otlp-http') as Pick<Upstream, 'OTLPMetricExporterBase'>;
    const nodeHttp = req('@opentelemetry/otlp-exporter-base/node-http') as Pick<
      Upstream,
      'convertLegacyHttpOptions' | 'createOtlpHttpExportDelegate' | 'createOtlpHttpExporterMetrics'
    >;
    const transformer = req('@opentelemetry/otlp-transformer') as Pick<Upstream, 'ProtobufMetricsSerializer' | 'MetricsExporterMetricsHelper'>;
    return { ...base, ...nodeHttp, ...transformer } as Upstream;
  };
  try {
    upstream = load(require);
  } catch (direct) {
    try {
      upstream = load(createRequire(require.resolve('@opentelemetry/exporter-metrics-otlp-proto')));
    } catch {
      throw new Error(
        'hotmeter OTLPMetricExporter needs @opentelemetry/exporter-metrics-otlp-proto (or @opentelemetry/exporter-metrics-otlp-http, ' +
          `@opentelemetry/otlp-exporter-base and @opentelemetry/otlp-transformer) installed: ${String(direct)}`,
      );
    }
  }
  return upstream;
}

const failed = (error: unknown): ExportResult => ({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });

/**
 * An OTLP/HTTP protobuf metric exporter: @opentelemetry/exporter-metrics-otlp-proto's
 * `OTLPMetricExporter` (same configuration, same environment variables, same transport
 * with its retries, headers, compression, timeouts and concurrency limit) whose request is
 * encoded asynchronously, in slices of a few milliseconds, so that exporting a large
 * collection does not stall the event loop. The bytes sent are those the upstream exporter
 * sends. Swap the import to use it:
 *
 * ```ts
 * import { OTLPMetricExporter } from 'hotmeter'; // was '@opentelemetry/exporter-metrics-otlp-proto'
 * new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url, compression: 'gzip' }) });
 * ```
 *
 * It exports ResourceMetrics from any producer (hotmeter's MeterProvider, sdk-metrics').
 * It is a `PushMetricExporter`, not an `instanceof` the upstream classes. Constructing one
 * needs @opentelemetry/exporter-metrics-otlp-proto (or the three packages it builds on)
 * installed. The ResourceMetrics given to `export` must not change until its callback runs.
 */
export class OTLPMetricExporter {
  private readonly base: ExporterBase;
  private readonly up: Upstream;
  private readonly url: string | undefined;
  private readonly concurrencyLimit: number;
  private readonly encoding: MetricsEncodeOptions;
  /** Requests encoded and about to be handed to the delegate, by the ResourceMetrics it will serialize. */
  private readonly encoded = new WeakMap<object, Uint8Array>();
  /** Encodings in progress (forceFlush and shutdown wait for them). */
  private readonly encodings = new Set<Promise<void>>();
  /** Exports called and not yet called back. */
  private inFlight = 0;

  constructor(config: OTLPMetricExporterOptions = {}) {
    const up = loadUpstream();
    this.up = up;
    this.url = config.url;
    this.encoding = config.encoding ?? {};
    const options = up.convertLegacyHttpOptions(config, 'METRICS', 'v1/metrics', { 'Content-Type': 'application/x-protobuf' });
    this.concurrencyLimit = options.concurrencyLimit;
    const serializer: Serializer = {
      // The delegate serializes the very ResourceMetrics export() encoded; any other
      // (none is expected) is serialized as the upstream exporter does.
      serializeRequest: (request) => this.encoded.get(request as object) ?? up.ProtobufMetricsSerializer.serializeRequest(request),
      deserializeResponse: (data) => up.ProtobufMetricsSerializer.deserializeResponse(data),
    };
    const delegate = up.createOtlpHttpExportDelegate(options, serializer, COMPONENT_TYPE, up.MetricsExporterMetricsHelper, config.selfObsMeterProvider);
    this.base = new up.OTLPMetricExporterBase(delegate, config);
  }

  /** Encodes `metrics` in slices, then sends them through the OTLP/HTTP transport; `resultCallback` gets the outcome. */
  export(metrics: OtelResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    if (this.inFlight >= this.concurrencyLimit) {
      resultCallback(failed(new Error('Concurrent export limit reached')));
      return;
    }
    this.inFlight++;
    let called = false;
    const done = (result: ExportResult): void => {
      if (called) return;
      called = true;
      this.inFlight--;
      resultCallback(result);
    };
    const encoding = encodeMetricsRequest(metrics, this.encoding).then(
      (bytes) => {
        this.encoded.set(metrics, bytes);
        try {
          this.base.export(metrics, done); // serializes synchronously, then sends
        } catch (e) {
          done(failed(e));
        } finally {
          this.encoded.delete(metrics);
        }
      },
      (e: unknown) => done(failed(e)),
    );
    const tracked = encoding.finally(() => this.encodings.delete(tracked));
    this.encodings.add(tracked);
  }

  /** Waits for the exports in progress (encoding, then sending). */
  async forceFlush(): Promise<void> {
    await Promise.allSettled([...this.encodings]);
    await this.base.forceFlush();
  }

  /** Waits for the exports in progress, then shuts the transport down. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.encodings]);
    await this.base.shutdown();
  }

  /** The temporality for an instrument type (configuration or environment; cumulative by default). */
  selectAggregationTemporality(instrumentType: OtelInstrumentType): number {
    return this.base.selectAggregationTemporality(instrumentType);
  }

  /** The aggregation for an instrument type (`aggregationPreference`; the default otherwise). */
  // sdk-metrics' AggregationOption, which hotmeter does not restate.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  selectAggregation(instrumentType: OtelInstrumentType): any {
    return this.base.selectAggregation(instrumentType);
  }

  /**
   * Sets the MeterProvider for the exporter's own metrics (as the upstream exporter's,
   * experimental there).
   */
  setSelfObsMeterProvider(meterProvider: ApiMeterProvider): void {
    this.base.setMetrics(this.up.createOtlpHttpExporterMetrics(COMPONENT_TYPE, this.up.MetricsExporterMetricsHelper, this.url, meterProvider));
  }
}
