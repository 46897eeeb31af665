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
// up to SMALL values sit with their children in one array compared with ===; past that, a
// Map. (Fewer objects per level than separate value and child arrays: the walk of a
// request in a busy server meets cold caches, and each object is a likely miss.)

const SMALL = 8;
// The pairs array of a node with none yet: shared, never written (add replaces it).
const NO_PAIRS: unknown[] = [];

/**
 * A node's first key sits in `k0`, and the values seen under it in `pairs`, interleaved
 * with their children ([value0, child0, value1, child1, ...]; a Map past SMALL values):
 * a level of the common walk reads the node and one array. Further keys go to `more`,
 * each to a holder node that uses only its own `k0` / `pairs` / `map`.
 */
class TrieNode<V> {
  value: V | undefined = undefined;
  k0: string | undefined = undefined;
  pairs: unknown[] = NO_PAIRS;
  map: Map<unknown, TrieNode<V>> | undefined = undefined;
  more: Map<string, TrieNode<V>> | undefined = undefined;

  /** The child under (this node's k0, v). */
  child(v: unknown): TrieNode<V> | undefined {
    const m = this.map;
    if (m !== undefined) return m.get(v);
    const p = this.pairs;
    for (let i = 0; i < p.length; i += 2) if (p[i] === v) return p[i + 1] as TrieNode<V>;
    return undefined;
  }

  addChild(v: unknown, node: TrieNode<V>): void {
    if (this.map !== undefined) {
      this.map.set(v, node);
    } else if (this.pairs.length < 2 * SMALL) {
      if (this.pairs === NO_PAIRS) this.pairs = [v, node];
      else this.pairs.push(v, node);
    } else {
      const m = new Map<unknown, TrieNode<V>>();
      for (let i = 0; i < this.pairs.length; i += 2) m.set(this.pairs[i], this.pairs[i + 1] as TrieNode<V>);
      m.set(v, node);
      this.map = m;
      this.pairs = NO_PAIRS;
    }
  }
}

export class LabelTrie<V> {
  private root = new TrieNode<V>();
  private nodes = 0;

  constructor(private readonly maxNodes = 1 << 18) {}

  get(attrs: object): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (const k in attrs) {
      let holder: TrieNode<V> | undefined = node;
      if (k !== node.k0) {
        holder = node.more?.get(k);
        if (holder === undefined) return undefined;
      }
      node = holder.child((attrs as Record<string, unknown>)[k]);
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
      if (node.k0 === undefined) node.k0 = k;
      let holder = node;
      if (k !== node.k0) {
        let h = (node.more ??= new Map()).get(k);
        if (h === undefined) {
          h = new TrieNode<V>();
          h.k0 = k;
          node.more.set(k, h);
        }
        holder = h;
      }
      let child = holder.child(v);
      if (child === undefined) {
        child = new TrieNode<V>();
        holder.addChild(v, child);
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
