// Prometheus text exposition format 0.0.4 from a CheckpointSet.
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import type { CheckpointRecord, CheckpointSet } from '../../export/checkpoint-set';
import { escapeHelp, escapeLabelValue, formatValue, metricFamilyName, sanitizeLabelName } from './naming';
import { lowerBoundary } from '../../sdk/exponential-histogram';

/** The quantiles a sketch or exact summary shows (prom-client's default percentiles). */
const SUMMARY_QUANTILES = [0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999];

function attrText(v: AttributeValue): string {
  return typeof v === 'string' ? v : Array.isArray(v) ? JSON.stringify(v) : String(v);
}

/** `{k="v",...}` for a label set plus optional extra labels; '' when empty. */
export function labelBlock(attrs: Attributes, extra?: readonly (readonly [string, string])[]): string {
  // Sanitised names may collide ("a.b" and "a_b"): values join with ';' in key order.
  const merged = new Map<string, string>();
  const keys = Object.keys(attrs).sort();
  for (const k of keys) {
    const v = attrs[k];
    if (v === undefined || v === null) continue;
    const name = sanitizeLabelName(k);
    const text = attrText(v);
    const prev = merged.get(name);
    merged.set(name, prev === undefined ? text : `${prev};${text}`);
  }
  if (extra) for (const [k, v] of extra) merged.set(k, v);
  if (merged.size === 0) return '';
  let out = '{';
  let first = true;
  for (const [k, v] of merged) {
    out += `${first ? '' : ','}${k}="${escapeLabelValue(v)}"`;
    first = false;
  }
  return out + '}';
}

interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  help: string;
  lines: string[];
}

function familyFor(r: CheckpointRecord): { name: string; type: Family['type'] } {
  const d = r.descriptor;
  const agg = r.aggregation;
  switch (agg.kind) {
    case 'sum': {
      const counter = agg.monotonic;
      const base = metricFamilyName(d.name, d.unit, !counter);
      return counter ? { name: base.endsWith('_total') ? base : `${base}_total`, type: 'counter' } : { name: base, type: 'gauge' };
    }
    case 'lastValue':
      return { name: metricFamilyName(d.name, d.unit, true), type: 'gauge' };
    case 'histogram':
      return { name: metricFamilyName(d.name, d.unit, false), type: 'histogram' };
    case 'minMaxSumCount':
    case 'sketch':
    case 'exact':
      return { name: metricFamilyName(d.name, d.unit, false), type: 'summary' };
    case 'exponentialHistogram':
      return { name: metricFamilyName(d.name, d.unit, false), type: 'histogram' };
  }
}

/** Renders a collection as Prometheus text format 0.0.4. */
export function serializeText(set: CheckpointSet, resource?: Attributes): string {
  const families = new Map<string, Family>();
  for (const r of set) {
    const { name, type } = familyFor(r);
    const key = `${name}\0${type}`;
    let f = families.get(key);
    if (f === undefined) {
      f = { name, type, help: r.descriptor.description || r.descriptor.name, lines: [] };
      families.set(key, f);
    }
    const agg = r.aggregation;
    const attrs = r.attributes;
    switch (agg.kind) {
      case 'sum':
        f.lines.push(`${name}${labelBlock(attrs)} ${formatValue(agg.sum)}`);
        break;
      case 'lastValue':
        f.lines.push(`${name}${labelBlock(attrs)} ${formatValue(agg.value)}`);
        break;
      case 'histogram': {
        let cum = 0;
        for (let i = 0; i < agg.bucketCounts.length; i++) {
          cum += agg.bucketCounts[i];
          const le = i < agg.boundaries.length ? formatValue(agg.boundaries[i]) : '+Inf';
          f.lines.push(`${name}_bucket${labelBlock(attrs, [['le', le]])} ${formatValue(cum)}`);
        }
        f.lines.push(`${name}_sum${labelBlock(attrs)} ${formatValue(agg.sum)}`);
        f.lines.push(`${name}_count${labelBlock(attrs)} ${formatValue(agg.count)}`);
        break;
      }
      case 'sketch':
      case 'exact': {
        // Exact: the values since the previous collection (as prom-client's summaries
        // show a recent window); the sketch: every value (cumulative).
        const v = agg.kind === 'exact' ? agg.values : undefined;
        if (v === undefined ? agg.count > 0 : v.length > 0) {
          for (const q of SUMMARY_QUANTILES) {
            const x = agg.kind === 'exact' ? agg.values[Math.floor(q * (agg.values.length - 1))] : agg.quantile(q);
            f.lines.push(`${name}${labelBlock(attrs, [['quantile', formatValue(q)]])} ${formatValue(x)}`);
          }
        }
        f.lines.push(`${name}_sum${labelBlock(attrs)} ${formatValue(agg.sum)}`);
        f.lines.push(`${name}_count${labelBlock(attrs)} ${formatValue(agg.count)}`);
        break;
      }
      case 'exponentialHistogram': {
        // As a classic histogram: le="0" holds zeros (and any negatives), then the upper
        // boundary of each positive bucket.
        let cum = agg.zeroCount;
        for (const c of agg.negative.bucketCounts) cum += c;
        f.lines.push(`${name}_bucket${labelBlock(attrs, [['le', '0']])} ${formatValue(cum)}`);
        const p = agg.positive;
        for (let i = 0; i < p.bucketCounts.length; i++) {
          cum += p.bucketCounts[i];
          const le = formatValue(lowerBoundary(p.offset + i + 1, agg.scale));
          f.lines.push(`${name}_bucket${labelBlock(attrs, [['le', le]])} ${formatValue(cum)}`);
        }
        f.lines.push(`${name}_bucket${labelBlock(attrs, [['le', '+Inf']])} ${formatValue(agg.count)}`);
        f.lines.push(`${name}_sum${labelBlock(attrs)} ${formatValue(agg.sum)}`);
        f.lines.push(`${name}_count${labelBlock(attrs)} ${formatValue(agg.count)}`);
        break;
      }
      case 'minMaxSumCount':
        if (agg.count > 0) {
          f.lines.push(`${name}${labelBlock(attrs, [['quantile', '0']])} ${formatValue(agg.min)}`);
          f.lines.push(`${name}${labelBlock(attrs, [['quantile', '1']])} ${formatValue(agg.max)}`);
        }
        f.lines.push(`${name}_sum${labelBlock(attrs)} ${formatValue(agg.sum)}`);
        f.lines.push(`${name}_count${labelBlock(attrs)} ${formatValue(agg.count)}`);
        break;
    }
  }
  let out = '';
  if (resource && Object.keys(resource).length > 0) {
    out += `# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info${labelBlock(resource)} 1\n`;
  }
  for (const f of families.values()) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const l of f.lines) out += l + '\n';
  }
  return out;
}

