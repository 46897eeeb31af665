// Thread-level eviction: how a thread that does not collect (a worker attached to the
// main thread's domain) learns that records it references went idle (or were removed), so
// it gives back its cached references (and, with expiry on, the records can be reclaimed).
//
// Protocol (see RecordMap::Collect and RecordMap::DrainStale):
// 1. A collection (of a provider with reclamation, the default), in whichever thread runs
//    it, queues every record it saw not updated that a thread still references into that
//    thread's native stale queue (once per record until drained).
// 2. Each thread drains its own queue here: on its next cache miss after the native
//    side reported the queue non-empty (acquire's stalePending), and on an unref'd timer,
//    so a thread that never records again still lets go.
// 3. Every RecordStore of the thread drops its cached handles for those records and
//    releases their references (a cached handle is only reached through the store's
//    caches, so nothing in this thread can write the cell afterwards). Bound handles
//    keep their own references.
// 4. The native record (and its value) stays: by default series persist in cumulative
//    exports. With expiry on (reclaimIdleMillis), a record is reclaimed only when its
//    refcount is 0 (every thread let go, or exited: retiring an arena drops its
//    references), it was idle that long, and every reader of the collecting provider
//    delivered its final state; a label set used again later gets a new record. A removed
//    record (remove(), clear()) is in every referencing thread's queue whatever its
//    activity, so cached handles of it go too.
import { native } from './native';

/** What a store offers the thread's eviction (RecordStore.evict). */
export interface Evictable {
  /** Evicts until `deadline` (performance.now()); evictionPending if it stopped early. */
  evict(stale: ReadonlySet<number>, deadline?: number): number;
  readonly evictionPending?: boolean;
}

/**
 * A drain works this long, ms, before it lets the event loop turn (and goes on in the
 * next turns): dropping the cached handles of tens of thousands of records held it tens
 * of milliseconds.
 */
const DRAIN_SLICE_MS = 4;

/** How often a thread drains its stale queue when it does not record, ms. */
export const DEFAULT_EVICT_INTERVAL_MS = 1000;

const stores = new Set<WeakRef<Evictable>>();
const refOf = new WeakMap<Evictable, WeakRef<Evictable>>();
let pending = false;
let draining = false;
let timer: NodeJS.Timeout | undefined;
let intervalMs = DEFAULT_EVICT_INTERVAL_MS;
const counters = { drains: 0, staleIds: 0, evicted: 0 };

function startTimer(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = setInterval(drainStale, intervalMs);
  timer.unref?.();
}

/** @internal Called by every RecordStore of this thread that records natively. */
export function trackStore(store: Evictable): void {
  const ref = new WeakRef(store);
  stores.add(ref);
  refOf.set(store, ref);
  if (timer === undefined) startTimer();
}

/** @internal A store that holds no reference any more (its provider shut down). */
export function untrackStore(store: Evictable): void {
  const ref = refOf.get(store);
  if (ref === undefined) return;
  stores.delete(ref);
  refOf.delete(store);
}

/** @internal The native side said this thread's stale queue is not empty. */
export function markStalePending(): void {
  pending = true;
}

/** @internal Whether a drain is due before the next acquisition. */
export function stalePending(): boolean {
  return pending;
}

/**
 * Drains this thread's stale queue: every store of the thread drops its cached handles of
 * the records listed and releases their references, in slices of DRAIN_SLICE_MS (the
 * first one now, the rest in the next turns of the event loop; a drain asked for while
 * one is under way is left to the next one). Returns how many cached handles were dropped
 * now. Never throws.
 */
export function drainStale(): number {
  if (draining) return 0; // pending stays as it is: drained after this drain
  pending = false;
  let ids: Float64Array;
  try {
    ids = native().drainStale();
  } catch {
    return 0; // the environment is shutting down: its arena retires with its references
  }
  counters.drains++;
  if (ids.length === 0) return 0;
  counters.staleIds += ids.length;
  const live: Evictable[] = [];
  for (const w of stores) {
    const s = w.deref();
    if (s === undefined) stores.delete(w);
    else live.push(s);
  }
  draining = true;
  return drainSlice(new Set<number>(ids), live, 0);
}

/** One slice of a drain: stores from live[i] on, until DRAIN_SLICE_MS passed. */
function drainSlice(stale: ReadonlySet<number>, live: Evictable[], i: number): number {
  const deadline = performance.now() + DRAIN_SLICE_MS;
  let n = 0;
  try {
    for (; i < live.length; i++) {
      const s = live[i];
      try {
        n += s.evict(stale, deadline);
      } catch {
        continue; // a store that cannot evict keeps its references; the others still let go
      }
      if (s.evictionPending === true) {
        const at = i;
        setImmediate(() => drainSlice(stale, live, at));
        return n;
      }
    }
    draining = false;
    if (pending) setImmediate(drainStale);
    return n;
  } finally {
    counters.evicted += n;
  }
}

/**
 * Sets how often this thread drains its stale queue when it does not record (default
 * 1000 ms). The timer is unref'd: it never keeps a thread alive.
 */
export function setEvictInterval(ms: number): void {
  if (!(Number.isFinite(ms) && ms >= 1)) throw new TypeError('hotmeter: evictIntervalMillis must be a number >= 1');
  intervalMs = Math.min(ms, 2 ** 31 - 1);
  if (timer !== undefined) startTimer();
}

/** This thread's eviction counters (drains run, stale ids received, cached handles dropped). */
export function evictionStats(): { drains: number; staleIds: number; evicted: number; intervalMillis: number } {
  return { ...counters, intervalMillis: intervalMs };
}
