// LabelTrie: attribute object -> cached value, without building a key.
//
// The path is the object's own enumeration order of (key, value) pairs, so the same
// label set written in two key orders has two paths that lead to the same value (the
// caller inserts both after canonicalising). Only primitive values are cached (an array
// would be a fresh object each call), and never NaN (it equals nothing).
// Lookups never allocate.
//
// Layout, for speed on the common shapes: a node's first key sits in `k0` (attribute
// objects built by one call site share key order, so the pointer compare of two
// internalised strings nearly always answers); further keys go to `more`. Under a key,
// up to SMALL values sit in parallel arrays compared with ===; past that, a Map.

const SMALL = 8;

class Values<V> {
  vals: unknown[] = [];
  kids: TrieNode<V>[] = [];
  map: Map<unknown, TrieNode<V>> | undefined = undefined;

  get(v: unknown): TrieNode<V> | undefined {
    const m = this.map;
    if (m !== undefined) return m.get(v);
    const vals = this.vals;
    for (let i = 0; i < vals.length; i++) if (vals[i] === v) return this.kids[i];
    return undefined;
  }

  add(v: unknown, node: TrieNode<V>): void {
    if (this.map !== undefined) {
      this.map.set(v, node);
    } else if (this.vals.length < SMALL) {
      this.vals.push(v);
      this.kids.push(node);
    } else {
      this.map = new Map();
      for (let i = 0; i < this.vals.length; i++) this.map.set(this.vals[i], this.kids[i]);
      this.map.set(v, node);
      this.vals = [];
      this.kids = [];
    }
  }
}

class TrieNode<V> {
  value: V | undefined = undefined;
  k0: string | undefined = undefined;
  v0: Values<V> | undefined = undefined;
  more: Map<string, Values<V>> | undefined = undefined;

  values(k: string): Values<V> | undefined {
    return k === this.k0 ? this.v0 : this.more?.get(k);
  }
}

export class LabelTrie<V> {
  private root = new TrieNode<V>();
  private nodes = 0;

  constructor(private readonly maxNodes = 1 << 18) {}

  get(attrs: object): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (const k in attrs) {
      const vs: Values<V> | undefined = node.values(k);
      if (vs === undefined) return undefined;
      node = vs.get((attrs as Record<string, unknown>)[k]);
      if (node === undefined) return undefined;
    }
    return node.value;
  }

  /** Caches `value` for this exact object shape; returns false if not cacheable. */
  set(attrs: object, value: V): boolean {
    let depth = 0;
    for (const k in attrs) {
      const v = (attrs as Record<string, unknown>)[k];
      const t = typeof v;
      if (v !== null && v !== undefined && t !== 'string' && t !== 'number' && t !== 'boolean') return false;
      if (v !== v) return false; // NaN
      if (++depth > 64) return false;
    }
    if (this.nodes + depth > this.maxNodes) this.clear();
    let node = this.root;
    for (const k in attrs) {
      const v = (attrs as Record<string, unknown>)[k];
      let vs = node.values(k);
      if (vs === undefined) {
        vs = new Values<V>();
        if (node.k0 === undefined) {
          node.k0 = k;
          node.v0 = vs;
        } else {
          (node.more ??= new Map()).set(k, vs);
        }
      }
      let child = vs.get(v);
      if (child === undefined) {
        child = new TrieNode<V>();
        vs.add(v, child);
        this.nodes++;
      }
      node = child;
    }
    node.value = value;
    return true;
  }

  clear(): void {
    this.root = new TrieNode<V>();
    this.nodes = 0;
  }
}
