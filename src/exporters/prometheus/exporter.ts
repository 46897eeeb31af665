// PrometheusExporter: a pull endpoint (the pull controller) for one MeterProvider. Each
// scrape is one collection, written as the text format 0.0.4 or OpenMetrics 1.0.0 as the
// scraper's Accept header asks. Attached to a hotmeter MeterProvider, the provider writes
// the text natively from a snapshot of its checkpoints (taken on the JS thread: one
// consistent cut) on a libuv pool thread (the event loop is free meanwhile; see
// MeterProvider's collectPrometheus); attached to any other MetricProducer,
// the exporter renders that producer's CheckpointSet in JavaScript (serializer.ts).
//
// Serve it on its own port (node:http, 127.0.0.1:9464/metrics by default), or mount
// `requestHandler` in your server (express, fastify's raw request/reply, node:http), or
// take the text with render() / scrape() / renderStream().
//
// Responses to clients that misbehave are bounded (output-budget.ts): streamed parts are
// written only within outputBudgetBytes, a response without write progress for
// writeTimeoutMillis is closed, and shutdown() closes what is left after its grace. A
// client that accepts gzip gets one gzip stream (node:zlib, on the libuv pool).
//
// Size: ~650 lines on purpose: the HTTP endpoint's limits, the shared scrapes and the
// streamed responses hold one set of invariants about whose memory a response may keep;
// the text itself is written elsewhere (serializer.ts, the native writer).
import * as http from 'node:http';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { diag } from '@opentelemetry/api';
import type { MetricProducer, MetricReader, PrometheusCollectOptions, PrometheusPassNotes, PrometheusStream } from '../../export/reader';
import { negotiateFormat, NegotiatedFormat, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_PROTOBUF_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE } from './negotiate';
import { warnLimited } from '../../sdk/diag';
import {
  constantLabelText,
  DEFAULT_SUMMARY_QUANTILES,
  type MergeHow,
  mergedSeriesWarning,
  PrometheusFormatOptions,
  serializeText,
  TARGET_INFO_NAMES,
  targetInfoLabels,
  targetInfoText,
} from './serializer';
import { SharedStream, type StreamReader } from './shared-stream';
import { acceptsGzip, OutputBudget, type Watched } from './output-budget';

export { PROMETHEUS_TEXT_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_PROTOBUF_CONTENT_TYPE };

