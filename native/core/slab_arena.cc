#include "slab_arena.h"

namespace hotmeter {

CellRef SlabArena::Allocate(size_t size) {
  if (size == 0) size = 1;
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    CellRef ref = it->second.back();
    it->second.pop_back();
    return ref;
  }
  if (size > kSlabDoubles) {
    Slab s;
    s.data = std::make_unique<double[]>(size);
    s.size = size;
    s.used = size;
    slabs_.push_back(std::move(s));
    return CellRef{static_cast<uint32_t>(slabs_.size() - 1), 0};
  }
  if (slabs_.empty() || slabs_.back().size - slabs_.back().used < size) {
    Slab s;
    s.data = std::make_unique<double[]>(kSlabDoubles);
    s.size = kSlabDoubles;
    slabs_.push_back(std::move(s));
  }
  Slab& s = slabs_.back();
  CellRef ref{static_cast<uint32_t>(slabs_.size() - 1), static_cast<uint32_t>(s.used)};
  s.used += size;
  return ref;
}

void SlabArena::Free(CellRef ref, size_t size) {
  if (size == 0) size = 1;
  free_[size].push_back(ref);
}

size_t SlabArena::BytesReserved() const {
  size_t n = 0;
  for (const Slab& s : slabs_) n += s.size * sizeof(double);
  return n;
}

}  // namespace hotmeter
