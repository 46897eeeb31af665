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
//   - `_created` is not written; no timestamps.
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { CheckpointRecord, CheckpointSet } from '../../export/checkpoint-set';
import type { Descriptor, InstrumentationScope } from '../../sdk/descriptor';
import { lowerBoundary } from '../../sdk/exponential-histogram';
import { escapeHelp, escapeLabelValue, familyName, FamilyType, formatValue, sanitizeLabelName } from './naming';

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
  const merged = new Map<string, string>();
  const keys = Object.keys(attrs).sort();
  for (const k of keys) {
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    let name = sanitizeLabelName(k);
    if (reserved !== undefined && reserved.has(name)) name = `exported_${name}`;
    const text = escapeLabelValue(attributeText(v));
    const prev = merged.get(name);
    merged.set(name, prev === undefined ? text : `${prev};${text}`);
  }
  let out = '';
  for (const [k, v] of merged) out += `${out === '' ? '' : ','}${k}="${v}"`;
  return out;
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
function claimedNames(d: Descriptor, type: FamilyType): string[] {
  const text = familyName(d.name, d.unit, type, false);
  const om = familyName(d.name, d.unit, type, true);
  const names = [text.family];
  if (om.family !== text.family) names.push(om.family);
  if (type === 'histogram') names.push(`${text.sample}_bucket`);
  if (type === 'histogram' || type === 'summary') names.push(`${text.sample}_count`, `${text.sample}_sum`);
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
    const names = claimedNames(m.descriptor, type);
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
      const fn = familyName(m.descriptor.name, m.descriptor.unit, type, om);
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
    for (const m of f.members) {
      const name = familyName(m.descriptor.name, m.descriptor.unit, f.type, om).sample;
      const scope = withScope ? scopeText(m.scope) : '';
      const qs = quantilesFor(m.descriptor, quantiles);
      for (const r of m.records) {
        let labels = labelText(r.attributes, reserved);
        if (scope !== '') labels += (labels === '' ? '' : ',') + scope;
        const line = (suffix: string, extra: string, v: number): string => {
          const l = labels !== '' && extra !== '' ? `${labels},${extra}` : labels + extra;
          return `${name}${suffix}${l === '' ? '' : `{${l}}`} ${formatValue(v)}\n`;
        };
        let s = '';
        const a = r.aggregation;
        switch (a.kind) {
          case 'sum':
            s += line('', '', a.sum);
            break;
          case 'lastValue':
            s += line('', '', a.value);
            break;
          case 'histogram': {
            let cum = 0;
            for (let i = 0; i < a.bucketCounts.length; i++) {
              cum += a.bucketCounts[i];
              const le = i < a.boundaries.length ? formatValue(a.boundaries[i]) : '+Inf';
              s += line('_bucket', `le="${le}"`, cum);
            }
            s += line('_sum', '', a.sum);
            s += line('_count', '', cum);
            break;
          }
          case 'exponentialHistogram': {
            let cum = a.zeroCount;
            for (const c of a.negative.bucketCounts) cum += c;
            s += line('_bucket', 'le="0"', cum);
            const p = a.positive;
            for (let i = 0; i < p.bucketCounts.length; i++) {
              cum += p.bucketCounts[i];
              s += line('_bucket', `le="${formatValue(lowerBoundary(p.offset + i + 1, a.scale))}"`, cum);
            }
            s += line('_bucket', 'le="+Inf"', a.count);
            s += line('_sum', '', a.sum);
            s += line('_count', '', a.count);
            break;
          }
          case 'sketch':
            if (a.count > 0) for (const q of qs) s += line('', `quantile="${formatValue(q)}"`, a.quantile(q));
            s += line('_sum', '', a.sum);
            s += line('_count', '', a.count);
            break;
          case 'exact':
            if (a.values.length > 0) {
              for (const q of qs) s += line('', `quantile="${formatValue(q)}"`, a.values[Math.floor(q * (a.values.length - 1))]);
            }
            s += line('_sum', '', a.sum);
            s += line('_count', '', a.count);
            break;
          case 'minMaxSumCount':
            if (a.count > 0) {
              s += line('', 'quantile="0"', a.min);
              s += line('', 'quantile="1"', a.max);
            }
            s += line('_sum', '', a.sum);
            s += line('_count', '', a.count);
            break;
        }
        out.push(s);
      }
    }
  }
  if (om) out.push('# EOF\n');
  return out.join('');
}