/** Options of {@link PrometheusExporter}. */
export interface PrometheusExporterOptions {
  /** Interface to listen on. Default '127.0.0.1'. */
  host?: string;
  /** Port; 0 picks a free one. Default 9464. */
  port?: number;
  /** Path served. Default '/metrics'. */
  endpoint?: string;
  /**
   * Prepended to every metric name with '_' (@opentelemetry/exporter-prometheus' `prefix`):
   * `prefix: 'app'` names `requests` `app_requests_total`.
   */
  prefix?: string;
  /** Every sample carries the collection's time, ms (exporter-prometheus' `appendTimestamp`). */
  appendTimestamp?: boolean;
  /** Resource attributes whose names match: labels of every sample (exporter-prometheus' option). */
  withResourceConstantLabels?: RegExp;
  /**
   * Names without the unit word (`http_server_duration`, not `http_server_duration_seconds`),
   * and no OpenMetrics UNIT: the names @opentelemetry/exporter-prometheus writes, so
   * dashboards built on them keep working (the OpenTelemetry Go exporter's WithoutUnits).
   * Counters keep `_total`, as in exporter-prometheus.
   */
  withoutUnits?: boolean;
  /**
   * Counters without `_total` in the text format (the OpenTelemetry Go exporter's
   * WithoutCounterSuffixes); OpenMetrics requires the suffix and keeps it.
   */
  withoutCounterSuffixes?: boolean;
  /** Do not listen; mount {@link PrometheusExporter.requestHandler} or call render() instead. */
  preventServerStart?: boolean;
  /** Answer OpenMetrics 1.0.0 to scrapers that ask for it. Default true; false always sends the text format. */
  openMetrics?: boolean;
  /**
   * Answer the Prometheus protobuf format (native histograms) to scrapers that ask for it
   * first, as Prometheus does with `--enable-feature=native-histograms`. Default true; needs
   * a hotmeter MeterProvider (other producers get text).
   */
  protobuf?: boolean;
  /** Leave out the otel_scope_name / otel_scope_version labels (written by default, as OpenTelemetry specifies). */
  withoutScopeInfo?: boolean;
  /** Leave out target_info (the provider's resource attributes). */
  withoutTargetInfo?: boolean;
  /**
   * Quantiles of summaries (sketch and exact aggregations), each in [0, 1]. Default
   * prom-client's [0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999]; an instrument created with
   * `advice: { quantiles }` shows its own.
   */
  summaryQuantiles?: readonly number[];
  /**
   * Built-in server: a request whose headers are not all in after this long is answered
   * 408 and closed (a client trickling its headers cannot hold a connection), ms.
   * Default 10 000.
   */
  headersTimeoutMillis?: number;
  /**
   * Built-in server: a connection with no traffic either way for this long is closed, ms
   * (node's socket timeout: after one to two of these when a write was pending): an idle
   * connection, a client that stopped reading its response (the scrape it holds is then
   * released). A collection must also start the response within this time. Default 30 000.
   */
  idleTimeoutMillis?: number;
  /** Built-in server: connections beyond this many at once are closed on arrival. Default 1024. */
  maxConnections?: number;
  /** Built-in server: request headers larger than this are answered 431, bytes. Default 16 384. */
  maxHeaderSize?: number;
  /**
   * requestHandler (and so the built-in server), with a hotmeter MeterProvider: the text is
   * written and sent in parts of about this many bytes, each written while the previous
   * one is sent, so a scrape holds a few parts in memory, never its whole text. A text of
   * one part is answered with Content-Length, a longer one with chunked transfer
   * encoding. Bytes, in [4096, 2^30]; default 4 MiB.
   */
  partBytes?: number;
  /**
   * requestHandler (and so the built-in server), with a hotmeter MeterProvider: output
   * memory held for responses in flight (streamed parts written and not yet sent, gzip
   * state), across all scrapes of this exporter. A part is written only when it fits;
   * meanwhile its scrape waits, and the response stalled longest (no write progress for a
   * second or more) is closed to make room; a scrape still without room after
   * writeTimeoutMillis gets 503 with Retry-After. One part is always allowed when nothing
   * is held. Bytes; default 64 MiB.
   */
  outputBudgetBytes?: number;
  /**
   * requestHandler (and so the built-in server): a response whose writes make no progress
   * (the client does not read) for this long is closed, releasing its scrape and the
   * snapshot it holds, ms. Default 10 000.
   */
  writeTimeoutMillis?: number;
  /**
   * shutdown(): responses still being sent after this long are closed (and the built-in
   * server's connections with them), ms. Default 3 000.
   */
  shutdownGraceMillis?: number;
  /**
   * Answer scrapes that send `Accept-Encoding: gzip` (Prometheus does) with a gzip body,
   * compressed on the libuv pool (node:zlib) as the parts are sent: `true` (level 1, the
   * default), `false` (never), or the zlib level 1-9.
   */
  compression?: boolean | number;
}

/** Limits of the built-in server. */
interface ServerLimits {
  readonly headersTimeout: number;
  readonly idleTimeout: number;
  readonly maxConnections: number;
  readonly maxHeaderSize: number;
}

/**
 * requestHandler's default part size: a few of these per scrape in memory. Against 8 MiB at
 * 100,000 series (ad hoc, interleaved runs): a first scrape 59-67 ms against 77-105 ms (half
 * the fresh output memory in flight), later ones ~6 ms slower (more parts, each split
 * between the serialization threads on its own).
 */
const DEFAULT_PART_BYTES = 4 << 20;

/** Default outputBudgetBytes: a few scrapes of a large registry at full speed (~3 parts each). */
const DEFAULT_OUTPUT_BUDGET = 64 << 20;
/** What one gzip response holds besides the parts: deflate's state (window 2^15, memLevel 8) and buffers. */
const GZIP_STATE_BYTES = 320 << 10;
/** A response stalled this long may be closed when a scrape waits for budget, ms. */
const EVICT_AFTER_MILLIS = 1_000;

