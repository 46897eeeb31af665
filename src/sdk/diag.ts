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
    diag.warn(`hotmeter: ${message}`);
    return;
  }
  if (now - slot.last < INTERVAL_MS) {
    slot.suppressed++;
    return;
  }
  const n = slot.suppressed;
  slot.last = now;
  slot.suppressed = 0;
  diag.warn(n > 0 ? `hotmeter: ${message} (and ${n} more like it suppressed)` : `hotmeter: ${message}`);
}

/** For tests: forget every rate-limit window. */
export function resetDiagLimits(): void {
  slots.clear();
}
