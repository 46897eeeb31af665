// LabelEncoder: the canonical text of a label set (the seed's LabelEncoder). Batchers key
// their state by it and exporters print it. An exporter may supply its own encoder (for
// Prometheus, the `{k="v",...}` block itself): the batcher then keys by that encoding,
// and because encodings are cached per attribute object and per encoder id, every label
// set is serialised at most once per encoder for as long as its record lives (so at most
// once per series per collection).
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import { describeValue, warnLimited } from '../sdk/diag';

/**
 * Encodes a label set as text.
 *
 * Contract: `encode` is a pure function of the attributes' content (not of key order),
 * and two encoders with the same `id` encode every label set identically, so encodings
 * can be cached by `id`. An encoder should be injective; when it is not, a batcher
 * treats label sets that encode alike as one series and merges them (what Prometheus
 * needs when sanitised label names collide).
 */
export interface LabelEncoder {
  /** Identifies the encoding; caches are keyed by it. */
  readonly id: string;
  /** The text of `attributes`. Should not throw (a throwing encoder falls back to the default encoding). */
  encode(attributes: Attributes): string;
}

// Keys escape the separators and the escape character itself.
function encodeKey(k: string): string {
  return /[\\,=]/.test(k) ? k.replace(/[\\,=]/g, (c) => '\\' + c) : k;
}

function encodeScalar(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      // Finite numbers print as JSON does; NaN and the infinities keep their own names
      // (JSON would print null for all three).
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      return v === null || v === undefined ? 'null' : JSON.stringify(describeValue(v));
  }
}

function encodeValue(v: AttributeValue): string {
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) s += (i === 0 ? '' : ',') + encodeScalar(v[i]);
    return s + ']';
  }
  return encodeScalar(v);
}

/**
 * The default encoding: `key=value` pairs sorted by key (UTF-16 code units), joined by
 * `,`. Keys escape `\`, `,` and `=` with a backslash; values are typed: strings are JSON
 * strings (`"GET"`), numbers print bare (`200`, `NaN`), booleans `true`/`false`, arrays
 * `[...]` of those. Attributes whose value is `undefined` or `null` are left out, as the
 * provider leaves them out. Injective: `{a: 1}`, `{a: "1"}` and `{"a=1": ""}` all differ,
 * and the text can be parsed back.
 *
 * Example: `{ status: 200, method: 'GET' }` encodes as `method="GET",status=200`.
 */
export class DefaultLabelEncoder implements LabelEncoder {
  readonly id = 'hotmeter.default.v1';

  /** {@inheritDoc LabelEncoder.encode} */
  encode(attributes: Attributes): string {
    const keys = Object.keys(attributes).sort();
    let out = '';
    for (const k of keys) {
      const v = attributes[k];
      if (v === undefined || v === null) continue;
      out += (out === '' ? '' : ',') + encodeKey(k) + '=' + encodeValue(v);
    }
    return out;
  }
}

/** The shared default encoder. */
export const defaultLabelEncoder: LabelEncoder = new DefaultLabelEncoder();

interface CacheEntry {
  id: string;
  value: string;
  others?: Map<string, string>;
}

// Attribute objects of CheckpointRecords are owned by the SDK and immutable: the same
// object comes back in every collection while its record lives, and is dropped when the
// record is reclaimed, so a WeakMap keyed by it caches each encoding for that lifetime.
const cache = new WeakMap<object, CacheEntry>();

/**
 * `encoder.encode(attributes)`, cached per attribute object and encoder id. Attribute
 * objects passed here must not be mutated afterwards (those of CheckpointRecords never
 * are). An encoder that throws is diagnosed and the default encoding is used instead.
 */
export function encodedLabels(attributes: Attributes, encoder: LabelEncoder = defaultLabelEncoder): string {
  const e = cache.get(attributes);
  if (e !== undefined) {
    if (e.id === encoder.id) return e.value;
    const o = e.others?.get(encoder.id);
    if (o !== undefined) return o;
  }
  let value: string;
  try {
    value = encoder.encode(attributes);
    if (typeof value !== 'string') throw new TypeError(`returned ${typeof value}`);
  } catch (err) {
    warnLimited(`encoder:${encoder.id}`, `label encoder ${encoder.id} failed (${describeValue(err)}); default encoding used`);
    value = '\u0000' + defaultLabelEncoder.encode(attributes);
  }
  if (e === undefined) cache.set(attributes, { id: encoder.id, value });
  else (e.others ??= new Map()).set(encoder.id, value);
  return value;
}
