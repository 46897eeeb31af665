// Prometheus text format 0.0.4 and OpenMetrics 1.0.0 from a CheckpointSet.
//
// This is the path for CheckpointSets built in JavaScript: batched or delta sets from a
// PullController or PushController, sets a MetricProducer returns, sets you assemble.
// A PrometheusExporter attached to a MeterProvider does not come here: the provider
// serializes its live records natively (native/core/prometheus_serializer.*), with the
// same rules, and test/prometheus-format.test.ts checks that both print the same text.
//
// Rules (the OpenTelemetry "Prometheus and OpenMetrics compatibility" specification):
//   - names: see naming.ts; counters (monotonic sums) end in `_total`; gauges are
//     non-monotonic sums and last values; histograms (explicit buckets, cumulative, with
//     `+Inf`; exponential histograms as classic buckets: `le="0"` for zeros, then the
//     upper boundary of each positive bucket in use); summaries for sketches (quantiles),
//     exact values (quantiles of the values since the previous collection) and
//     min/max/sum/count (quantile 0 = min, 1 = max).
//   - families sorted by name, HELP/TYPE (and in OpenMetrics UNIT) once each; records of
//     several instruments (scopes) with the same name and type share a family; an
//     instrument whose names clash with a family of another type is left out.
//   - labels: sanitized names, collisions merged ('a.b' and 'a_b' -> a_b="v1;v2" in key
//     order), attributes named `le`, `quantile` (and `otel_scope_*` with scope labels)
//     renamed `exported_<name>`, then otel_scope_name and otel_scope_version (unless
//     withoutScopeInfo).
//   - target_info: the resource (a gauge in the text format, an info family in OpenMetrics).
//   - one series per identity: records of a family whose label text is the same
//     (attributes that differ only in type, 200 and "200"; names that sanitize alike;
//     a name registered again) are written as one series (see MergeHow), with a diagnostic.
//     Where the native serializer merges exactly and this one cannot (sketches, exponential
//     histograms of different layouts), this one keeps count and sum exact and one record's
//     quantiles, or the buckets both have.
//   - OpenMetrics: `<family>_created` per counter, histogram and summary series, the
//     record's start time in seconds (the earliest of merged records); no timestamps.
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { CheckpointRecord, CheckpointSet } from '../../export/checkpoint-set';
import type { Descriptor, InstrumentationScope } from '../../sdk/descriptor';
import { lowerBoundary } from '../../sdk/exponential-histogram';
import { warnLimited } from '../../sdk/diag';
import { escapeHelp, escapeLabelValue, familyName, FamilyType, formatValue, NamingOptions, sanitizeLabelName } from './naming';

/**
 * How records of one series identity (family and label text) were written as one series
 * (the native serializer's MergeKind): ADDED exactly (sums added, equal histograms
 * bucket-wise, min/max/sum/count); KEPT_LATEST a gauge's value updated last; KEPT_QUANTILES
 * a summary's count and sum added with the quantiles of the record with the largest count;
 * COMMON_BUCKETS a histogram's count and sum added with the buckets every record has.
 */
export enum MergeHow {
  ADDED = 0,
  KEPT_LATEST = 1,
  KEPT_QUANTILES = 2,
  COMMON_BUCKETS = 3,
}

const HOW_TEXT = [
  'their values are added',
  'the value updated last is kept',
  'count and sum are added, the quantiles are those of the series with the larger count',
  'count and sum are added, with the buckets both have',
];

/** The diagnostic for records of `a` (and of `b`, another instrument) written as one series. */
export function mergedSeriesWarning(a: string, b: string | undefined, how: MergeHow): string {
  const what =
    b === undefined
      ? `${a}: series whose attributes differ only in value type or in characters label names cannot hold (200 and "200", "a.b" and "a_b") have the same Prometheus labels`
      : `${a} and ${b} have series with the same Prometheus name and labels (names that sanitize alike, a name registered again, or attributes that differ only in type)`;
  return `${what}; each such pair is written as one series: ${HOW_TEXT[how] ?? 'merged'}`;
}

