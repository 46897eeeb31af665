// Fixture helpers shared by the native core's tests (native/test/core_*_test.cc): reference
// aggregator updates, descriptors, label keys, cells reached as JS reaches them, and a strict
// parser of RecordMap::Collect output. The test framework itself is check.h.
// Built by CMakeLists.txt (plain cmake) and run by scripts/native-test.sh plain, under
// ASan+UBSan and under TSan.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/aggregator.h"
#include "../core/block_pool.h"
#include "../core/descriptor.h"
#include "../core/exponential_histogram.h"
#include "../core/label_set.h"
#include "../core/probe_table.h"
#include "../core/record.h"
#include "../core/record_map.h"
#include "../core/sketch.h"
#include "../core/slab_arena.h"
#include "check.h"

using namespace hotmeter;

inline constexpr double kInf = std::numeric_limits<double>::infinity();

inline constexpr AggregationKind kAllKinds[] = {AggregationKind::Sum, AggregationKind::LastValue,
                                                AggregationKind::PrecomputedSum,
                                                AggregationKind::MinMaxSumCount, AggregationKind::Histogram};

const char* KindName(AggregationKind k);

// Every merge is commutative (LastValue: the greatest stamp, then the greatest value).
inline bool Commutative(AggregationKind) { return true; }

// Exact element-wise equality (inf == inf; no NaN is ever produced by these tests).
inline bool SameState(const std::vector<double>& a, const std::vector<double>& b) { return a == b; }

std::vector<double> Identity(AggregationKind kind, size_t size);

// The clock a LastValue / PrecomputedSum write stamps its cell with (in JS, a time in
// ms read by every thread): here a counter, strictly increasing across every cell.
inline double gStamp = 0;
inline double NextStamp() { return gStamp += 1; }
inline double LastStamp() { return gStamp; }

// One update of a cell, as the JS hot path (src/api/handles.ts) does it, per the cell
// layouts documented in descriptor.h.
void Update(AggregationKind kind, double* s, const std::vector<double>& bounds, double v);

std::vector<double> Merged(AggregationKind kind, std::vector<double> a, const std::vector<double>& b);

// The writer side of a cell in the threaded tests: single writer per cell, so a relaxed
// load + store is what the JS plain store does, but visible to TSan as atomic.
inline double LoadRelaxed(double& x) { return std::atomic_ref<double>(x).load(std::memory_order_relaxed); }
inline void StoreRelaxed(double& x, double v) { std::atomic_ref<double>(x).store(v, std::memory_order_relaxed); }
inline void AddRelaxed(double& x, double v) { StoreRelaxed(x, LoadRelaxed(x) + v); }

Descriptor MakeDesc(const std::string& name, AggregationKind agg, std::vector<double> bounds = {});

std::string Key(const std::string& k, const std::string& v);

// The cell of an Acquire, reached the way JS reaches it: the slab's memory plus offset.
double* CellPtr(RecordMap& m, uint32_t arena, const Acquired& a, size_t cellSize);

// A parsed RecordMap::Collect output.
struct Row {
  uint64_t id = 0;
  uint32_t instrument = 0;
  bool updated = false;           // in this pass
  uint32_t lastUpdateEpoch = 0;   // the pass that first saw the last update
  double startTimeMs = 0;
  std::vector<double> state;
};

struct Collected {
  bool ok = false;
  uint64_t epoch = 0;
  std::vector<Row> rows;
  std::vector<uint64_t> reclaimed;

  const Row* Find(uint64_t id) const {
    for (const Row& r : rows) {
      if (r.id == id) return &r;
    }
    return nullptr;
  }
  bool WasReclaimed(uint64_t id) const {
    return std::find(reclaimed.begin(), reclaimed.end(), id) != reclaimed.end();
  }
};

bool IsUint(double d);

// Parses out[from..] strictly against the layout documented in record_map.h:
//   header [epoch, recordCount, reclaimedCount]
//   recordCount x [recordId, instrumentId, lastUpdateEpoch, startTimeMs, state...]
//   reclaimedCount x [recordId]
// The output must end exactly after the reclaimed ids.
Collected Parse(const std::vector<double>& out, size_t from, const std::map<uint32_t, size_t>& cellSizes);

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, const CollectOptions& opts);

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, bool reclaim,
                    double nowMs = 0, uint32_t domain = 0);
