// SharedStream: one streamed collection (a PrometheusStream) read by every HTTP scrape that
// arrived before its first part was written. Parts are written in order, each once, and
// each part's memory goes back (PrometheusStream.release) when every reader has passed it:
// a reader passes a part once the socket no longer holds its bytes (all its writes called
// back) or the reader left (its response closed). Joining ends with the first part: a
// later reader would need parts already given back, so it starts a new collection.
// With a budget (OutputBudget), a part is written only once the budget has room for about
// partBytes, and its bytes are given back with it.
import type { PrometheusPart, PrometheusStream } from '../../export/reader';

/** What SharedStream needs of an OutputBudget. */
export interface PartBudget {
  tryTake(bytes: number): boolean;
  take(bytes: number, cancelled: () => boolean, anyway?: () => boolean): Promise<boolean>;
  force(bytes: number): void;
  give(bytes: number): void;
}

/** One scrape's view of a SharedStream. */
export interface StreamReader {
  /** How many parts the text has. */
  readonly parts: number;
  /** The collection's epoch (PrometheusStream.epoch). */
  readonly epoch: number | undefined;
  /** Part `i` (written when first asked for); undefined past the last. */
  part(i: number): Promise<PrometheusPart | undefined>;
  /** Starts writing part `i` ahead of need if it is the next one and the budget has room now. */
  prefetch(i: number): void;
  /** This reader no longer needs parts up to `i`. */
  passed(i: number): void;
  /** This reader needs nothing more. Later calls do nothing. */
  leave(): void;
}

export class SharedStream {
  /** Part i's promise, from its first request until it is released (then null). */
  private readonly written: (Promise<PrometheusPart | undefined> | null)[] = [];
  /** The parts each present reader has passed (the next one it needs). */
  private readonly positions = new Map<object, number>();
  /** Parts below this are released. */
  private releasedBelow = 0;
  private joinable = true;
  private closed = false;
  /** Parts whose budget is taken (reserved, being written, or written) and not given back. */
  private holding = 0;
  /** Gives back the stream's heldBytes (once closed). */
  private onClose: (() => void) | undefined;
  /** Budget bytes each written part holds, by part (0 once given back). */
  private readonly charged: number[] = [];

  /**
   * @param budget where parts take their bytes (none: unbounded); the stream's heldBytes
   *   (its snapshot) are taken from it too while it is open
   * @param estimate the bytes a part is expected to take before it is written (partBytes)
   * @param firstTaken the estimate for part 0 was taken from the budget before the stream
   *   was opened (a collection waits for room before it takes its snapshot)
   */
  constructor(
    private readonly opened: Promise<PrometheusStream>,
    private readonly budget?: PartBudget,
    private readonly estimate = 0,
    private firstTaken = false,
  ) {
    if (firstTaken) this.holding = 1;
    opened.then(
      (stream) => {
        const held = stream.heldBytes ?? 0;
        if (held > 0 && budget !== undefined) {
          budget.force(held);
          this.onClose = () => budget.give(held);
        }
      },
      () => {
        if (this.firstTaken) {
          this.holding--;
          budget?.give(estimate);
        }
        this.firstTaken = false;
      },
    );
    // A failed open reaches the readers that joined through join(); none is left
    // unhandled, and later scrapes start a new collection.
    opened.catch(() => {
      this.joinable = false;
    });
  }

  /** Whether a new scrape may still read this collection (no part is written yet). */
  get canJoin(): boolean {
    return this.joinable && !this.closed;
  }

  /** A reader from part 0; only while canJoin. */
  join(): Promise<StreamReader> {
    if (!this.canJoin) throw new Error('hotmeter: this Prometheus stream no longer takes readers');
    const key = {};
    this.positions.set(key, 0);
    return this.opened.then(
      (stream) => ({
        parts: stream.parts,
        epoch: stream.epoch,
        part: (i: number) => this.part(stream, i),
        prefetch: (i: number) => this.prefetch(stream, i),
        passed: (i: number) => this.move(stream, key, i + 1),
        leave: () => this.move(stream, key, Infinity),
      }),
      (err: unknown) => {
        this.positions.delete(key);
        throw err;
      },
    );
  }

