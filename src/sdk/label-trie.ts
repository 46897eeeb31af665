// LabelTrie: (attribute object, owner) -> cached value, without building a key.
//
// One trie per provider (per thread) serves every instrument: the owner (a RecordStore)
// picks its value at the leaf. A request that records a counter and a histogram with
// the same attributes walks the same nodes twice, the second time from warm cache lines.
//
// The path is the object's own enumeration order of (key, value) pairs, so the same
// label set written in two key orders has two paths that lead to the same value (the
// caller inserts both after canonicalising). Only primitive values are cached (an array
// would be a fresh object each call), and never NaN (it equals nothing).
// Lookups never allocate.
//
// A label set written in many key orders would add a path per order: the caller caches a
// few orders (RecordStore.resolve), then one path in canonical key order (setSorted),
// which getSorted finds for any order, off the hit path (get is unchanged).
//
// Layout, for speed on the common shapes: a node's first key sits in `k0` (attribute
// objects built by one call site share key order, so the pointer compare of two
// internalised strings nearly always answers); further keys go to `more`. The first four
// values seen under k0 sit in the node itself with their children (x0/c0 .. x3/c3), later
// ones in one array compared with === up to SMALL of them, past that in a Map. A level of
// the common walk reads one object: the walk of a request in a busy server meets cold
// caches, and each further object is a likely miss.

const SMALL = 8;
/** Paths longer than this are not cached. */
const MAX_DEPTH = 64;

/** Sorts keys[0..n) as Array.prototype.sort() does (UTF-16 code units); keys are distinct. */
function sortKeys(keys: string[], n: number): void {
  for (let i = 1; i < n; i++) {
    const k = keys[i];
    let j = i - 1;
    while (j >= 0 && keys[j] > k) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = k;
  }
}

// getSorted's key buffer; a walk re-entered from an attribute getter uses its own array.
const scratch: string[] = [];
let scratchBusy = false;
// The pairs array of a node with none yet: shared, never written (add replaces it).
const NO_PAIRS: unknown[] = [];
// An empty inline value slot: equal to no attribute value (undefined and null are values).
const NONE = Symbol('none');

/**
 * One level. Fields the common walk reads come first (k0, the inline values and
 * children, then the first two owners' values at the leaf); the overflow containers
 * last. Further keys go to `more`, each to a holder node that uses only its own
 * k0 / x / c / pairs / map.
 */
class TrieNode<V> {
  k0: string | undefined = undefined;
  x0: unknown = NONE;
  c0: TrieNode<V> | undefined = undefined;
  x1: unknown = NONE;
  c1: TrieNode<V> | undefined = undefined;
  x2: unknown = NONE;
  c2: TrieNode<V> | undefined = undefined;
  x3: unknown = NONE;
  c3: TrieNode<V> | undefined = undefined;
  o0: object | undefined = undefined;
  v0: V | undefined = undefined;
  o1: object | undefined = undefined;
  v1: V | undefined = undefined;
  /** Values past the inline four, interleaved with children ([value, child, ...]). */
  pairs: unknown[] = NO_PAIRS;
  /** Replaces `pairs` past SMALL further values. */
  map: Map<unknown, TrieNode<V>> | undefined = undefined;
  more: Map<string, TrieNode<V>> | undefined = undefined;
  /** Owners past the inline two. */
  owners: Map<object, V> | undefined = undefined;

  /** The child under (this node's k0, v). */
  child(v: unknown): TrieNode<V> | undefined {
    if (v === this.x0) return this.c0;
    if (v === this.x1) return this.c1;
    if (v === this.x2) return this.c2;
    if (v === this.x3) return this.c3;
    const m = this.map;
    if (m !== undefined) return m.get(v);
    const p = this.pairs;
    for (let i = 0; i < p.length; i += 2) if (p[i] === v) return p[i + 1] as TrieNode<V>;
    return undefined;
  }

