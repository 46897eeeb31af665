// Decoded attributes by record id, shared by a provider's collections (collect() and the
// OTLP producer) and its record stores.
//
// By slot (a record id's low 32 bits: dense small integers, where ids themselves are not
// small integers and a Map keyed by them allocates and hashes a number per key), with the
// id alongside: an entry whose id differs is a reclaimed record's (its slot reused).
//
// A provider whose collections build attribute objects (keepEncoded) also keeps, from a
// record's creation in this thread until a collection decodes it, the canonical parts it
// was acquired with: decoding them is cheaper than asking the native record for its
// labels. Records made by other threads have none (decoded natively). Records of one label
// set acquired one after the other (a call site writing several instruments) keep the same
// parts array, so a collection decodes them into one object without comparing strings.
//
// Invariants: ids.length === attrs.length (both packed arrays: no holes); ids[s] is the id
// whose attributes attrs[s] holds (or, attrs[s] undefined, whose parts parts[s] holds), or
// -1 (none). parts is no longer than ids, entries past its end are undefined. Kept parts
// arrays are never changed.
import type { Attributes } from '@opentelemetry/api';

/** A record id -> attributes table (the subset of Map the provider uses). */
export class AttributeTable {
  /** Keep the parts of records created here until decoded (see the file comment). */
  keepEncoded = false;
  private ids: number[] = [];
  private attrs: (Attributes | undefined)[] = [];
  private parts: (readonly string[] | undefined)[] = [];
  /** The last parts kept with their JSON (see the file comment). */
  private lastKey: string | undefined = undefined;
  private lastParts: readonly string[] | undefined = undefined;

  get(id: number): Attributes | undefined {
    const s = id >>> 0; // ToUint32: the low 32 bits
    return this.ids[s] === id ? this.attrs[s] : undefined;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(id: number, attributes: Attributes): this {
    const s = this.slot(id);
    this.attrs[s] = attributes;
    if (s < this.parts.length) this.parts[s] = undefined;
    return this;
  }

  /**
   * A record this thread acquired with `parts` (canonical, as encodeLabels gives them;
   * `key` their JSON, when known): kept until decoded when keepEncoded, unless the record's
   * attributes or parts are known already. The caller no longer changes `parts`.
   */
  setEncoded(id: number, parts: readonly string[], key: string | undefined): void {
    if (!this.keepEncoded) return;
    const s = id >>> 0;
    if (this.ids[s] === id && (this.attrs[s] !== undefined || this.parts[s] !== undefined)) return;
    if (key !== undefined) {
      if (key === this.lastKey) parts = this.lastParts!;
      else {
        this.lastKey = key;
        this.lastParts = parts;
      }
    }
    this.slot(id);
    this.attrs[s] = undefined;
    while (this.parts.length <= s) this.parts.push(undefined);
    this.parts[s] = parts;
  }

  /** The kept parts of a record not decoded yet, or undefined. */
  encoded(id: number): readonly string[] | undefined {
    const s = id >>> 0;
    return this.ids[s] === id ? this.parts[s] : undefined;
  }

  delete(id: number): boolean {
    const s = id >>> 0;
    if (this.ids[s] !== id) return false;
    this.ids[s] = -1;
    this.attrs[s] = undefined;
    if (s < this.parts.length) this.parts[s] = undefined;
    if (s === this.ids.length - 1) this.trim();
    return true;
  }

  /**
   * Drops the free slots at the end (the arrays' stores shrink with them): after a burst
   * of one-off label sets is reclaimed, the table no longer holds a slot per record of it
   * (two arrays of a million entries were 16-24 MB).
   */
  private trim(): void {
    const ids = this.ids;
    let n = ids.length;
    while (n > 0 && ids[n - 1] === -1) n--;
    ids.length = n;
    this.attrs.length = n;
    if (this.parts.length > n) this.parts.length = n;
  }

  clear(): void {
    this.ids = [];
    this.attrs = [];
    this.parts = [];
    this.lastKey = undefined;
    this.lastParts = undefined;
  }

  /** The slot of `id`, claimed for it (the arrays grown to reach it). */
  private slot(id: number): number {
    const s = id >>> 0;
    const ids = this.ids;
    const attrs = this.attrs;
    while (ids.length <= s) {
      ids.push(-1);
      attrs.push(undefined);
    }
    ids[s] = id;
    return s;
  }
}
