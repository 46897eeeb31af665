// Exemplars (OpenTelemetry's exemplar model): a measurement made inside a sampled span is
// offered to its record's reservoir, with the span's trace and span ids.
//
// Cost: nothing while exemplars are not live. `exemplarState.live` is true only while
// some provider of this thread keeps exemplars AND either a context manager is registered
// with @opentelemetry/api (without one no span can be active) or a provider's filter is
// always_on. The handles that keep exemplars register two versions of their recording
// method (offeringMethod): the prototype holds the plain one, without any exemplar code,
// while `live` is false, and the offering one (the same writes, then offerExemplar: the
// slow path that looks at the active context) while it is true. Swapping deoptimizes the
// callers once; it happens only when `live` changes (provider creation and shutdown, a
// context manager registered later).
//
// Storage: native memory per record and thread (native/core/exemplar.h), in this thread's
// slabs: offerExemplar writes a slot through the slab's view (single writer: this thread),
// collection passes read every thread's cells and keep the latest per slot. The cell is
// made by one native call per handle, on the handle's first exemplar.
import { isSpanContextValid, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import type { ContextManager, SpanContext } from '@opentelemetry/api';
import { warnLimited } from './diag';
import { native } from './native';
import { slabView } from './slabs';

/**
 * Which measurements are offered as exemplars (OpenTelemetry's ExemplarFilter):
 * `trace_based` (default) those made inside a sampled span, `always_on` every one (outside
 * a span without trace and span ids), `always_off` none.
 */
export type ExemplarFilter = 'trace_based' | 'always_on' | 'always_off';

/** The filter as the handles read it. */
export enum ExemplarFilterCode {
  OFF = 0,
  TRACE_BASED = 1,
  ALWAYS_ON = 2,
}

/** The option's value as a code; a TypeError for anything else. */
export function exemplarFilterCode(f: unknown): ExemplarFilterCode {
  if (f === undefined || f === 'trace_based') return ExemplarFilterCode.TRACE_BASED;
  if (f === 'always_on') return ExemplarFilterCode.ALWAYS_ON;
  if (f === 'always_off') return ExemplarFilterCode.OFF;
  throw new TypeError(`hotmeter: exemplarFilter must be 'trace_based', 'always_on' or 'always_off'`);
}

/** Whether the handles' prototypes hold the offering methods (see offeringMethod). */
export const exemplarState = { live: false };

// The recording methods with and without the exemplar offer, by prototype.
const methods: { proto: Record<string, unknown>; name: string; plain: unknown; offering: unknown }[] = [];

/**
 * Registers `offering`, a version of `proto[name]` that does the same writes and then
 * offers the measurement (offerExemplar), to stand in for it while exemplars are live.
 * Called once per method when the handle classes are defined.
 */
export function offeringMethod(proto: object, name: string, offering: unknown): void {
  const p = proto as Record<string, unknown>;
  methods.push({ proto: p, name, plain: p[name], offering });
  if (exemplarState.live) p[name] = offering;
}

function setLive(live: boolean): void {
  if (live === exemplarState.live) return;
  exemplarState.live = live;
  for (const m of methods) m.proto[m.name] = live ? m.offering : m.plain;
}

// Slot layout (native/core/exemplar.h): [timeMs, value, trace0..3, span0, span1].
const SLOT_DOUBLES = 8;
/** exOff of a handle whose record keeps no exemplars (or whose cell could not be made). */
export const EX_NONE = -2;
/** exOff of a handle that has not asked for its exemplar cell yet. */
export const EX_UNKNOWN = -1;

/** What offerExemplar needs of a handle (BoundHandle's fields). */
export interface ExemplarTarget {
  readonly recordId: number;
  readonly owner: { readonly name: string; readonly exemplarFilter: ExemplarFilterCode };
  exF64: Float64Array | undefined;
  exOff: number;
}

const cellOut = new Float64Array(3);
// The ids of the last span context seen, as 32-bit words (an SDK span returns the same
// SpanContext object on every spanContext() call: parsed once per span).
let lastContext: SpanContext | undefined;
const words = new Float64Array(6);

function parseIds(sc: SpanContext): boolean {
  if (sc === lastContext) return true;
  if (!isSpanContextValid(sc)) return false;
  const t = sc.traceId, s = sc.spanId;
  for (let i = 0; i < 4; i++) words[i] = parseInt(t.substring(i * 8, i * 8 + 8), 16);
  for (let i = 0; i < 2; i++) words[4 + i] = parseInt(s.substring(i * 8, i * 8 + 8), 16);
  lastContext = sc;
  return true;
}

/**
 * Offers a measurement already recorded through `h` (into `slot`: the bucket index of a
 * histogram, 0 for a counter) as an exemplar, if the handle's filter accepts it. The
 * latest offered measurement of a slot wins. Never throws.
 */
export function offerExemplar(h: ExemplarTarget, value: number, slot: number): void {
  const filter = h.owner.exemplarFilter;
  if (filter === ExemplarFilterCode.OFF || h.exOff === EX_NONE) return;
  let sc: SpanContext | undefined;
  try {
    // The registered manager itself (what context.active() calls, without the API's
    // global lookup and version check on every measurement).
    const ctx = manager !== undefined ? manager.active() : ROOT_CONTEXT;
    if (ctx !== ROOT_CONTEXT) {
      const span = trace.getSpan(ctx);
      if (span !== undefined) sc = span.spanContext();
    }
  } catch {
    sc = undefined; // a broken context manager: no exemplar
  }
  let ids = false;
  if (sc !== undefined && (filter === ExemplarFilterCode.ALWAYS_ON || (sc.traceFlags & TraceFlags.SAMPLED) !== 0)) ids = parseIds(sc);
  if (!ids && filter !== ExemplarFilterCode.ALWAYS_ON) return;
  if (h.exOff === EX_UNKNOWN && !exemplarCell(h)) return;
  const f = h.exF64!;
  const o = h.exOff + slot * SLOT_DOUBLES;
  f[o + 1] = value;
  if (ids) {
    f[o + 2] = words[0];
    f[o + 3] = words[1];
    f[o + 4] = words[2];
    f[o + 5] = words[3];
    f[o + 6] = words[4];
    f[o + 7] = words[5];
  } else {
    f[o + 2] = f[o + 3] = f[o + 4] = f[o + 5] = f[o + 6] = f[o + 7] = 0;
  }
  f[o] = Date.now();
}

/** Finds this thread's exemplar cell of the handle's record (once per handle). */
function exemplarCell(h: ExemplarTarget): boolean {
  try {
    const made = native().exemplarCell(h.recordId, cellOut);
    if (made === 1) {
      h.exF64 = slabView(cellOut[0]);
      h.exOff = cellOut[1];
      return true;
    }
    // The measurement is recorded; only its exemplars (this handle's, from now on) go.
    if (made === -1) warnLimited(`exemplar:${h.owner.name}`, `${h.owner.name}: the processShared segment has no room for an exemplar cell; exemplars dropped`);
  } catch (e) {
    warnLimited(`exemplar:${h.owner.name}`, `${h.owner.name}: exemplar storage unavailable (${String(e)}); exemplars dropped`);
  }
  h.exOff = EX_NONE;
  return false;
}

// Providers of this thread that keep exemplars, and those of them that are always_on.
let providers = 0;
let alwaysOn = 0;
let timer: ReturnType<typeof setInterval> | undefined;
const API_KEY = Symbol.for('opentelemetry.js.api.1');

// The context manager registered with @opentelemetry/api (1.x) in this thread, as of the
// last refresh.
let manager: ContextManager | undefined;

function registeredContextManager(): ContextManager | undefined {
  const g = (globalThis as Record<symbol, { context?: ContextManager } | undefined>)[API_KEY];
  const m = g?.context;
  return m !== undefined && typeof m.active === 'function' ? m : undefined;
}

/**
 * Recomputes exemplarState.live (swapping the handles' methods when it changes) and the
 * context manager offerExemplar asks: at each provider's creation and shutdown, and every
 * second while a provider keeps exemplars (a context manager registered, or replaced,
 * later is seen within a second).
 */
export function refreshExemplars(): void {
  manager = registeredContextManager();
  setLive(providers > 0 && (alwaysOn > 0 || manager !== undefined));
}

/** A provider with this filter was created. */
export function exemplarProviderAdded(filter: ExemplarFilterCode): void {
  if (filter === ExemplarFilterCode.OFF) return;
  providers++;
  if (filter === ExemplarFilterCode.ALWAYS_ON) alwaysOn++;
  if (timer === undefined) {
    timer = setInterval(refreshExemplars, 1000);
    timer.unref();
  }
  refreshExemplars();
}

/** A provider created with this filter shut down. */
export function exemplarProviderRemoved(filter: ExemplarFilterCode): void {
  if (filter === ExemplarFilterCode.OFF) return;
  providers--;
  if (filter === ExemplarFilterCode.ALWAYS_ON) alwaysOn--;
  if (providers === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
  refreshExemplars();
}