  addChild(v: unknown, node: TrieNode<V>): void {
    if (this.c0 === undefined) {
      this.x0 = v;
      this.c0 = node;
    } else if (this.c1 === undefined) {
      this.x1 = v;
      this.c1 = node;
    } else if (this.c2 === undefined) {
      this.x2 = v;
      this.c2 = node;
    } else if (this.c3 === undefined) {
      this.x3 = v;
      this.c3 = node;
    } else if (this.map !== undefined) {
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

  /** This owner's value here. */
  valueOf(owner: object): V | undefined {
    if (owner === this.o0) return this.v0;
    if (owner === this.o1) return this.v1;
    return this.owners?.get(owner);
  }

  setValue(owner: object, value: V): void {
    if (this.o0 === undefined || this.o0 === owner) {
      this.o0 = owner;
      this.v0 = value;
    } else if (this.o1 === undefined || this.o1 === owner) {
      this.o1 = owner;
      this.v1 = value;
    } else {
      (this.owners ??= new Map()).set(owner, value);
    }
  }
}

export class LabelTrie<V> {
  private root = new TrieNode<V>();
  private nodes = 0;
  /** Bumped by every clear(): what a caller counted about the paths it inserted is void. */
  generation = 0;

  /**
   * Past `maxNodes` nodes the trie starts over (it is only an index). One trie serves
   * every instrument of a provider, so the cap is the provider's: ~1M nodes of ~170 B
   * (a cached label set of three attributes is three nodes, shared by the instruments
   * that use it).
   */
  constructor(private readonly maxNodes = 1 << 20) {}

  get(attrs: object, owner: object): V | undefined {
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
    return node.valueOf(owner);
  }

  /**
   * As get(), walking the keys in canonical (sorted) order: finds what setSorted cached
   * for this label set whatever the object's key order. Allocates nothing (unless a getter
   * re-enters it).
   */
  getSorted(attrs: object, owner: object): V | undefined {
    const own = !scratchBusy;
    const keys = own ? scratch : [];
    if (own) scratchBusy = true;
    let n = 0;
    try {
      for (const k in attrs) {
        if (n === MAX_DEPTH) return undefined;
        keys[n++] = k;
      }
      sortKeys(keys, n);
      let node: TrieNode<V> | undefined = this.root;
      for (let i = 0; i < n; i++) {
        const k = keys[i];
        let holder: TrieNode<V> | undefined = node;
        if (k !== node.k0) {
          holder = node.more?.get(k);
          if (holder === undefined) return undefined;
        }
        node = holder.child((attrs as Record<string, unknown>)[k]);
        if (node === undefined) return undefined;
      }
      return node.valueOf(owner);
    } finally {
      if (own) {
        for (let i = 0; i < n; i++) keys[i] = '';
        scratchBusy = false;
      }
    }
  }

  /** Caches `owner`'s `value` for this exact object shape; returns false if not cacheable. */
  set(attrs: object, owner: object, value: V): boolean {
    const keys: string[] = [];
    for (const k in attrs) {
      if (keys.length === MAX_DEPTH) return false;
      keys.push(k);
    }
    return this.insert(attrs, keys, owner, value);
  }

  /** As set(), on the path getSorted walks (keys in canonical order). */
  setSorted(attrs: object, owner: object, value: V): boolean {
    const keys: string[] = [];
    for (const k in attrs) {
      if (keys.length === MAX_DEPTH) return false;
      keys.push(k);
    }
    sortKeys(keys, keys.length);
    return this.insert(attrs, keys, owner, value);
  }

  /** Caches `owner`'s `value` on the path of `attrs`'s values in `keys` order. */
  private insert(attrs: object, keys: readonly string[], owner: object, value: V): boolean {
    for (const k of keys) {
      const v = (attrs as Record<string, unknown>)[k];
      const t = typeof v;
      if (v !== null && v !== undefined && t !== 'string' && t !== 'number' && t !== 'boolean') return false;
      if (v !== v) return false; // NaN
    }
    if (this.nodes + keys.length > this.maxNodes) this.clear();
    let node = this.root;
    for (const k of keys) {
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
    node.setValue(owner, value);
    return true;
  }

  clear(): void {
    this.root = new TrieNode<V>();
    this.nodes = 0;
    this.generation++;
  }
}
