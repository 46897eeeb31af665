import { native } from './native';

// This thread's views of its native slabs. A slab never moves or shrinks while this
// thread lives, so a view, once made, stays valid; handles keep a reference to it.
const views: Float64Array[] = [];

export function slabView(index: number): Float64Array {
  let v = views[index];
  if (v === undefined) {
    v = new Float64Array(native().slab(index));
    views[index] = v;
  }
  return v;
}
