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
  // Returns a cell to the free list of its size. The caller guarantees that no JS handle
  // can still write to it.
  void Free(CellRef ref, size_t size);

  double* Data(CellRef ref) { return slabs_[ref.slab].data.get() + ref.offset; }
  double* SlabData(uint32_t slab) { return slabs_[slab].data.get(); }
  size_t SlabDoubles(uint32_t slab) const { return slabs_[slab].size; }
  size_t SlabCount() const { return slabs_.size(); }
  size_t BytesReserved() const;

 private:
  struct Slab {
    std::unique_ptr<double[]> data;
    size_t size = 0;
    size_t used = 0;
  };
  uint32_t id_;
  std::vector<Slab> slabs_;
  std::map<size_t, std::vector<CellRef>> free_;  // by cell size
};

}  // namespace hotmeter
