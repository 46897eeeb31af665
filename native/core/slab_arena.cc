#include "slab_arena.h"

#include "shared_segment.h"

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
  if (current_ == UINT32_MAX || slabs_[current_].size - slabs_[current_].used < size) {
    Slab s;
    s.data = std::make_unique<double[]>(kSlabDoubles);
    s.size = kSlabDoubles;
    slabs_.push_back(std::move(s));
    current_ = static_cast<uint32_t>(slabs_.size() - 1);
  }
  Slab& s = slabs_[current_];
  CellRef ref{current_, static_cast<uint32_t>(s.used)};
  s.used += size;
  return ref;
}

void SlabArena::Free(CellRef ref, size_t size) {
  if (size == 0) size = 1;
  const Slab& slab = slabs_[ref.slab];
  if (slab.segment != nullptr) {
    // Reused within the segment while the slab is this arena's (not released or forgotten).
    if (slab.used <= slab.size) sharedFree_[slab.segment][size].push_back(ref);
    return;
  }
  free_[size].push_back(ref);
}

bool SlabArena::AllocateShared(SharedSegment* seg, size_t size, CellRef* out) {
  if (size == 0) size = 1;
  if (size > SharedSegment::kSlabDoubles) return false;
  auto fs = sharedFree_.find(seg);
  if (fs != sharedFree_.end()) {
    auto f = fs->second.find(size);
    if (f != fs->second.end() && !f->second.empty()) {
      *out = f->second.back();
      f->second.pop_back();
      return true;
    }
  }
  auto it = sharedCurrent_.find(seg);
  if (it == sharedCurrent_.end() || slabs_[it->second].size - slabs_[it->second].used < size) {
    const uint32_t segSlab = seg->AcquireSlabLocked();
    if (segSlab == SharedSegment::kNoSlab) return false;
    Slab s;
    s.shared = seg->SlabData(segSlab);
    s.segment = seg;
    s.segSlab = segSlab;
    s.size = SharedSegment::kSlabDoubles;
    slabs_.push_back(std::move(s));
    sharedCurrent_[seg] = static_cast<uint32_t>(slabs_.size() - 1);
    it = sharedCurrent_.find(seg);
  }
  Slab& s = slabs_[it->second];
  *out = CellRef{it->second, static_cast<uint32_t>(s.used)};
  s.used += size;
  return true;
}

void SlabArena::ReleaseShared(SharedSegment* seg) {
  for (Slab& s : slabs_) {
    if (s.segment != seg || s.used == s.size + 1) continue;
    seg->ReleaseSlabLocked(s.segSlab);
    s.used = s.size + 1;  // released: never allocated from or released again
  }
  sharedCurrent_.erase(seg);
  sharedFree_.erase(seg);
}

void SlabArena::ForgetShared(SharedSegment* seg) {
  for (Slab& s : slabs_) {
    if (s.segment == seg) s.used = s.size + 1;
  }
  sharedCurrent_.erase(seg);
  sharedFree_.erase(seg);
}

size_t SlabArena::BytesReserved() const {
  size_t n = 0;
  for (const Slab& s : slabs_) n += s.segment != nullptr ? 0 : s.size * sizeof(double);
  return n;
}

}  // namespace hotmeter
