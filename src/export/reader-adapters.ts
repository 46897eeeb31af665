// Reader adapters: how a MeterProvider accepts readers written against another metrics
// SDK's API. The OTLP bridge (src/exporters/otlp) installs the one for OpenTelemetry JS
// readers when it is loaded (the package's index loads it), so the provider itself knows
// no exporter.
import type { MetricReader } from './reader';

/** Turns a reader it recognises into a hotmeter MetricReader; undefined for others. */
export type ReaderAdapter = (reader: object) => MetricReader | undefined;

const adapters: ReaderAdapter[] = [];

/** Installs an adapter (once; later calls with the same function do nothing). */
export function registerReaderAdapter(adapter: ReaderAdapter): void {
  if (!adapters.includes(adapter)) adapters.push(adapter);
}

/** The reader as a MetricReader: the first adapter that recognises it, else itself. */
export function adaptReader(reader: unknown): MetricReader {
  if (reader !== null && (typeof reader === 'object' || typeof reader === 'function')) {
    for (const a of adapters) {
      const r = a(reader);
      if (r !== undefined) return r;
    }
  }
  return reader as MetricReader;
}