/** prom-client's default summary percentiles. */
export const DEFAULT_SUMMARY_QUANTILES: readonly number[] = Object.freeze([0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999]);

/** How a collection is written for Prometheus. */
export interface PrometheusFormatOptions {
  /** OpenMetrics 1.0.0 instead of the text format 0.0.4. Default false. */
  openMetrics?: boolean;
  /** Leave out the otel_scope_name / otel_scope_version labels. */
  withoutScopeInfo?: boolean;
  /** Leave out target_info (the resource). */
  withoutTargetInfo?: boolean;
  /**
   * Quantiles of summaries (sketch and exact aggregations), each in [0, 1]. Default
   * prom-client's [0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999]; an instrument created with
   * `advice: { quantiles }` shows its own.
   */
  summaryQuantiles?: readonly number[];
  /** Prepended to every metric name (with its '_'). */
  namePrefix?: string;
  /** Names without the unit word (the names @opentelemetry/exporter-prometheus writes). */
  withoutUnits?: boolean;
  /** Counters without `_total` in the text format (OpenMetrics keeps it). */
  withoutCounterSuffixes?: boolean;
  /** Resource attributes whose names match: labels of every sample. */
  withResourceConstantLabels?: RegExp;
  /** Every sample with the collection's time, ms. */
  appendTimestamp?: boolean;
}

/** `k="v",...` of the resource attributes whose names match `re` ('' for none). */
export function constantLabelText(resource: Attributes | undefined, re: RegExp | undefined): string {
  if (resource === undefined || re === undefined) return '';
  const picked: Attributes = {};
  for (const k of Object.keys(resource)) {
    re.lastIndex = 0;
    if (re.test(k)) picked[k] = resource[k];
  }
  return labelText(picked, undefined);
}

/** The text of an attribute value as a label value. */
export function attributeText(v: AttributeValue): string {
  return typeof v === 'string' ? v : Array.isArray(v) ? JSON.stringify(v) : String(v);
}

type Reserved = ReadonlySet<string> | undefined;
// Renamed `exported_<name>` on every family: Prometheus tooling reads `le` and `quantile`
// as bucket and quantile labels wherever they appear.
const RESERVED: Reserved = new Set(['le', 'quantile']);
const RESERVED_WITH_SCOPE: Reserved = new Set(['le', 'quantile', 'otel_scope_name', 'otel_scope_version']);

/**
 * `k="v",...` for a label set (no braces): sanitized names, values of colliding names
 * joined with ';' in key order, names in `reserved` renamed `exported_<name>`.
 */
function labelText(attrs: Attributes, reserved: Reserved): string {
  const merged = mergedLabels(attrs, reserved, escapeLabelValue);
  let out = '';
  for (const [k, v] of merged) out += `${out === '' ? '' : ','}${k}="${v}"`;
  return out;
}

/** Label name -> value for a label set (as labelText merges them), values passed through `value`. */
function mergedLabels(attrs: Attributes, reserved: Reserved, value: (s: string) => string): Map<string, string> {
  const merged = new Map<string, string>();
  const keys = Object.keys(attrs).sort();
  for (const k of keys) {
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    let name = sanitizeLabelName(k);
    if (reserved !== undefined && reserved.has(name)) name = `exported_${name}`;
    const text = value(attributeText(v));
    const prev = merged.get(name);
    merged.set(name, prev === undefined ? text : `${prev};${text}`);
  }
  return merged;
}

/** `{k="v",...}` for a label set plus optional extra labels; '' when empty. */
export function labelBlock(attrs: Attributes, extra?: readonly (readonly [string, string])[]): string {
  let out = labelText(attrs, undefined);
  if (extra) for (const [k, v] of extra) out += `${out === '' ? '' : ','}${k}="${escapeLabelValue(v)}"`;
  return out === '' ? '' : `{${out}}`;
}

