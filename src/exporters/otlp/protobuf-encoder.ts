// OTLP protobuf (ExportMetricsServiceRequest) from OpenTelemetry JS ResourceMetrics,
// encoded in slices so that a large request never blocks the event loop for long.
//
// The bytes are those of @opentelemetry/otlp-transformer's ProtobufMetricsSerializer
// (0.2xx: a hand-written writer) for the same input: the same fields, in the same order
// (which is not field-number order: a number point's attributes come after its value, an
// exponential histogram point's before its times), the same choice between int_value and
// double_value for a number attribute, the same wrapping of out-of-range integers, no
// exemplars and no flags (the transformer writes neither). Length prefixes are minimal
// varints, as in any canonical encoding, so equal fields in equal order give equal bytes.
//
// Two passes over the request, both sliced: the first computes the size of every message
// down to the data points (and encodes each attribute set once), the second writes into
// one buffer of exactly that size, each length prefix already known (no shifting, no
// growing, no copying). A point is never split across slices; the state between slices
// is the generator's. The encoded attributes of a deeply frozen attributes object
// (hotmeter's are) are kept in a WeakMap keyed by that object, so a steady export encodes
// almost no strings; any other attributes object is encoded once per request (one object
// shared by two metrics is encoded once) and its bytes are reused by the second pass, so
// the two passes agree even if the object changes in between.
import type { Attributes, HrTime } from '@opentelemetry/api';
import type { OtelResourceMetrics } from './types';

// sdk-metrics' numbering (DataPointType, AggregationTemporality) and @opentelemetry/api's
// ValueType.INT.
const HISTOGRAM = 0;
const EXPONENTIAL_HISTOGRAM = 1;
const GAUGE = 2;
const SUM = 3;
const VALUE_TYPE_INT = 0;
const TEMPORALITY_DELTA = 0;
const TEMPORALITY_CUMULATIVE = 1;

/** Options of {@link encodeMetricsRequest}. */
export interface MetricsEncodeOptions {
  /**
   * Work done in one turn of the event loop before yielding to it (setImmediate), in
   * milliseconds. Default 5. 0 yields at every check.
   */
  sliceMs?: number;
  /**
   * How many data points (a histogram point with many buckets counts for more) are encoded
   * between two looks at the clock. Default 256.
   */
  checkEvery?: number;
}

const DEFAULT_SLICE_MS = 5;
const DEFAULT_CHECK_EVERY = 256;

// ---------------------------------------------------------------------------------------
// Scalars, as otlp-transformer's ProtobufWriter writes them.