  private part(stream: PrometheusStream, i: number): Promise<PrometheusPart | undefined> {
    if (i >= stream.parts) return Promise.resolve(undefined);
    if (i < this.releasedBelow) return Promise.reject(new Error(`hotmeter: part ${i} of this scrape was given back`));
    for (let k = this.written.length; k <= i; k++) {
      this.chain(stream, k, k === 0 && this.firstTaken);
    }
    return this.written[i] as Promise<PrometheusPart | undefined>;
  }

  private prefetch(stream: PrometheusStream, i: number): void {
    if (i !== this.written.length || i >= stream.parts || this.closed) return;
    if (this.budget !== undefined) {
      if (!this.budget.tryTake(this.estimate)) return;
      this.holding++;
    }
    this.chain(stream, i, this.budget !== undefined);
  }

  /** Queues part k's write after part k - 1's; `reserved`: its budget is already taken. */
  private chain(stream: PrometheusStream, k: number, reserved: boolean): void {
    const prev = k === 0 ? Promise.resolve(undefined) : (this.written[k - 1] ?? Promise.resolve(undefined));
    // Parts are read in order, one at a time (the stream's rule).
    const p = prev.then(
      () => this.read(stream, k, reserved),
      () => this.read(stream, k, reserved),
    );
    p.catch(() => undefined); // awaited by the reader that asked; a prefetch may not be
    this.written.push(p);
  }

  private async read(stream: PrometheusStream, k: number, reserved: boolean): Promise<PrometheusPart | undefined> {
    const budget = this.budget;
    let taken = reserved ? this.estimate : 0; // counted in `holding` already
    if (budget !== undefined && !reserved && !this.closed) {
      // A stream that holds no part may always write one (past the budget): open streams
      // never wait on each other's snapshots, so every one of them makes progress.
      if (this.holding === 0) budget.force(this.estimate);
      else if (!(await budget.take(this.estimate, () => this.closed, () => this.holding === 0))) return undefined; // closed meanwhile
      taken = this.estimate;
      this.holding++;
    }
    const drop = (): void => {
      if (taken === 0) return;
      this.holding--;
      budget?.give(taken);
    };
    if (this.closed) {
      drop();
      return undefined;
    }
    let part: PrometheusPart | undefined;
    try {
      part = await stream.next();
    } catch (err) {
      drop();
      throw err;
    }
    if (k === 0) this.joinable = false;
    if (part === undefined) {
      drop();
      return undefined;
    }
    // The estimate becomes the part's own size (given back with it in releaseUpTo).
    const size = part.byteLength;
    if (budget !== undefined) {
      if (size > taken) budget.force(size - taken);
      else if (taken > size) budget.give(taken - size);
    }
    this.charged[k] = size;
    return part;
  }

  private move(stream: PrometheusStream, key: object, to: number): void {
    const at = this.positions.get(key);
    if (at === undefined || to <= at) return;
    this.positions.set(key, to);
    if (to === Infinity) this.positions.delete(key);
    // No reader left: nobody can use a part any more (a later scrape starts a new collection).
    this.releaseUpTo(stream, this.positions.size === 0 ? Infinity : Math.min(...this.positions.values()));
  }

  /**
   * Releases parts below `below` (every reader passed them; a part still being written goes
   * when it is done); closes the stream when no reader is left (below = Infinity).
   */
  private releaseUpTo(stream: PrometheusStream, below: number): void {
    const end = Math.min(below, this.written.length);
    for (let k = this.releasedBelow; k < end; k++) {
      const p = this.written[k];
      this.written[k] = null;
      p?.then(
        (part) => {
          if (part === undefined) return;
          stream.release(part);
          const bytes = this.charged[k] ?? 0;
          this.charged[k] = 0;
          if (this.budget === undefined) return;
          this.holding--; // first: a write of this stream waiting for room may go now
          this.budget.give(bytes);
        },
        () => undefined,
      );
    }
    this.releasedBelow = Math.max(this.releasedBelow, end);
    if (below === Infinity && !this.closed) {
      this.closed = true;
      this.joinable = false;
      stream.close();
      this.onClose?.();
      this.onClose = undefined;
      if (this.written.length === 0 && this.firstTaken) {
        this.holding--;
        this.budget?.give(this.estimate); // part 0 never asked for
      }
      this.firstTaken = false;
      this.budget?.give(0); // a write waiting for room is not needed any more
    }
  }
}
