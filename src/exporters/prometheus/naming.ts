// OpenTelemetry -> Prometheus names (the OpenTelemetry "Prometheus and OpenMetrics
// compatibility" rules): invalid characters to '_', runs of '_' collapsed, unit suffixes,
// `_total` for monotonic sums. The native serializer (native/core/prometheus_naming.cc)
// applies exactly these rules; test/prometheus-format.test.ts checks that both agree.

const UNIT_WORDS: Record<string, string> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '%': 'percent',
};
const PER_UNIT: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

function own(table: Record<string, string>, key: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function sanitize(name: string, invalid: RegExp): string {
  let s = name.replace(invalid, '_').replace(/_+/g, '_');
  if (/^[0-9]/.test(s)) s = '_' + s;
  return s === '' ? '_' : s;
}

/**
 * A Prometheus metric name: characters outside [a-zA-Z0-9_:] become '_', runs of '_'
 * collapse into one, a leading digit gets a '_' prefix.
 */
export function sanitizeMetricName(name: string): string {
  return sanitize(name, /[^a-zA-Z0-9_:]/g);
}

/**
 * A Prometheus label name: characters outside [a-zA-Z0-9_] become '_', runs of '_'
 * collapse into one (so no label starts with the reserved `__`), a leading digit gets a
 * '_' prefix.
 */
export function sanitizeLabelName(name: string): string {
  return sanitize(name, /[^a-zA-Z0-9_]/g);
}

function unitPart(w: string): string {
  return sanitizeMetricName(w).replace(/^_|_$/g, '');
}

/**
 * The unit as Prometheus words: `s` -> `seconds`, `By/s` -> `bytes_per_second`;
 * annotations in braces (`{request}`) are dropped; `1` is `ratio` for gauges and nothing
 * otherwise; '' when there is no unit.
 */
export function unitSuffix(unit: string, isGauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '') return '';
  if (u === '1') return isGauge ? 'ratio' : '';
  const slash = u.indexOf('/');
  if (slash >= 0) {
    const a = u.slice(0, slash);
    const b = u.slice(slash + 1);
    const aw = own(UNIT_WORDS, a) ?? a;
    const bw = own(PER_UNIT, b) ?? own(UNIT_WORDS, b) ?? b;
    return unitPart(aw ? `${aw}_per_${bw}` : `per_${bw}`);
  }
  return unitPart(own(UNIT_WORDS, u) ?? u);
}

/** Prometheus family types. */
export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary';

/** The names of a family in one format. */
export interface FamilyName {
  /** The name HELP, TYPE and UNIT use. */
  readonly family: string;
  /** The base of the sample names (counters: ends in `_total`). */
  readonly sample: string;
  /** The UNIT word, '' when none. */
  readonly unit: string;
}

/** Name options (the exporter's `prefix` and `withoutUnits`). */
export interface NamingOptions {
  /** Prepended to every name before it is sanitized (with its '_'). */
  readonly namePrefix?: string;
  /** No unit word (and no UNIT metadata): the names @opentelemetry/exporter-prometheus writes. */
  readonly withoutUnits?: boolean;
  /** Counters without `_total` in the text format (OpenMetrics requires and keeps it). */
  readonly withoutCounterSuffixes?: boolean;
}

/**
 * The names of an instrument's family: the sanitized name, the unit word appended unless
 * the name already ends with it, and for counters `_total` on the samples (in the text
 * format on the family name too; OpenMetrics names the family without it). `naming`: a
 * prefix, no unit word.
 */
export function familyName(name: string, unit: string, type: FamilyType, openMetrics: boolean, naming: NamingOptions = {}): FamilyName {
  let base = sanitizeMetricName(naming.namePrefix ? naming.namePrefix + name : name);
  const u = naming.withoutUnits ? '' : unitSuffix(unit, type === 'gauge');
  const suffix = !(naming.withoutCounterSuffixes && !openMetrics);
  if (type === 'counter' && suffix && base.length > 6 && base.endsWith('_total')) base = base.slice(0, -6);
  if (u !== '' && base !== u && !base.endsWith('_' + u)) base = `${base}_${u}`;
  if (type === 'counter' && suffix) {
    const sample = `${base}_total`;
    return { family: openMetrics ? base : sample, sample, unit: u };
  }
  return { family: base, sample: base, unit: u };
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c)) : v;
}

/** Escapes HELP text: backslash and newline (and, in OpenMetrics, double quote). */
export function escapeHelp(v: string, openMetrics = false): string {
  const re = openMetrics ? /[\\"\n]/g : /[\\\n]/g;
  return v.replace(re, (c) => (c === '\n' ? '\\n' : '\\' + c));
}

/** A sample value as JavaScript prints it, with Prometheus' +Inf, -Inf and NaN. */
export function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}
