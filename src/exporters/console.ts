// ConsoleMetricExporter: prints each exported series on one readable line, for
// development and debugging (like OpenTelemetry JS's ConsoleMetricExporter).
import type { CheckpointRecord, CheckpointSet } from '../export/checkpoint-set';
import { ExportResult, ExportResultCode, Exporter, ExportResource } from '../export/exporter';
import { defaultLabelEncoder, encodedLabels, LabelEncoder } from '../export/label-encoder';
import { hasMinMax } from '../export/batchers/merge';
import type { TemporalityPreference } from '../export/temporality';
import { InstrumentKind } from '../sdk/descriptor';
import { describeValue } from '../sdk/diag';

/** Where the console exporter writes: anything with a `write(text)` method. */
export interface TextSink {
  write(text: string): unknown;
}

/** Options of {@link ConsoleMetricExporter}. */
export interface ConsoleMetricExporterOptions {
  /** Where to write. Default `process.stdout`. */
  stream?: TextSink;
  /** Temporality to ask the batcher for. Default CUMULATIVE. */
  temporality?: TemporalityPreference;
  /** How labels are printed (and series keyed). Default {@link defaultLabelEncoder} (`k="v",n=1`). */
  labelEncoder?: LabelEncoder;
  /** Print a header line per collection (time, size, resource). Default true. */
  header?: boolean;
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function time(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/**
 * Writes every series of every export as one line:
 *
 *     name{labels} [unit] KIND kind values (start .. end)
 *
 * for example
 *
 *     http.requests{method="GET",status=200} COUNTER sum=5 (2025-01-01T00:00:00.000Z .. 2025-01-01T00:01:00.000Z)
 *     http.duration{route="/"} [s] HISTOGRAM histogram count=3 sum=0.6 min=0.1 max=0.3 buckets=[<=0.1:1, <=0.5:2, +Inf:0] (...)
 *
 * preceded by a header line with the collection time, the number of series and the
 * resource. Each export is written with a single `write` call.
 */
export class ConsoleMetricExporter implements Exporter {
  /** {@inheritDoc Exporter.temporality} */
  readonly temporality: TemporalityPreference | undefined;
  /** {@inheritDoc Exporter.labelEncoder} */
  readonly labelEncoder: LabelEncoder;
  private readonly stream: TextSink;
  private readonly header: boolean;
  private shut = false;

  /** @param options output stream, temporality, label encoder, header. */
  constructor(options: ConsoleMetricExporterOptions = {}) {
    this.stream = options.stream ?? process.stdout;
    this.temporality = options.temporality;
    this.labelEncoder = options.labelEncoder ?? defaultLabelEncoder;
    this.header = options.header !== false;
  }

  /** The lines this exporter prints for `set` (without trailing newlines). */
  format(set: CheckpointSet, resource?: ExportResource): string[] {
    const lines: string[] = [];
    if (this.header) {
      const res = resource !== undefined ? encodedLabels(resource.attributes, defaultLabelEncoder) : '';
      lines.push(`# collection ${set.epoch} at ${time(set.time)}: ${set.size} series${res ? `, resource {${res}}` : ''}`);
    }
    for (const r of set) lines.push(this.formatRecord(r));
    return lines;
  }

  /** One series as a line. */
  formatRecord(r: CheckpointRecord): string {
    const d = r.descriptor;
    const labels = encodedLabels(r.attributes, this.labelEncoder);
    const unit = d.unit ? ` [${d.unit}]` : '';
    const kind = InstrumentKind[d.kind] ?? String(d.kind);
    const a = r.aggregation;
    let values: string;
    switch (a.kind) {
      case 'sum':
        values = `sum=${num(a.sum)}`;
        break;
      case 'lastValue':
        values = `lastValue=${num(a.value)}`;
        break;
      case 'minMaxSumCount':
        values = `minMaxSumCount count=${num(a.count)} sum=${num(a.sum)}` + (hasMinMax(a) ? ` min=${num(a.min)} max=${num(a.max)}` : ' min=? max=?');
        break;
      case 'histogram': {
        const buckets = a.bucketCounts.map((c, i) => `${i < a.boundaries.length ? '<=' + num(a.boundaries[i]) : '+Inf'}:${num(c)}`);
        values =
          `histogram count=${num(a.count)} sum=${num(a.sum)}` +
          (hasMinMax(a) ? ` min=${num(a.min)} max=${num(a.max)}` : ' min=? max=?') +
          ` buckets=[${buckets.join(', ')}]`;
        break;
      }
      default: {
        const { kind: k, ...rest } = a as { kind: string };
        values = `${k} ${JSON.stringify(rest)}`;
      }
    }
    return `${d.name}{${labels}}${unit} ${kind} ${values} (${time(r.startTime)} .. ${time(r.endTime)})`;
  }

  /** Prints `set` with one `write`. Resolves FAILED after shutdown or if the stream throws. */
  async export(set: CheckpointSet, resource: ExportResource): Promise<ExportResult> {
    if (this.shut) return { code: ExportResultCode.FAILED, error: new Error('hotmeter: ConsoleMetricExporter is shut down') };
    try {
      this.stream.write(this.format(set, resource).join('\n') + '\n');
      return { code: ExportResultCode.SUCCESS };
    } catch (e) {
      return { code: ExportResultCode.FAILED, error: e instanceof Error ? e : new Error(describeValue(e)) };
    }
  }

  /** Nothing is buffered. */
  async forceFlush(): Promise<void> {}

  /** Later exports resolve FAILED. */
  async shutdown(): Promise<void> {
    this.shut = true;
  }
}
