// Record: one per (instrument, label set), process-wide.
// Guarded by the RecordMap lock except for cell contents, which only the owning JS
// thread writes (plain stores) and the collector reads (relaxed atomic loads).
// Layout is kept small (a large registry holds one Record per series): the first thread's
// cell is inline, the label key is shared with every record of the same label set, and
// update detection keeps a 64-bit fingerprint of the last checkpoint, not a copy.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "label_set.h"
#include "slab_arena.h"

namespace hotmeter {

struct Instrument;

struct RecordCell {
  double* data = nullptr;  // points into its arena's slab; valid until the arena retires
  CellRef ref;
  uint32_t arena = 0;  // SlabArena id of the thread that writes this cell
  // References this thread holds (its bound handles and label-cache entries); the
  // record's refcount is their sum. Dropped with the cell when the arena retires.
  uint32_t refs = 0;
  // Activity() of the cell when the record's id entered this arena's stale queue
  // (RecordMap::DrainStale); meaningful while staleQueued.
  double staleActivity = 0;
  bool staleQueued = false;
};

// A record's cells: the first inline (most records are written by one thread), more in
// a heap array. PushBack and Erase invalidate pointers into the list.
class CellList {
 public:
  CellList() = default;
  CellList(const CellList&) = delete;
  CellList& operator=(const CellList&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  RecordCell* begin() { return data(); }
  RecordCell* end() { return data() + size_; }
  const RecordCell* begin() const { return data(); }
  const RecordCell* end() const { return data() + size_; }
  RecordCell& operator[](size_t i) { return data()[i]; }
  RecordCell& back() { return data()[size_ - 1]; }

  void PushBack(const RecordCell& c);
  void Erase(size_t i);

 private:
  RecordCell* data() { return heap_ ? heap_.get() : &first_; }
  const RecordCell* data() const { return heap_ ? heap_.get() : &first_; }
  RecordCell first_;
  std::unique_ptr<RecordCell[]> heap_;  // set once a second cell is added; holds them all
  uint32_t size_ = 0;
  uint32_t cap_ = 1;
};

struct Record {
  // lastUpdateEpoch of a record no pass has seen yet: it is exported once as updated
  // (whatever its cells hold) before it can be reclaimed.
  static constexpr uint64_t kUnseen = UINT64_MAX;

  uint64_t id = 0;
  Instrument* instrument = nullptr;
  LabelSet* labels = nullptr;  // one reference, dropped when the record is reclaimed
  double startTimeMs = 0;      // creation time, the start of its cumulative series
  uint64_t lastUpdateEpoch = kUnseen;  // collection epoch that first saw the last update
  uint64_t fingerprint = 0;    // StateFingerprint of the last pass's checkpoint
  // References held by JS: bound handles and each thread's label cache entry (the sum
  // of cells[].refs). The record is reclaimable only at 0: no thread can write it.
  uint32_t refcount = 0;
  uint32_t listIndex = 0;  // position in instrument->list
  CellList cells;          // one per thread that has acquired the record
  // Merged state of cells whose thread has exited (instrument->cellSize doubles);
  // null (the identity) until one does.
  std::unique_ptr<double[]> retired;
};

// A 64-bit hash of a state's bits: equal states have equal fingerprints; a changed
// state keeps its fingerprint with probability 2^-64.
uint64_t StateFingerprint(const double* state, size_t size);

// Decodes a canonical label key into its strings (k0, v0, k1, v1, ...).
std::vector<std::string> DecodeLabelKey(std::string_view key);
// Encodes strings into a canonical label key.
std::string EncodeLabelKey(const std::vector<std::string>& parts);

}  // namespace hotmeter
