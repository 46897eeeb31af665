// A loopback OTLP/HTTP metrics receiver for the tests (not a test file): accepts
// POST /v1/metrics with JSON (application/json) or protobuf (application/x-protobuf)
// bodies, decodes them, and keeps every request in one normalized form, so a test can
// check every data point whichever encoding the exporter used.
//
// Protobuf is decoded by protobufjs from the official opentelemetry-proto files (v1.9.0,
// vendored under test/fixtures/opentelemetry-proto); nothing here knows the wire format.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import protobuf from 'protobufjs';

const protoRoot = new protobuf.Root();
protoRoot.resolvePath = (_origin: string, target: string): string =>
  path.join(__dirname, 'fixtures', 'opentelemetry-proto', target);
protoRoot.loadSync('opentelemetry/proto/collector/metrics/v1/metrics_service.proto');
const ExportMetricsServiceRequest = protoRoot.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
const ExportMetricsServiceResponse = protoRoot.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse');

/** An attribute value as decoded (OTLP AnyValue -> JS). */
export type Decoded = string | number | boolean | Decoded[] | { [k: string]: Decoded } | null;

export interface NPoint {
  attributes: Record<string, Decoded>;
  /** Nanoseconds since the epoch. */
  start: bigint;
  time: bigint;
  /** sum/gauge */
  asInt?: number;
  asDouble?: number;
  /** histogram and exponential histogram */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
  scale?: number;
  zeroCount?: number;
  positive?: { offset: number; bucketCounts: number[] };
  negative?: { offset: number; bucketCounts: number[] };
}

export interface NMetric {
  name: string;
  description: string;
  unit: string;
  type: 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram' | 'summary' | 'none';
  /** 1 DELTA, 2 CUMULATIVE (OTLP numbering); undefined for gauges. */
  temporality?: number;
  isMonotonic?: boolean;
  points: NPoint[];
}

export interface NScope {
  name: string;
  version: string;
  schemaUrl: string;
  metrics: NMetric[];
}

export interface NRequest {
  encoding: 'json' | 'protobuf';
  resource: Record<string, Decoded>;
  scopes: NScope[];
}

const num = (v: unknown): number => (v === undefined || v === null ? 0 : typeof v === 'string' ? Number(v) : Number(v));
const nanos = (v: unknown): bigint => (v === undefined || v === null ? 0n : BigInt(String(v)));

/** AnyValue -> JS value; ints become numbers (the tests stay within 2^53). */
function anyValue(v: Record<string, unknown> | undefined): Decoded {
  if (v === undefined || v === null) return null;
  if ('stringValue' in v) return v.stringValue as string;
  if ('boolValue' in v) return Boolean(v.boolValue);
  if ('intValue' in v) return num(v.intValue);
  if ('doubleValue' in v) return num(v.doubleValue);
  if ('arrayValue' in v) return (((v.arrayValue as { values?: unknown[] }).values ?? []) as Record<string, unknown>[]).map(anyValue);
  if ('kvlistValue' in v) return keyValues((v.kvlistValue as { values?: unknown[] }).values);
  if ('bytesValue' in v) return String(v.bytesValue);
  return null;
}

function keyValues(list: unknown): Record<string, Decoded> {
  const out: Record<string, Decoded> = {};
  for (const kv of (list ?? []) as { key: string; value?: Record<string, unknown> }[]) {
    if (Object.prototype.hasOwnProperty.call(out, kv.key)) throw new Error(`duplicate attribute key ${kv.key}`);
    out[kv.key] = anyValue(kv.value);
  }
  return out;
}

function optNum(o: Record<string, unknown>, k: string): number | undefined {
  return o[k] === undefined || o[k] === null ? undefined : num(o[k]);
}

