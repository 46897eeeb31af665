// The call-metrics instruments: OpenTelemetry names (semantic-convention style) and the
// attribute keys. Prometheus names follow from the exporter's OpenTelemetry -> Prometheus
// rules (unit suffix, `_total` for counters):
//
//   <prefix>.call.duration        Histogram (sketch)  s       -> <prefix>_call_duration_seconds        summary
//   <prefix>.calls                Counter             {call}  -> <prefix>_calls_total                  counter
//   <prefix>.call.last_duration   Gauge               s       -> <prefix>_call_last_duration_seconds   gauge
//   <prefix>.calls.active         UpDownCounter       {call}  -> <prefix>_calls_active                 gauge

/** Attribute (Prometheus label) keys. */
export const ATTR_API_TYPE = 'api_type';
/** The attribute naming the call (e.g. `getUser`). */
export const ATTR_CALL_NAME = 'call_name';
/** The attribute of `calls_total` telling how a call ended: ok, error or timeout. */
export const ATTR_OUTCOME = 'outcome';

/** Values of the `outcome` attribute of `<prefix>.calls`. */
export const OUTCOME_OK = 'ok';
/** `outcome` of a call that ended with an error. */
export const OUTCOME_ERROR = 'error';
/** `outcome` of a call whose end never came within `callTimeoutMs`. */
export const OUTCOME_TIMEOUT = 'timeout';

/** The instrumentation scope (meter name) of the engine's instruments. */
export const CALL_METRICS_SCOPE = 'hotmeter.callmetrics';

/** The default prefix (namespace) of the instrument names. */
export const DEFAULT_CALL_METRICS_PREFIX = 'hotmeter';

/** The instrument names for a prefix. */
export interface CallMetricNames {
  readonly duration: string;
  readonly calls: string;
  readonly lastDuration: string;
  readonly active: string;
}

/** A prefix must be a valid start of an OpenTelemetry instrument name. */
export function validPrefix(prefix: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_.-]{0,200}$/.test(prefix) && !prefix.endsWith('.');
}

/** The call metrics' instrument names under `prefix`. */
export function callMetricNames(prefix: string = DEFAULT_CALL_METRICS_PREFIX): CallMetricNames {
  return Object.freeze({
    duration: `${prefix}.call.duration`,
    calls: `${prefix}.calls`,
    lastDuration: `${prefix}.call.last_duration`,
    active: `${prefix}.calls.active`,
  });
}