/** The target_info family for a resource ('' for an empty one). */
export function targetInfoText(resource: Attributes | undefined, openMetrics: boolean): string {
  if (resource === undefined) return '';
  const labels = labelText(resource, undefined);
  if (labels === '') return '';
  return openMetrics
    ? `# HELP target Target metadata\n# TYPE target info\ntarget_info{${labels}} 1\n`
    : `# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{${labels}} 1\n`;
}

/** The target_info labels for a resource as [name, value] pairs (unescaped; none for an empty one). */
export function targetInfoLabels(resource: Attributes | undefined): [string, string][] {
  return resource === undefined ? [] : [...mergedLabels(resource, undefined, (s) => s)];
}

/** Names target_info takes (instruments mapping to them are left out). */
export const TARGET_INFO_NAMES: readonly string[] = Object.freeze(['target_info', 'target']);

/** The family type of a record's aggregation. */
export function familyTypeOf(r: CheckpointRecord): FamilyType {
  const a = r.aggregation;
  switch (a.kind) {
    case 'sum':
      return a.monotonic ? 'counter' : 'gauge';
    case 'lastValue':
      return 'gauge';
    case 'histogram':
    case 'exponentialHistogram':
      return 'histogram';
    default:
      return 'summary';
  }
}

/** Every name a family claims: its TYPE names in both formats and its samples'. */
function claimedNames(d: Descriptor, type: FamilyType, naming: NamingOptions): string[] {
  const text = familyName(d.name, d.unit, type, false, naming);
  const om = familyName(d.name, d.unit, type, true, naming);
  const names = [text.family];
  if (om.family !== text.family) names.push(om.family);
  if (type === 'histogram') names.push(`${text.sample}_bucket`);
  if (type === 'histogram' || type === 'summary') names.push(`${text.sample}_count`, `${text.sample}_sum`);
  if (type !== 'gauge') names.push(`${om.family}_created`);
  return names;
}

interface Member {
  descriptor: Descriptor;
  scope: InstrumentationScope;
  records: CheckpointRecord[];
}

interface Family {
  name: string;
  textKey: string;
  type: FamilyType;
  unit: string;
  help: string;
  members: Member[];
}

/** The quantiles a summary of `d` shows. */
export function quantilesFor(d: Descriptor, fallback: readonly number[]): readonly number[] {
  return d.adviceQuantiles ?? fallback;
}

function scopeText(scope: InstrumentationScope): string {
  let s = '';
  if (scope.name) s += `otel_scope_name="${escapeLabelValue(scope.name)}"`;
  if (scope.version) s += `${s === '' ? '' : ','}otel_scope_version="${escapeLabelValue(scope.version)}"`;
  return s;
}

/**
 * Renders a collection as Prometheus text: the text format 0.0.4 by default, OpenMetrics
 * 1.0.0 with `openMetrics: true`. For compatibility with earlier releases this function
 * leaves out the scope labels unless `withoutScopeInfo: false` is given (a
 * PrometheusExporter writes them unless told not to).
 */
