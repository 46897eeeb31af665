// Decoded attributes by record id, shared by a provider's collections (collect() and the
// OTLP producer) and its record stores.
//
// By slot (a record id's low 32 bits: dense small integers, where ids themselves are not
// small integers and a Map keyed by them allocates and hashes a number per key), with the
// id alongside: an entry whose id differs is a reclaimed record's (its slot reused).
//
// Invariants: ids.length === attrs.length (both packed arrays: no holes); ids[s] is the id
// whose attributes attrs[s] holds, or -1 (none).
import type { Attributes } from '@opentelemetry/api';

/** A record id -> attributes table (the subset of Map the provider uses). */
export class AttributeTable {
  private ids: number[] = [];
  private attrs: (Attributes | undefined)[] = [];

  get(id: number): Attributes | undefined {
    const s = id >>> 0; // ToUint32: the low 32 bits
    return this.ids[s] === id ? this.attrs[s] : undefined;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(id: number, attributes: Attributes): this {
    const s = id >>> 0;
    const ids = this.ids;
    const attrs = this.attrs;
    while (ids.length <= s) {
      ids.push(-1);
      attrs.push(undefined);
    }
    ids[s] = id;
    attrs[s] = attributes;
    return this;
  }

  delete(id: number): boolean {
    const s = id >>> 0;
    if (this.ids[s] !== id) return false;
    this.ids[s] = -1;
    this.attrs[s] = undefined;
    return true;
  }

  clear(): void {
    this.ids = [];
    this.attrs = [];
  }
}
