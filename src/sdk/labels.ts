// The label set encoding (LabelEncoder's canonical form).
//
// An attribute object becomes a flat, key-sorted list [k0, v0, k1, v1, ...] where each
// value carries a one-letter type tag: 's' string, 'n' number, 'b' boolean, 'a' array
// (JSON of primitives). Native code length-prefixes every part, so the encoding is
// injective whatever the strings contain, and sorting makes it independent of key order.
// Strings are made well-formed (lone surrogates -> U+FFFD) because every exporter must
// emit valid UTF-8: two values that differ only in lone surrogates share one series.
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import { warnLimited } from './diag';

/** Limits applied to every attribute set when it is first seen (MeterProvider `labelLimits`). */
export interface LabelLimits {
  /** Attributes beyond this count (after sorting by key) are dropped. Default 128. */
  maxAttributes: number;
  /** Longer keys drop the attribute. Default 1024. */
  maxKeyLength: number;
  /** Longer string values are truncated. Default 4096. */
  maxValueLength: number;
}

/** The default {@link LabelLimits}: 128 attributes, keys of 1024 and values of 4096 characters. */
export const DEFAULT_LABEL_LIMITS: LabelLimits = Object.freeze({
  maxAttributes: 128,
  maxKeyLength: 1024,
  maxValueLength: 4096,
});

function wellFormed(s: string, limit: number, key: string, instrument: string): string {
  if (s.length > limit) {
    warnLimited(`trunc:${instrument}`, `attribute "${key.slice(0, 64)}" of ${instrument} truncated to ${limit} characters`);
    s = s.slice(0, limit);
  }
  return s.isWellFormed() ? s : s.toWellFormed();
}

function encodeValue(v: unknown, key: string, limits: LabelLimits, instrument: string): string | undefined {
  switch (typeof v) {
    case 'string':
      return 's' + wellFormed(v, limits.maxValueLength, key, instrument);
    case 'number':
      return 'n' + String(v);
    case 'boolean':
      return v ? 'btrue' : 'bfalse';
    case 'object':
      if (Array.isArray(v) && v.length <= limits.maxAttributes) {
        const out: unknown[] = [];
        for (const e of v) {
          if (e === null || e === undefined) out.push(null);
          else if (typeof e === 'string') out.push(wellFormed(e, limits.maxValueLength, key, instrument));
          else if (typeof e === 'number' || typeof e === 'boolean') out.push(Number.isFinite(e) || typeof e === 'boolean' ? e : String(e));
          else return undefined;
        }
        return 'a' + JSON.stringify(out);
      }
      return undefined;
    default:
      return undefined;
  }
}

/**
 * Sorts as Array.prototype.sort() does (UTF-16 code units), without its allocations: a
 * first use of a label set would otherwise make most of its garbage here (~0.9 KB a call
 * for three keys), and that garbage is what grows V8's young generation while recording.
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 32) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i];
    let j = i - 1;
    while (j >= 0 && keys[j] > k) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = k;
  }
}

/**
 * Canonical parts of an attribute set, or undefined when `attrs` is not an object.
 * Invalid attributes (non-primitive values, over-long keys) are dropped with a diagnostic;
 * the measurement itself is kept.
 */
export function encodeLabels(
  attrs: unknown,
  limits: LabelLimits,
  instrument: string,
  keep?: (key: string) => boolean,
): string[] | undefined {
  if (attrs === null || typeof attrs !== 'object' || Array.isArray(attrs)) return undefined;
  const keys: string[] = [];
  for (const k in attrs as Record<string, unknown>) keys.push(k);
  sortKeys(keys);
  const parts: string[] = [];
  for (const k of keys) {
    const v = (attrs as Record<string, unknown>)[k];
    if (v === undefined || v === null) continue;
    if (keep !== undefined && !keep(k)) continue;
    if (k.length > limits.maxKeyLength || k.length === 0) {
      warnLimited(`key:${instrument}`, `attribute key of length ${k.length} on ${instrument} dropped (allowed 1..${limits.maxKeyLength})`);
      continue;
    }
    const ev = encodeValue(v, k, limits, instrument);
    if (ev === undefined) {
      warnLimited(`val:${instrument}`, `attribute "${k.slice(0, 64)}" of ${instrument} dropped: value of type ${typeof v} is not a primitive or an array of primitives`);
      continue;
    }
    if (parts.length / 2 >= limits.maxAttributes) {
      warnLimited(`count:${instrument}`, `${instrument}: attributes beyond ${limits.maxAttributes} dropped`);
      break;
    }
    parts.push(wellFormed(k, limits.maxKeyLength, k, instrument), ev);
  }
  return parts;
}

/**
 * Decodes canonical parts (as stored natively) back into typed attributes: a plain
 * object whose own enumerable properties are exactly the keys, `__proto__` included.
 */
export function decodeLabels(parts: readonly string[]): Attributes {
  const out: Attributes = {};
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const tv = parts[i + 1];
    const tag = tv.charCodeAt(0);
    const body = tv.slice(1);
    let v: AttributeValue;
    if (tag === 0x73 /* s */) v = body;
    else if (tag === 0x6e /* n */) v = Number(body);
    else if (tag === 0x62 /* b */) v = body === 'true';
    else v = JSON.parse(body) as AttributeValue;
    const k = parts[i];
    // Assigning `__proto__` would set the prototype (an array value) or do nothing.
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  return out;
}

/** The value part of an encoded label as text (what Prometheus shows). */
export function labelText(taggedValue: string): string {
  return taggedValue.slice(1);
}