export function serializeText(set: CheckpointSet, resource?: Attributes, options: PrometheusFormatOptions = {}): string {
  const om = options.openMetrics === true;
  const withScope = options.withoutScopeInfo === false;
  const quantiles = options.summaryQuantiles ?? DEFAULT_SUMMARY_QUANTILES;
  const target = options.withoutTargetInfo ? '' : targetInfoText(resource, om);
  const naming: NamingOptions = { namePrefix: options.namePrefix, withoutUnits: options.withoutUnits, withoutCounterSuffixes: options.withoutCounterSuffixes };
  const constant = constantLabelText(resource, options.withResourceConstantLabels);
  const ts = options.appendTimestamp ? ` ${Math.floor(set.time)}` : '';

  // Instruments in order of first appearance (the set's order: registration order).
  const members: Member[] = [];
  const byDescriptor = new Map<Descriptor, Map<InstrumentationScope, Member>>();
  for (const r of set) {
    let scopes = byDescriptor.get(r.descriptor);
    if (scopes === undefined) byDescriptor.set(r.descriptor, (scopes = new Map()));
    let m = scopes.get(r.scope);
    if (m === undefined) {
      m = { descriptor: r.descriptor, scope: r.scope, records: [] };
      scopes.set(r.scope, m);
      members.push(m);
    }
    m.records.push(r);
  }

  const families: Family[] = [];
  const claimed = new Map<string, Family | null>(); // null: reserved
  if (target !== '') for (const n of TARGET_INFO_NAMES) claimed.set(n, null);
  for (const m of members) {
    const type = familyTypeOf(m.records[0]);
    const names = claimedNames(m.descriptor, type, naming);
    let joined: Family | undefined;
    let clash = false;
    for (const n of names) {
      if (!claimed.has(n)) continue;
      const f = claimed.get(n);
      if (f === null || f === undefined || f.type !== type || f.textKey !== names[0]) {
        clash = true;
        break;
      }
      joined = f;
    }
    if (clash) continue;
    if (joined === undefined) {
      const fn = familyName(m.descriptor.name, m.descriptor.unit, type, om, naming);
      joined = {
        name: fn.family,
        textKey: names[0],
        type,
        unit: fn.unit,
        help: m.descriptor.description || m.descriptor.name,
        members: [],
      };
      families.push(joined);
      for (const n of names) claimed.set(n, joined);
    }
    joined.members.push(m);
  }
  families.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const out: string[] = [target];
  for (const f of families) {
    let head = `# HELP ${f.name} ${escapeHelp(f.help, om)}\n# TYPE ${f.name} ${f.type}\n`;
    if (om && f.unit !== '') head += `# UNIT ${f.name} ${f.unit}\n`;
    out.push(head);
    const reserved = withScope ? RESERVED_WITH_SCOPE : RESERVED;
    // Records by label text, in order of their first record: each text is one series.
    const series = new Map<string, { member: Member; record: CheckpointRecord }[]>();
    for (const m of f.members) {
      let scope = withScope ? scopeText(m.scope) : '';
      if (constant !== '') scope += (scope === '' ? '' : ',') + constant;
      for (const r of m.records) {
        let labels = labelText(r.attributes, reserved);
        if (scope !== '') labels += (labels === '' ? '' : ',') + scope;
        const list = series.get(labels);
        if (list === undefined) series.set(labels, [{ member: m, record: r }]);
        else list.push({ member: m, record: r });
      }
    }
    const created = om && f.type !== 'gauge' ? `${f.name}_created` : '';
    for (const [labels, list] of series) {
      const first = list[0];
      const name = familyName(first.member.descriptor.name, first.member.descriptor.unit, f.type, om, naming).sample;
      const line = (suffix: string, extra: string, v: number): string => {
        const l = labels !== '' && extra !== '' ? `${labels},${extra}` : labels + extra;
        return `${name}${suffix}${l === '' ? '' : `{${l}}`} ${formatValue(v)}${ts}\n`;
      };
      const quantileLines = (r: CheckpointRecord, m: Member): string => {
        const a = r.aggregation;
        const qs = quantilesFor(m.descriptor, quantiles);
        let s = '';
        if (a.kind === 'sketch' && a.count > 0) for (const q of qs) s += line('', `quantile="${formatValue(q)}"`, a.quantile(q));
        if (a.kind === 'exact' && a.values.length > 0) {
          for (const q of qs) s += line('', `quantile="${formatValue(q)}"`, a.values[Math.floor(q * (a.values.length - 1))]);
        }
        if (a.kind === 'minMaxSumCount' && a.count > 0) s += line('', 'quantile="0"', a.min) + line('', 'quantile="1"', a.max);
        return s;
      };
      let s: string;
      if (list.length === 1) {
        s = recordLines(first.record, line, () => quantileLines(first.record, first.member));
      } else {
        const how = mergeHowOf(f.type, list.map((e) => e.record));
        const ids = new Set(list.map((e) => e.member));
        const others = [...ids].filter((m) => m !== first.member);
        if (others.length === 0) warnLimited(`prom-merge-ts:${first.member.descriptor.name}:${how}`, mergedSeriesWarning(first.member.descriptor.name, undefined, how));
        for (const o of others) {
          warnLimited(`prom-merge-ts:${first.member.descriptor.name}:${o.descriptor.name}:${how}`, mergedSeriesWarning(first.member.descriptor.name, o.descriptor.name, how));
        }
        s = mergedLines(list, how, line, quantileLines);
      }
      if (created !== '') {
        let start = Infinity;
        for (const e of list) start = Math.min(start, e.record.startTime);
        const l = labels === '' ? '' : `{${labels}}`;
        s += `${created}${l} ${formatValue(Math.floor(start) / 1000)}${ts}\n`;
      }
      out.push(s);
    }
  }
  if (om) out.push('# EOF\n');
  return out.join('');
}