/** Bytes of `value` as ProtobufWriter.writeVarint writes it (including its 64-bit path). */
function varintSize(value: number): number {
  if (value >= 0 && value <= 0xffffffff) {
    const v = value >>> 0;
    return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
  }
  split64(value);
  let low = lo;
  let high = hi;
  let n = 1;
  while (high > 0 || low > 0x7f) {
    n++;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  return n;
}

// The words split64 leaves (module state: encoding is synchronous between yields).
let lo = 0;
let hi = 0;
/** A number as low and high 32-bit words (lo, hi), two's complement for negatives (as the writer). */
function split64(value: number): void {
  if (value >= 0) {
    lo = value >>> 0;
    hi = (value / 0x100000000) >>> 0;
  } else {
    const abs = Math.abs(value);
    lo = ~(abs >>> 0) >>> 0;
    hi = ~((abs / 0x100000000) >>> 0) >>> 0;
    lo = (lo + 1) >>> 0;
    if (lo === 0) hi = (hi + 1) >>> 0;
  }
}

/** A sink of bytes: the exact-size output, or a growing scratch buffer. */
class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  private readonly grows: boolean;

  constructor(buf: Uint8Array, grows: boolean) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.grows = grows;
  }

  ensure(n: number): void {
    if (!this.grows || this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  varint(value: number): void {
    this.ensure(10);
    const buf = this.buf;
    if (value >= 0 && value <= 0xffffffff) {
      let v = value >>> 0;
      while (v > 0x7f) {
        buf[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      buf[this.pos++] = v;
      return;
    }
    split64(value);
    let low = lo;
    let high = hi;
    while (high > 0 || low > 0x7f) {
      buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 0x7f;
  }

  /** A length-delimited field's key (wire type 2) and length. */
  delimited(field: number, length: number): void {
    this.varint((field << 3) | 2);
    this.varint(length);
  }

  fixed64(low: number, high: number): void {
    this.ensure(8);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = low & 0xff;
    buf[p++] = (low >>> 8) & 0xff;
    buf[p++] = (low >>> 16) & 0xff;
    buf[p++] = (low >>> 24) & 0xff;
    buf[p++] = high & 0xff;
    buf[p++] = (high >>> 8) & 0xff;
    buf[p++] = (high >>> 16) & 0xff;
    buf[p++] = (high >>> 24) & 0xff;
    this.pos = p;
  }

  /** A non-negative count as fixed64 (`count >>> 0`, `count / 2^32 >>> 0`, as the writer). */
  count64(count: number): void {
    this.fixed64(count >>> 0, (count / 0x100000000) >>> 0);
  }

  sfixed64(value: number): void {
    split64(value);
    this.fixed64(lo, hi);
  }

  double(value: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, value, true);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** HrTime [seconds, nanoseconds] as fixed64 nanoseconds (the transformer's arithmetic). */
  hrTime(t: HrTime): void {
    const seconds = t[0];
    const nanos = t[1];
    const lowerNanos = (seconds & 0xffff) * 1e9;
    const upperNanos = ((seconds / 0x10000) >>> 0) * 1e9;
    const low = (lowerNanos >>> 0) + (((upperNanos & 0xffff) * 0x10000) >>> 0) + nanos; // the transformer's order of additions
    const high = Math.floor(lowerNanos / 0x100000000) + ((upperNanos / 0x10000) >>> 0) + Math.floor(low / 0x100000000);
    this.fixed64(low >>> 0, high >>> 0);
  }

  /** A string's UTF-8 bytes with their length (lone surrogates become U+FFFD, as TextEncoder). */
  string(s: string): void {
    this.ensure(10 + s.length * 3);
    const len = s.length;
    let ascii = true;
    for (let i = 0; i < len; i++) {
      if (s.charCodeAt(i) > 127) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      const b = utf8.encode(s);
      this.varint(b.length);
      this.bytes(b);
      return;
    }
    this.varint(len);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < len; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }
}

const utf8 = new TextEncoder();

/** Size of a string field's value (length prefix and bytes). */
function stringSize(s: string): number {
  const n = utf8Length(s);
  return varintSize(n) + n;
}

function utf8Length(s: string): number {
  const len = s.length;
  let n = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3; // BMP, or a lone surrogate (U+FFFD)
  }
  return n;
}

/** Size of a length-delimited field of `length` bytes with a one-byte key (fields < 16). */
const delimitedSize = (length: number): number => 1 + varintSize(length) + length;

// ---------------------------------------------------------------------------------------
// Attributes: repeated KeyValue, encoded once per attributes object.

/**
 * An attribute set's KeyValue fields, each with its field key for field number 7 (a
 * number point's), as a one-byte (latin1) string: a single small heap object, cheap for the
 * garbage collector to keep for every series. Written for another field number, the key
 * bytes are rewritten in place (every field number used is below 16: one key byte).
 */
type EncodedAttributes = string;

const ATTRIBUTES_TAG = 7;
const EMPTY_ATTRIBUTES: EncodedAttributes = '';
/** Encoded attributes of deeply frozen attributes objects (their encoding cannot change). */
const frozenAttributes = new WeakMap<object, EncodedAttributes>();

/** True when nothing reachable from `v` can change: frozen objects and arrays of data properties. */
function deeplyFrozen(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object') return true;
  if (depth > 8 || !Object.isFrozen(v) || ArrayBuffer.isView(v)) return false;
  for (const k of Object.keys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k);
    if (d === undefined || !('value' in d) || !deeplyFrozen(d.value, depth + 1)) return false;
  }
  return true;
}

const scratch = new Writer(new Uint8Array(4096), true);

/** Writes an AnyValue's fields as otlp-transformer's writeAnyValue does, for every JS value. */
function writeAnyValue(w: Writer, value: unknown): void {
  const t = typeof value;
  if (t === 'string') {
    w.varint((1 << 3) | 2);
    w.string(value as string);
  } else if (t === 'boolean') {
    w.varint(2 << 3);
    w.varint(value ? 1 : 0);
  } else if (t === 'number') {
    const n = value as number;
    if (Number.isInteger(n) && n >= -(2 ** 63) && n < 2 ** 63) {
      w.varint(3 << 3);
      w.varint(n);
    } else {
      w.varint((4 << 3) | 1);
      w.double(n);
    }
  } else if (value instanceof Uint8Array) {
    w.varint((7 << 3) | 2);
    w.varint(value.length);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.varint((5 << 3) | 2);
    const outer = open(w);
    for (const item of value) {
      w.varint((1 << 3) | 2);
      const inner = open(w);
      writeAnyValue(w, item);
      close(w, inner);
    }
    close(w, outer);
  } else if (t === 'object' && value != null) {
    w.varint((6 << 3) | 2);
    const outer = open(w);
    const obj = value as Record<string, unknown>;
    for (const k in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
      w.varint((1 << 3) | 2);
      const kv = open(w);
      writeKeyValueBody(w, k, obj[k]);
      close(w, kv);
    }
    close(w, outer);
  }
  // Any other value (undefined, null, bigint, function, symbol): an empty AnyValue, as the transformer.
}

function writeKeyValueBody(w: Writer, key: string, value: unknown): void {
  w.varint((1 << 3) | 2);
  w.string(key);
  w.varint((2 << 3) | 2);
  const v = open(w);
  writeAnyValue(w, value);
  close(w, v);
}

// Nested messages of an attribute value are written with a one-byte length placeholder,
// moved forward when the length needs more (only in the scratch writer, for one attribute set).
function open(w: Writer): number {
  w.ensure(1);
  return w.pos++;
}

function close(w: Writer, at: number): void {
  const length = w.pos - at - 1;
  const size = varintSize(length);
  if (size > 1) {
    w.ensure(size - 1);
    w.buf.copyWithin(at + size, at + 1, w.pos);
    w.pos += size - 1;
  }
  const end = w.pos;
  w.pos = at;
  w.varint(length);
  w.pos = end;
}

/** Encodes an attribute set as repeated KeyValue fields `tag` (transformer's writeAttributes). */
function encodeAttributes(attributes: Attributes): EncodedAttributes {
  const w = scratch;
  w.pos = 0;
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    w.varint((ATTRIBUTES_TAG << 3) | 2);
    const kv = open(w);
    writeKeyValueBody(w, key, attributes[key]);
    close(w, kv);
  }
  if (w.pos === 0) return EMPTY_ATTRIBUTES;
  // Node's latin1 maps each byte to the code point of its value (TextDecoder's 'latin1' is windows-1252).
  return Buffer.from(w.buf.buffer, w.buf.byteOffset, w.pos).toString('latin1');
}

/** Size of the KeyValue fields of `e` (the same for every field number below 16). */
const attributesSize = (e: EncodedAttributes): number => e.length;

function writeAttributes(w: Writer, e: EncodedAttributes, tag: number): void {
  const buf = w.buf;
  const at = w.pos;
  const n = e.length;
  for (let i = 0; i < n; i++) buf[at + i] = e.charCodeAt(i);
  w.pos = at + n;
  if (tag !== ATTRIBUTES_TAG) {
    // Rewrite each KeyValue's key byte: walk key, length varint, body.
    const key = (tag << 3) | 2;
    let p = at;
    const end = at + n;
    while (p < end) {
      buf[p++] = key;
      let length = 0;
      let shift = 0;
      let b: number;
      do {
        b = buf[p++];
        length += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80);
      p += length;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The request.

/* eslint-disable @typescript-eslint/no-explicit-any -- the data model is read structurally,
   as the transformer reads it (any producer's ResourceMetrics, sdk-metrics' too). */

function temporalityOf(t: unknown): number {
  return t === TEMPORALITY_DELTA ? 1 : t === TEMPORALITY_CUMULATIVE ? 2 : 0;
}

/** The state of one encoding: sizes found by the first pass, attributes encoded for it. */
class Encoding {
  /** Attributes objects that are not deeply frozen, encoded for this request only. */
  private readonly local = new Map<object, EncodedAttributes>();
  /** Sizes of messages in the order the second pass meets them (resource, scopes, metrics, data bodies). */
  readonly sizes: number[] = [];
  /** Units of work since the last look at the clock. */
  work = 0;

  constructor(
    public rm: OtelResourceMetrics,
    readonly checkEvery: number,
  ) {}

  /** Drops the request's data (see `kept`). */
  retire(): void {
    this.rm = undefined as unknown as OtelResourceMetrics;
    this.local.clear();
    this.sizes.length = 0;
  }

  attributes(a: Attributes | undefined): EncodedAttributes {
    if (!a) return EMPTY_ATTRIBUTES;
    let e = frozenAttributes.get(a) ?? this.local.get(a);
    if (e === undefined) {
      e = encodeAttributes(a);
      if (deeplyFrozen(a, 0)) frozenAttributes.set(a, e);
      else this.local.set(a, e);
    }
    return e;
  }

  numberPointSize(p: any): number {
    return 9 + 9 + 9 + attributesSize(this.attributes(p.attributes));
  }

  histogramPointSize(p: any): number {
    const h = p.value;
    let n = 9 + 9 + 9;
    if (h.sum !== undefined) n += 9;
    const counts = h.buckets.counts.length;
    if (counts > 0) n += delimitedSize(counts * 8);
    const bounds = h.buckets.boundaries.length;
    if (bounds > 0) n += delimitedSize(bounds * 8);
    n += attributesSize(this.attributes(p.attributes));
    if (h.min !== undefined) n += 9;
    if (h.max !== undefined) n += 9;
    return n;
  }

  exponentialPointSize(p: any): number {
    const h = p.value;
    let n = attributesSize(this.attributes(p.attributes)) + 9 + 9 + 9;
    if (h.sum !== undefined) n += 9;
    if (h.scale !== 0) n += 1 + varintSize(((h.scale << 1) ^ (h.scale >> 31)) >>> 0);
    n += 9;
    n += delimitedSize(bucketsSize(h.positive.offset, h.positive.bucketCounts));
    n += delimitedSize(bucketsSize(h.negative.offset, h.negative.bucketCounts));
    if (h.min !== undefined) n += 9;
    if (h.max !== undefined) n += 9;
    return n;
  }

  /**
   * First pass: the size of every message, in the order the second pass writes them
   * (this.sizes); returns the ResourceMetrics message's. Yields between points.
   */
  *measure(): Generator<void, number> {
    const rm = this.rm;
    const sizes = this.sizes;
    const resourceAt = sizes.length;
    sizes.push(0);
    const resource = this.resourceSize();
    sizes[resourceAt] = resource;
    let total = delimitedSize(resource);
    for (const sm of rm.scopeMetrics) {
      const scopeAt = sizes.length;
      sizes.push(0);
      let scope = delimitedSize(this.scopeSize(sm.scope));
      for (const metric of sm.metrics as any[]) {
        const metricAt = sizes.length;
        sizes.push(0, 0);
        const d = metric.descriptor;
        let m = 1 + stringSize(d.name);
        if (d.description) m += 1 + stringSize(d.description);
        if (d.unit) m += 1 + stringSize(d.unit);
        const type = metric.dataPointType;
        if (type === GAUGE || type === SUM || type === HISTOGRAM || type === EXPONENTIAL_HISTOGRAM) {
          let body = 0;
          const points = metric.dataPoints as any[];
          for (let i = 0; i < points.length; i++) {
            const p = points[i];
            let size: number;
            let units = 1;
            if (type === HISTOGRAM) {
              size = this.histogramPointSize(p);
              units += p.value.buckets.counts.length >> 4;
            } else if (type === EXPONENTIAL_HISTOGRAM) {
              size = this.exponentialPointSize(p);
              units += (p.value.positive.bucketCounts.length + p.value.negative.bucketCounts.length) >> 4;
            } else size = this.numberPointSize(p);
            units += size >> 12; // large attribute sets (encoded here the first time) count more
            body += delimitedSize(size);
            if ((this.work += units) >= this.checkEvery) {
              this.work = 0;
              yield;
            }
          }
          if (type !== GAUGE) {
            const t = temporalityOf(metric.aggregationTemporality);
            if (t !== 0) body += 2;
          }
          if (type === SUM && metric.isMonotonic) body += 2;
          sizes[metricAt + 1] = body;
          m += delimitedSize(body);
        }
        sizes[metricAt] = m;
        scope += delimitedSize(m);
      }
      if (sm.scope.schemaUrl) scope += 1 + stringSize(sm.scope.schemaUrl);
      sizes[scopeAt] = scope;
      total += delimitedSize(scope);
    }
    const schemaUrl = rm.resource.schemaUrl;
    if (schemaUrl) total += 1 + stringSize(schemaUrl);
    return total;
  }

  resourceSize(): number {
    return attributesSize(this.attributes(this.rm.resource.attributes)) + 2;
  }

  scopeSize(scope: any): number {
    let n = 1 + stringSize(scope.name);
    if (scope.version) n += 1 + stringSize(scope.version);
    if (scope.attributes) n += attributesSize(this.attributes(scope.attributes));
    if (scope.droppedAttributesCount) n += 1 + varintSize(scope.droppedAttributesCount);
    return n;
  }

  /** Second pass: the ResourceMetrics message's fields into `w` (sized by the first pass). Yields between points. */
  *write(w: Writer): Generator<void, void> {
    const rm = this.rm;
    const sizes = this.sizes;
    let s = 0;
    // resource (field 1)
    w.delimited(1, sizes[s++]);
    writeAttributes(w, this.attributes(rm.resource.attributes), 1);
    w.varint(2 << 3); // dropped_attributes_count: 0, always written by the transformer
    w.varint(0);
    for (const sm of rm.scopeMetrics) {
      w.delimited(2, sizes[s++]);
      const scope: any = sm.scope;
      w.delimited(1, this.scopeSize(scope));
      w.varint((1 << 3) | 2);
      w.string(scope.name);
      if (scope.version) {
        w.varint((2 << 3) | 2);
        w.string(scope.version);
      }
      if (scope.attributes) writeAttributes(w, this.attributes(scope.attributes), 3);
      if (scope.droppedAttributesCount) {
        w.varint(4 << 3);
        w.varint(scope.droppedAttributesCount);
      }
      for (const metric of sm.metrics as any[]) {
        w.delimited(2, sizes[s++]);
        const body = sizes[s++];
        const d = metric.descriptor;
        w.varint((1 << 3) | 2);
        w.string(d.name);
        if (d.description) {
          w.varint((2 << 3) | 2);
          w.string(d.description);
        }
        if (d.unit) {
          w.varint((3 << 3) | 2);
          w.string(d.unit);
        }
        const type = metric.dataPointType;
        if (type !== GAUGE && type !== SUM && type !== HISTOGRAM && type !== EXPONENTIAL_HISTOGRAM) continue;
        w.delimited(type === GAUGE ? 5 : type === SUM ? 7 : type === HISTOGRAM ? 9 : 10, body);
        const bodyStart = w.pos;
        const points = metric.dataPoints as any[];
        const isInt = d.valueType === VALUE_TYPE_INT;
        for (let i = 0; i < points.length; i++) {
          const p = points[i];
          let units = 1;
          if (type === HISTOGRAM) {
            this.writeHistogramPoint(w, p);
            units += p.value.buckets.counts.length >> 4;
          } else if (type === EXPONENTIAL_HISTOGRAM) {
            this.writeExponentialPoint(w, p);
            units += (p.value.positive.bucketCounts.length + p.value.negative.bucketCounts.length) >> 4;
          } else this.writeNumberPoint(w, p, isInt);
          if ((this.work += units) >= this.checkEvery) {
            this.work = 0;
            yield;
          }
        }
        if (type !== GAUGE) {
          const t = temporalityOf(metric.aggregationTemporality);
          if (t !== 0) {
            w.varint(2 << 3);
            w.varint(t);
          }
        }
        if (type === SUM && metric.isMonotonic) {
          w.varint(3 << 3);
          w.varint(1);
        }
        if (w.pos - bodyStart !== body) throw changed();
      }
      if (scope.schemaUrl) {
        w.varint((3 << 3) | 2);
        w.string(scope.schemaUrl);
      }
    }
    const schemaUrl = rm.resource.schemaUrl;
    if (schemaUrl) {
      w.varint((3 << 3) | 2);
      w.string(schemaUrl);
    }
  }

  /** Checks that a point took the bytes its length prefix says. */
  private check(w: Writer, start: number, size: number): void {
    if (w.pos - start !== size) throw changed();
  }

  writeNumberPoint(w: Writer, p: any, isInt: boolean): void {
    const a = this.attributes(p.attributes);
    const size = 27 + attributesSize(a);
    w.delimited(1, size);
    const start = w.pos;
    w.varint((2 << 3) | 1);
    w.hrTime(p.startTime);
    w.varint((3 << 3) | 1);
    w.hrTime(p.endTime);
    if (isInt) {
      w.varint((6 << 3) | 1);
      w.sfixed64(p.value);
    } else {
      w.varint((4 << 3) | 1);
      w.double(p.value);
    }
    writeAttributes(w, a, 7);
    this.check(w, start, size);
  }

  writeHistogramPoint(w: Writer, p: any): void {
    const size = this.histogramPointSize(p);
    w.delimited(1, size);
    const start = w.pos;
    const h = p.value;
    writeTimesCountSum(w, p, h);
    const counts = h.buckets.counts as number[];
    if (counts.length > 0) {
      w.delimited(6, counts.length * 8);
      for (let i = 0; i < counts.length; i++) w.count64(counts[i]);
    }
    const bounds = h.buckets.boundaries as number[];
    if (bounds.length > 0) {
      w.delimited(7, bounds.length * 8);
      for (let i = 0; i < bounds.length; i++) w.double(bounds[i]);
    }
    writeAttributes(w, this.attributes(p.attributes), 9);
    if (h.min !== undefined) {
      w.varint((11 << 3) | 1);
      w.double(h.min);
    }
    if (h.max !== undefined) {
      w.varint((12 << 3) | 1);
      w.double(h.max);
    }
    this.check(w, start, size);
  }

  writeExponentialPoint(w: Writer, p: any): void {
    const size = this.exponentialPointSize(p);
    w.delimited(1, size);
    const start = w.pos;
    const h = p.value;
    writeAttributes(w, this.attributes(p.attributes), 1);
    writeTimesCountSum(w, p, h);
    if (h.scale !== 0) {
      w.varint(6 << 3);
      w.varint(((h.scale << 1) ^ (h.scale >> 31)) >>> 0);
    }
    w.varint((7 << 3) | 1);
    w.count64(h.zeroCount);
    writeBuckets(w, 8, h.positive.offset, h.positive.bucketCounts);
    writeBuckets(w, 9, h.negative.offset, h.negative.bucketCounts);
    if (h.min !== undefined) {
      w.varint((12 << 3) | 1);
      w.double(h.min);
    }
    if (h.max !== undefined) {
      w.varint((13 << 3) | 1);
      w.double(h.max);
    }
    this.check(w, start, size);
  }
}

/**
 * The error when the data changed between the passes (the bytes would not be OTLP). Each
 * metric's data is checked against its size from the first pass as soon as it is written.
 */
const changed = (): Error => new Error('OTLP encoding: the metrics changed while they were being encoded');

function bucketCountsSize(counts: number[]): number {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += varintSize(counts[i]);
  return n;
}

function bucketsSize(offset: number, counts: number[]): number {
  let n = 0;
  if (offset !== 0) n += 1 + varintSize(((offset << 1) ^ (offset >> 31)) >>> 0);
  if (counts.length > 0) n += delimitedSize(bucketCountsSize(counts));
  return n;
}

function writeBuckets(w: Writer, field: number, offset: number, counts: number[]): void {
  w.delimited(field, bucketsSize(offset, counts));
  if (offset !== 0) {
    w.varint(1 << 3);
    w.varint(((offset << 1) ^ (offset >> 31)) >>> 0);
  }
  if (counts.length > 0) {
    w.delimited(2, bucketCountsSize(counts));
    for (let i = 0; i < counts.length; i++) w.varint(counts[i]);
  }
}

/* eslint-enable @typescript-eslint/no-explicit-any */

/**
 * The last request's Encoding, emptied (retire()). An Encoding lives for one request; with
 * none alive, a major GC frees its hidden class, and V8 then deoptimises the per-point
 * code that depends on it ("weak objects") and encodes the next request unoptimised until
 * it is compiled again (every export of a server that collects garbage between exports).
 */
const kept: { encoding?: Encoding } = {};

/** Both passes: the whole ExportMetricsServiceRequest (field 1: the one ResourceMetrics). */
function* encodeRequest(rm: OtelResourceMetrics, checkEvery: number): Generator<void, Uint8Array> {
  const e = new Encoding(rm, checkEvery);
  const body = yield* e.measure();
  const total = 1 + varintSize(body) + body;
  // Every byte is written below (checked), so the buffer needs no zeroing.
  const out = Buffer.allocUnsafeSlow(total);
  const w = new Writer(out, false);
  w.delimited(1, body);
  try {
    yield* e.write(w);
  } catch (err) {
    // Writing past the end of the buffer (a value grew since the first pass).
    throw err instanceof RangeError ? changed() : err;
  }
  if (w.pos !== total) throw changed();
  e.retire();
  kept.encoding = e;
  return out;
}

/**
 * Encodes `resourceMetrics` (OpenTelemetry JS sdk-metrics' data model, from any producer)
 * as an OTLP ExportMetricsServiceRequest, the bytes @opentelemetry/otlp-transformer's
 * `ProtobufMetricsSerializer.serializeRequest` gives, in slices: after about `sliceMs` of
 * work it yields to the event loop (setImmediate) and goes on in a later turn. Rejects
 * if the data changes under it in a way that would corrupt the request.
 *
 * The data (points, their values and attributes) must not change until the promise settles.
 */
export function encodeMetricsRequest(resourceMetrics: OtelResourceMetrics, options: MetricsEncodeOptions = {}): Promise<Uint8Array> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  const gen = encodeRequest(resourceMetrics, Math.max(1, options.checkEvery ?? DEFAULT_CHECK_EVERY));
  return new Promise<Uint8Array>((resolve, reject) => {
    const slice = (): void => {
      const start = performance.now();
      try {
        for (;;) {
          const r = gen.next();
          if (r.done === true) {
            resolve(r.value);
            return;
          }
          if (performance.now() - start >= sliceMs) break;
        }
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      setImmediate(slice);
    };
    setImmediate(slice);
  });
}

/** {@link encodeMetricsRequest} in one synchronous call (for small requests and tests). */
export function encodeMetricsRequestSync(resourceMetrics: OtelResourceMetrics): Uint8Array {
  const gen = encodeRequest(resourceMetrics, Number.MAX_SAFE_INTEGER);
  for (;;) {
    const r = gen.next();
    if (r.done === true) return r.value;
  }
}

/** Fields 2-5 of a histogram or exponential histogram point: start, time, count, sum. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function writeTimesCountSum(w: Writer, p: any, h: any): void {
  w.varint((2 << 3) | 1);
  w.hrTime(p.startTime);
  w.varint((3 << 3) | 1);
  w.hrTime(p.endTime);
  w.varint((4 << 3) | 1);
  w.count64(h.count);
  if (h.sum !== undefined) {
    w.varint((5 << 3) | 1);
    w.double(h.sum);
  }
}
