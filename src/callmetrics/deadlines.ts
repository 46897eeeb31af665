// The deadline list of the call metrics engine: the pending calls, in start order, and one
// unref'd timer for the oldest one's deadline.
//
// Every call has the same timeout, so calls expire in the order they started: pending
// calls sit in an intrusive doubly linked list in start order (O(1) link and unlink, no
// hashing, no per-call timer). One unref'd timer is armed for the oldest pending call's
// deadline; when it fires it expires every call past its deadline from the head of the
// list and re-arms for the new head, waiting at least `granularity` (timeout / 64, between
// 1 ms and 1 s) so that expirations are batched. While calls keep ending, the timer fires
// about once per timeout period; with nothing pending it is not armed at all. An expired
// call is unlinked and handed to `onExpire`, so the list never holds more than the calls
// started within one timeout.
//
// The list only ever runs on the thread that owns the engine; nothing here is shared.

/** Node states: a node is linked exactly while it is PENDING. */
export const PENDING = 0;
export const ENDED = 1;
export const TIMED_OUT = 2;
export const CANCELLED = 3;

/** The longest delay setTimeout() takes. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the list needs of a call: its start time, its links, its state. */
export interface DeadlineNode<N> {
  prev: N | null;
  next: N | null;
  state: number;
  readonly start: number;
}

/** The pending calls in start order, each due `timeoutMs` after its start. */
export class DeadlineList<N extends DeadlineNode<N>> {
  private head: N | null = null;
  private tail: N | null = null;
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly granularity: number;

  /**
   * @param timeoutMs every call's timeout, finite and > 0 (at most MAX_TIMER_MS).
   * @param now the engine's monotonic clock in ms (the one the calls' `start` is read on).
   * @param onExpire called for each call that timed out, after it was unlinked and marked TIMED_OUT.
   */
  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number,
    private readonly onExpire: (node: N) => void,
  ) {
    this.granularity = Math.min(1000, Math.max(1, timeoutMs / 64));
  }

  /** Calls linked (pending). */
  get size(): number {
    return this.count;
  }

  /** Links a call that has just started (its start is the latest); arms the timer if idle. */
  add(node: N): void {
    const tail = this.tail;
    node.prev = tail;
    if (tail === null) this.head = node;
    else tail.next = node;
    this.tail = node;
    this.count++;
    if (this.timer === undefined) this.arm();
  }

  /** Unlinks a pending call (one that ended before its deadline). */
  remove(node: N): void {
    const p = node.prev;
    const n = node.next;
    if (p === null) this.head = n;
    else p.next = n;
    if (n === null) this.tail = p;
    else n.prev = p;
    node.prev = node.next = null;
    this.count--;
  }

  /**
   * Stops the timer for good and unlinks every pending call, marking it CANCELLED and
   * handing it to `onCancel`.
   */
  close(onCancel: (node: N) => void): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (let c = this.head; c !== null; ) {
      const next = c.next;
      c.state = CANCELLED;
      c.prev = c.next = null;
      onCancel(c);
      c = next;
    }
    this.head = this.tail = null;
    this.count = 0;
  }

  /** Arms the timer for the oldest pending call's deadline (at least `granularity` away). */
  private arm(): void {
    const head = this.head;
    if (head === null) return;
    const wait = Math.max(head.start + this.timeoutMs - this.now(), this.granularity);
    const t = setTimeout(this.onTimer, Math.min(Math.ceil(wait), MAX_TIMER_MS));
    t.unref();
    this.timer = t;
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.closed) return;
    this.expire(this.now());
    this.arm();
  };

  /** Expires every call that started at or before `now - timeout`; returns how many. */
  private expire(now: number): number {
    const cutoff = now - this.timeoutMs;
    let c = this.head;
    let n = 0;
    while (c !== null && c.start <= cutoff) {
      const next = c.next;
      c.state = TIMED_OUT;
      c.prev = c.next = null;
      this.onExpire(c);
      c = next;
      n++;
    }
    this.head = c;
    if (c === null) this.tail = null;
    else c.prev = null;
    this.count -= n;
    return n;
  }
}