type Line = (suffix: string, extra: string, v: number) => string;

/** A record's samples (without `_created`). */
function recordLines(r: CheckpointRecord, line: Line, quantileLines: () => string): string {
  let s = '';
  const a = r.aggregation;
  switch (a.kind) {
    case 'sum':
      return line('', '', a.sum);
    case 'lastValue':
      return line('', '', a.value);
    case 'histogram': {
      let cum = 0;
      for (let i = 0; i < a.bucketCounts.length; i++) {
        cum += a.bucketCounts[i];
        const le = i < a.boundaries.length ? formatValue(a.boundaries[i]) : '+Inf';
        s += line('_bucket', `le="${le}"`, cum);
      }
      return s + line('_sum', '', a.sum) + line('_count', '', cum);
    }
    case 'exponentialHistogram': {
      for (const [le, cum] of cumulativeBuckets(r)) s += line('_bucket', `le="${formatValue(le)}"`, cum);
      s += line('_bucket', 'le="+Inf"', a.count);
      return s + line('_sum', '', a.sum) + line('_count', '', a.count);
    }
    case 'sketch':
    case 'exact':
    case 'minMaxSumCount':
      return quantileLines() + line('_sum', '', a.sum) + line('_count', '', a.count);
  }
}

/** A histogram's cumulative counts at its finite bounds, ascending (exponential: `le="0"` first). */
function cumulativeBuckets(r: CheckpointRecord): [number, number][] {
  const a = r.aggregation;
  const out: [number, number][] = [];
  if (a.kind === 'histogram') {
    let cum = 0;
    for (let i = 0; i < a.boundaries.length; i++) out.push([a.boundaries[i], (cum += a.bucketCounts[i])]);
  } else if (a.kind === 'exponentialHistogram') {
    let cum = a.zeroCount;
    for (const c of a.negative.bucketCounts) cum += c;
    out.push([0, cum]);
    const p = a.positive;
    for (let i = 0; i < p.bucketCounts.length; i++) out.push([lowerBoundary(p.offset + i + 1, a.scale), (cum += p.bucketCounts[i])]);
  }
  return out;
}

function countAndSum(r: CheckpointRecord): [number, number] {
  const a = r.aggregation;
  switch (a.kind) {
    case 'sum':
      return [0, a.sum];
    case 'lastValue':
      return [0, a.value];
    default:
      return [a.count, a.sum];
  }
}