function point(p: Record<string, unknown>): NPoint {
  const out: NPoint = { attributes: keyValues(p.attributes), start: nanos(p.startTimeUnixNano), time: nanos(p.timeUnixNano) };
  if (p.asInt !== undefined && p.asInt !== null) out.asInt = num(p.asInt);
  if (p.asDouble !== undefined && p.asDouble !== null) out.asDouble = num(p.asDouble);
  for (const k of ['count', 'sum', 'min', 'max', 'scale', 'zeroCount'] as const) {
    const v = optNum(p, k);
    if (v !== undefined) out[k] = v;
  }
  if (p.bucketCounts !== undefined) out.bucketCounts = (p.bucketCounts as unknown[]).map(num);
  if (p.explicitBounds !== undefined) out.explicitBounds = (p.explicitBounds as unknown[]).map(num);
  for (const side of ['positive', 'negative'] as const) {
    const b = p[side] as { offset?: unknown; bucketCounts?: unknown[] } | undefined;
    if (b !== undefined && b !== null) out[side] = { offset: num(b.offset), bucketCounts: (b.bucketCounts ?? []).map(num) };
  }
  return out;
}

function metric(m: Record<string, unknown>): NMetric {
  const base = { name: String(m.name ?? ''), description: String(m.description ?? ''), unit: String(m.unit ?? '') };
  for (const type of ['sum', 'gauge', 'histogram', 'exponentialHistogram', 'summary'] as const) {
    const d = m[type] as Record<string, unknown> | undefined;
    if (d === undefined || d === null) continue;
    return {
      ...base,
      type,
      temporality: d.aggregationTemporality === undefined ? undefined : num(d.aggregationTemporality),
      isMonotonic: type === 'sum' ? Boolean(d.isMonotonic) : undefined,
      points: ((d.dataPoints ?? []) as Record<string, unknown>[]).map(point),
    };
  }
  return { ...base, type: 'none', points: [] };
}

/** A decoded ExportMetricsServiceRequest (JSON or protobufjs toObject form) -> normalized requests, one per ResourceMetrics. */
export function normalize(body: { resourceMetrics?: unknown[] }, encoding: NRequest['encoding']): NRequest[] {
  return ((body.resourceMetrics ?? []) as Record<string, unknown>[]).map((rm) => ({
    encoding,
    resource: keyValues((rm.resource as { attributes?: unknown } | undefined)?.attributes),
    scopes: ((rm.scopeMetrics ?? []) as Record<string, unknown>[]).map((sm) => {
      const scope = (sm.scope ?? {}) as Record<string, unknown>;
      return {
        name: String(scope.name ?? ''),
        version: String(scope.version ?? ''),
        schemaUrl: String(sm.schemaUrl ?? ''),
        metrics: ((sm.metrics ?? []) as Record<string, unknown>[]).map(metric),
      };
    }),
  }));
}

/** Decodes a protobuf ExportMetricsServiceRequest body. */
export function decodeProtobuf(buf: Uint8Array): { resourceMetrics?: unknown[] } {
  const msg = ExportMetricsServiceRequest.decode(buf);
  return ExportMetricsServiceRequest.toObject(msg, { longs: String, enums: Number, bytes: String, defaults: false });
}

export interface Receiver {
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: NRequest[];
  /** Raw bodies (for debugging) and their content types. */
  readonly raw: { contentType: string; body: Buffer }[];
  /** Requests rejected with an error (none expected). */
  readonly errors: string[];
  /** Resolves when `n` requests have arrived (rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1, port 0. */
export async function startReceiver(): Promise<Receiver> {
  const requests: NRequest[] = [];
  const raw: { contentType: string; body: Buffer }[] = [];
  const errors: string[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        if (req.method !== 'POST' || req.url !== '/v1/metrics') throw new Error(`unexpected ${req.method} ${req.url}`);
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
        const contentType = String(req.headers['content-type'] ?? '');
        raw.push({ contentType, body });
        if (contentType.startsWith('application/json')) {
          requests.push(...normalize(JSON.parse(body.toString('utf8')), 'json'));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        } else if (contentType.startsWith('application/x-protobuf')) {
          requests.push(...normalize(decodeProtobuf(body), 'protobuf'));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' });
          res.end(Buffer.from(ExportMetricsServiceResponse.encode(ExportMetricsServiceResponse.create({})).finish()));
        } else {
          throw new Error(`unexpected content type ${contentType}`);
        }
        for (const w of [...waiters]) {
          if (raw.length >= w.n) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      } catch (e) {
        errors.push(String(e));
        res.writeHead(400);
        res.end(String(e));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/metrics`,
    requests,
    raw,
    errors,
    waitFor(n: number, ms = 5_000): Promise<void> {
      if (raw.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${raw.length} of ${n} OTLP requests arrived`)), ms);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    close(): Promise<void> {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
