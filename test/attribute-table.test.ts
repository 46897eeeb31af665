// AttributeTable (src/sdk/attribute-table.ts): decoded attributes by record id, kept by
// slot (the id's low 32 bits); a reused slot's new record never sees the old one's.
import { describe, expect, it } from 'vitest';
import { AttributeTable } from '../src/sdk/attribute-table';

const GEN = 2 ** 32; // a record id is generation * 2^32 + slot

describe('AttributeTable', () => {
  it('keeps attributes by record id; a reused slot (another generation) is another record', () => {
    const t = new AttributeTable();
    const a = { route: '/a' };
    const b = { route: '/b' };
    const old = 1 * GEN + 7;
    const reused = 2 * GEN + 7;
    expect(t.get(old)).toBeUndefined();
    t.set(old, a);
    t.set(3, b); // a lower slot after a higher one
    expect(t.get(old)).toBe(a);
    expect(t.has(old)).toBe(true);
    expect(t.get(3)).toBe(b);
    expect(t.get(reused)).toBeUndefined();
    expect(t.has(reused)).toBe(false);
    expect(t.get(7)).toBeUndefined();
    for (const s of [0, 1, 2, 4, 5, 6, 8]) expect(t.get(s)).toBeUndefined();
    // Deleting the reused slot's id leaves the old record's attributes alone.
    expect(t.delete(reused)).toBe(false);
    expect(t.get(old)).toBe(a);
    t.set(reused, b);
    expect(t.get(reused)).toBe(b);
    expect(t.get(old)).toBeUndefined();
    expect(t.delete(old)).toBe(false);
    expect(t.delete(reused)).toBe(true);
    expect(t.get(reused)).toBeUndefined();
    t.set(5 * GEN + 1, a);
    t.clear();
    expect(t.get(5 * GEN + 1)).toBeUndefined();
    expect(t.get(3)).toBeUndefined();
  });
});