function limit(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TypeError(`hotmeter: ${name} must be a positive integer`);
  return v;
}

/** Every option {@link PrometheusExporter} knows; any other key is a TypeError naming it. */
const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  'host', 'port', 'endpoint', 'prefix', 'appendTimestamp', 'withResourceConstantLabels', 'withoutUnits',
  'withoutCounterSuffixes', 'preventServerStart', 'openMetrics', 'protobuf', 'withoutScopeInfo', 'withoutTargetInfo',
  'summaryQuantiles', 'headersTimeoutMillis', 'idleTimeoutMillis', 'maxConnections', 'maxHeaderSize', 'partBytes',
  'outputBudgetBytes', 'writeTimeoutMillis', 'shutdownGraceMillis', 'compression',
  'metricProducers', // exporter-prometheus' own: rejected with its reason below
]);

function rejectUnknownOptions(o: object): void {
  if (o === null || typeof o !== 'object') throw new TypeError('hotmeter: PrometheusExporter options must be an object');
  for (const k of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(k)) throw new TypeError(`hotmeter: unknown PrometheusExporter option ${JSON.stringify(k)}`);
  }
}

/** @opentelemetry/exporter-prometheus' naming and label options, checked (TypeError). */
function exporterPrometheusOptions(o: PrometheusExporterOptions & { metricProducers?: unknown }): Partial<PrometheusCollectOptions> {
  if (o.metricProducers !== undefined) {
    throw new TypeError('hotmeter: PrometheusExporter option metricProducers is not supported (give the provider a HotmeterMetricProducer reader instead)');
  }
  if (o.prefix !== undefined && !(typeof o.prefix === 'string' && /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(o.prefix))) {
    throw new TypeError('hotmeter: PrometheusExporter option prefix must be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)');
  }
  if (o.withResourceConstantLabels !== undefined && !(o.withResourceConstantLabels instanceof RegExp)) {
    throw new TypeError('hotmeter: PrometheusExporter option withResourceConstantLabels must be a RegExp');
  }
  for (const k of ['appendTimestamp', 'withoutUnits', 'withoutCounterSuffixes'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new TypeError(`hotmeter: PrometheusExporter option ${k} must be a boolean`);
  }
  return {
    namePrefix: o.prefix ? `${o.prefix}_` : undefined,
    withoutUnits: o.withoutUnits === true,
    withoutCounterSuffixes: o.withoutCounterSuffixes === true,
    appendTimestamp: o.appendTimestamp === true,
    withResourceConstantLabels: o.withResourceConstantLabels,
  };
}

/** One scrape's text: UTF-8 in chunks of whole lines. */
export interface PrometheusScrape {
  /** The Content-Type to answer with. */
  readonly contentType: string;
  readonly openMetrics: boolean;
  readonly chunks: readonly Buffer[];
  readonly byteLength: number;
  /**
   * Done with the chunks: their memory goes back for the next scrape now instead of when
   * they are garbage-collected (a large registry's text is hundreds of MB; a GC may free
   * it only scrapes later, and the next scrape then writes into fresh pages). Every chunk
   * reads as empty afterwards. Optional; later calls do nothing. Concurrent scrape() calls
   * share one collection: its memory goes back once each of them has released it.
   * requestHandler and render() release what they wrote.
   */
  release(): void;
}

/** A collection, shared by the scrape() calls made while it ran. */
interface SharedScrape {
  readonly collected: Promise<CollectedText>;
  text: CollectedText | undefined;
  /** scrape() calls given this collection, and how many of them released it. */
  holders: number;
  released: number;
  /** In inFlight: more scrape() calls may still join. */
  joinable: boolean;
}

type CollectedText = Omit<PrometheusScrape, 'release'> & { readonly release?: () => void; readonly epoch?: number };

function releaseIfDone(s: SharedScrape): void {
  if (!s.joinable && s.text !== undefined && s.released === s.holders) s.text.release?.();
}

/**
 * A Prometheus pull endpoint for one MeterProvider: give it to `new MeterProvider({ readers })`.
 * It serves `http://127.0.0.1:9464/metrics` by default (`host`, `port`, `endpoint`), or,
 * with `preventServerStart`, mount {@link PrometheusExporter.requestHandler} in your own
 * server. Each scrape is one collection, written natively (off the event loop) as text
 * format 0.0.4, OpenMetrics 1.0.0 or the protobuf format (exponential histograms as native
 * histograms), as the scraper's `Accept` header asks.
 */
export class PrometheusExporter implements MetricReader {
  /**
   * A scrape counts as delivered (for expiry) once its response was fully written; a
   * text handed to the caller (scrape(), render(), renderStream()) once it is handed over.
   */
  readonly reportsDelivery = true;
  readonly host: string;
  readonly endpoint: string;
  private port: number;
  private producer: MetricProducer | undefined;
  private server: http.Server | undefined;
  private listening: Promise<void> | undefined;
  private readonly allowOpenMetrics: boolean;
  private readonly allowProtobuf: boolean;
  private readonly format: Omit<PrometheusCollectOptions, 'openMetrics'>;
  private readonly limits: ServerLimits;
  /** Scrapes in flight, by format (content type): concurrent scrapes share one collection. */
  private readonly inFlight = new Map<string, SharedScrape>();
  /** requestHandler's streamed collections still taking readers, by format (content type). */
  private readonly streams = new Map<string, SharedStream>();
  private readonly partBytes: number;
  private readonly budget: OutputBudget;
  private readonly shutdownGrace: number;
  private readonly gzipLevel: number;

  constructor(options: PrometheusExporterOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 9464;
    this.endpoint = options.endpoint ?? '/metrics';
    this.allowOpenMetrics = options.openMetrics !== false;
    rejectUnknownOptions(options);
    // The protobuf writer has no per-sample timestamps and no resource constant labels:
    // with either option the exporter answers text only, or refuses an explicit protobuf: true.
    const textOnly = options.appendTimestamp === true || options.withResourceConstantLabels !== undefined;
    if (textOnly && options.protobuf === true) {
      throw new TypeError('hotmeter: PrometheusExporter option protobuf cannot be combined with appendTimestamp or withResourceConstantLabels');
    }
    this.allowProtobuf = options.protobuf !== false && !textOnly;
    const quantiles = options.summaryQuantiles ?? DEFAULT_SUMMARY_QUANTILES;
    if (!Array.isArray(quantiles) || quantiles.length > 64 || !quantiles.every((q) => typeof q === 'number' && q >= 0 && q <= 1)) {
      throw new TypeError('hotmeter: summaryQuantiles must be an array of at most 64 numbers in [0, 1]');
    }
    this.format = Object.freeze({
      withoutScopeInfo: options.withoutScopeInfo === true,
      withoutTargetInfo: options.withoutTargetInfo === true,
      summaryQuantiles: Object.freeze([...quantiles]),
      ...exporterPrometheusOptions(options),
    });
    this.limits = Object.freeze({
      headersTimeout: limit('headersTimeoutMillis', options.headersTimeoutMillis, 10_000),
      idleTimeout: limit('idleTimeoutMillis', options.idleTimeoutMillis, 30_000),
      maxConnections: limit('maxConnections', options.maxConnections, 1024),
      maxHeaderSize: limit('maxHeaderSize', options.maxHeaderSize, 16_384),
    });
    const partBytes = limit('partBytes', options.partBytes, DEFAULT_PART_BYTES);
    if (partBytes < 4096 || partBytes > 2 ** 30) throw new TypeError('hotmeter: partBytes must be in [4096, 2^30]');
    this.partBytes = partBytes;
    const writeTimeout = limit('writeTimeoutMillis', options.writeTimeoutMillis, 10_000);
    this.budget = new OutputBudget(limit('outputBudgetBytes', options.outputBudgetBytes, DEFAULT_OUTPUT_BUDGET), writeTimeout, Math.min(EVICT_AFTER_MILLIS, writeTimeout));
    this.shutdownGrace = limit('shutdownGraceMillis', options.shutdownGraceMillis, 3_000);
    const c = options.compression ?? true;
    if (typeof c === 'number' && !(Number.isInteger(c) && c >= 1 && c <= 9)) throw new TypeError('hotmeter: compression must be a boolean or a zlib level 1-9');
    this.gzipLevel = c === true ? 1 : c === false ? 0 : c;
    if (!options.preventServerStart) this.listening = this.startServer();
  }

  /** Called once by the MeterProvider this exporter is given to (MetricReader). */
  setMetricProducer(producer: MetricProducer): void {
    if (this.producer !== undefined) throw new Error('hotmeter: a PrometheusExporter serves one MeterProvider');
    this.producer = producer;
  }

  /** Resolves once the server listens (immediately when it does not serve). */
  async ready(): Promise<void> {
    await this.listening;
  }

  /** The URL scrapes should use. */
  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}${this.endpoint}`;
  }

  /** The format an Accept header gets from this exporter. */
  negotiate(accept?: string | string[]): NegotiatedFormat {
    const protobuf = this.allowProtobuf && typeof this.producer?.collectPrometheus === 'function';
    return negotiateFormat(accept, this.allowOpenMetrics, protobuf);
  }

  /**
   * Collects and returns the text as chunks of whole lines (no copy of the native
   * output), for writing to a response: `for (const c of s.chunks) res.write(c)`. When
   * `accept` prefers the protobuf format, the chunks hold whole delimited MetricFamily
   * messages instead (see `contentType`).
   * Concurrent calls for the same format share one collection.
   */
  scrape(accept?: string | string[]): Promise<PrometheusScrape> {
    return this.share(this.negotiate(accept)).then((s) => {
      this.deliver(s.epoch);
      return s;
    });
  }

  /** The producer's collection `epoch` reached its reader (MetricProducer.delivered). */
  private deliver(epoch: number | undefined): void {
    if (epoch !== undefined) this.producer?.delivered?.(epoch);
  }

  /** scrape() without counting the text as delivered (requestHandler does, once written). */
  private share(fmt: NegotiatedFormat): Promise<PrometheusScrape & { readonly epoch?: number }> {
    let shared = this.inFlight.get(fmt.contentType);
    if (shared === undefined) {
      const s: SharedScrape = { collected: this.collect(fmt), text: undefined, holders: 0, released: 0, joinable: true };
      this.inFlight.set(fmt.contentType, s);
      // Registered before any holder's continuation, so it runs first: no holder can
      // release before the collection stops taking new holders.
      const leave = (): void => {
        if (this.inFlight.get(fmt.contentType) === s) this.inFlight.delete(fmt.contentType);
        s.joinable = false;
        releaseIfDone(s);
      };
      s.collected.then((text) => {
        s.text = text;
        leave();
      }, leave);
      shared = s;
    }
    const s = shared;
    s.holders++;
    return s.collected.then((text) => {
      let done = false;
      const release = (): void => {
        if (done) return;
        done = true;
        s.released++;
        releaseIfDone(s);
      };
      return { contentType: text.contentType, openMetrics: text.openMetrics, chunks: text.chunks, byteLength: text.byteLength, epoch: text.epoch, release };
    });
  }

  /**
   * Collects and renders as a string: the text format 0.0.4, or OpenMetrics when `accept`
   * asks for it. For very large registries prefer scrape() or requestHandler, which never
   * build one string.
   */
  async render(accept?: string | string[]): Promise<string> {
    // A string holds text: an Accept that prefers protobuf gets its best text format.
    const s = await this.share(negotiateFormat(accept, this.allowOpenMetrics));
    this.deliver(s.epoch);
    try {
      return s.chunks.length === 1 ? s.chunks[0].toString('utf8') : Buffer.concat(s.chunks as Buffer[], s.byteLength).toString('utf8');
    } finally {
      s.release();
    }
  }

  /** Collects and returns the text as a stream of Buffers, with its Content-Type. */
  async renderStream(accept?: string | string[]): Promise<{ contentType: string; stream: Readable }> {
    const s = await this.scrape(accept);
    return { contentType: s.contentType, stream: Readable.from(s.chunks, { objectMode: false }) };
  }

  /**
   * `(req, res)` for node:http, express (`app.get('/metrics', exporter.requestHandler)`)
   * or fastify (`(request, reply) => exporter.requestHandler(request.raw, reply.raw)`):
   * negotiates the format, answers GET and HEAD (405 otherwise, 500 if the collection
   * fails), and writes the text as the socket drains. With a hotmeter MeterProvider the text
   * is written in parts while it is sent (see `partBytes`); scrapes arriving before the
   * first part is written share the collection.
   */
  readonly requestHandler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const fmt = this.negotiate(req.headers.accept);
    // Followed from here until the response closes: writes without progress for
    // writeTimeout close it, and shutdown closes it past its grace.
    const watched: Watched = { pending: 0, lastProgress: Date.now(), abort: () => void res.destroy() };
    this.budget.watch(watched);
    res.once('close', () => this.budget.unwatch(watched));
    if (typeof this.producer?.streamPrometheus === 'function') {
      void this.serveStream(req, res, fmt, watched);
      return;
    }
    this.share(fmt).then(
      (s) => {
        // 'close': the response is complete or its connection gone; either way no write of
        // the chunks is pending any more.
        if (res.destroyed) {
          s.release();
          return;
        }
        res.once('close', s.release);
        const sink = this.body(req, res, { 'content-type': s.contentType }, s.byteLength);
        if (sink === undefined) return;
        void writeChunks(sink, res, s.chunks, watched).then((written) => {
          if (!written) return;
          res.once('finish', () => this.deliver(s.epoch));
          sink.end();
        });
      },
      (err: unknown) => failed(res, err),
    );
  };

  /** One HTTP scrape read from a streamed collection (shared while it takes readers). */
  private async serveStream(req: http.IncomingMessage, res: http.ServerResponse, fmt: NegotiatedFormat, watched: Watched): Promise<void> {
    let shared = this.streams.get(fmt.contentType);
    if (shared === undefined || !shared.canJoin) {
      // The collection waits for room for its first part before it takes its snapshot;
      // scrapes arriving meanwhile join it.
      const until = Date.now() + this.budget.writeTimeout;
      const room = this.budget.take(this.partBytes, () => Date.now() >= until);
      shared = new SharedStream(
        room.then((taken) => {
          if (!taken) throw new OutputBusy(this.budget);
          return this.openStream(fmt);
        }),
        this.budget,
        this.partBytes,
        true,
      );
      this.streams.set(fmt.contentType, shared);
    }
    let reader: StreamReader;
    try {
      reader = await shared.join();
    } catch (err) {
      failed(res, err);
      return;
    }
    // 'close': the response is complete or its connection gone; no write is pending then.
    res.once('close', reader.leave);
    if (res.destroyed) {
      reader.leave();
      return;
    }
    try {
      const first = await this.partWithin(reader, 0, res);
      if (first === null || res.destroyed) return;
      const sink = this.body(req, res, { 'content-type': fmt.contentType }, reader.parts === 1 ? (first?.byteLength ?? 0) : undefined);
      if (sink === undefined) return;
      for (let i = 0; i < reader.parts; i++) {
        const part = i === 0 ? first : await this.partWithin(reader, i, res);
        if (part === null) return;
        if (part === undefined) throw new Error(`hotmeter: part ${i} of ${reader.parts} is missing`);
        reader.prefetch(i + 1); // written while this one is sent, when the budget has room
        if (!(await writeChunks(sink, res, part.chunks, watched))) return;
        reader.passed(i);
      }
      // Delivered once the whole response went out (not if the client left mid-way).
      res.once('finish', () => this.deliver(reader.epoch));
      sink.end();
    } catch (err) {
      failed(res, err);
    }
  }

  /**
   * Writes the 200 headers and returns where the body goes: the response, or (when the
   * client accepts gzip) one gzip stream piped to it. One gzip member for the whole body,
   * which every reader takes (curl 7.88 --compressed fails after a first member); node:zlib
   * compresses on the libuv pool, and the pipe stops it (and its write callbacks) while
   * the client does not read. `length`: the body's size when known (not sent with gzip).
   * Undefined for HEAD (the response is ended).
   */
  private body(req: http.IncomingMessage, res: http.ServerResponse, headers: http.OutgoingHttpHeaders, length: number | undefined): Sink | undefined {
    const gzip = this.gzipLevel > 0 && acceptsGzip(req.headers['accept-encoding']);
    if (this.gzipLevel > 0) headers.vary = 'Accept-Encoding';
    if (gzip) headers['content-encoding'] = 'gzip';
    else if (length !== undefined) headers['content-length'] = String(length);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return undefined;
    }
    if (!gzip) return res;
    const gz = zlib.createGzip({ level: this.gzipLevel });
    this.budget.force(GZIP_STATE_BYTES);
    gz.once('close', () => this.budget.give(GZIP_STATE_BYTES));
    res.once('close', () => gz.destroy());
    gz.once('error', (err) => failed(res, err));
    gz.pipe(res);
    return gz;
  }

  /**
   * Part `i` of the reader's stream, waiting at most writeTimeout for it (for budget, as a
   * rule); null when the response closed or was answered meanwhile (503 before any byte
   * was sent, cut off after).
   */
  private async partWithin(reader: StreamReader, i: number, res: http.ServerResponse) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.budget.writeTimeout);
    });
    try {
      const part = await Promise.race([reader.part(i), late]);
      if (part !== null) return part;
      failed(res, new OutputBusy(this.budget));
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private async openStream(fmt: NegotiatedFormat): Promise<PrometheusStream> {
    const producer = this.producer;
    if (producer?.streamPrometheus === undefined) throw new Error('hotmeter: PrometheusExporter is not attached to a MeterProvider');
    const stream = await producer.streamPrometheus(this.passOptions(producer, fmt), this.partBytes);
    report(stream.notes);
    return stream;
  }

  /** A native pass's options: the format, and target_info written first (unless withoutTargetInfo). */
  private passOptions(producer: MetricProducer, fmt: NegotiatedFormat): PrometheusCollectOptions {
    if (fmt.protobuf === true) {
      const targetInfo = this.format.withoutTargetInfo ? [] : targetInfoLabels(producer.resource.attributes);
      return { ...this.format, openMetrics: false, protobuf: true, targetInfo, reservedNames: targetInfo.length === 0 ? [] : TARGET_INFO_NAMES };
    }
    const prefix = this.format.withoutTargetInfo ? '' : targetInfoText(producer.resource.attributes, fmt.openMetrics);
    const constantLabels = constantLabelText(producer.resource.attributes, this.format.withResourceConstantLabels);
    return { ...this.format, openMetrics: fmt.openMetrics, prefix, reservedNames: prefix === '' ? [] : TARGET_INFO_NAMES, constantLabels };
  }

  async forceFlush(): Promise<void> {}

  /**
   * Stops the built-in server; responses in flight may finish within shutdownGraceMillis,
   * then they are closed (and the built-in server's connections with them).
   */
  async shutdown(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    const closed = s === undefined ? Promise.resolve() : new Promise<void>((resolve) => s.close(() => resolve()));
    const timer = setTimeout(() => {
      this.budget.abortAll();
      s?.closeAllConnections();
    }, this.shutdownGrace);
    timer.unref();
    try {
      await Promise.all([closed, this.budget.drained()]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async collect(fmt: NegotiatedFormat): Promise<CollectedText> {
    const producer = this.producer;
    if (producer === undefined) throw new Error('hotmeter: PrometheusExporter is not attached to a MeterProvider');
    const options: PrometheusCollectOptions = { ...this.format, openMetrics: fmt.openMetrics };
    if (typeof producer.collectPrometheus === 'function') {
      const r = await producer.collectPrometheus(this.passOptions(producer, fmt));
      report(r.notes);
      return { contentType: fmt.contentType, openMetrics: fmt.openMetrics, chunks: r.chunks, byteLength: r.byteLength, release: r.release, epoch: r.epoch };
    }
    const set = await producer.collect();
    const text = serializeText(set, producer.resource.attributes, options as PrometheusFormatOptions);
    const buf = Buffer.from(text, 'utf8');
    return { contentType: fmt.contentType, openMetrics: fmt.openMetrics, chunks: [buf], byteLength: buf.length, epoch: set.epoch };
  }

  private startServer(): Promise<void> {
    const { headersTimeout, idleTimeout, maxConnections, maxHeaderSize } = this.limits;
    const options: http.ServerOptions = {
      maxHeaderSize,
      headersTimeout,
      // A scrape request has no body: once its headers are in, it is complete.
      requestTimeout: Math.max(headersTimeout, 30_000),
      // How often node checks headersTimeout / requestTimeout (its default, 30 s, would
      // let a trickling client stay up to 40 s).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 4))),
    };
    const server = http.createServer(options, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== this.endpoint) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.requestHandler(req, res);
    });
    // Inactivity on a socket (no bytes either way): node destroys it. This is what frees
    // a client that never reads its response: writeChunks waits for 'drain', the socket
    // closes, the response's 'close' ends the wait and the scrape's chunks are released.
    server.timeout = idleTimeout;
    server.maxConnections = maxConnections;
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        server.off('error', reject);
        const addr = server.address();
        if (addr && typeof addr === 'object') this.port = addr.port;
        resolve();
      });
    });
  }
}

/** A scrape found no room in the output budget within writeTimeout. */
class OutputBusy extends Error {
  constructor(budget: OutputBudget) {
    super(`hotmeter: Prometheus scrape waited ${budget.writeTimeout} ms for output memory (outputBudgetBytes ${budget.limit} in use); answered 503`);
  }
}

/**
 * A collection failed: 500 if nothing was sent yet (503 with Retry-After when the output
 * budget had no room), else the response is cut off.
 */
function failed(res: http.ServerResponse, err: unknown): void {
  if (err instanceof OutputBusy) warnLimited('prom-busy', err.message);
  else diag.error(`hotmeter: Prometheus scrape failed: ${String(err)}`);
  if (res.destroyed) return;
  if (res.headersSent) res.destroy();
  else if (err instanceof OutputBusy) res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('busy: output memory budget in use\n');
  else res.writeHead(500, { 'content-type': 'text/plain' }).end('collection failed\n');
}

/** Where writeChunks writes: the response, or the gzip stream in front of it. */
type Sink = NodeJS.WritableStream & { write(chunk: Buffer, cb: () => void): boolean };

/**
 * Writes the chunks to `sink` (the response or its gzip stream), waiting for 'drain' when
 * its buffer is full, then until every write has called back: neither the sink nor the
 * socket holds any of their bytes any more. Each callback is progress for `watched`.
 * False when the response closed first.
 */
async function writeChunks(sink: Sink, res: http.ServerResponse, chunks: readonly Buffer[], watched: Watched): Promise<boolean> {
  let flushed: Promise<void> | undefined;
  const progress = (): void => {
    watched.pending--;
    watched.lastProgress = Date.now();
  };
  for (let k = 0; k < chunks.length; k++) {
    if (res.destroyed) return false;
    if (watched.pending === 0) watched.lastProgress = Date.now(); // idle until now is not a stall
    watched.pending++;
    let written = true;
    if (k === chunks.length - 1) {
      // Writes call back in order: the last one's callback covers the rest.
      flushed = new Promise<void>((resolve) => {
        written = sink.write(chunks[k], () => {
          progress();
          resolve();
        });
      });
    } else {
      written = sink.write(chunks[k], progress);
    }
    if (!written && !(await whileOpen(res, sink))) return false;
  }
  return flushed === undefined || (await whileOpen(res, flushed));
}

/** Waits for `what` (a sink's 'drain', or a promise); false if res closes first. */
function whileOpen(res: http.ServerResponse, what: Sink | Promise<void>): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    let settled = false;
    const drain = what instanceof Promise ? undefined : what;
    const done = (v: boolean) => (): void => {
      if (settled) return;
      settled = true;
      drain?.off('drain', onDone);
      res.off('close', onClose);
      resolve(v);
    };
    const onDone = done(true);
    const onClose = done(false);
    if (drain !== undefined) drain.once('drain', onDone);
    else void (what as Promise<void>).then(onDone);
    res.once('close', onClose);
  });
}

/** Diagnostics for what a native pass left out or wrote as one series. */
function report(notes: PrometheusPassNotes | undefined): void {
  if (notes === undefined) return;
  for (const name of notes.dropped) {
    warnLimited(`prom-clash:${name}`, `${name}: its Prometheus names clash with another metric of a different type; left out of the scrape`);
  }
  for (const [a, b, how] of notes.merged) warnLimited(`prom-merge:${a}:${b ?? a}:${how}`, mergedSeriesWarning(a, b, how as MergeHow));
}
