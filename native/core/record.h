// Record: one per (instrument, label set), process-wide.
// Guarded by the RecordMap lock except for cell contents, which only the owning JS
// thread writes (plain stores) and the collector reads (relaxed atomic loads).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "slab_arena.h"

namespace hotmeter {

struct Instrument;

struct RecordCell {
  uint32_t arena = 0;  // SlabArena id of the thread that writes this cell
  CellRef ref;
  double* data = nullptr;  // points into that arena's slab; valid until the arena retires
  // References this thread holds (its bound handles and label-cache entries); the
  // record's refcount is their sum. Dropped with the cell when the arena retires.
  uint32_t refs = 0;
  // The record's id is in this arena's stale queue (RecordMap::DrainStale), queued when
  // this cell's Activity() was `staleActivity`.
  bool staleQueued = false;
  double staleActivity = 0;
};

struct Record {
  uint64_t id = 0;
  Instrument* instrument = nullptr;
  // Canonical label key: for each (key, tagged value) string, a 4-byte little-endian
  // byte length and the bytes. Injective by construction; pairs sorted by key in JS.
  std::string labelKey;
  // References held by JS: bound handles and each thread's label cache entry (the sum
  // of cells[].refs). The record is reclaimable only at 0: no thread can write it.
  uint32_t refcount = 0;
  uint32_t listIndex = 0;         // position in instrument->list
  uint64_t lastUpdateEpoch = 0;   // collection epoch that first saw the last update
  double startTimeMs = 0;         // creation time, the start of its cumulative series
  double lastActivity = 0;        // Activity() of `checkpoint`
  std::vector<RecordCell> cells;  // one per thread that has acquired the record
  // Merged state of cells whose thread has exited; empty (the identity) until one does.
  std::vector<double> retired;
  std::vector<double> checkpoint; // cumulative state as of the last collection
};

// Decodes a canonical label key into its strings (k0, v0, k1, v1, ...).
std::vector<std::string> DecodeLabelKey(const std::string& key);
// Encodes strings into a canonical label key.
std::string EncodeLabelKey(const std::vector<std::string>& parts);

}  // namespace hotmeter
