// Open-addressing hash sets with no stored hashes (linear probing, backward-shift
// deletion, at most 80% full; a table halves when under 20% full): an element's hash is
// recomputed by the table's hasher when it moves.
//   ProbeTable<T, Traits>: non-null T* elements, 8 bytes a slot; Traits::Hash(const T*).
//   SlotTable<Hasher>: uint32_t elements (UINT32_MAX is reserved), 4 bytes a slot; the
//     hasher is an object (it may look the element up elsewhere, e.g. in a RecordPool).
// Not thread-safe: the RecordMap lock guards every table.
#pragma once
// See docs/design.md, "The record map and its lock".
#include <cstddef>
#include <cstdint>
#include <memory>

namespace hotmeter {

// A 64-bit finaliser (splitmix64): spreads ids and pointers over the table.
inline uint64_t MixHash(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// E: the element type; kEmpty marks a free slot; Hasher: uint64_t operator()(E) const.
template <class E, E kEmpty, class Hasher>
class OpenTable {
 public:
  explicit OpenTable(Hasher h = Hasher()) : hash_(h) {}
  OpenTable(const OpenTable&) = delete;
  OpenTable& operator=(const OpenTable&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }

  // The element `eq` accepts among those with this hash, or kEmpty.
  template <class Eq>
  E Find(uint64_t hash, Eq eq) const {
    if (size_ == 0) return kEmpty;
    for (size_t i = hash & (cap_ - 1);; i = (i + 1) & (cap_ - 1)) {
      E p = slots_[i];
      if (p == kEmpty) return kEmpty;
      if (eq(p)) return p;
    }
  }

  // Adds p, which must not be in the table.
  void Insert(E p) {
    if ((size_ + 1) * 5 > cap_ * 4) Rehash(cap_ == 0 ? kMinCapacity : cap_ * 2);
    Place(p);
    size_++;
  }

  // Removes p; false if it is not in the table.
  bool Erase(E p) {
    if (size_ == 0) return false;
    const size_t mask = cap_ - 1;
    size_t i = hash_(p) & mask;
    while (slots_[i] != p) {
      if (slots_[i] == kEmpty) return false;
      i = (i + 1) & mask;
    }
    // Backward shift: move up every later element of the run whose home slot is not
    // cyclically in (i, j], so no lookup meets a hole before its element.
    for (size_t j = (i + 1) & mask; slots_[j] != kEmpty; j = (j + 1) & mask) {
      const size_t home = hash_(slots_[j]) & mask;
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      i = j;
    }
    slots_[i] = kEmpty;
    size_--;
    if (cap_ > kMinCapacity && size_ * 5 < cap_) {
      size_t c = kMinCapacity;
      while (size_ * 5 > c * 2) c *= 2;  // at most 40% full after shrinking
      Rehash(c);
    }
    return true;
  }

  template <class F>
  void ForEach(F f) const {
    for (size_t i = 0; i < cap_; i++) {
      if (slots_[i] != kEmpty) f(slots_[i]);
    }
  }

  size_t Bytes() const { return cap_ * sizeof(E); }

 private:
  static constexpr size_t kMinCapacity = 8;

  void Place(E p) {
    const size_t mask = cap_ - 1;
    size_t i = hash_(p) & mask;
    while (slots_[i] != kEmpty) i = (i + 1) & mask;
    slots_[i] = p;
  }

  void Rehash(size_t cap) {
    std::unique_ptr<E[]> old = std::move(slots_);
    const size_t oldCap = cap_;
    slots_ = std::make_unique<E[]>(cap);
    for (size_t i = 0; i < cap; i++) slots_[i] = kEmpty;
    cap_ = cap;
    for (size_t i = 0; i < oldCap; i++) {
      if (old[i] != kEmpty) Place(old[i]);
    }
  }

  Hasher hash_;
  std::unique_ptr<E[]> slots_;
  size_t cap_ = 0;  // 0 or a power of two
  size_t size_ = 0;
};

template <class T, class Traits>
struct PointerHasher {
  uint64_t operator()(const T* p) const { return Traits::Hash(p); }
};

template <class T, class Traits>
using ProbeTable = OpenTable<T*, static_cast<T*>(nullptr), PointerHasher<T, Traits>>;

template <class Hasher>
using SlotTable = OpenTable<uint32_t, UINT32_MAX, Hasher>;

}  // namespace hotmeter
