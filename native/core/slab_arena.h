// SlabArena: the cells of one JS thread. Each slab is a fixed block of doubles that JS
// sees as an external ArrayBuffer; JS writes cells, the collector only reads them.
//
// Ownership: the arena owns its slabs. Slabs are freed only by ~SlabArena, which the
// RecordMap runs when the owning thread has gone (its env cleanup hook), after folding
// the thread's cells into their records. A slab is never moved, so cell pointers stay valid.
// Thread-safety: Allocate/Free are called with the RecordMap lock held.
#pragma once
// See docs/design.md, "Threads, arenas and single-writer cells".
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace hotmeter {

class SharedSegment;

struct CellRef {
  uint32_t slab = 0;
  uint32_t offset = 0;  // in doubles
};

class SlabArena {
 public:
  static constexpr size_t kSlabDoubles = 8192;  // 64 KiB

  explicit SlabArena(uint32_t id) : id_(id) {}
  SlabArena(const SlabArena&) = delete;
  SlabArena& operator=(const SlabArena&) = delete;

  uint32_t id() const { return id_; }

  // Returns a cell of `size` doubles (contents unspecified; the caller initialises it).
  // Cells larger than a slab get a dedicated slab.
  CellRef Allocate(size_t size);
  // Returns a cell to the free list of its size (a shared cell: its segment's). The caller
  // guarantees that no JS handle can still write to it and, for a shared cell, that no
  // live series' chain links it (or that ForgetShared follows under the same lock).
  void Free(CellRef ref, size_t size);

  // A cell in a slab of this thread in the process-shared segment (caller holds the
  // segment's lock). False if the segment has no slab left. A shared cell given back by
  // Free (its record freed: no reference, its node unlinked from every chain, as the
  // series was removed or expired) is reused for a cell of its size in the same segment
  // until its slab goes (ReleaseShared, ForgetShared).
  bool AllocateShared(SharedSegment* seg, size_t size, CellRef* out);
  // The segment and segment slab index of a shared slab (null: a private slab).
  SharedSegment* SegmentOf(uint32_t slab, uint32_t* segSlab) const {
    *segSlab = slabs_[slab].segSlab;
    return slabs_[slab].segment;
  }
  // Gives this arena's slabs of `seg` back to the segment (caller holds its lock; every
  // cell in them was retired) and never allocates from them again.
  void ReleaseShared(SharedSegment* seg);
  // Never allocates from slabs of `seg` again (the process detached from it).
  void ForgetShared(SharedSegment* seg);

  double* Data(CellRef ref) { return SlabData(ref.slab) + ref.offset; }
  double* SlabData(uint32_t slab) { return slabs_[slab].shared != nullptr ? slabs_[slab].shared : slabs_[slab].data.get(); }
  size_t SlabDoubles(uint32_t slab) const { return slabs_[slab].size; }
  size_t SlabCount() const { return slabs_.size(); }
  size_t BytesReserved() const;

 private:
  struct Slab {
    std::unique_ptr<double[]> data;
    size_t size = 0;
    size_t used = 0;
    // A slab of a process-shared segment: its memory (mapped for the process's life)
    // and index there. `data` is null.
    double* shared = nullptr;
    SharedSegment* segment = nullptr;
    uint32_t segSlab = 0;
  };
  // The private slab this arena bump-allocates from (UINT32_MAX: none yet).
  uint32_t current_ = UINT32_MAX;
  // The slab of `seg` this arena bump-allocates from, by segment.
  std::map<SharedSegment*, uint32_t> sharedCurrent_;
  uint32_t id_;
  std::vector<Slab> slabs_;
  std::map<size_t, std::vector<CellRef>> free_;  // by cell size
  // Freed cells in this arena's slabs of a segment, by segment and cell size.
  std::map<SharedSegment*, std::map<size_t, std::vector<CellRef>>> sharedFree_;
};

}  // namespace hotmeter
