import { diag } from '@opentelemetry/api';

// Rate-limited diagnostics: the first report of a kind is logged at once, later ones at
// most once per interval with the number suppressed, so a hot loop of bad calls costs a
// Map lookup and never floods the log.
const INTERVAL_MS = 10_000;
const MAX_KINDS = 1024;

interface Slot {
  last: number;
  suppressed: number;
}
const slots = new Map<string, Slot>();

/** Logs `message` through `diag.warn`, at most once per 10 s for the same `kind`. */
export function warnLimited(kind: string, message: string): void {
  const now = Date.now();
  let slot = slots.get(kind);
  if (slot === undefined) {
    if (slots.size >= MAX_KINDS) slots.clear();
    slot = { last: now, suppressed: 0 };
    slots.set(kind, slot);
    emit(`hotmeter: ${message}`);
    return;
  }
  if (now - slot.last < INTERVAL_MS) {
    slot.suppressed++;
    return;
  }
  const n = slot.suppressed;
  slot.last = now;
  slot.suppressed = 0;
  emit(n > 0 ? `hotmeter: ${message} (and ${n} more like it suppressed)` : `hotmeter: ${message}`);
}

// A user's DiagLogger that throws must not make a recording call throw.
function emit(line: string): void {
  try {
    diag.warn(line);
  } catch {
    // nothing sensible left to report to
  }
}

/**
 * `String(value)` for a diagnostic, which never throws: a thrown value may be an object
 * with no string form (`Object.create(null)`) or a throwing `toString`.
 */
export function describeValue(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return 'a value that cannot be printed';
    }
  }
}

/** For tests: forget every rate-limit window. */
export function resetDiagLimits(): void {
  slots.clear();
}
