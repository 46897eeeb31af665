// What bounds the memory the Prometheus endpoint holds for its clients, whatever they do:
//   - OutputBudget: the bytes of streamed parts written and not yet given back (held for
//     responses still being sent), across every scrape of one exporter. A part is written
//     only once the budget has room for it; a scrape waits for room meanwhile.
//   - ResponseWatch: each response in flight and when its writes last made progress (a
//     write called back: the socket, or the gzip stream in front of it, took a chunk). A
//     response without progress for writeTimeout is closed (its scrape, its parts and its
//     snapshot's label pin go with it); while a scrape waits for budget, the response
//     stalled longest (at least evictAfter) is closed to make room.
// Everything here runs on the JS thread.

/** A response the watch follows. */
export interface Watched {
  /** Writes handed to the sink and not called back yet. */
  pending: number;
  /** When a write last called back (or the watch began), Date.now(). */
  lastProgress: number;
  /** Closes the response (and with it the scrape it reads). */
  readonly abort: () => void;
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: (taken: boolean) => void;
  readonly cancelled: () => boolean;
  readonly anyway: () => boolean;
}

/** The output memory of one exporter's streamed scrapes, and the responses that hold it. */
export class OutputBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];

  /**
   * @param limit bytes held at most (one part is always allowed when nothing is held)
   * @param writeTimeout a response whose pending writes make no progress this long is closed, ms
   * @param evictAfter a response stalled this long may be closed when a scrape waits for room, ms
   */
  constructor(
    readonly limit: number,
    readonly writeTimeout: number,
    private readonly evictAfter: number,
  ) {}

  /** Bytes held now. */
  get held(): number {
    return this.used;
  }

  /** Responses in flight. */
  get responses(): number {
    return this.watched.size;
  }

  /** Takes `bytes` if there is room now (always when nothing is held). */
  tryTake(bytes: number): boolean {
    if (this.waiters.length > 0 || (this.used > 0 && this.used + bytes > this.limit)) return false;
    this.used += bytes;
    return true;
  }

  /** Takes `bytes` now, room or not (small, short-lived state such as a gzip stream's). */
  force(bytes: number): void {
    this.used += bytes;
  }

  /**
   * Takes `bytes` once there is room, in arrival order, or as soon as `anyway()` turns
   * true (room or not); resolves false without taking them if `cancelled()` turns true
   * first. Both are checked whenever bytes are given back and at each tick of the watch.
   */
  take(bytes: number, cancelled: () => boolean, anyway: () => boolean = () => false): Promise<boolean> {
    if (this.tryTake(bytes)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.waiters.push({ bytes, resolve, cancelled, anyway });
      this.evict();
      this.arm();
    });
  }

  /** Gives back bytes taken. */
  give(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) this.used = 0;
    this.pump();
  }

  /** Follows a response until `unwatch`. */
  watch(w: Watched): void {
    this.watched.add(w);
    this.arm();
  }

  unwatch(w: Watched): void {
    if (!this.watched.delete(w)) return;
    if (this.watched.size === 0) {
      for (const f of this.idle.splice(0)) f();
    }
  }

  /** Resolves once no response is in flight. */
  drained(): Promise<void> {
    if (this.watched.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Closes every response in flight (shutdown past its grace). */
  abortAll(): void {
    for (const w of [...this.watched]) w.abort();
  }

  /** Wakes the waiters that fit now, in order, and those that go anyway; drops cancelled ones. */
  pump(): void {
    for (let k = 0; k < this.waiters.length; k++) {
      const w = this.waiters[k];
      if (w.cancelled() || !w.anyway()) continue;
      this.waiters.splice(k--, 1);
      this.used += w.bytes;
      w.resolve(true);
    }
    while (this.waiters.length > 0) {
      const w = this.waiters[0];
      if (w.cancelled()) {
        this.waiters.shift();
        w.resolve(false);
        continue;
      }
      if (this.used > 0 && this.used + w.bytes > this.limit) return;
      this.waiters.shift();
      this.used += w.bytes;
      w.resolve(true);
    }
  }

  /** While scrapes wait for room: closes the response stalled longest, if long enough. */
  private evict(): void {
    if (this.waiters.length === 0) return;
    const now = Date.now();
    let worst: Watched | undefined;
    for (const w of this.watched) {
      if (w.pending > 0 && now - w.lastProgress >= this.evictAfter && (worst === undefined || w.lastProgress < worst.lastProgress)) worst = w;
    }
    worst?.abort();
  }

  /** Runs the watch's tick while anything is watched or waiting. */
  private arm(): void {
    if (this.timer !== undefined) return;
    const every = Math.max(20, Math.min(1_000, Math.floor(Math.min(this.writeTimeout, this.evictAfter) / 4)));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
  }

  private tick(): void {
    const now = Date.now();
    for (const w of [...this.watched]) {
      if (w.pending > 0 && now - w.lastProgress >= this.writeTimeout) w.abort();
    }
    this.pump();
    this.evict();
    if (this.watched.size === 0 && this.waiters.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/**
 * Whether an Accept-Encoding header accepts gzip (RFC 9110: `gzip` or `x-gzip` or `*` with
 * a q above 0, an explicit `gzip;q=0` refusing it).
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  let star: boolean | undefined;
  for (const item of value.split(',')) {
    const [rawName, ...params] = item.split(';');
    const name = rawName.trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k.trim().toLowerCase() === 'q') q = Number(v);
    }
    const ok = Number.isFinite(q) && q > 0;
    if (name === 'gzip' || name === 'x-gzip') return ok;
    if (name === '*') star = ok;
  }
  return star === true;
}
