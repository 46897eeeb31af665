// LabelTrie: attribute object -> cached value, without building a key.
//
// The path is the object's own enumeration order of (key, value) pairs, so the same
// label set written in two key orders has two paths that lead to the same value (the
// caller inserts both after canonicalising). Keys are property names (internalised
// strings, so Map lookups hash once); values are compared with SameValueZero. Only
// primitive values are cached: an array value would be a fresh object each call.
// Lookups never allocate.

class TrieNode<V> {
  value: V | undefined = undefined;
  next: Map<string, Map<unknown, TrieNode<V>>> | undefined = undefined;
}

export class LabelTrie<V> {
  private root = new TrieNode<V>();
  private nodes = 0;

  constructor(private readonly maxNodes = 1 << 20) {}

  get(attrs: object): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (const k in attrs) {
      const byValue: Map<unknown, TrieNode<V>> | undefined = node.next?.get(k);
      if (byValue === undefined) return undefined;
      node = byValue.get((attrs as Record<string, unknown>)[k]);
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
      if (++depth > 64) return false;
    }
    if (this.nodes + depth > this.maxNodes) this.clear();
    let node = this.root;
    for (const k in attrs) {
      const v = (attrs as Record<string, unknown>)[k];
      if (node.next === undefined) node.next = new Map();
      let byValue = node.next.get(k);
      if (byValue === undefined) {
        byValue = new Map();
        node.next.set(k, byValue);
      }
      let child = byValue.get(v);
      if (child === undefined) {
        child = new TrieNode<V>();
        byValue.set(v, child);
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
