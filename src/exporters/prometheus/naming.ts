// OpenTelemetry -> Prometheus names: invalid characters to '_', unit suffixes, '_total'
// for monotonic sums (the OpenTelemetry compatibility specification).

const UNIT_WORDS: Record<string, string> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '%': 'percent',
};
const PER_UNIT: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/** Prometheus metric-name characters only; a leading digit gets a '_' prefix. */
export function sanitizeMetricName(name: string): string {
  let s = name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/_+/g, '_');
  if (/^[0-9]/.test(s)) s = '_' + s;
  return s;
}

/** Prometheus label-name characters only; a leading digit gets a '_' prefix. */
export function sanitizeLabelName(name: string): string {
  let s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(s)) s = '_' + s;
  if (s === '') s = '_';
  return s;
}

/** The unit suffix for a UCUM unit ('' when none). Annotations in braces are dropped. */
export function unitSuffix(unit: string, isGauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '') return '';
  if (u === '1') return isGauge ? 'ratio' : '';
  const slash = u.indexOf('/');
  if (slash >= 0) {
    const a = u.slice(0, slash);
    const b = u.slice(slash + 1);
    const aw = UNIT_WORDS[a] ?? a;
    const bw = PER_UNIT[b] ?? UNIT_WORDS[b] ?? b;
    return sanitizeMetricName(aw ? `${aw}_per_${bw}` : `per_${bw}`).replace(/^_|_$/g, '');
  }
  return sanitizeMetricName(UNIT_WORDS[u] ?? u).replace(/^_|_$/g, '');
}

/** The Prometheus family name (without `_total`, which counters add). */
export function metricFamilyName(name: string, unit: string, isGauge: boolean): string {
  let base = sanitizeMetricName(name);
  const suffix = unitSuffix(unit, isGauge);
  if (suffix !== '' && !base.endsWith('_' + suffix)) base = `${base}_${suffix}`;
  return base;
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and newline. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Prometheus text representation of a sample value. */
export function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}