/** As the native MergeKindOf, for what a CheckpointSet can merge. */
function mergeHowOf(type: FamilyType, records: CheckpointRecord[]): MergeHow {
  const kinds = new Set(records.map((r) => r.aggregation.kind));
  switch (type) {
    case 'counter':
      return MergeHow.ADDED;
    case 'gauge':
      return kinds.has('lastValue') ? MergeHow.KEPT_LATEST : MergeHow.ADDED;
    case 'histogram': {
      const a = records[0].aggregation;
      const same =
        a.kind === 'histogram' &&
        records.every((r) => r.aggregation.kind === 'histogram' && r.aggregation.boundaries.length === a.boundaries.length && r.aggregation.boundaries.every((b, i) => b === a.boundaries[i]));
      return same ? MergeHow.ADDED : MergeHow.COMMON_BUCKETS;
    }
    case 'summary':
      return kinds.size === 1 && kinds.has('minMaxSumCount') ? MergeHow.ADDED : MergeHow.KEPT_QUANTILES;
  }
}

/** Records of one series identity as one series (without `_created`). */
function mergedLines(
  list: { member: Member; record: CheckpointRecord }[],
  how: MergeHow,
  line: Line,
  quantileLines: (r: CheckpointRecord, m: Member) => string,
): string {
  const records = list.map((e) => e.record);
  let count = 0;
  let sum = 0;
  for (const r of records) {
    const [c, t] = countAndSum(r);
    count += c;
    sum += t;
  }
  const first = records[0].aggregation;
  switch (how) {
    case MergeHow.ADDED:
      if (first.kind === 'sum') return line('', '', sum);
      if (first.kind === 'histogram') {
        let s = '';
        let cum = 0;
        for (let i = 0; i < first.bucketCounts.length; i++) {
          for (const r of records) if (r.aggregation.kind === 'histogram') cum += r.aggregation.bucketCounts[i];
          s += line('_bucket', `le="${i < first.boundaries.length ? formatValue(first.boundaries[i]) : '+Inf'}"`, cum);
        }
        return s + line('_sum', '', sum) + line('_count', '', count);
      }
      if (first.kind === 'minMaxSumCount') {
        let min = Infinity;
        let max = -Infinity;
        for (const r of records) {
          if (r.aggregation.kind !== 'minMaxSumCount') continue;
          min = Math.min(min, r.aggregation.min);
          max = Math.max(max, r.aggregation.max);
        }
        const q = count > 0 ? line('', 'quantile="0"', min) + line('', 'quantile="1"', max) : '';
        return q + line('_sum', '', sum) + line('_count', '', count);
      }
      return line('', '', sum);
    case MergeHow.KEPT_LATEST: {
      // The record updated last (the largest lastUpdateEpoch; the first of equals), as the
      // native writer keeps it. Records without epochs (other producers): one updated in
      // this collection, else the first. Not just `updated`: that is relative to this
      // reader's previous pass, so a scrape after an idle interval kept the first record,
      // and the value went back to an older one with no write in between.
      let kept = records.find((r) => r.updated) ?? records[0];
      if (records.every((r) => r.lastUpdateEpoch !== undefined)) {
        kept = records[0];
        for (const r of records) if (r.lastUpdateEpoch! > kept.lastUpdateEpoch!) kept = r;
      }
      return line('', '', countAndSum(kept)[1]);
    }
    case MergeHow.KEPT_QUANTILES: {
      let best = 0;
      for (let i = 1; i < records.length; i++) if (countAndSum(records[i])[0] > countAndSum(records[best])[0]) best = i;
      return quantileLines(list[best].record, list[best].member) + line('_sum', '', sum) + line('_count', '', count);
    }
    case MergeHow.COMMON_BUCKETS: {
      let buckets = cumulativeBuckets(records[0]);
      for (let i = 1; i < records.length; i++) {
        const other = new Map(cumulativeBuckets(records[i]));
        buckets = buckets.filter(([le]) => other.has(le)).map(([le, cum]) => [le, cum + (other.get(le) ?? 0)]);
      }
      let s = '';
      for (const [le, cum] of buckets) s += line('_bucket', `le="${formatValue(le)}"`, cum);
      return s + line('_bucket', 'le="+Inf"', count) + line('_sum', '', sum) + line('_count', '', count);
    }
  }
}
