// ProbeTable: an open-addressing hash set of non-null pointers, 8 bytes per slot (linear
// probing, backward-shift deletion, at most 80% full; it halves when under 20% full). The
// table stores no hashes: Traits::Hash(const T*) recomputes an element's when it moves.
// Not thread-safe: the RecordMap lock guards every table.
#pragma once
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

template <class T, class Traits>
class ProbeTable {
 public:
  ProbeTable() = default;
  ProbeTable(const ProbeTable&) = delete;
  ProbeTable& operator=(const ProbeTable&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }

  // The element `eq` accepts among those with this hash, or nullptr.
  template <class Eq>
  T* Find(uint64_t hash, Eq eq) const {
    if (size_ == 0) return nullptr;
    for (size_t i = hash & (cap_ - 1);; i = (i + 1) & (cap_ - 1)) {
      T* p = slots_[i];
      if (p == nullptr) return nullptr;
      if (eq(p)) return p;
    }
  }

  // Adds p, which must not be in the table.
  void Insert(T* p) {
    if ((size_ + 1) * 5 > cap_ * 4) Rehash(cap_ == 0 ? kMinCapacity : cap_ * 2);
    Place(p);
    size_++;
  }

  // Removes p; false if it is not in the table.
  bool Erase(const T* p) {
    if (size_ == 0) return false;
    const size_t mask = cap_ - 1;
    size_t i = Traits::Hash(p) & mask;
    while (slots_[i] != p) {
      if (slots_[i] == nullptr) return false;
      i = (i + 1) & mask;
    }
    // Backward shift: move up every later element of the run whose home slot is not
    // cyclically in (i, j], so no lookup meets a hole before its element.
    for (size_t j = (i + 1) & mask; slots_[j] != nullptr; j = (j + 1) & mask) {
      const size_t home = Traits::Hash(slots_[j]) & mask;
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      i = j;
    }
    slots_[i] = nullptr;
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
      if (slots_[i] != nullptr) f(slots_[i]);
    }
  }

  size_t Bytes() const { return cap_ * sizeof(T*); }

 private:
  static constexpr size_t kMinCapacity = 8;

  void Place(T* p) {
    const size_t mask = cap_ - 1;
    size_t i = Traits::Hash(p) & mask;
    while (slots_[i] != nullptr) i = (i + 1) & mask;
    slots_[i] = p;
  }

  void Rehash(size_t cap) {
    std::unique_ptr<T*[]> old = std::move(slots_);
    const size_t oldCap = cap_;
    slots_ = std::make_unique<T*[]>(cap);  // value-initialised: all nullptr
    cap_ = cap;
    for (size_t i = 0; i < oldCap; i++) {
      if (old[i] != nullptr) Place(old[i]);
    }
  }

  std::unique_ptr<T*[]> slots_;
  size_t cap_ = 0;  // 0 or a power of two
  size_t size_ = 0;
};

}  // namespace hotmeter
