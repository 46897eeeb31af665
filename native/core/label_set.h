// LabelSet: one canonical label key (record.h's encoding), stored once per process however
// many instruments' records use it, and the table that interns them.
// Guarded by the RecordMap lock: the table, `refs` and the set's lifetime. The bytes never
// change while the set lives; a set is freed when its last record is reclaimed, or, if
// the RecordMap's label pins are held then (a snapshot points at sets), when they go.
#pragma once
// See docs/design.md, "Label sets: interning, pins and the retired set".
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "block_pool.h"
#include "probe_table.h"

namespace hotmeter {

class LabelSet {
 public:
  std::string_view view() const { return {bytes(), size_}; }
  uint32_t hash() const { return hash_; }
  uint32_t refs() const { return refs_; }
  // Every attribute is a string and every name a label name exporters keep as it is
  // (IsPlainKey): the exposition text of a plain set differs from every other plain set's.
  bool plain() const { return plain_ != 0; }
  // ShapeOf(view()), computed when interned.
  uint32_t shape() const { return shape_; }

  static uint32_t HashOf(std::string_view key);
  // True when every value is a string ('s' tag) and every name matches
  // [A-Za-z_][A-Za-z0-9_]* without "__" and is none of le, quantile, otel_scope_name,
  // otel_scope_version: names the Prometheus exposition writes unchanged and values it
  // writes as their text, so two plain keys never render as the same labels. A key that
  // is not plain may (200 and "200", `a.b` and `a_b`, `le` and `exported_le`).
  static bool IsPlainKey(std::string_view key);
  // Bit kShapeMerges: two of the key's names may become one label name (sanitized alike,
  // as `a.b` and `a_b`, or renamed alike, as `le` and `exported_le`): their values are
  // then joined. Bits 0-30: a hash of the names and the values' type tags. Keys of one
  // instrument with the same names and tags render differently unless names merge (a
  // value's text is the key's value bytes), so records whose sets share one shape
  // without kShapeMerges cannot collide; different shapes (200 and "200") may.
  static constexpr uint32_t kShapeMerges = 0x80000000u;
  static uint32_t ShapeOf(std::string_view key);

 private:
  friend class LabelSetTable;
  LabelSet() = default;
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
  uint32_t refs_ = 0;  // records using this set
  uint32_t hash_ = 0;
  uint32_t size_ : 31 = 0;  // keys are far below 2^31 bytes (LabelLimits)
  uint32_t plain_ : 1 = 0;  // IsPlainKey(view()), set when interned
  uint32_t shape_ = 0;      // ShapeOf(view()), set when interned
};

class LabelSetTable {
 public:
  LabelSetTable() = default;
  ~LabelSetTable();
  LabelSetTable(const LabelSetTable&) = delete;
  LabelSetTable& operator=(const LabelSetTable&) = delete;

  // The interned set with these bytes, or nullptr (no reference is taken).
  LabelSet* Find(std::string_view key) const;
  // Takes a reference to the set with these bytes, interning it if new.
  LabelSet* Acquire(std::string_view key);
  // Drops a reference. With the last one the set leaves the table (Find no longer sees
  // it) and is freed, or with `keep` retired under `stamp`: its memory stays, unchanged,
  // until FreeRetired frees it. Stamps never decrease from one call to the next.
  void Release(LabelSet* set, bool keep = false, uint64_t stamp = 0);
  // Frees the sets Release retired under a stamp below `below` (all by default).
  void FreeRetired(uint64_t below = UINT64_MAX);

  size_t size() const { return table_.size(); }
  size_t Retired() const { return retired_.size(); }
  size_t Bytes() const { return table_.Bytes() + bytes_; }

 private:
  struct Traits {
    static uint64_t Hash(const LabelSet* s) { return MixHash(s->hash()); }
  };
  BlockPool blocks_;  // the sets' memory (declared first: destroyed after table_)
  ProbeTable<LabelSet, Traits> table_;
  size_t bytes_ = 0;  // of the sets themselves (retired ones included)
  // Retired sets with their stamps, in the order retired (stamps non-decreasing); freed
  // from the front.
  std::vector<std::pair<LabelSet*, uint64_t>> retired_;
  void Free(LabelSet* set);
};

}  // namespace hotmeter
