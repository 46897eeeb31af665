// Record: one per (instrument, label set), process-wide.
// Guarded by the RecordMap lock except for cell contents, which only the owning JS
// thread writes (plain stores) and the collector reads (relaxed atomic loads).
// Layout is kept small (a large registry holds one Record per series): records live in a
// RecordPool (no per-record allocation, the id is the slot), the first thread's cell is
// inline, the label key is shared with every record of the same label set, and update
// detection keeps a 64-bit fingerprint of the last checkpoint, not a copy.
#pragma once
// See docs/design.md, "Epochs, update detection and when a record may be freed".
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "label_set.h"
#include "slab_arena.h"

namespace hotmeter {

// A thread's cell of a record: where its state lives in that thread's SlabArena.
struct RecordCell {
  CellRef ref;
  uint32_t arena = 0;  // SlabArena id of the thread that writes this cell; 0: no cell
  // References this thread holds (its bound handles and label-cache entries); the
  // record's refcount is their sum. Dropped with the cell when the arena retires.
  uint32_t refs : 31 = 0;
  // The record's id is in this arena's stale queue (RecordMap::DrainStale).
  uint32_t staleQueued : 1 = 0;
};

// What only some records need: cells of further threads, and the state of threads
// that exited.
struct RecordExtra {
  std::vector<RecordCell> cells;  // every cell after Record::cell
  // Merged state of cells whose thread has exited (cellSize doubles); null (the
  // identity) until one does.
  std::unique_ptr<double[]> retired;
  // The record's series in its instrument's process-shared segment (its handle:
  // SharedSegment::FindSeriesLocked; 0: none). Its state is then the segment's sum for
  // that series (every process's cells); once the series is removed, the handle names
  // no series, also after its slot holds another.
  uint64_t series = 0;
  // Exemplar cells (see exemplar.h), one per thread that offered an exemplar for this
  // record: allocated in that thread's arena by RecordMap::ExemplarCell, written by that
  // thread only (JS, plain stores, on the slow path of a measurement in a sampled span),
  // read by collection passes; freed with the record or folded into retiredExemplars
  // when the thread exits.
  std::vector<RecordCell> exemplarCells;
  std::unique_ptr<double[]> retiredExemplars;  // null until a thread with exemplars exits
};

struct Record {
  // lastUpdateEpoch of a record no pass has seen yet: it is exported once as updated
  // (whatever its cells hold) before it can be reclaimed.
  static constexpr uint32_t kUnseen = UINT32_MAX;
  // Epochs saturate here in a record (after 4 billion collections a record updated
  // in the last pass may be reclaimed one pass early; nothing else changes).
  static constexpr uint32_t kMaxEpoch = UINT32_MAX - 1;
  // listIndex of a record removed from its instrument (RecordMap::Remove): in no list or
  // table, never visited by a pass again, freed when its last reference goes.
  static constexpr uint32_t kRemoved = UINT32_MAX;

  LabelSet* labels = nullptr;  // one reference, dropped when reclaimed; null: free slot
  double startTimeMs = 0;      // creation time, the start of its cumulative series
  uint64_t fingerprint = 0;    // StateFingerprint of the last pass's checkpoint
  uint32_t lastUpdateEpoch = kUnseen;  // collection epoch that first saw the last update
  uint32_t instrument = 0;     // Instrument id
  uint32_t generation = 0;     // of its slot (the high bits of its id)
  uint32_t listIndex = 0;      // position in its instrument's list; kRemoved: removed
  RecordCell cell;             // the first thread's cell (cell.arena 0: none yet)
  std::unique_ptr<RecordExtra> extra;

  // Cells: `cell` then extra->cells. PushCell and EraseCell invalidate pointers to cells.
  size_t CellCount() const { return (cell.arena != 0 ? 1 : 0) + (extra ? extra->cells.size() : 0); }
  RecordCell& Cell(size_t i) { return i == 0 ? cell : extra->cells[i - 1]; }
  const RecordCell& Cell(size_t i) const { return i == 0 ? cell : extra->cells[i - 1]; }
  RecordCell* FindCell(uint32_t arena);
  RecordCell& PushCell(const RecordCell& c);
  void EraseCell(size_t i);
  // The sum of every cell's refs: 0 means no thread can write the record.
  uint32_t Refcount() const;
  const double* Retired() const { return extra ? extra->retired.get() : nullptr; }
  bool Removed() const { return listIndex == kRemoved; }
};

// Records by slot, in chunks that never move. A record's id is its slot in the low 32
// bits and the slot's generation (bumped each time the slot is freed, 1..2^21-1) above:
// an id of a freed record never names its slot's next record, and ids fit a double.
class RecordPool {
 public:
  static constexpr uint32_t kChunk = 512;
  static constexpr uint32_t kMaxGeneration = (1u << 21) - 1;

  Record& At(uint32_t slot) { return chunks_[slot / kChunk][slot % kChunk]; }
  const Record& At(uint32_t slot) const { return chunks_[slot / kChunk][slot % kChunk]; }
  // The record with this id, or nullptr (never issued, or freed since).
  Record* Find(uint64_t id);
  // A free slot's record (default state apart from its generation).
  uint32_t Allocate();
  // Resets the record and makes its slot free.
  void Free(uint32_t slot);
  size_t size() const { return live_; }
  static uint64_t IdOf(uint32_t slot, uint32_t generation) { return (uint64_t{generation} << 32) | slot; }
  uint64_t IdOf(uint32_t slot) const { return IdOf(slot, At(slot).generation); }

 private:
  std::vector<std::unique_ptr<Record[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t used_ = 0;  // slots ever handed out
  size_t live_ = 0;
};

// A 64-bit hash of a state's bits: equal states have equal fingerprints. One multiply
// chain over every double: a change of any element reaches every later step, so states
// that move several elements by the same bits (count and sum) do not cancel, as they did
// when independent lanes were XORed (core_record_map_test: state_fingerprint_*); states
// of 8 doubles or more are hashed in four lanes fed into one chain (record.cc).
uint64_t StateFingerprint(const double* state, size_t size);

// Label keys: the parts (k0, v0, k1, v1, ...), each prefixed with its length as a
// LEB128 varint. Decoding stops at the first malformed part.
std::vector<std::string> DecodeLabelKey(std::string_view key);
std::string EncodeLabelKey(const std::vector<std::string>& parts);
// Reads the part at *pos into *part and advances *pos; false at the end or if malformed.
bool NextLabelKeyPart(std::string_view key, size_t* pos, std::string_view* part);

}  // namespace hotmeter
