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

describe('AttributeTable: parts kept from record creation', () => {
  it('keeps parts only when keepEncoded, until attributes are set, never over known ones, per record id', () => {
    const t = new AttributeTable();
    const id = 3 * GEN + 4;
    const parts = ['route', 's/a'];
    t.setEncoded(id, parts, '["route","s/a"]');
    expect(t.encoded(id)).toBeUndefined(); // keepEncoded off: nothing kept
    t.keepEncoded = true;
    t.setEncoded(id, parts, '["route","s/a"]');
    expect(t.encoded(id)).toBe(parts);
    expect(t.get(id)).toBeUndefined();
    expect(t.has(id)).toBe(false);
    // Another generation of the slot is another record.
    expect(t.encoded(4 * GEN + 4)).toBeUndefined();
    // A second acquisition does not replace the parts kept.
    t.setEncoded(id, ['route', 's/other'], undefined);
    expect(t.encoded(id)).toBe(parts);
    // Decoded: the parts go.
    const a = { route: '/a' };
    t.set(id, a);
    expect(t.get(id)).toBe(a);
    expect(t.encoded(id)).toBeUndefined();
    t.setEncoded(id, parts, undefined); // known attributes stay
    expect(t.encoded(id)).toBeUndefined();
    expect(t.get(id)).toBe(a);
    // A reused slot takes new parts; deleting drops them.
    const next = 5 * GEN + 4;
    t.setEncoded(next, parts, undefined);
    expect(t.encoded(next)).toBe(parts);
    expect(t.get(id)).toBeUndefined();
    expect(t.delete(next)).toBe(true);
    expect(t.encoded(next)).toBeUndefined();
    t.setEncoded(7, parts, undefined);
    t.clear();
    expect(t.encoded(7)).toBeUndefined();
  });

  it('records of one label set acquired one after the other keep one parts array (a collection decodes them into one object)', () => {
    const t = new AttributeTable();
    t.keepEncoded = true;
    const a1 = ['route', 's/a'];
    const a2 = ['route', 's/a']; // another instrument's acquisition of the same label set
    const b = ['route', 's/b'];
    t.setEncoded(1, a1, JSON.stringify(a1));
    t.setEncoded(2, a2, JSON.stringify(a2));
    t.setEncoded(3, b, JSON.stringify(b));
    t.setEncoded(4, ['route', 's/a'], undefined); // no key (bind): its own
    expect(t.encoded(1)).toBe(a1);
    expect(t.encoded(2)).toBe(a1);
    expect(t.encoded(3)).toBe(b);
    expect(t.encoded(4)).not.toBe(a1);
    expect(t.encoded(4)).toEqual(a1);
  });
});
