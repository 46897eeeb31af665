// Tests of the native core (native/core): aggregators, label keys, slab arenas, the
// record map, and a threaded stress test of concurrent writers and collections.
// No Node; the test framework is check.h. Built by CMakeLists.txt (plain cmake) and run by
// scripts/native-test.sh plain, under ASan+UBSan and under TSan.
//
// Usage: core_test [--scale=F] [--list] [name-substring ...]
//   --scale=F (or HOTMETER_STRESS_SCALE=F) multiplies the stress test's update count.
//   Names select the tests whose name contains any of the substrings.
// The last line printed is always "N passed, M failed"; the exit status is 1 if M > 0.
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

namespace {

// ---------------------------------------------------------------------------------------
// Helpers.

constexpr double kInf = std::numeric_limits<double>::infinity();

const AggregationKind kAllKinds[] = {AggregationKind::Sum, AggregationKind::LastValue,
                                     AggregationKind::PrecomputedSum,
                                     AggregationKind::MinMaxSumCount, AggregationKind::Histogram};

const char* KindName(AggregationKind k) {
  switch (k) {
    case AggregationKind::Drop: return "Drop";
    case AggregationKind::Sum: return "Sum";
    case AggregationKind::LastValue: return "LastValue";
    case AggregationKind::PrecomputedSum: return "PrecomputedSum";
    case AggregationKind::MinMaxSumCount: return "MinMaxSumCount";
    case AggregationKind::Histogram: return "Histogram";
    case AggregationKind::Sketch: return "Sketch";
    case AggregationKind::ExponentialHistogram: return "ExponentialHistogram";
    case AggregationKind::Exact: return "Exact";
  }
  return "?";
}

// Every merge is commutative (LastValue: the greatest stamp, then the greatest value).
bool Commutative(AggregationKind) { return true; }

// Exact element-wise equality (inf == inf; no NaN is ever produced by these tests).
bool SameState(const std::vector<double>& a, const std::vector<double>& b) { return a == b; }

std::vector<double> Identity(AggregationKind kind, size_t size) {
  std::vector<double> s(size, std::nan(""));
  InitState(kind, s.data(), size);
  return s;
}

// The clock a LastValue / PrecomputedSum write stamps its cell with (in JS, a time in
// ms read by every thread): here a counter, strictly increasing across every cell.
double gStamp = 0;
double NextStamp() { return gStamp += 1; }
double LastStamp() { return gStamp; }

// One update of a cell, as the JS hot path (src/api/handles.ts) does it, per the cell
// layouts documented in descriptor.h.
void Update(AggregationKind kind, double* s, const std::vector<double>& bounds, double v) {
  switch (kind) {
    case AggregationKind::Drop: return;
    case AggregationKind::Sum: s[0] += v; return;
    case AggregationKind::LastValue:
    case AggregationKind::PrecomputedSum: s[0] = v; s[1] = NextStamp(); return;
    case AggregationKind::MinMaxSumCount:
      s[0] += 1;
      s[1] += v;
      if (v < s[2]) s[2] = v;
      if (v > s[3]) s[3] = v;
      return;
    case AggregationKind::Histogram:
      s[0] += v;
      if (v < s[1]) s[1] = v;
      if (v > s[2]) s[2] = v;
      s[3 + BucketIndex(bounds.data(), bounds.size(), v)] += 1;
      return;
    case AggregationKind::Sketch:
    case AggregationKind::ExponentialHistogram:
    case AggregationKind::Exact:
      return;  // not in kAllKinds: tested by native/test/sketch_test.cc
  }
}

std::vector<double> Merged(AggregationKind kind, std::vector<double> a, const std::vector<double>& b) {
  MergeState(kind, a.data(), b.data(), a.size());
  return a;
}

// The writer side of a cell in the threaded tests: single writer per cell, so a relaxed
// load + store is what the JS plain store does, but visible to TSan as atomic.
inline double LoadRelaxed(double& x) { return std::atomic_ref<double>(x).load(std::memory_order_relaxed); }
inline void StoreRelaxed(double& x, double v) { std::atomic_ref<double>(x).store(v, std::memory_order_relaxed); }
inline void AddRelaxed(double& x, double v) { StoreRelaxed(x, LoadRelaxed(x) + v); }

Descriptor MakeDesc(const std::string& name, AggregationKind agg, std::vector<double> bounds = {}) {
  Descriptor d;
  d.name = name;
  d.description = "test instrument " + name;
  d.unit = "1";
  d.aggregation = agg;
  d.kind = agg == AggregationKind::Histogram ? InstrumentKind::Histogram : InstrumentKind::Counter;
  d.bounds = std::move(bounds);
  return d;
}

std::string Key(const std::string& k, const std::string& v) { return EncodeLabelKey({k, v}); }

// The cell of an Acquire, reached the way JS reaches it: the slab's memory plus offset.
double* CellPtr(RecordMap& m, uint32_t arena, const Acquired& a, size_t cellSize) {
  double* data = nullptr;
  size_t doubles = 0;
  if (!m.SlabMemory(arena, a.slab, &data, &doubles)) {
    Fail(__FILE__, __LINE__, "SlabMemory failed for an acquired cell");
    return nullptr;
  }
  if (data == nullptr || static_cast<size_t>(a.offset) + cellSize > doubles) {
    Fail(__FILE__, __LINE__, "acquired cell is not inside its slab");
    return nullptr;
  }
  return data + a.offset;
}

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

bool IsUint(double d) { return d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d; }

// Parses out[from..] strictly against the layout documented in record_map.h:
//   header [epoch, recordCount, reclaimedCount]
//   recordCount x [recordId, instrumentId, lastUpdateEpoch, startTimeMs, state...]
//   reclaimedCount x [recordId]
// The output must end exactly after the reclaimed ids.
Collected Parse(const std::vector<double>& out, size_t from, const std::map<uint32_t, size_t>& cellSizes) {
  Collected c;
  size_t i = from;
  auto fail = [&](const std::string& why) {
    Fail(__FILE__, __LINE__, "malformed Collect output at index " + std::to_string(i) + ": " + why);
    return c;
  };
  if (out.size() < from + 3) return fail("no header");
  if (!IsUint(out[i]) || !IsUint(out[i + 1]) || !IsUint(out[i + 2])) return fail("header not integral");
  c.epoch = static_cast<uint64_t>(out[i]);
  size_t recordCount = static_cast<size_t>(out[i + 1]);
  size_t reclaimedCount = static_cast<size_t>(out[i + 2]);
  i += 3;
  std::set<uint64_t> ids;
  for (size_t r = 0; r < recordCount; r++) {
    if (out.size() < i + 4) return fail("truncated record header");
    Row row;
    if (!IsUint(out[i]) || out[i] == 0) return fail("bad record id");
    if (!IsUint(out[i + 1])) return fail("bad instrument id");
    // A pass sees every record it lists: lastUpdateEpoch is that pass's or an earlier one.
    const double passEpoch = static_cast<double>(std::min<uint64_t>(c.epoch, Record::kMaxEpoch));
    if (!IsUint(out[i + 2]) || out[i + 2] == 0 || out[i + 2] > passEpoch) return fail("bad lastUpdateEpoch");
    row.id = static_cast<uint64_t>(out[i]);
    row.instrument = static_cast<uint32_t>(out[i + 1]);
    row.lastUpdateEpoch = static_cast<uint32_t>(out[i + 2]);
    row.updated = out[i + 2] == passEpoch;
    row.startTimeMs = out[i + 3];
    i += 4;
    auto cs = cellSizes.find(row.instrument);
    if (cs == cellSizes.end()) return fail("unknown instrument id " + std::to_string(row.instrument));
    if (out.size() < i + cs->second) return fail("truncated state");
    row.state.assign(out.begin() + static_cast<ptrdiff_t>(i),
                     out.begin() + static_cast<ptrdiff_t>(i + cs->second));
    i += cs->second;
    if (!ids.insert(row.id).second) return fail("duplicate record id");
    c.rows.push_back(std::move(row));
  }
  for (size_t r = 0; r < reclaimedCount; r++) {
    if (out.size() < i + 1) return fail("truncated reclaimed ids");
    if (!IsUint(out[i]) || out[i] == 0) return fail("bad reclaimed id");
    uint64_t id = static_cast<uint64_t>(out[i]);
    if (ids.count(id)) return fail("reclaimed id also listed as a record");
    c.reclaimed.push_back(id);
    i++;
  }
  if (i != out.size()) return fail("trailing data (" + std::to_string(out.size() - i) + " doubles)");
  c.ok = true;
  return c;
}

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, const CollectOptions& opts) {
  std::vector<double> out;
  m.Collect(opts, &out);
  return Parse(out, 0, cellSizes);
}

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, bool reclaim,
                    double nowMs = 0, uint32_t domain = 0) {
  CollectOptions opts;
  opts.nowMs = nowMs;
  opts.reclaim = reclaim;
  opts.domain = domain;
  return DoCollect(m, cellSizes, opts);
}

// ---------------------------------------------------------------------------------------
// Aggregators.

TEST(aggregator_cell_size) {
  CHECK_EQ(CellSize(AggregationKind::Drop, 0), 0u);
  CHECK_EQ(CellSize(AggregationKind::Drop, 5), 0u);
  CHECK_EQ(CellSize(AggregationKind::Sum, 0), 1u);
  CHECK_EQ(CellSize(AggregationKind::Sum, 9), 1u);
  CHECK_EQ(CellSize(AggregationKind::LastValue, 0), 2u);
  CHECK_EQ(CellSize(AggregationKind::PrecomputedSum, 0), 2u);
  CHECK_EQ(CellSize(AggregationKind::MinMaxSumCount, 0), 4u);
  CHECK_EQ(CellSize(AggregationKind::MinMaxSumCount, 7), 4u);
  // [sum, min, max, bucket0 .. bucketN]: N bounds give N + 1 buckets.
  CHECK_EQ(CellSize(AggregationKind::Histogram, 0), 4u);
  CHECK_EQ(CellSize(AggregationKind::Histogram, 1), 5u);
  CHECK_EQ(CellSize(AggregationKind::Histogram, 15), 19u);
  CHECK_EQ(CellSize(AggregationKind::Histogram, 4096), 4100u);
}

TEST(aggregator_init_state_identity) {
  CHECK_EQ(Identity(AggregationKind::Sum, 1), (std::vector<double>{0}));
  CHECK_EQ(Identity(AggregationKind::LastValue, 2), (std::vector<double>{0, 0}));
  CHECK_EQ(Identity(AggregationKind::PrecomputedSum, 2), (std::vector<double>{0, 0}));
  CHECK_EQ(Identity(AggregationKind::MinMaxSumCount, 4), (std::vector<double>{0, 0, kInf, -kInf}));
  CHECK_EQ(Identity(AggregationKind::Histogram, 4), (std::vector<double>{0, kInf, -kInf, 0}));
  CHECK_EQ(Identity(AggregationKind::Histogram, 7), (std::vector<double>{0, kInf, -kInf, 0, 0, 0, 0}));
  // Every double is written, whatever the memory held before.
  for (AggregationKind k : kAllKinds) {
    size_t n = CellSize(k, 3);
    std::vector<double> s(n, 12345.0);
    InitState(k, s.data(), n);
    CHECK_EQ(s, Identity(k, n));
    CHECK_EQ(Activity(k, s.data(), n), 0.0);
  }
}

TEST(aggregator_merge_identity_is_noop) {
  std::mt19937_64 rng(1);
  const std::vector<double> bounds = {-10, 0, 10, 25};
  for (AggregationKind k : kAllKinds) {
    const size_t n = CellSize(k, bounds.size());
    const std::vector<double> id = Identity(k, n);
    CHECK_EQ(Merged(k, id, id), id);
    for (int trial = 0; trial < 300; trial++) {
      std::vector<double> s = id;
      int updates = static_cast<int>(rng() % 6);
      for (int u = 0; u < updates; u++) Update(k, s.data(), bounds, static_cast<double>(static_cast<int>(rng() % 101) - 50));
      std::vector<double> right = Merged(k, s, id);
      std::vector<double> left = Merged(k, id, s);
      if (!SameState(right, s) || !SameState(left, s)) {
        Fail(__FILE__, __LINE__, std::string(KindName(k)) + ": merge with identity changed " + Show(s) +
                                     " -> " + Show(right) + " / " + Show(left));
        break;
      }
    }
  }
}

TEST(aggregator_merge_associative_commutative) {
  std::mt19937_64 rng(2);
  const std::vector<double> bounds = {-10, 0, 10, 25};
  auto random_state = [&](AggregationKind k, size_t n) {
    std::vector<double> s = Identity(k, n);
    int updates = static_cast<int>(rng() % 6);
    for (int u = 0; u < updates; u++) Update(k, s.data(), bounds, static_cast<double>(static_cast<int>(rng() % 101) - 50));
    return s;
  };
  for (AggregationKind k : kAllKinds) {
    const size_t n = CellSize(k, bounds.size());
    int assocFailures = 0, commFailures = 0;
    for (int trial = 0; trial < 500; trial++) {
      std::vector<double> a = random_state(k, n), b = random_state(k, n), c = random_state(k, n);
      if (!SameState(Merged(k, Merged(k, a, b), c), Merged(k, a, Merged(k, b, c)))) assocFailures++;
      if (Commutative(k) && !SameState(Merged(k, a, b), Merged(k, b, a))) commFailures++;
    }
    if (assocFailures) Fail(__FILE__, __LINE__, std::string(KindName(k)) + " merge not associative");
    if (commFailures) Fail(__FILE__, __LINE__, std::string(KindName(k)) + " merge not commutative");
  }
}

TEST(aggregator_merge_equals_single_stream) {
  // Merging the states of a split update stream gives the state of the whole stream: the
  // property Collect relies on when it folds every thread's cell into one checkpoint.
  std::mt19937_64 rng(3);
  const std::vector<double> bounds = {-10, 0, 10, 25};
  for (AggregationKind k : {AggregationKind::Sum, AggregationKind::MinMaxSumCount, AggregationKind::Histogram}) {
    const size_t n = CellSize(k, bounds.size());
    for (int trial = 0; trial < 200; trial++) {
      std::vector<double> whole = Identity(k, n), a = whole, b = whole;
      int count = static_cast<int>(rng() % 20);
      int split = count ? static_cast<int>(rng() % static_cast<uint64_t>(count + 1)) : 0;
      for (int u = 0; u < count; u++) {
        double v = static_cast<double>(static_cast<int>(rng() % 101) - 50);
        Update(k, whole.data(), bounds, v);
        Update(k, (u < split ? a : b).data(), bounds, v);
      }
      if (!SameState(Merged(k, a, b), whole)) {
        Fail(__FILE__, __LINE__, std::string(KindName(k)) + ": merge(a, b) = " + Show(Merged(k, a, b)) +
                                     " but whole stream = " + Show(whole));
        break;
      }
    }
  }
}

TEST(aggregator_merge_semantics) {
  // Sum.
  CHECK_EQ(Merged(AggregationKind::Sum, {2.5}, {-1}), (std::vector<double>{1.5}));
  // LastValue [value, stamp]: the greatest stamp wins, in either merge order; the
  // identity (stamp 0) never does; equal stamps keep the greater value.
  CHECK_EQ(Merged(AggregationKind::LastValue, {7, 3}, {9, 2}), (std::vector<double>{7, 3}));
  CHECK_EQ(Merged(AggregationKind::LastValue, {9, 2}, {7, 3}), (std::vector<double>{7, 3}));
  CHECK_EQ(Merged(AggregationKind::LastValue, {7, 3}, {0, 0}), (std::vector<double>{7, 3}));
  CHECK_EQ(Merged(AggregationKind::LastValue, {0, 0}, {-4, 1}), (std::vector<double>{-4, 1}));
  CHECK_EQ(Merged(AggregationKind::LastValue, {-4, 5}, {-6, 5}), (std::vector<double>{-4, 5}));
  CHECK_EQ(Merged(AggregationKind::LastValue, {-6, 5}, {-4, 5}), (std::vector<double>{-4, 5}));
  // PrecomputedSum: per-thread observed totals add up; the latest stamp is kept.
  CHECK_EQ(Merged(AggregationKind::PrecomputedSum, {10, 1}, {5, 2}), (std::vector<double>{15, 2}));
  CHECK_EQ(Merged(AggregationKind::PrecomputedSum, {10, 4}, {5, 2}), (std::vector<double>{15, 4}));
  // MinMaxSumCount [count, sum, min, max].
  CHECK_EQ(Merged(AggregationKind::MinMaxSumCount, {2, 3, 1, 2}, {1, -5, -5, -5}),
           (std::vector<double>{3, -2, -5, 2}));
  // Histogram [sum, min, max, buckets...].
  CHECK_EQ(Merged(AggregationKind::Histogram, {3, 1, 2, 0, 2, 0}, {30, 30, 30, 0, 0, 1}),
           (std::vector<double>{33, 1, 30, 0, 2, 1}));
  // Drop: nothing to do, size 0.
  MergeState(AggregationKind::Drop, nullptr, nullptr, 0);
  CHECK_EQ(CellSize(AggregationKind::Drop, 3), 0u);
}

TEST(aggregator_activity_changes_on_update) {
  std::mt19937_64 rng(4);
  const std::vector<double> bounds = {-10, 0, 10, 25};
  for (AggregationKind k : kAllKinds) {
    const size_t n = CellSize(k, bounds.size());
    std::vector<double> s = Identity(k, n);
    double prev = Activity(k, s.data(), n);
    CHECK_EQ(prev, 0.0);
    for (int u = 0; u < 200; u++) {
      double v = static_cast<double>(static_cast<int>(rng() % 101) - 50);
      if (k == AggregationKind::Sum && v == 0) v = 1;  // a Sum's activity is its value
      Update(k, s.data(), bounds, v);
      double a = Activity(k, s.data(), n);
      if (a == prev) {
        Fail(__FILE__, __LINE__, std::string(KindName(k)) + ": activity unchanged after an update");
        break;
      }
      if (k != AggregationKind::Sum && !(a > prev)) {
        Fail(__FILE__, __LINE__, std::string(KindName(k)) + ": activity not monotone");
        break;
      }
      prev = a;
    }
  }
  // LastValue / PrecomputedSum: recording the same value again is still an update.
  for (AggregationKind k : {AggregationKind::LastValue, AggregationKind::PrecomputedSum}) {
    std::vector<double> s = Identity(k, 2);
    Update(k, s.data(), bounds, 5);
    double a1 = Activity(k, s.data(), 2);
    Update(k, s.data(), bounds, 5);
    CHECK(Activity(k, s.data(), 2) != a1);
  }
  // Equal states have equal activity.
  std::vector<double> h1 = Identity(AggregationKind::Histogram, 7), h2 = h1;
  Update(AggregationKind::Histogram, h1.data(), bounds, 3);
  Update(AggregationKind::Histogram, h2.data(), bounds, 3);
  CHECK_EQ(Activity(AggregationKind::Histogram, h1.data(), 7), Activity(AggregationKind::Histogram, h2.data(), 7));
  CHECK_EQ(Activity(AggregationKind::Histogram, h1.data(), 7), 1.0);
}

TEST(aggregator_bucket_index_upper_inclusive) {
  const double b[] = {0, 10, 100};
  CHECK_EQ(BucketIndex(b, 3, -1), 0u);
  CHECK_EQ(BucketIndex(b, 3, -kInf), 0u);
  CHECK_EQ(BucketIndex(b, 3, 0), 0u);  // v == bound goes in that bucket
  CHECK_EQ(BucketIndex(b, 3, -0.0), 0u);
  CHECK_EQ(BucketIndex(b, 3, 1e-300), 1u);
  CHECK_EQ(BucketIndex(b, 3, 0.5), 1u);
  CHECK_EQ(BucketIndex(b, 3, 10), 1u);
  CHECK_EQ(BucketIndex(b, 3, std::nextafter(10.0, kInf)), 2u);
  CHECK_EQ(BucketIndex(b, 3, 99.999), 2u);
  CHECK_EQ(BucketIndex(b, 3, 100), 2u);
  CHECK_EQ(BucketIndex(b, 3, std::nextafter(100.0, kInf)), 3u);  // above last -> n
  CHECK_EQ(BucketIndex(b, 3, 1e300), 3u);
  CHECK_EQ(BucketIndex(b, 3, kInf), 3u);
  // No bounds: a single bucket.
  CHECK_EQ(BucketIndex(nullptr, 0, 42), 0u);
  const double one[] = {5};
  CHECK_EQ(BucketIndex(one, 1, 5), 0u);
  CHECK_EQ(BucketIndex(one, 1, 6), 1u);

  // Against a linear scan, with values on, between and around random bounds.
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; trial++) {
    size_t n = rng() % 40;
    std::set<double> bs;
    while (bs.size() < n) bs.insert(static_cast<double>(static_cast<int>(rng() % 2001) - 1000) / 4);
    std::vector<double> bounds(bs.begin(), bs.end());
    for (int q = 0; q < 50; q++) {
      double v;
      if (n > 0 && q % 2 == 0) {
        v = bounds[rng() % n];  // exactly on a bound
      } else {
        v = static_cast<double>(static_cast<int>(rng() % 2201) - 1100) / 4;
      }
      size_t expect = 0;
      while (expect < n && v > bounds[expect]) expect++;
      size_t got = BucketIndex(bounds.data(), n, v);
      if (got != expect) {
        Fail(__FILE__, __LINE__, "BucketIndex(" + Show(v) + ") = " + std::to_string(got) + ", expected " +
                                     std::to_string(expect) + " for bounds " + Show(bounds));
        return;
      }
    }
  }
}

TEST(aggregator_load_cell_copies) {
  double cell[6] = {1.5, -kInf, kInf, 0, -0.0, 1e300};
  double out[6] = {};
  LoadCell(out, cell, 6);
  CHECK(std::memcmp(out, cell, sizeof cell) == 0);
}

// ---------------------------------------------------------------------------------------
// Label keys.

TEST(label_key_layout) {
  // For each string: its byte length as a LEB128 varint, then the bytes.
  CHECK_EQ(EncodeLabelKey({}), std::string());
  CHECK_EQ(EncodeLabelKey({""}), std::string(1, '\0'));
  CHECK_EQ(EncodeLabelKey({"ab"}), std::string("\x02" "ab", 3));
  CHECK_EQ(EncodeLabelKey({"k", "v"}), std::string("\x01k\x01v", 4));
  std::string s127(127, 'w');
  CHECK_EQ(EncodeLabelKey({s127}), std::string("\x7f", 1) + s127);
  std::string s300(300, 'x');
  CHECK_EQ(EncodeLabelKey({s300}), std::string("\xac\x02", 2) + s300);
  std::string s70000(70000, 'y');
  CHECK_EQ(EncodeLabelKey({s70000}).substr(0, 3), std::string("\xf0\xa2\x04", 3));
}

TEST(label_key_round_trip) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {""},
      {"", ""},
      {"", "", ""},
      {"a"},
      {"service.name", "checkout", "http.route", "/api/v1/items/:id"},
      {std::string("\0", 1)},
      {std::string("a\0b", 3), std::string("\0\0\0\0", 4)},
      {std::string("\x03\0\0\0abc", 7)},                     // looks like an encoded part
      {std::string("\xff\xff\xff\xff", 4), std::string("\x01\0\0", 3)},
      {std::string("\x05\0\0\0", 4), ""},                    // a length prefix pointing past the end
      {"caf\xc3\xa9", "\xf0\x9f\x98\x80"},                    // UTF-8
      {std::string(255, 'a'), std::string(256, 'b'), std::string(65536, 'c')},
      {std::string(70000, '\0')},
  };
  for (const auto& parts : cases) {
    std::string key = EncodeLabelKey(parts);
    size_t bytes = 0;
    for (const auto& p : parts) bytes += (p.size() < 128 ? 1 : p.size() < 16384 ? 2 : 3) + p.size();
    CHECK_EQ(key.size(), bytes);
    CHECK_EQ(DecodeLabelKey(key), parts);
  }
  // Random binary strings.
  std::mt19937_64 rng(6);
  for (int trial = 0; trial < 500; trial++) {
    std::vector<std::string> parts(rng() % 7);
    for (auto& p : parts) {
      p.resize(rng() % 12);
      for (auto& c : p) c = static_cast<char>(rng() % 6 == 0 ? 0 : rng() & 0xff);
    }
    std::vector<std::string> back = DecodeLabelKey(EncodeLabelKey(parts));
    if (back != parts) {
      Fail(__FILE__, __LINE__, "round trip of " + Show(parts) + " gave " + Show(back));
      return;
    }
  }
}

TEST(label_key_injective) {
  auto differ = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return EncodeLabelKey(a) != EncodeLabelKey(b);
  };
  CHECK(differ({"a", "bc"}, {"ab", "c"}));
  CHECK(differ({"a", ""}, {"a"}));
  CHECK(differ({"", "a"}, {"a"}));
  CHECK(differ({"", "a"}, {"a", ""}));
  CHECK(differ({}, {""}));
  CHECK(differ({""}, {"", ""}));
  CHECK(differ({std::string("\0", 1)}, {""}));
  CHECK(differ({"k", "v1"}, {"k", "v10"}));
  CHECK(differ({std::string("\x01\0\0\0x", 5)}, {"x"}));
  CHECK(differ({"x", "y"}, {std::string("x\x01\0\0\0y", 6)}));
  // Exhaustive over short strings from a tiny alphabet that includes NUL and \x01.
  const char alphabet[] = {'a', '\0', '\x01'};
  std::vector<std::string> strings = {""};
  for (size_t len = 1; len <= 2; len++) {
    size_t start = strings.size();
    for (size_t i = 0; i < start; i++) {
      if (strings[i].size() != len - 1) continue;
      for (char c : alphabet) strings.push_back(strings[i] + c);
    }
  }
  std::map<std::string, std::vector<std::string>> seen;
  size_t collisions = 0;
  auto add = [&](const std::vector<std::string>& parts) {
    auto [it, inserted] = seen.emplace(EncodeLabelKey(parts), parts);
    if (!inserted && it->second != parts) collisions++;
  };
  add({});
  for (const auto& a : strings) {
    add({a});
    for (const auto& b : strings) {
      add({a, b});
      for (const auto& c : strings) add({a, b, c});
    }
  }
  CHECK_EQ(collisions, 0u);
  CHECK(seen.size() > 1000);
}

TEST(label_key_decode_malformed) {
  // Malformed keys never read past the end (ASan checks this); whole parts are kept.
  std::string good = EncodeLabelKey({"a", "b"});
  CHECK_EQ(DecodeLabelKey(good + std::string("\x05\0", 2)), (std::vector<std::string>{"a", "b"}));
  CHECK_EQ(DecodeLabelKey(good + std::string("\x09" "abc", 4)), (std::vector<std::string>{"a", "b"}));
  CHECK_EQ(DecodeLabelKey(std::string("\xff\xff\xff\xff", 4)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string("\x02\0", 2)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string("\x01k\x80", 3)), std::vector<std::string>{"k"});  // varint cut short
  // A varint longer than any length (more than five bytes) is malformed.
  CHECK_EQ(DecodeLabelKey(std::string("\xff\xff\xff\xff\xff\xff\x01", 7)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string()), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------
// SlabArena.

TEST(slab_arena_no_overlap_no_straddle) {
  SlabArena a(7);
  CHECK_EQ(a.id(), 7u);
  CHECK_EQ(a.SlabCount(), 0u);
  CHECK_EQ(a.BytesReserved(), 0u);
  std::mt19937_64 rng(7);
  struct Cell { CellRef ref; size_t size; };
  std::vector<Cell> cells;
  for (int i = 0; i < 3000; i++) {
    size_t size = rng() % 8 == 0 ? rng() % 2000 : rng() % 40;
    if (i % 700 == 699) size = SlabArena::kSlabDoubles + rng() % 100;  // a few oversize
    cells.push_back({a.Allocate(size), std::max<size_t>(size, 1)});
  }
  size_t reserved = 0;
  for (uint32_t s = 0; s < a.SlabCount(); s++) reserved += a.SlabDoubles(s) * sizeof(double);
  CHECK_EQ(a.BytesReserved(), reserved);

  std::map<uint32_t, std::vector<std::pair<size_t, size_t>>> bySlab;
  for (const Cell& c : cells) {
    REQUIRE(c.ref.slab < a.SlabCount());
    // A cell never straddles the end of its slab.
    CHECK(static_cast<size_t>(c.ref.offset) + c.size <= a.SlabDoubles(c.ref.slab));
    CHECK(a.Data(c.ref) == a.SlabData(c.ref.slab) + c.ref.offset);
    bySlab[c.ref.slab].push_back({c.ref.offset, c.size});
  }
  for (auto& [slab, spans] : bySlab) {
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); i++) {
      if (spans[i - 1].first + spans[i - 1].second > spans[i].first) {
        Fail(__FILE__, __LINE__, "cells overlap in slab " + std::to_string(slab));
        return;
      }
    }
  }
  // Fill every cell with its own pattern, then check none was overwritten.
  for (size_t i = 0; i < cells.size(); i++) {
    double* d = a.Data(cells[i].ref);
    for (size_t j = 0; j < cells[i].size; j++) d[j] = static_cast<double>(i) + 0.5;
  }
  size_t bad = 0;
  for (size_t i = 0; i < cells.size(); i++) {
    const double* d = a.Data(cells[i].ref);
    for (size_t j = 0; j < cells[i].size; j++) bad += d[j] != static_cast<double>(i) + 0.5;
  }
  CHECK_EQ(bad, 0u);
}

TEST(slab_arena_slab_boundary) {
  SlabArena a(1);
  constexpr size_t S = SlabArena::kSlabDoubles;
  static_assert(S == 8192);
  // 81 cells of 100 doubles use 8100; a 92-double cell exactly fills slab 0.
  for (int i = 0; i < 81; i++) {
    CellRef r = a.Allocate(100);
    CHECK_EQ(r.slab, 0u);
    CHECK_EQ(r.offset, static_cast<uint32_t>(i * 100));
  }
  CellRef exact = a.Allocate(92);
  CHECK_EQ(exact.slab, 0u);
  CHECK_EQ(exact.offset, 8100u);
  CHECK_EQ(a.SlabCount(), 1u);
  // The slab is full: the next cell, however small, starts a new slab.
  CellRef next = a.Allocate(1);
  CHECK_EQ(next.slab, 1u);
  CHECK_EQ(next.offset, 0u);
  // 8191 - 8000 = 191 left in slab 1 after this; a 192-double cell does not fit.
  CellRef big = a.Allocate(8000);
  CHECK_EQ(big.slab, 1u);
  CHECK_EQ(big.offset, 1u);
  CellRef spill = a.Allocate(192);
  CHECK_EQ(spill.slab, 2u);
  CHECK_EQ(spill.offset, 0u);
  // A cell of exactly one slab fits in a fresh normal slab.
  CellRef whole = a.Allocate(S);
  CHECK_EQ(whole.offset, 0u);
  CHECK_EQ(a.SlabDoubles(whole.slab), S);
  for (uint32_t s = 0; s < a.SlabCount(); s++) CHECK_EQ(a.SlabDoubles(s), S);
  CHECK_EQ(a.BytesReserved(), a.SlabCount() * S * sizeof(double));
}

TEST(slab_arena_oversize_dedicated_slab) {
  SlabArena a(2);
  constexpr size_t S = SlabArena::kSlabDoubles;
  CellRef small = a.Allocate(10);
  CHECK_EQ(small.slab, 0u);
  CellRef over = a.Allocate(S + 5);
  CHECK(over.slab != small.slab);
  CHECK_EQ(over.offset, 0u);
  REQUIRE(over.slab < a.SlabCount());
  CHECK_EQ(a.SlabDoubles(over.slab), S + 5);
  // The whole oversize cell is writable (ASan would flag a short allocation).
  double* d = a.Data(over);
  for (size_t i = 0; i < S + 5; i++) d[i] = static_cast<double>(i);
  CHECK_EQ(d[S + 4], static_cast<double>(S + 4));
  // Later small cells never land in the dedicated slab.
  for (int i = 0; i < 10; i++) {
    CellRef r = a.Allocate(10);
    CHECK(r.slab != over.slab);
    CHECK(static_cast<size_t>(r.offset) + 10 <= a.SlabDoubles(r.slab));
  }
  CellRef over2 = a.Allocate(3 * S);
  CHECK_EQ(over2.offset, 0u);
  CHECK_EQ(a.SlabDoubles(over2.slab), 3 * S);
  CHECK(over2.slab != over.slab);
  size_t expect = 0;
  for (uint32_t s = 0; s < a.SlabCount(); s++) expect += a.SlabDoubles(s) * sizeof(double);
  CHECK_EQ(a.BytesReserved(), expect);
}

TEST(slab_arena_free_reuse) {
  SlabArena a(3);
  CellRef r1 = a.Allocate(5);
  CellRef r2 = a.Allocate(5);
  CellRef r3 = a.Allocate(7);
  CHECK(r1.offset != r2.offset);
  a.Free(r1, 5);
  CellRef r4 = a.Allocate(5);  // reuses r1
  CHECK_EQ(r4.slab, r1.slab);
  CHECK_EQ(r4.offset, r1.offset);
  a.Free(r2, 5);
  CellRef r5 = a.Allocate(6);  // different size: not r2
  CHECK(!(r5.slab == r2.slab && r5.offset == r2.offset));
  CellRef r6 = a.Allocate(5);  // same size: r2
  CHECK_EQ(r6.offset, r2.offset);
  CellRef r7 = a.Allocate(5);  // free list empty: fresh
  CHECK(r7.offset != r1.offset && r7.offset != r2.offset && r7.offset != r3.offset);
  // Size 0 is a 1-double cell; Free/Allocate of size 0 agree with that.
  CellRef z1 = a.Allocate(0), z2 = a.Allocate(0);
  CHECK(z1.offset != z2.offset);
  a.Free(z1, 0);
  CellRef z3 = a.Allocate(0);
  CHECK_EQ(z3.offset, z1.offset);
  // Oversize cells go back to the free list too and keep their dedicated slab.
  constexpr size_t S = SlabArena::kSlabDoubles;
  CellRef o1 = a.Allocate(S + 1);
  size_t slabs = a.SlabCount();
  a.Free(o1, S + 1);
  CellRef o2 = a.Allocate(S + 1);
  CHECK_EQ(o2.slab, o1.slab);
  CHECK_EQ(o2.offset, 0u);
  CHECK_EQ(a.SlabCount(), slabs);
}

// ---------------------------------------------------------------------------------------
// RecordMap (a local map, never Global()).

TEST(record_map_register_instrument) {
  RecordMap m;
  bool existed = true;
  uint32_t a = m.RegisterInstrument("meter/a", MakeDesc("a", AggregationKind::Sum), &existed);
  CHECK(!existed);
  CHECK_EQ(a, 1u);
  uint32_t h = m.RegisterInstrument("meter/h", MakeDesc("h", AggregationKind::Histogram, {1, 2, 3}), &existed);
  CHECK(!existed);
  CHECK_EQ(h, 2u);
  // Same identity: same id, even with another descriptor; the first descriptor is kept.
  uint32_t a2 = m.RegisterInstrument("meter/a", MakeDesc("other", AggregationKind::LastValue), &existed);
  CHECK(existed);
  CHECK_EQ(a2, a);
  uint32_t a3 = m.RegisterInstrument("meter/a", MakeDesc("a", AggregationKind::Sum), nullptr);
  CHECK_EQ(a3, a);
  Descriptor d;
  REQUIRE(m.GetDescriptor(a, &d));
  CHECK_EQ(d.name, std::string("a"));
  CHECK(d.aggregation == AggregationKind::Sum);
  REQUIRE(m.GetDescriptor(h, &d));
  CHECK_EQ(d.name, std::string("h"));
  CHECK_EQ(d.description, std::string("test instrument h"));
  CHECK(d.aggregation == AggregationKind::Histogram);
  CHECK_EQ(d.bounds, (std::vector<double>{1, 2, 3}));
  CHECK(!m.GetDescriptor(0, &d));
  CHECK(!m.GetDescriptor(3, &d));
  CHECK(!m.GetDescriptor(0xffffffffu, &d));
  // Identities are exact byte strings.
  uint32_t b = m.RegisterInstrument(std::string("meter/a\0", 8), MakeDesc("b", AggregationKind::Sum), &existed);
  CHECK(!existed);
  CHECK_EQ(b, 3u);
}

TEST(block_pool_blocks_never_overlap_and_are_reused) {
  // Random allocations and frees of small and large blocks, each filled with its own
  // byte: every live block keeps its contents, so none overlaps another (ASan also sees
  // any access to a freed block's poisoned bytes).
  BlockPool pool;
  struct Live {
    unsigned char* p;
    size_t n;
    unsigned char fill;
  };
  std::vector<Live> live;
  std::mt19937 rng(11);
  size_t reused = 0;
  std::set<void*> freed;
  for (int step = 0; step < 40000; step++) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t n = rng() % 10 == 0 ? 257 + rng() % 600 : 1 + rng() % BlockPool::kMaxSmall;
      auto* p = static_cast<unsigned char*>(pool.Allocate(n));
      CHECK(reinterpret_cast<uintptr_t>(p) % 8 == 0);
      reused += freed.erase(p);
      const auto fill = static_cast<unsigned char>(step);
      std::memset(p, fill, n);
      live.push_back({p, n, fill});
    } else {
      const size_t i = rng() % live.size();
      for (size_t j = 0; j < live[i].n; j++) {
        if (live[i].p[j] != live[i].fill) {
          Fail(__FILE__, __LINE__, "a block's bytes changed while it was live");
          return;
        }
      }
      if (live[i].n <= BlockPool::kMaxSmall) freed.insert(live[i].p);
      pool.Free(live[i].p, live[i].n);
      live[i] = live.back();
      live.pop_back();
    }
  }
  for (const Live& l : live) {
    for (size_t j = 0; j < l.n; j++) REQUIRE(l.p[j] == l.fill);
    pool.Free(l.p, l.n);
  }
  CHECK(reused > 1000);  // freed small blocks come back
}

TEST(record_pool_ids_name_one_record_and_never_a_later_one) {
  RecordPool pool;
  LabelSet* const dummy = reinterpret_cast<LabelSet*>(uintptr_t{64});  // never dereferenced
  std::vector<uint32_t> slots;
  for (uint32_t i = 0; i < RecordPool::kChunk + 3; i++) {  // spans two chunks
    slots.push_back(pool.Allocate());
    pool.At(slots.back()).labels = dummy;
  }
  CHECK_EQ(pool.size(), static_cast<size_t>(RecordPool::kChunk + 3));
  const Record* first = &pool.At(slots[0]);
  const uint64_t id = pool.IdOf(slots[5]);
  CHECK(id != 0);
  CHECK(pool.Find(id) == &pool.At(slots[5]));
  pool.Free(slots[5]);
  CHECK(pool.Find(id) == nullptr);  // freed
  const uint32_t again = pool.Allocate();
  CHECK_EQ(again, slots[5]);  // the slot is reused...
  pool.At(again).labels = dummy;
  CHECK(pool.Find(id) == nullptr);  // ...under a new id
  CHECK(pool.IdOf(again) != id);
  CHECK(pool.Find(pool.IdOf(again)) == &pool.At(again));
  CHECK(&pool.At(slots[0]) == first);  // chunks never move
  CHECK(pool.Find(0) == nullptr);
  CHECK(pool.Find(uint64_t{1} << 32 | (RecordPool::kChunk + 3)) == nullptr);  // never issued
  // The generation wraps past its maximum to 1, never 0, and ids stay below 2^53.
  pool.At(again).generation = RecordPool::kMaxGeneration;
  CHECK(pool.IdOf(again) < (uint64_t{1} << 53));
  pool.Free(again);
  CHECK_EQ(pool.At(again).generation, 1u);
}

TEST(probe_table_matches_a_std_set) {
  // Random inserts and erases (erase is a backward shift: every later element of a run
  // must stay findable) against std::set, with a weak hash so runs are long; the table
  // grows and shrinks through it.
  struct Item { uint64_t key; };
  struct Weak {
    static uint64_t Hash(const Item* i) { return i->key % 61; }  // many collisions
  };
  ProbeTable<Item, Weak> t;
  std::map<uint64_t, std::unique_ptr<Item>> owned;
  std::mt19937_64 rng(7);
  auto find = [&](uint64_t k) { return t.Find(k % 61, [k](const Item* i) { return i->key == k; }); };
  size_t peakCapacity = 0;
  for (int step = 0; step < 60000; step++) {
    const uint64_t k = rng() % 3000;
    const bool grow = step < 30000 ? rng() % 3 != 0 : rng() % 10 == 0;  // fill, then drain
    auto it = owned.find(k);
    if (grow && it == owned.end()) {
      auto item = std::make_unique<Item>(Item{k});
      t.Insert(item.get());
      owned.emplace(k, std::move(item));
    } else if (!grow && it != owned.end()) {
      CHECK(t.Erase(it->second.get()));
      owned.erase(it);
    }
    peakCapacity = std::max(peakCapacity, t.capacity());
    if (step % 997 == 0) {
      CHECK_EQ(t.size(), owned.size());
      for (uint64_t q = 0; q < 3000; q++) {
        const Item* f = find(q);
        auto o = owned.find(q);
        CHECK(o == owned.end() ? f == nullptr : f == o->second.get());
      }
    }
  }
  CHECK(t.size() * 5 <= t.capacity() * 4);
  CHECK(t.capacity() < peakCapacity);  // shrank while draining
  for (auto& [k, item] : owned) CHECK(t.Erase(item.get()));
  CHECK_EQ(t.size(), 0u);
  Item stranger{1};
  CHECK(!t.Erase(&stranger));
}

TEST(label_sets_are_interned_and_freed_with_their_last_record) {
  // One label set, many instruments: one copy of the key; it goes with the last record.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t a = m.RegisterInstrument("a", MakeDesc("a", AggregationKind::Sum), nullptr);
  uint32_t b = m.RegisterInstrument("b", MakeDesc("b", AggregationKind::Sum), nullptr);
  const std::string k1 = Key("route", "/x"), k2 = Key("route", "/y");
  Acquired a1, b1, a2;
  REQUIRE(m.Acquire(arena, a, k1, 0, &a1));
  REQUIRE(m.Acquire(arena, b, k1, 0, &b1));
  REQUIRE(m.Acquire(arena, a, k2, 0, &a2));
  CHECK(a1.recordId != b1.recordId);
  CHECK_EQ(m.LabelSetCount(), 2u);
  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(b1.recordId, &inst, &key));
  CHECK_EQ(key, k1);
  CHECK_EQ(inst, b);
  for (uint64_t id : {a1.recordId, b1.recordId, a2.recordId}) CHECK(m.Release(id));
  const std::map<uint32_t, size_t> sizes = {{a, 1}, {b, 1}};
  Collected c1 = DoCollect(m, sizes, true);  // first sight: exported
  REQUIRE(c1.ok);
  CHECK(c1.reclaimed.empty());
  Acquired again;
  REQUIRE(m.Acquire(arena, b, k1, 0, &again));  // b's record of k1 is held again
  CHECK_EQ(again.recordId, b1.recordId);
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed.size(), 2u);  // a1 and a2
  CHECK_EQ(m.LabelSetCount(), 1u);    // k2 freed; k1 still used by b's record
  CHECK(m.Release(again.recordId));
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.reclaimed, std::vector<uint64_t>{b1.recordId});
  CHECK_EQ(m.LabelSetCount(), 0u);
  CHECK_EQ(m.RecordCount(), 0u);
}

// ReleaseDomain: a domain lives while any of its uses (providers, by thread) is left;
// the last use, or the exit of the last thread that used it, frees its instruments,
// records, cells and label sets, referenced or not, and its name.
TEST(record_map_release_domain_frees_removed_records) {
  // A series removed while a thread still references it lives in no instrument list; when
  // its domain is freed it must go too (its instrument goes), and a late Release of it is
  // an unknown id, not a use of freed memory.
  RecordMap m;
  uint32_t t1 = m.RegisterArena();
  const size_t records0 = m.RecordCount(), labels0 = m.LabelSetCount();
  uint32_t d = m.RegisterDomain("", t1);
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d);
  Acquired a;
  REQUIRE(m.Acquire(t1, c, Key("k", "1"), 0, &a));
  CHECK_EQ(m.Remove(c, Key("k", "1")), a.recordId);
  CHECK_EQ(m.RecordCount(), records0 + 1);  // still referenced by t1: kept, removed
  CHECK(m.ReleaseDomain(d, t1));
  CHECK_EQ(m.RecordCount(), records0);
  CHECK_EQ(m.LabelSetCount(), labels0);
  CHECK(!m.Release(a.recordId, t1));
  m.RetireArena(t1);
  CHECK_EQ(m.RecordCount(), records0);
}

TEST(record_map_release_domain) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  const size_t records0 = m.RecordCount(), instruments0 = m.InstrumentCount(), labels0 = m.LabelSetCount();
  uint32_t d = m.RegisterDomain("app", t1);
  CHECK_EQ(m.RegisterDomain("app", t1), d);  // a second provider of thread 1
  CHECK_EQ(m.RegisterDomain("app", t2), d);  // a worker's attached provider
  uint32_t keep = m.RegisterDomain("", t1);  // another provider's domain: untouched
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d);
  uint32_t h = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {1, 2}), nullptr, d);
  uint32_t k = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, keep);
  Acquired a, b, w, o;
  REQUIRE(m.Acquire(t1, c, Key("k", "1"), 0, &a));
  REQUIRE(m.Acquire(t1, h, Key("k", "1"), 0, &b));
  REQUIRE(m.Acquire(t2, c, Key("k", "1"), 0, &w));  // a second thread's cell of the same record
  REQUIRE(m.Acquire(t1, k, Key("k", "1"), 0, &o));
  CHECK_EQ(w.recordId, a.recordId);
  CHECK_EQ(m.RecordCount(), records0 + 3);
  CHECK(!m.ReleaseDomain(d, t1));
  CHECK(!m.ReleaseDomain(d, t1));
  CHECK(!m.ReleaseDomain(d, t1));  // thread 1 holds no use any more
  CHECK_EQ(m.RecordCount(), records0 + 3);  // the worker still uses the domain
  Descriptor desc;
  CHECK(m.GetDescriptor(c, &desc));
  // The worker's thread exits: its arena retires, the domain has no use left.
  m.RetireArena(t2);
  CHECK_EQ(m.RecordCount(), records0 + 1);
  CHECK_EQ(m.InstrumentCount(), instruments0 + 1);
  CHECK_EQ(m.LabelSetCount(), labels0 + 1);  // {k=1} of `keep`'s record
  CHECK(!m.GetDescriptor(c, &desc));
  CHECK(!m.GetDescriptor(h, &desc));
  Acquired x;
  CHECK(!m.Acquire(t1, c, Key("k", "2"), 0, &x));  // a freed instrument takes nothing
  CHECK(!m.ReleaseDomain(d, t1));                  // unknown now
  // The name makes a new domain; ids are never reused.
  uint32_t d2 = m.RegisterDomain("app", t1);
  CHECK(d2 != d);
  uint32_t c2 = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d2);
  CHECK(c2 != c);
  // The freed cells are reused by thread 1's next records.
  REQUIRE(m.Acquire(t1, c2, Key("k", "1"), 0, &x));
  CHECK(x.slab == a.slab && x.offset == a.offset);
  std::map<uint32_t, size_t> sizes = {{k, 1}, {c2, 1}};
  Collected all = DoCollect(m, sizes, false, 0, 0);
  REQUIRE(all.ok);
  CHECK_EQ(all.rows.size(), 2u);
  CHECK(m.ReleaseDomain(d2, t1));
  CHECK(m.ReleaseDomain(keep, t1));
  CHECK_EQ(m.RecordCount(), records0);
  CHECK_EQ(m.InstrumentCount(), instruments0);
  CHECK_EQ(m.LabelSetCount(), labels0);
}

TEST(record_map_domains) {
  RecordMap m;
  uint32_t anon1 = m.RegisterDomain(""), anon2 = m.RegisterDomain("");
  uint32_t shared = m.RegisterDomain("shared"), shared2 = m.RegisterDomain("shared");
  uint32_t other = m.RegisterDomain("other");
  CHECK(anon1 != 0 && anon2 != 0 && shared != 0 && other != 0);
  CHECK(anon1 != anon2);  // an empty name always makes a new domain
  CHECK_EQ(shared, shared2);
  CHECK(shared != anon1 && shared != anon2 && shared != other && other != anon1 && other != anon2);
  // The same identity in two domains is two instruments.
  bool existed = true;
  uint32_t i1 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon1);
  CHECK(!existed);
  uint32_t i2 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon2);
  CHECK(!existed);
  CHECK(i1 != i2);
  CHECK_EQ(m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon1), i1);
  CHECK(existed);
  uint32_t i3 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed);
  CHECK(!existed);  // domain 0 is a domain of its own for registration
  CHECK(i3 != i1 && i3 != i2);
  // (domain, identity) pairs whose text concatenates alike stay distinct: domain dA with
  // identity "<d>x" vs domain dB = dA * 10 + d with identity "x".
  uint32_t dA = m.RegisterDomain(""), dB = 0;
  for (int i = 0; i < 1000 && dB < 10 * dA + 1; i++) dB = m.RegisterDomain("");
  REQUIRE(dB >= 10 * dA + 1);
  const std::string dAs = std::to_string(dA), dBs = std::to_string(dB);
  REQUIRE(dBs.compare(0, dAs.size(), dAs) == 0);
  const std::string digit = dBs.substr(dAs.size());
  uint32_t x1 = m.RegisterInstrument(digit + "x", MakeDesc("x", AggregationKind::Sum), &existed, dA);
  CHECK(!existed);
  uint32_t x2 = m.RegisterInstrument("x", MakeDesc("x", AggregationKind::Sum), &existed, dB);
  CHECK(!existed);
  CHECK(x1 != x2);
  uint32_t x3 = m.RegisterInstrument(digit + std::string("\0", 1) + "x", MakeDesc("x", AggregationKind::Sum), &existed, dA);
  CHECK(!existed);
  CHECK(x3 != x1 && x3 != x2);

  // Collect(domain) covers only that domain's instruments; domain 0 covers all.
  uint32_t arena = m.RegisterArena();
  Acquired a1, a2;
  REQUIRE(m.Acquire(arena, i1, Key("k", "v"), 0, &a1));
  REQUIRE(m.Acquire(arena, i2, Key("k", "v"), 0, &a2));
  CHECK(a1.recordId != a2.recordId);
  double* c1 = CellPtr(m, arena, a1, 1);
  double* c2 = CellPtr(m, arena, a2, 1);
  REQUIRE(c1 && c2);
  *c1 += 1;
  *c2 += 2;
  std::map<uint32_t, size_t> sizes;
  for (uint32_t id : {i1, i2, i3, x1, x2, x3}) sizes[id] = 1;
  Collected d1 = DoCollect(m, sizes, false, 0, anon1);
  REQUIRE(d1.ok);
  REQUIRE(d1.rows.size() == 1);
  CHECK_EQ(d1.rows[0].id, a1.recordId);
  CHECK_EQ(d1.rows[0].state, (std::vector<double>{1}));
  CHECK(d1.rows[0].updated);
  // Collecting one domain does not consume another domain's updates.
  *c1 += 1;
  Collected d2 = DoCollect(m, sizes, false, 0, anon2);
  REQUIRE(d2.ok);
  REQUIRE(d2.rows.size() == 1);
  CHECK_EQ(d2.rows[0].id, a2.recordId);
  CHECK(d2.rows[0].updated);
  CHECK(d2.epoch > d1.epoch);
  Collected none = DoCollect(m, sizes, true, 0, other);
  REQUIRE(none.ok);
  CHECK(none.rows.empty());
  Collected all = DoCollect(m, sizes, false, 0, 0);
  REQUIRE(all.ok);
  CHECK_EQ(all.rows.size(), 2u);
  REQUIRE(all.Find(a1.recordId));
  CHECK(all.Find(a1.recordId)->updated);
  CHECK_EQ(all.Find(a1.recordId)->state, (std::vector<double>{2}));
  CHECK(!all.Find(a2.recordId)->updated);
  // Reclaiming one domain leaves the others' records alone.
  CHECK(m.Release(a1.recordId));
  CHECK(m.Release(a2.recordId));
  Collected r2 = DoCollect(m, sizes, true, 0, anon2);
  REQUIRE(r2.ok);
  CHECK_EQ(r2.reclaimed, std::vector<uint64_t>{a2.recordId});
  CHECK_EQ(m.RecordCount(), 1u);
  uint32_t inst;
  std::string key;
  CHECK(m.RecordInfo(a1.recordId, &inst, &key));
  Collected r1 = DoCollect(m, sizes, true, 0, anon1);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed, std::vector<uint64_t>{a1.recordId});
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(record_map_reclaim_before) {
  // A released, idle record is reclaimed only once its last update was first seen before
  // epoch reclaimBefore (every reader has exported it, then seen it idle).
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "b"), 0, &b));
  double* ca = CellPtr(m, arena, a, 1);
  double* cb = CellPtr(m, arena, b, 1);
  REQUIRE(ca && cb);
  *ca += 1;
  *cb += 1;
  Collected c1 = DoCollect(m, sizes, false);  // epoch 1 sees both updates
  REQUIRE(c1.ok);
  REQUIRE(c1.epoch == 1);
  *cb += 1;
  Collected c2 = DoCollect(m, sizes, false);  // epoch 2 sees b's second update
  REQUIRE(c2.ok);
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(b.recordId));
  CollectOptions opts;
  opts.reclaim = true;
  opts.reclaimBefore = 0;  // no reader has collected yet: nothing that was updated goes
  Collected c3 = DoCollect(m, sizes, opts);
  REQUIRE(c3.ok);
  CHECK(c3.reclaimed.empty());
  CHECK_EQ(c3.rows.size(), 2u);
  for (const Row& r : c3.rows) CHECK(!r.updated);
  opts.reclaimBefore = 1;  // seen at 1 is not before 1: both stay
  Collected c4a = DoCollect(m, sizes, opts);
  REQUIRE(c4a.ok);
  CHECK(c4a.reclaimed.empty());
  opts.reclaimBefore = 2;  // a (last update seen at 1) goes; b (seen at 2) stays
  Collected c4 = DoCollect(m, sizes, opts);
  REQUIRE(c4.ok);
  CHECK_EQ(c4.reclaimed, std::vector<uint64_t>{a.recordId});
  REQUIRE(c4.rows.size() == 1);
  CHECK_EQ(c4.rows[0].id, b.recordId);
  opts.reclaimBefore = 3;
  Collected c5 = DoCollect(m, sizes, opts);
  REQUIRE(c5.ok);
  CHECK_EQ(c5.reclaimed, std::vector<uint64_t>{b.recordId});
  CHECK_EQ(m.RecordCount(), 0u);
  // A record never written is a series too (add(0)): the first pass that sees it exports
  // it as updated, whatever reclaimBefore says; then it goes like any other.
  Acquired z;
  REQUIRE(m.Acquire(arena, sum, Key("k", "z"), 0, &z));
  CHECK(m.Release(z.recordId));
  opts.reclaimBefore = UINT64_MAX;
  Collected c6 = DoCollect(m, sizes, opts);
  REQUIRE(c6.ok);
  CHECK(c6.reclaimed.empty());
  REQUIRE(c6.Find(z.recordId));
  CHECK(c6.Find(z.recordId)->updated);
  opts.reclaimBefore = c6.epoch;  // seen at c6.epoch: not before it
  Collected c7 = DoCollect(m, sizes, opts);
  REQUIRE(c7.ok);
  CHECK(c7.reclaimed.empty());
  opts.reclaimBefore = c6.epoch + 1;
  Collected c8 = DoCollect(m, sizes, opts);
  REQUIRE(c8.ok);
  CHECK_EQ(c8.reclaimed, std::vector<uint64_t>{z.recordId});
}

TEST(record_map_never_reclaims_non_monotonic_sums) {
  // An up-down counter's value is a level: however long it is idle and whatever
  // reclaimBefore says, its record (and value) stays; a counter's goes.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  Descriptor ud = MakeDesc("ud", AggregationKind::Sum);
  ud.kind = InstrumentKind::UpDownCounter;
  Descriptor oud = MakeDesc("oud", AggregationKind::PrecomputedSum);
  oud.kind = InstrumentKind::ObservableUpDownCounter;
  uint32_t u = m.RegisterInstrument("ud", ud, nullptr);
  uint32_t o = m.RegisterInstrument("oud", oud, nullptr);
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{u, 1}, {o, 2}, {c, 1}};
  Acquired a, b, d;
  REQUIRE(m.Acquire(arena, u, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, o, Key("k", "a"), 0, &b));
  REQUIRE(m.Acquire(arena, c, Key("k", "a"), 0, &d));
  *CellPtr(m, arena, a, 1) += 5;
  *CellPtr(m, arena, b, 2) = 7;
  *CellPtr(m, arena, d, 1) += 1;
  REQUIRE(m.Release(a.recordId));
  REQUIRE(m.Release(b.recordId));
  REQUIRE(m.Release(d.recordId));
  REQUIRE(DoCollect(m, sizes, false).ok);
  CollectOptions opts;
  opts.reclaim = true;
  opts.reclaimBefore = UINT64_MAX;
  Collected c2 = DoCollect(m, sizes, opts);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed, std::vector<uint64_t>{d.recordId});
  Collected c3 = DoCollect(m, sizes, opts);
  REQUIRE(c3.ok);
  CHECK(c3.reclaimed.empty());
  REQUIRE(c3.Find(a.recordId));
  CHECK_EQ(c3.Find(a.recordId)->state[0], 5.0);
  REQUIRE(c3.Find(b.recordId));
  CHECK_EQ(c3.Find(b.recordId)->state[0], 7.0);
}

TEST(record_map_remove) {
  // Remove unlinks a series: later passes do not show it, the next Acquire of its label
  // set makes a new record (new id, new start time, from zero), and the removed record is
  // freed once its last reference goes; threads caching it find it in their stale queue.
  RecordMap m;
  uint32_t t1 = m.RegisterArena();
  uint32_t t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a1, a2, b;
  REQUIRE(m.Acquire(t1, sum, Key("k", "a"), 1, &a1));
  REQUIRE(m.Acquire(t2, sum, Key("k", "a"), 1, &a2));
  REQUIRE(m.Acquire(t1, sum, Key("k", "b"), 1, &b));
  REQUIRE(a1.recordId == a2.recordId);
  *CellPtr(m, t1, a1, 1) += 2;
  *CellPtr(m, t2, a2, 1) += 3;
  REQUIRE(m.Release(b.recordId));
  CHECK_EQ(m.Remove(sum, Key("k", "nope")), 0u);
  CHECK_EQ(m.Remove(sum + 1, Key("k", "a")), 0u);
  CHECK_EQ(m.Remove(sum, Key("k", "a")), a1.recordId);
  CHECK_EQ(m.Remove(sum, Key("k", "a")), 0u);  // gone already
  CHECK_EQ(m.RecordCount(), 2u);               // referenced by both threads: kept
  Collected c1 = DoCollect(m, sizes, false);
  REQUIRE(c1.ok);
  CHECK_EQ(c1.rows.size(), 1u);
  CHECK(c1.Find(a1.recordId) == nullptr);
  std::vector<uint64_t> ids;
  m.DrainStale(t2, &ids);
  CHECK_EQ(ids, std::vector<uint64_t>{a1.recordId});
  // The same label set again: a new record, from zero, with its own start time.
  Acquired n1;
  REQUIRE(m.Acquire(t1, sum, Key("k", "a"), 9, &n1));
  CHECK(n1.recordId != a1.recordId);
  *CellPtr(m, t1, n1, 1) += 1;
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  REQUIRE(c2.Find(n1.recordId));
  CHECK_EQ(c2.Find(n1.recordId)->state[0], 1.0);
  CHECK_EQ(c2.Find(n1.recordId)->startTimeMs, 9.0);
  // The removed record goes with its last reference (t2's by release, t1's by retiring).
  CHECK(m.Release(a2.recordId, t2));
  CHECK_EQ(m.RecordCount(), 3u);
  m.RetireArena(t1);
  CHECK_EQ(m.RecordCount(), 2u);  // n1 (folded into retired state) and b
  CHECK(!m.Release(a1.recordId));
  // RemoveAll: every series of the instrument; unreferenced ones are freed at once.
  std::vector<uint64_t> all;
  m.RemoveAll(sum, &all);
  CHECK_EQ(all.size(), 2u);
  CHECK_EQ(m.RecordCount(), 0u);
  Collected c3 = DoCollect(m, sizes, false);
  REQUIRE(c3.ok);
  CHECK(c3.rows.empty());
}

TEST(record_map_cardinality_limit) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t other = m.RegisterInstrument("o", MakeDesc("o", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {other, 1}};
  CHECK_EQ(DecodeLabelKey(OverflowLabelKey()), (std::vector<std::string>{"otel.metric.overflow", "btrue"}));
  constexpr uint32_t kLimit = 4;  // 3 label sets + the overflow series
  std::vector<Acquired> own(3);
  for (int i = 0; i < 3; i++) {
    REQUIRE(m.Acquire(t1, sum, Key("l", std::to_string(i)), 0, &own[i], kLimit));
    CHECK(!own[i].overflow);
  }
  Acquired o1, o2, o3, again, o4;
  REQUIRE(m.Acquire(t1, sum, Key("l", "3"), 0, &o1, kLimit));
  CHECK(o1.overflow);
  CHECK(o1.newCell);
  REQUIRE(m.Acquire(t1, sum, Key("l", "4"), 0, &o2, kLimit));
  CHECK(o2.overflow);
  CHECK(!o2.newCell);
  CHECK_EQ(o2.recordId, o1.recordId);
  CHECK_EQ(o2.offset, o1.offset);
  for (const Acquired& a : own) CHECK(a.recordId != o1.recordId);
  // Known label sets keep their own records.
  REQUIRE(m.Acquire(t1, sum, Key("l", "1"), 0, &again, kLimit));
  CHECK(!again.overflow);
  CHECK_EQ(again.recordId, own[1].recordId);
  // Another thread overflows into the same record, with its own cell.
  REQUIRE(m.Acquire(t2, sum, Key("l", "9"), 0, &o3, kLimit));
  CHECK(o3.overflow);
  CHECK_EQ(o3.recordId, o1.recordId);
  CHECK(o3.newCell);
  // The overflow series itself.
  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(o1.recordId, &inst, &key));
  CHECK_EQ(inst, sum);
  CHECK_EQ(key, OverflowLabelKey());
  REQUIRE(m.Acquire(t1, sum, OverflowLabelKey(), 0, &o4, kLimit));
  CHECK_EQ(o4.recordId, o1.recordId);
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(kLimit));
  // The limit is per instrument; 0 means none.
  for (int i = 0; i < 10; i++) {
    Acquired x;
    REQUIRE(m.Acquire(t1, other, Key("l", std::to_string(i)), 0, &x, 0));
    CHECK(!x.overflow);
  }
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(kLimit) + 10);
  // Measurements past the limit add up in the overflow series.
  double* c1 = CellPtr(m, t1, o1, 1);
  double* c3 = CellPtr(m, t2, o3, 1);
  REQUIRE(c1 && c3);
  *c1 += 2;
  *c3 += 5;
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.Find(o1.recordId));
  CHECK_EQ(c.Find(o1.recordId)->state, (std::vector<double>{7}));
  size_t sumRows = 0;
  for (const Row& r : c.rows) sumRows += r.instrument == sum;
  CHECK_EQ(sumRows, static_cast<size_t>(kLimit));
  // Reclaiming a label set's record makes room for a new label set.
  CHECK(m.Release(own[0].recordId));
  Collected r1 = DoCollect(m, sizes, true);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed, std::vector<uint64_t>{own[0].recordId});
  Acquired fresh, full;
  REQUIRE(m.Acquire(t1, sum, Key("l", "new"), 0, &fresh, kLimit));
  CHECK(!fresh.overflow);
  CHECK(fresh.recordId != o1.recordId);
  REQUIRE(m.Acquire(t1, sum, Key("l", "0"), 0, &full, kLimit));  // full again
  CHECK(full.overflow);
  CHECK_EQ(full.recordId, o1.recordId);
  // A limit of 1 leaves room for the overflow series only.
  uint32_t one = m.RegisterInstrument("one", MakeDesc("one", AggregationKind::Sum), nullptr);
  Acquired p, q;
  REQUIRE(m.Acquire(t1, one, Key("l", "a"), 0, &p, 1));
  REQUIRE(m.Acquire(t1, one, Key("l", "b"), 0, &q, 1));
  CHECK(p.overflow && q.overflow);
  CHECK_EQ(p.recordId, q.recordId);
}

TEST(record_map_acquire_identity) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t arena2 = m.RegisterArena();
  CHECK(arena != 0 && arena2 != 0 && arena != arena2);
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t sum2 = m.RegisterInstrument("s2", MakeDesc("s2", AggregationKind::Sum), nullptr);
  const std::string k1 = Key("route", "/a"), k2 = Key("route", "/b");

  Acquired a1, a1b, a2, a3, a4;
  REQUIRE(m.Acquire(arena, sum, k1, 100, &a1));
  CHECK(a1.recordId != 0);
  CHECK(a1.newCell);
  REQUIRE(m.Acquire(arena, sum, k1, 200, &a1b));
  CHECK_EQ(a1b.recordId, a1.recordId);
  CHECK(!a1b.newCell);
  CHECK_EQ(a1b.slab, a1.slab);
  CHECK_EQ(a1b.offset, a1.offset);
  REQUIRE(m.Acquire(arena, sum, k2, 300, &a2));
  CHECK(a2.recordId != a1.recordId);
  CHECK(a2.newCell);
  CHECK(!(a2.slab == a1.slab && a2.offset == a1.offset));
  // Same labels on another instrument: another record.
  REQUIRE(m.Acquire(arena, sum2, k1, 300, &a3));
  CHECK(a3.recordId != a1.recordId && a3.recordId != a2.recordId);
  // Same record from another thread's arena: same record, its own cell.
  REQUIRE(m.Acquire(arena2, sum, k1, 400, &a4));
  CHECK_EQ(a4.recordId, a1.recordId);
  CHECK(a4.newCell);
  CHECK_EQ(m.RecordCount(), 3u);

  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(a2.recordId, &inst, &key));
  CHECK_EQ(inst, sum);
  CHECK_EQ(key, k2);
  CHECK(!m.RecordInfo(0, &inst, &key));
  CHECK(!m.RecordInfo(9999, &inst, &key));

  // New cells start at the identity state, whatever the slab held.
  double* c1 = CellPtr(m, arena, a1, 1);
  double* c4 = CellPtr(m, arena2, a4, 1);
  REQUIRE(c1 && c4);
  CHECK(c1 != c4);
  CHECK_EQ(*c1, 0.0);
  CHECK_EQ(*c4, 0.0);
  // The record's start time is its creation time.
  Collected c = DoCollect(m, {{sum, 1}, {sum2, 1}}, false);
  REQUIRE(c.ok);
  const Row* r1 = c.Find(a1.recordId);
  REQUIRE(r1);
  CHECK_EQ(r1->startTimeMs, 100.0);
}

TEST(record_map_refcounts) {
  RecordMap m;
  uint32_t arena = m.RegisterArena(), arena2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(arena2, sum, Key("k", "v"), 0, &a));
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(a.recordId));
  CHECK(!m.Release(a.recordId));  // refcount 0
  CHECK(!m.Release(a.recordId));
  CHECK(!m.Release(0));
  CHECK(!m.Release(a.recordId + 1000));  // unknown
  // Reacquire after reaching 0 (no collection in between): the same record.
  Acquired b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &b));
  CHECK_EQ(b.recordId, a.recordId);
  CHECK(!b.newCell);
  CHECK(m.Release(b.recordId));
  CHECK(!m.Release(b.recordId));
}

TEST(record_map_refcounts_per_arena) {
  // Each thread (arena) releases only the references it holds; retiring an arena drops
  // the references it still held (its handles and caches died with the thread).
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena(), t3 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(t1, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(t1, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(t2, sum, Key("k", "v"), 0, &b));
  REQUIRE(a.recordId == b.recordId);
  CHECK(!m.Release(a.recordId, t3));  // t3 holds none
  CHECK(m.Release(a.recordId, t2));
  CHECK(!m.Release(a.recordId, t2));  // t2's only reference is gone
  CHECK(m.Release(a.recordId, t1));
  // t1 still holds one: not reclaimable, whatever the collections say.
  double* c = CellPtr(m, t1, a, 1);
  REQUIRE(c);
  *c += 3;
  for (int i = 0; i < 3; i++) REQUIRE(DoCollect(m, sizes, true).ok);
  CHECK_EQ(m.RecordCount(), 1u);
  // t1 exits holding it: its reference goes, the total stays, then it is reclaimable.
  m.RetireArena(t1);
  CHECK(!m.Release(a.recordId, t1));
  CHECK(!m.Release(a.recordId));
  Collected c1 = DoCollect(m, sizes, true);
  REQUIRE(c1.ok);
  CHECK(c1.WasReclaimed(a.recordId));  // not updated since the collections above
  CHECK_EQ(m.RecordCount(), 0u);
  m.RetireArena(t2);
  m.RetireArena(t3);
}

TEST(record_map_stale_queue) {
  // A reclaiming collection queues idle, referenced records into the stale queue of every
  // arena holding references; DrainStale hands them to that thread once.
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t mm = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {mm, 4}};
  Acquired x1, x2, y1, z2, w1;
  REQUIRE(m.Acquire(t1, sum, Key("k", "x"), 0, &x1));  // shared by t1 and t2
  REQUIRE(m.Acquire(t2, sum, Key("k", "x"), 0, &x2));
  REQUIRE(m.Acquire(t1, sum, Key("k", "y"), 0, &y1));  // t1 only
  REQUIRE(m.Acquire(t2, mm, Key("k", "z"), 0, &z2));   // t2 only
  REQUIRE(m.Acquire(t1, mm, Key("k", "w"), 0, &w1));   // t1 only, released below
  CHECK(!x1.stalePending && !z2.stalePending);
  double* cx1 = CellPtr(m, t1, x1, 1);
  double* cy1 = CellPtr(m, t1, y1, 1);
  double* cz2 = CellPtr(m, t2, z2, 4);
  REQUIRE(cx1 && cy1 && cz2);
  *cx1 += 1;
  *cy1 += 1;
  Update(AggregationKind::MinMaxSumCount, cz2, {}, 5);
  std::vector<uint64_t> ids;
  m.DrainStale(t1, &ids);
  CHECK(ids.empty());

  // Everything is new in this pass: updated (x, y, z) or referenced only... w was never
  // written, so it is idle: queued for t1. A non-reclaiming pass queues nothing.
  REQUIRE(DoCollect(m, sizes, false).ok);
  m.DrainStale(t1, &ids);
  CHECK(ids.empty());
  REQUIRE(DoCollect(m, sizes, true).ok);  // nothing changed since the previous pass
  Acquired probe;
  REQUIRE(m.Acquire(t1, sum, Key("k", "probe"), 0, &probe));  // t1 learns it has work
  CHECK(probe.stalePending);
  CHECK(m.Release(probe.recordId, t1));
  // t2 writes x after the queueing: x stays cached in t2, but t1 (idle on x) lets go.
  double* cx2 = CellPtr(m, t2, x2, 1);
  REQUIRE(cx2);
  *cx2 += 1;
  m.DrainStale(t1, &ids);
  std::sort(ids.begin(), ids.end());
  std::vector<uint64_t> want1 = {x1.recordId, y1.recordId, w1.recordId};
  std::sort(want1.begin(), want1.end());
  CHECK(ids == want1);
  ids.clear();
  m.DrainStale(t2, &ids);  // t2 wrote x since: only z
  CHECK(ids == std::vector<uint64_t>{z2.recordId});
  ids.clear();
  m.DrainStale(t1, &ids);  // once
  CHECK(ids.empty());

  // t1 releases what it drained (its caches let go); y and w become reclaimable.
  CHECK(m.Release(x1.recordId, t1));
  CHECK(m.Release(y1.recordId, t1));
  CHECK(m.Release(w1.recordId, t1));
  Collected c = DoCollect(m, sizes, true);
  REQUIRE(c.ok);
  CHECK(c.WasReclaimed(y1.recordId));
  CHECK(c.WasReclaimed(w1.recordId));
  CHECK(!c.WasReclaimed(x1.recordId));  // t2 updated it and still holds it
  CHECK(!c.WasReclaimed(z2.recordId));  // t2 holds it
  // Still idle in t2 after its drain: queued again by a later pass; then z is written
  // by t2 before its drain, so the drain leaves it out.
  REQUIRE(DoCollect(m, sizes, true).ok);
  Update(AggregationKind::MinMaxSumCount, cz2, {}, 6);
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(ids == std::vector<uint64_t>{x2.recordId});
  // A queued record that is reclaimed before the drain is left out of it.
  REQUIRE(DoCollect(m, sizes, true).ok);  // z updated: not queued; x idle: queued for t2
  CHECK(m.Release(x2.recordId, t2));
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK(c2.WasReclaimed(x2.recordId));
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(std::find(ids.begin(), ids.end(), x2.recordId) == ids.end());
  // A retired arena's queue goes with it.
  m.RetireArena(t2);
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(ids.empty());
  m.RetireArena(t1);
}

TEST(record_map_acquire_failures) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t drop = m.RegisterInstrument("d", MakeDesc("d", AggregationKind::Drop), nullptr);
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  CHECK(!m.Acquire(arena, drop, Key("k", "v"), 0, &a));    // disabled instrument
  CHECK(!m.Acquire(arena, 0, Key("k", "v"), 0, &a));       // unknown instrument
  CHECK(!m.Acquire(arena, 99, Key("k", "v"), 0, &a));
  CHECK(!m.Acquire(0, sum, Key("k", "v"), 0, &a));         // unknown arena
  CHECK(!m.Acquire(arena + 100, sum, Key("k", "v"), 0, &a));
  CHECK_EQ(m.RecordCount(), 0u);
  // A retired arena is unknown from then on.
  uint32_t gone = m.RegisterArena();
  m.RetireArena(gone);
  CHECK(!m.Acquire(gone, sum, Key("k", "v"), 0, &a));
  double* data = nullptr;
  size_t doubles = 0;
  CHECK(!m.SlabMemory(gone, 0, &data, &doubles));
  m.RetireArena(gone);    // twice: a no-op
  m.RetireArena(12345);   // unknown: a no-op
  CHECK_EQ(m.RecordCount(), 0u);
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  CHECK_EQ(m.RecordCount(), 1u);
  CHECK(m.SlabMemory(arena, a.slab, &data, &doubles));
  CHECK(!m.SlabMemory(arena, a.slab + 1, &data, &doubles));  // no such slab
  Collected c = DoCollect(m, {{drop, 0}, {sum, 1}}, false);
  REQUIRE(c.ok);
  CHECK_EQ(c.rows.size(), 1u);
}

TEST(record_map_collect_layout_and_cell_writes) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::vector<double> bounds = {1, 2, 5};
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  uint32_t mmsc = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const size_t hn = CellSize(AggregationKind::Histogram, bounds.size());
  REQUIRE(hn == 7);

  Acquired as, ah, am, al;
  REQUIRE(m.Acquire(arena, sum, Key("a", "1"), 1000, &as));
  REQUIRE(m.Acquire(arena, hist, Key("a", "1"), 1001, &ah));
  REQUIRE(m.Acquire(arena, mmsc, Key("a", "1"), 1002, &am));
  REQUIRE(m.Acquire(arena, lv, Key("a", "1"), 1003, &al));
  double* cs = CellPtr(m, arena, as, 1);
  double* ch = CellPtr(m, arena, ah, hn);
  double* cm = CellPtr(m, arena, am, 4);
  double* cl = CellPtr(m, arena, al, 2);
  REQUIRE(cs && ch && cm && cl);
  // The cell reached through SlabMemory + offset is the identity state.
  CHECK_EQ(std::vector<double>(ch, ch + hn), Identity(AggregationKind::Histogram, hn));
  CHECK_EQ(std::vector<double>(cm, cm + 4), Identity(AggregationKind::MinMaxSumCount, 4));

  // Write the cells as JS does.
  for (double v : {3.0, 4.5, -1.0}) Update(AggregationKind::Sum, cs, {}, v);
  for (double v : {0.5, 1.0, 2.0, 2.0, 7.0, -3.0}) Update(AggregationKind::Histogram, ch, bounds, v);
  for (double v : {4.0, -2.0, 10.0}) Update(AggregationKind::MinMaxSumCount, cm, {}, v);
  for (double v : {8.0, 9.0}) Update(AggregationKind::LastValue, cl, {}, v);
  const double lastStamp = LastStamp();

  std::vector<double> out = {-7, -7};  // Collect appends
  CollectOptions opts;
  opts.nowMs = 5000;
  m.Collect(opts, &out);
  CHECK_EQ(out[0], -7.0);
  CHECK_EQ(out[1], -7.0);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, hn}, {mmsc, 4}, {lv, 2}};
  Collected c = Parse(out, 2, sizes);
  REQUIRE(c.ok);
  CHECK_EQ(out.size(), 2u + 3u + (4 + 1) + (4 + hn) + (4 + 4) + (4 + 2));
  CHECK_EQ(c.epoch, 1u);
  REQUIRE(c.rows.size() == 4);
  CHECK(c.reclaimed.empty());
  const Row* rs = c.Find(as.recordId);
  const Row* rh = c.Find(ah.recordId);
  const Row* rm = c.Find(am.recordId);
  const Row* rl = c.Find(al.recordId);
  REQUIRE(rs && rh && rm && rl);
  CHECK_EQ(rs->instrument, sum);
  CHECK_EQ(rh->instrument, hist);
  CHECK_EQ(rm->instrument, mmsc);
  CHECK_EQ(rl->instrument, lv);
  for (const Row& r : c.rows) CHECK(r.updated);
  CHECK_EQ(rs->startTimeMs, 1000.0);
  CHECK_EQ(rh->startTimeMs, 1001.0);
  CHECK_EQ(rm->startTimeMs, 1002.0);
  CHECK_EQ(rl->startTimeMs, 1003.0);
  CHECK_EQ(rs->state, (std::vector<double>{6.5}));
  // [sum, min, max, (-inf,1], (1,2], (2,5], (5,+inf)]
  CHECK_EQ(rh->state, (std::vector<double>{9.5, -3, 7, 3, 2, 0, 1}));
  CHECK_EQ(rm->state, (std::vector<double>{3, 12, -2, 10}));
  CHECK_EQ(rl->state, (std::vector<double>{9, lastStamp}));

  // The epoch counts collections.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.epoch, 2u);
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.epoch, 3u);
}

// Two readers collecting one domain: each must see every update once, whichever
// reader's pass saw it first. Collect reports the epoch of the pass that first saw a
// record's last update; CollectPass's `fresh` compares it with the reader's previous pass.
TEST(record_map_last_update_epoch_per_reader) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "b"), 0, &b));
  double* ca = CellPtr(m, arena, a, 1);
  REQUIRE(ca);
  Collected c1 = DoCollect(m, sizes, false);  // reader X's first pass
  REQUIRE(c1.ok);
  CHECK_EQ(c1.Find(a.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c1.epoch));
  Update(AggregationKind::Sum, ca, {}, 2);
  Collected c2 = DoCollect(m, sizes, false);  // reader Y's pass sees the write first
  REQUIRE(c2.ok);
  CHECK(c2.Find(a.recordId)->updated);
  CHECK(!c2.Find(b.recordId)->updated);
  CHECK_EQ(c2.Find(a.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c2.epoch));
  CHECK_EQ(c2.Find(b.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c1.epoch));
  // Reader X's next pass: not updated in it, but since X's previous pass (c1).
  std::map<uint64_t, std::pair<bool, bool>> seen;  // id -> (updated, fresh)
  CollectOptions opts;
  opts.readerEpoch = c1.epoch;
  std::vector<uint64_t> reclaimed;
  const uint64_t e3 = m.CollectPass(
      opts, [&](const CheckpointView& v) { seen[v.id] = {v.updated, v.fresh}; }, &reclaimed);
  CHECK(e3 > c2.epoch);
  CHECK(!seen[a.recordId].first);
  CHECK(seen[a.recordId].second);   // changed since reader X's previous pass
  CHECK(!seen[b.recordId].second);  // unchanged since it
  // Without a reader epoch, fresh is updated.
  seen.clear();
  Update(AggregationKind::Sum, ca, {}, 1);
  m.CollectPass(CollectOptions{}, [&](const CheckpointView& v) { seen[v.id] = {v.updated, v.fresh}; }, &reclaimed);
  CHECK(seen[a.recordId].first && seen[a.recordId].second);
  CHECK(!seen[b.recordId].first && !seen[b.recordId].second);
  CHECK(reclaimed.empty());
}

TEST(record_map_updated_flag) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {10}), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 5}, {lv, 2}};
  Acquired as, ah, al, aidle;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &as));
  REQUIRE(m.Acquire(arena, hist, Key("k", "v"), 0, &ah));
  REQUIRE(m.Acquire(arena, lv, Key("k", "v"), 0, &al));
  REQUIRE(m.Acquire(arena, sum, Key("k", "idle"), 0, &aidle));
  double* cs = CellPtr(m, arena, as, 1);
  double* ch = CellPtr(m, arena, ah, 5);
  double* cl = CellPtr(m, arena, al, 2);
  REQUIRE(cs && ch && cl);
  auto updated = [&](const Collected& c, uint64_t id) {
    const Row* r = c.Find(id);
    if (!r) {
      Fail(__FILE__, __LINE__, "record missing from Collect");
      return false;
    }
    return r->updated;
  };

  Update(AggregationKind::Sum, cs, {}, 2);
  Update(AggregationKind::Histogram, ch, {10}, 3);
  Update(AggregationKind::LastValue, cl, {}, 4);
  Collected c1 = DoCollect(m, sizes, false);
  REQUIRE(c1.ok);
  CHECK(updated(c1, as.recordId));
  CHECK(updated(c1, ah.recordId));
  CHECK(updated(c1, al.recordId));
  CHECK(updated(c1, aidle.recordId));  // acquired, never written: new, so exported once
  // Nothing written since: not updated, and the same state.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK(!updated(c2, as.recordId));
  CHECK(!updated(c2, ah.recordId));
  CHECK(!updated(c2, al.recordId));
  CHECK_EQ(c2.Find(as.recordId)->state, c1.Find(as.recordId)->state);
  CHECK_EQ(c2.Find(ah.recordId)->state, c1.Find(ah.recordId)->state);
  // Only the histogram changes.
  Update(AggregationKind::Histogram, ch, {10}, 30);
  Collected c3 = DoCollect(m, sizes, false);
  REQUIRE(c3.ok);
  CHECK(!updated(c3, as.recordId));
  CHECK(updated(c3, ah.recordId));
  CHECK(!updated(c3, al.recordId));
  // A gauge recording the same value again was updated.
  Update(AggregationKind::LastValue, cl, {}, 4);
  const double gaugeStamp = LastStamp();
  Update(AggregationKind::Sum, cs, {}, 0.25);
  Collected c4 = DoCollect(m, sizes, false);
  REQUIRE(c4.ok);
  CHECK(updated(c4, al.recordId));
  CHECK(updated(c4, as.recordId));
  CHECK(!updated(c4, ah.recordId));
  CHECK_EQ(c4.Find(as.recordId)->state, (std::vector<double>{2.25}));
  CHECK_EQ(c4.Find(al.recordId)->state, (std::vector<double>{4, gaugeStamp}));
  // The flag compares with the previous collection, not with the one before it.
  Collected c5 = DoCollect(m, sizes, false);
  REQUIRE(c5.ok);
  for (const Row& r : c5.rows) CHECK(!r.updated);
}

TEST(record_map_stale_drain_between_lookups) {
  // A worker thread caches one label set's sum while another thread's bound handle keeps
  // that sum updated: the label set's min/max goes stale alone and is released, then the
  // bound thread exits and the sum goes stale too. The worker's next measurement on the
  // label set hits the cached sum, writes it, and only then misses on the min/max, which
  // drains the stale queue. The sum, written since it was queued, stays cached and its
  // write is exported. (Written after that drain instead, it would go through a released
  // reference into a record the next pass reclaims: not a legal write.)
  RecordMap m;
  const uint32_t x = m.RegisterArena(), y = m.RegisterArena();
  const uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const uint32_t mm = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {mm, 4}};
  const std::string label = Key("k", "L");
  Acquired xs, xm, yb;
  REQUIRE(m.Acquire(x, sum, label, 0, &xs));  // x's cache entries
  REQUIRE(m.Acquire(x, mm, label, 0, &xm));
  REQUIRE(m.Acquire(y, sum, label, 0, &yb));  // y's bound handle
  double* s = CellPtr(m, x, xs, 1);
  double* c = CellPtr(m, x, xm, 4);
  double* b = CellPtr(m, y, yb, 1);
  REQUIRE(s && c && b);
  *s += 1;
  Update(AggregationKind::MinMaxSumCount, c, {}, 1);
  *b += 1;
  REQUIRE(DoCollect(m, sizes, true).ok);
  *b += 1;
  REQUIRE(DoCollect(m, sizes, true).ok);  // the sum is updated (by y), the min/max idle
  std::vector<uint64_t> ids;
  m.DrainStale(x, &ids);  // x's timer
  CHECK(ids == std::vector<uint64_t>{xm.recordId});
  CHECK(m.Release(xm.recordId, x));
  CHECK(m.Release(yb.recordId, y));
  m.RetireArena(y);
  Collected c1 = DoCollect(m, sizes, true);  // the sum idle: queued for x
  REQUIRE(c1.ok);
  CHECK(c1.WasReclaimed(xm.recordId));
  Acquired probe;
  REQUIRE(m.Acquire(x, sum, Key("k", "probe"), 0, &probe));
  CHECK(probe.stalePending);
  CHECK(m.Release(probe.recordId, x));
  // The next measurement: the sum's lookup hits, its write, then the min/max's lookup
  // misses and drains first.
  *s += 2;
  ids.clear();
  m.DrainStale(x, &ids);
  CHECK(std::find(ids.begin(), ids.end(), xs.recordId) == ids.end());  // written since queued: kept
  Acquired xm2;
  REQUIRE(m.Acquire(x, mm, label, 0, &xm2));
  CHECK(xm2.recordId != xm.recordId);
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK(!c2.WasReclaimed(xs.recordId));
  REQUIRE(c2.Find(xs.recordId));
  CHECK_EQ(c2.Find(xs.recordId)->state, (std::vector<double>{5}));
  CHECK(c2.Find(xs.recordId)->updated);
  // Once x lets go, the record goes only after a pass that exported its final state.
  CHECK(m.Release(xs.recordId, x));
  CHECK(m.Release(xm2.recordId, x));
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK(c3.WasReclaimed(xs.recordId));
  m.RetireArena(x);
}

TEST(record_map_reclaim) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {1, 2}), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}};
  const std::string kA = Key("r", "A"), kB = Key("r", "B"), kC = Key("r", "C"), kH = Key("r", "H");
  Acquired a, b, cc, h;
  REQUIRE(m.Acquire(arena, sum, kA, 10, &a));
  REQUIRE(m.Acquire(arena, sum, kB, 10, &b));
  REQUIRE(m.Acquire(arena, sum, kC, 10, &cc));
  REQUIRE(m.Acquire(arena, hist, kH, 10, &h));
  double* pa = CellPtr(m, arena, a, 1);
  double* pb = CellPtr(m, arena, b, 1);
  double* pc = CellPtr(m, arena, cc, 1);
  double* ph = CellPtr(m, arena, h, 6);
  REQUIRE(pa && pb && pc && ph);
  *pa += 1;
  *pb += 2;
  *pc += 3;
  Update(AggregationKind::Histogram, ph, {1, 2}, 1.5);
  Collected c1 = DoCollect(m, sizes, true);  // all updated: nothing reclaimed
  REQUIRE(c1.ok);
  CHECK_EQ(c1.rows.size(), 4u);
  CHECK(c1.reclaimed.empty());

  // A: released, updated since c1 -> exported, kept. B: released, not updated -> reclaimed.
  // C: still referenced, not updated -> kept. H: released, not updated -> reclaimed.
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(b.recordId));
  CHECK(m.Release(h.recordId));
  *pa += 10;
  // reclaim=false never reclaims.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.rows.size(), 4u);
  CHECK(c2.reclaimed.empty());
  CHECK_EQ(m.RecordCount(), 4u);
  *pa += 10;
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.reclaimed.size(), 2u);
  CHECK(c3.WasReclaimed(b.recordId));
  CHECK(c3.WasReclaimed(h.recordId));
  CHECK(!c3.WasReclaimed(a.recordId));
  CHECK(!c3.WasReclaimed(cc.recordId));
  CHECK(c3.Find(b.recordId) == nullptr);  // reclaimed records are not listed as records
  CHECK(c3.Find(h.recordId) == nullptr);
  REQUIRE(c3.Find(a.recordId) && c3.Find(cc.recordId));
  CHECK(c3.Find(a.recordId)->updated);
  CHECK_EQ(c3.Find(a.recordId)->state, (std::vector<double>{21}));
  CHECK(!c3.Find(cc.recordId)->updated);
  CHECK_EQ(m.RecordCount(), 2u);
  uint32_t inst;
  std::string key;
  CHECK(!m.RecordInfo(b.recordId, &inst, &key));
  CHECK(!m.Release(b.recordId));

  // A is reclaimed by the next collection, once it has not been updated; C never is.
  Collected c4 = DoCollect(m, sizes, true);
  REQUIRE(c4.ok);
  CHECK_EQ(c4.reclaimed, std::vector<uint64_t>{a.recordId});
  CHECK_EQ(c4.rows.size(), 1u);
  for (int i = 0; i < 3; i++) {
    Collected ci = DoCollect(m, sizes, true);
    REQUIRE(ci.ok);
    CHECK(ci.reclaimed.empty());
    CHECK(ci.Find(cc.recordId) != nullptr);
  }

  // Re-acquiring B's labels creates a new record from the identity state, even though the
  // freed cell (which held 2) is reused.
  Acquired b2, h2;
  REQUIRE(m.Acquire(arena, sum, kB, 20, &b2));
  REQUIRE(m.Acquire(arena, hist, kH, 20, &h2));
  CHECK(b2.recordId != b.recordId);
  CHECK(b2.recordId != a.recordId && b2.recordId != cc.recordId);  // ids are never reused
  CHECK(b2.newCell);
  double* pb2 = CellPtr(m, arena, b2, 1);
  double* ph2 = CellPtr(m, arena, h2, 6);
  REQUIRE(pb2 && ph2);
  CHECK_EQ(*pb2, 0.0);
  CHECK_EQ(std::vector<double>(ph2, ph2 + 6), Identity(AggregationKind::Histogram, 6));
  CHECK(pb2 == pb || pb2 == pa);  // a freed 1-double cell was reused
  CHECK(ph2 == ph);
  Collected c5 = DoCollect(m, sizes, false);
  REQUIRE(c5.ok);
  const Row* rb = c5.Find(b2.recordId);
  REQUIRE(rb);
  CHECK_EQ(rb->state, (std::vector<double>{0}));
  CHECK_EQ(rb->startTimeMs, 20.0);
  CHECK(rb->updated);  // the first pass that sees a record exports it
  *pb2 += 4;
  Collected c6 = DoCollect(m, sizes, true);
  REQUIRE(c6.ok);
  rb = c6.Find(b2.recordId);
  REQUIRE(rb);
  CHECK_EQ(rb->state, (std::vector<double>{4}));
  CHECK(rb->updated);
}

TEST(record_map_reclaim_unwritten_record) {
  // A record acquired and released without a write (add(0) leaves the identity) is a
  // series: the first reclaiming collection exports it as updated, the next drops it.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  CHECK(m.Release(a.recordId));
  Collected c = DoCollect(m, {{sum, 1}}, true);
  REQUIRE(c.ok);
  CHECK(c.reclaimed.empty());
  REQUIRE(c.Find(a.recordId));
  CHECK(c.Find(a.recordId)->updated);
  CHECK_EQ(c.Find(a.recordId)->state, (std::vector<double>{0}));
  Collected c2 = DoCollect(m, {{sum, 1}}, true);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed, std::vector<uint64_t>{a.recordId});
  CHECK(c2.rows.empty());
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(record_map_multiple_arenas_merge) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena(), t3 = m.RegisterArena();
  const std::vector<double> bounds = {0, 10};
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}};
  const std::string k = Key("k", "v");
  Acquired s1, s2, s3, h1, h2;
  REQUIRE(m.Acquire(t1, sum, k, 0, &s1));
  REQUIRE(m.Acquire(t2, sum, k, 0, &s2));
  REQUIRE(m.Acquire(t3, sum, k, 0, &s3));
  REQUIRE(m.Acquire(t1, hist, k, 0, &h1));
  REQUIRE(m.Acquire(t2, hist, k, 0, &h2));
  CHECK(s1.recordId == s2.recordId && s2.recordId == s3.recordId);
  double* c1 = CellPtr(m, t1, s1, 1);
  double* c2 = CellPtr(m, t2, s2, 1);
  double* c3 = CellPtr(m, t3, s3, 1);
  double* hc1 = CellPtr(m, t1, h1, 6);
  double* hc2 = CellPtr(m, t2, h2, 6);
  REQUIRE(c1 && c2 && c3 && hc1 && hc2);
  *c1 += 1;
  *c2 += 20;
  *c3 += 300;
  for (double v : {-1.0, 5.0}) Update(AggregationKind::Histogram, hc1, bounds, v);
  for (double v : {10.0, 50.0, 0.0}) Update(AggregationKind::Histogram, hc2, bounds, v);
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.rows.size() == 2);
  CHECK_EQ(c.Find(s1.recordId)->state, (std::vector<double>{321}));
  CHECK_EQ(c.Find(h1.recordId)->state, (std::vector<double>{64, -1, 50, 2, 2, 1}));
}

TEST(record_map_retire_arena) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  const std::vector<double> bounds = {0, 10};
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}, {lv, 2}};
  const std::string k = Key("k", "v"), only1 = Key("k", "only-t1");
  Acquired s1, s2, h1, h2, o1, g1;
  REQUIRE(m.Acquire(t1, sum, k, 0, &s1));
  REQUIRE(m.Acquire(t2, sum, k, 0, &s2));
  REQUIRE(m.Acquire(t1, hist, k, 0, &h1));
  REQUIRE(m.Acquire(t2, hist, k, 0, &h2));
  REQUIRE(m.Acquire(t1, sum, only1, 0, &o1));
  REQUIRE(m.Acquire(t1, lv, k, 0, &g1));
  double* c1 = CellPtr(m, t1, s1, 1);
  double* c2 = CellPtr(m, t2, s2, 1);
  double* hc1 = CellPtr(m, t1, h1, 6);
  double* hc2 = CellPtr(m, t2, h2, 6);
  double* oc1 = CellPtr(m, t1, o1, 1);
  double* gc1 = CellPtr(m, t1, g1, 2);
  REQUIRE(c1 && c2 && hc1 && hc2 && oc1 && gc1);
  *c1 += 5;
  *c2 += 7;
  *oc1 += 11;
  Update(AggregationKind::Histogram, hc1, bounds, -100);
  Update(AggregationKind::Histogram, hc2, bounds, 3);
  Update(AggregationKind::LastValue, gc1, {}, 42);
  const double gaugeStamp = LastStamp();
  Collected before = DoCollect(m, sizes, false);
  REQUIRE(before.ok);
  size_t bytesBefore = m.ArenaBytes();
  CHECK(bytesBefore > 0);

  // Thread 1 writes a little more and exits.
  *c1 += 1;
  Update(AggregationKind::Histogram, hc1, bounds, 20);
  m.RetireArena(t1);
  CHECK(m.ArenaBytes() < bytesBefore);
  double* data;
  size_t doubles;
  CHECK(!m.SlabMemory(t1, 0, &data, &doubles));
  CHECK_EQ(m.RecordCount(), 4u);  // records survive their threads

  Collected after = DoCollect(m, sizes, false);
  REQUIRE(after.ok);
  REQUIRE(after.Find(s1.recordId) && after.Find(h1.recordId) && after.Find(o1.recordId) && after.Find(g1.recordId));
  CHECK_EQ(after.Find(s1.recordId)->state, (std::vector<double>{13}));
  CHECK(after.Find(s1.recordId)->updated);  // its last writes happened before the retirement
  CHECK_EQ(after.Find(h1.recordId)->state, (std::vector<double>{-77, -100, 20, 1, 1, 1}));
  CHECK_EQ(after.Find(o1.recordId)->state, (std::vector<double>{11}));
  CHECK(!after.Find(o1.recordId)->updated);  // retirement alone is not an update
  CHECK_EQ(after.Find(g1.recordId)->state, (std::vector<double>{42, gaugeStamp}));
  CHECK(!after.Find(g1.recordId)->updated);

  // Thread 2 keeps writing on top of the retired totals.
  *c2 += 100;
  Update(AggregationKind::Histogram, hc2, bounds, 1000);
  Collected later = DoCollect(m, sizes, false);
  REQUIRE(later.ok);
  CHECK_EQ(later.Find(s1.recordId)->state, (std::vector<double>{113}));
  CHECK_EQ(later.Find(h1.recordId)->state, (std::vector<double>{923, -100, 1000, 1, 1, 2}));

  // A new thread joining a record whose only writer retired starts a fresh cell.
  uint32_t t3 = m.RegisterArena();
  Acquired o3;
  REQUIRE(m.Acquire(t3, sum, only1, 0, &o3));
  CHECK_EQ(o3.recordId, o1.recordId);
  CHECK(o3.newCell);
  double* oc3 = CellPtr(m, t3, o3, 1);
  REQUIRE(oc3);
  CHECK_EQ(*oc3, 0.0);
  *oc3 += 1;
  Collected withT3 = DoCollect(m, sizes, false);
  REQUIRE(withT3.ok);
  CHECK_EQ(withT3.Find(o1.recordId)->state, (std::vector<double>{12}));

  // Everyone exits: the totals remain and every arena is freed.
  m.RetireArena(t2);
  m.RetireArena(t3);
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected last = DoCollect(m, sizes, false);
  REQUIRE(last.ok);
  CHECK_EQ(last.Find(s1.recordId)->state, (std::vector<double>{113}));
  CHECK_EQ(last.Find(o1.recordId)->state, (std::vector<double>{12}));
  CHECK_EQ(last.Find(h1.recordId)->state, (std::vector<double>{923, -100, 1000, 1, 1, 2}));
  for (const Row& r : last.rows) CHECK(!r.updated);

  // The references went with their threads: nothing is left to release, and records
  // whose threads are gone are reclaimable.
  for (uint64_t id : {s1.recordId, h1.recordId, o1.recordId, g1.recordId}) CHECK(!m.Release(id));
  Collected rc = DoCollect(m, sizes, true);
  REQUIRE(rc.ok);
  CHECK_EQ(rc.reclaimed.size(), 4u);
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(record_map_last_value_is_last_in_time_across_threads) {
  // A gauge written by two threads (same label set): main 20, worker 99, main 21, 23.
  // The checkpoint holds the write with the greatest stamp (23), not the cell merged
  // last (the worker's, acquired second), and the same after the worker exits and its
  // cell is folded into the record's retired state.
  RecordMap m;
  uint32_t mainArena = m.RegisterArena(), worker = m.RegisterArena();
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{lv, 2}};
  const std::string k = Key("room", "a"), solo = Key("room", "solo");
  Acquired gm, gw, gs;
  REQUIRE(m.Acquire(mainArena, lv, k, 0, &gm));
  REQUIRE(m.Acquire(worker, lv, k, 0, &gw));
  REQUIRE(m.Acquire(worker, lv, solo, 0, &gs));
  REQUIRE(gm.recordId == gw.recordId);
  double* cm = CellPtr(m, mainArena, gm, 2);
  double* cw = CellPtr(m, worker, gw, 2);
  double* cs = CellPtr(m, worker, gs, 2);
  REQUIRE(cm && cw && cs);
  auto value = [&](uint64_t id) {
    Collected c = DoCollect(m, sizes, false);
    const Row* r = c.ok ? c.Find(id) : nullptr;
    return r != nullptr ? r->state[0] : std::nan("");
  };

  Update(AggregationKind::LastValue, cm, {}, 20);
  Update(AggregationKind::LastValue, cw, {}, 99);
  CHECK_EQ(value(gm.recordId), 99.0);
  Update(AggregationKind::LastValue, cm, {}, 21);
  Update(AggregationKind::LastValue, cm, {}, 23);
  CHECK_EQ(value(gm.recordId), 23.0);
  // A label set only one thread writes: its last write, as before.
  for (double v : {5.0, -2.0, 7.5}) Update(AggregationKind::LastValue, cs, {}, v);
  CHECK_EQ(value(gs.recordId), 7.5);

  // The worker writes last, then exits: its folded state is the latest and wins over
  // the live cell of the main thread.
  Update(AggregationKind::LastValue, cw, {}, 100);
  m.RetireArena(worker);
  CHECK_EQ(value(gm.recordId), 100.0);
  CHECK_EQ(value(gs.recordId), 7.5);
  // The main thread writes again: later than the retired state.
  Update(AggregationKind::LastValue, cm, {}, 24);
  CHECK_EQ(value(gm.recordId), 24.0);

  // Several retired threads: the fold keeps the latest of them, in whatever order
  // they exit.
  uint32_t w2 = m.RegisterArena(), w3 = m.RegisterArena();
  Acquired a2, a3;
  REQUIRE(m.Acquire(w2, lv, k, 0, &a2));
  REQUIRE(m.Acquire(w3, lv, k, 0, &a3));
  double* c2 = CellPtr(m, w2, a2, 2);
  double* c3 = CellPtr(m, w3, a3, 2);
  REQUIRE(c2 && c3);
  Update(AggregationKind::LastValue, c2, {}, 1);
  Update(AggregationKind::LastValue, c3, {}, 2);
  Update(AggregationKind::LastValue, c2, {}, 3);  // w2 writes last
  m.RetireArena(w2);
  m.RetireArena(w3);
  CHECK_EQ(value(gm.recordId), 3.0);
}

TEST(record_map_many_records_span_slabs) {
  // Enough histogram cells that one arena needs several slabs; every cell stays
  // independent and collects exactly.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  std::vector<double> bounds;
  for (int i = 0; i < 200; i++) bounds.push_back(i);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  const size_t n = CellSize(AggregationKind::Histogram, bounds.size());
  std::map<uint64_t, int> idToLabel;
  std::set<uint32_t> slabs;
  for (int l = 0; l < 300; l++) {
    Acquired a;
    REQUIRE(m.Acquire(arena, hist, Key("l", std::to_string(l)), 0, &a));
    idToLabel[a.recordId] = l;
    slabs.insert(a.slab);
    double* c = CellPtr(m, arena, a, n);
    REQUIRE(c);
    for (int j = 0; j <= l % 5; j++) Update(AggregationKind::Histogram, c, bounds, l % 250);
  }
  CHECK(slabs.size() >= 8);
  Collected c = DoCollect(m, {{hist, n}}, false);
  REQUIRE(c.ok);
  CHECK_EQ(c.rows.size(), 300u);
  size_t bad = 0;
  for (const Row& r : c.rows) {
    int l = idToLabel[r.id];
    std::vector<double> expect = Identity(AggregationKind::Histogram, n);
    for (int j = 0; j <= l % 5; j++) Update(AggregationKind::Histogram, expect.data(), bounds, l % 250);
    bad += r.state != expect;
  }
  CHECK_EQ(bad, 0u);
}

// ---------------------------------------------------------------------------------------
// Threaded stress: writers on their own arenas, a churning acquirer/releaser, and a
// collector, all at once.

constexpr int kWriters = 4;
constexpr int kLabels = 64;
constexpr int kChurnLabels = 32;
constexpr uint32_t kChurnLimit = 20;  // cardinality limit of the churn instrument

std::vector<double> StressBounds() {
  std::vector<double> b;  // 127 bounds: 0, 8, ..., 1008; histogram cells of 131 doubles
  for (int i = 0; i < 127; i++) b.push_back(i * 8.0);
  return b;
}

// The deterministic update stream of writer t: at step i, label L, Sum += SumV, Histogram
// records HistV. Labels unlock gradually over the first half of the run, so acquisitions
// (and slab allocations) keep happening while collections run.
struct Stream {
  int t;
  long iters;
  int Label(long i) const {
    long unlocked = std::min<long>(kLabels, 1 + i * kLabels / std::max<long>(1, iters / 2));
    uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t) * 0xBF58476D1CE4E5B9ull;
    return static_cast<int>((h >> 33) % static_cast<uint64_t>(unlocked));
  }
  double SumV(long i) const { return static_cast<double>(1 + (static_cast<uint64_t>(i) * 31 + t) % 7); }
  double HistV(long i) const {
    return static_cast<double>(static_cast<long>((static_cast<uint64_t>(i) * 40503u + static_cast<uint64_t>(t) * 97) % 1031) - 5);
  }
};

struct Expected {
  double sum = 0;
  std::vector<double> hist;  // full histogram state
};

TEST(stress_concurrent_writers_and_collect) {
  RecordMap m;
  const std::vector<double> bounds = StressBounds();
  // Each instrument in its own domain; the collector rotates over them and "all" (0).
  const uint32_t domSum = m.RegisterDomain("sum"), domHist = m.RegisterDomain("hist"), domChurn = m.RegisterDomain("");
  const uint32_t sumId =
      m.RegisterInstrument("stress.sum", MakeDesc("stress.sum", AggregationKind::Sum), nullptr, domSum);
  const uint32_t histId = m.RegisterInstrument(
      "stress.hist", MakeDesc("stress.hist", AggregationKind::Histogram, bounds), nullptr, domHist);
  const uint32_t churnId =
      m.RegisterInstrument("stress.churn", MakeDesc("stress.churn", AggregationKind::Sum), nullptr, domChurn);
  const std::map<uint32_t, uint32_t> domainOf = {{sumId, domSum}, {histId, domHist}, {churnId, domChurn}};
  const uint32_t rotation[] = {0, domSum, domHist, domChurn, 0, domChurn};
  const size_t hn = CellSize(AggregationKind::Histogram, bounds.size());
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {histId, hn}, {churnId, 1}};

  std::vector<std::string> keys, churnKeys;
  for (int l = 0; l < kLabels; l++) keys.push_back(EncodeLabelKey({"route", "/r/" + std::to_string(l), "status", "200"}));
  for (int l = 0; l < kChurnLabels; l++) churnKeys.push_back(Key("churn", std::to_string(l)));

  const long base = std::max<long>(1000, static_cast<long>(1000000 * g_scale));
  std::vector<Stream> streams;
  for (int t = 0; t < kWriters; t++) streams.push_back({t, base + t * base / 4});

  // Expected final state per label, from the same streams.
  std::vector<Expected> expect(kLabels);
  for (auto& e : expect) e.hist = Identity(AggregationKind::Histogram, hn);
  long totalUpdates = 0;
  for (const Stream& s : streams) {
    for (long i = 0; i < s.iters; i++) {
      Expected& e = expect[s.Label(i)];
      e.sum += s.SumV(i);
      Update(AggregationKind::Histogram, e.hist.data(), bounds, s.HistV(i));
    }
    totalUpdates += 2 * s.iters;
  }
  for (int l = 0; l < kLabels; l++) REQUIRE(Activity(AggregationKind::Histogram, expect[l].hist.data(), hn) > 0);

  std::atomic<int> writersDone{0}, writersWritten{0};
  std::atomic<bool> stopChurn{false};
  std::vector<uint32_t> arenas(kWriters, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; t++) {
    // Writers 0 and 2 retire their arena when they finish (a worker exiting); 1 and 3 don't.
    const bool retire = t % 2 == 0;
    threads.emplace_back([&, t, retire] {
      const Stream s = streams[t];
      const uint32_t arena = m.RegisterArena();
      arenas[t] = arena;
      std::vector<double*> sumCell(kLabels, nullptr), histCell(kLabels, nullptr);
      for (long i = 0; i < s.iters; i++) {
        const int l = s.Label(i);
        if (sumCell[l] == nullptr) {
          Acquired a, b;
          if (!m.Acquire(arena, sumId, keys[l], static_cast<double>(t), &a) ||
              !m.Acquire(arena, histId, keys[l], static_cast<double>(t), &b)) {
            Fail(__FILE__, __LINE__, "writer Acquire failed");
            break;
          }
          CHECK(a.newCell && b.newCell);
          sumCell[l] = CellPtr(m, arena, a, 1);
          histCell[l] = CellPtr(m, arena, b, hn);
          if (!sumCell[l] || !histCell[l]) break;
          CHECK_EQ(LoadRelaxed(*sumCell[l]), 0.0);
        }
        AddRelaxed(*sumCell[l], s.SumV(i));
        double* h = histCell[l];
        const double v = s.HistV(i);
        AddRelaxed(h[0], v);
        if (v < LoadRelaxed(h[1])) StoreRelaxed(h[1], v);
        if (v > LoadRelaxed(h[2])) StoreRelaxed(h[2], v);
        AddRelaxed(h[3 + BucketIndex(bounds.data(), bounds.size(), v)], 1);
      }
      // A retiring writer waits until every writer has written: a record it alone had
      // acquired so far would otherwise be unreferenced, idle and reclaimable before a
      // slower writer acquires its label set (a legitimate reclaim, but the final totals
      // below assume one record per label for the whole run).
      writersWritten.fetch_add(1);
      if (retire) {
        while (writersWritten.load() < kWriters) std::this_thread::yield();
        m.RetireArena(arena);
      }
      writersDone.fetch_add(1);
    });
  }

  // Churn: acquire, write, release records of another instrument, so that collections
  // reclaim them and re-acquisitions reuse freed cells, concurrently with everything else.
  std::atomic<long> churnOps{0}, churnReclaimsSeen{0}, churnOverflows{0};
  std::thread churn([&] {
    const uint32_t arena = m.RegisterArena();
    std::map<uint64_t, double> written;  // record id -> what this thread wrote to its cell
    std::vector<uint64_t> lastId(kChurnLabels, 0);
    std::vector<bool> lastOverflow(kChurnLabels, false);
    std::set<uint64_t> issued;  // every record id this thread was given
    std::mt19937 rng(12345);
    long ops = 0;
    while (!stopChurn.load()) {
      const int l = static_cast<int>(rng() % kChurnLabels);
      Acquired a;
      if (!m.Acquire(arena, churnId, churnKeys[l], 0, &a, kChurnLimit)) {
        Fail(__FILE__, __LINE__, "churn Acquire failed");
        break;
      }
      double* c = CellPtr(m, arena, a, 1);
      if (c == nullptr) break;
      const double cur = LoadRelaxed(*c);
      auto it = written.find(a.recordId);
      if (it != written.end()) {
        // Not reclaimed: our own cell, with everything we wrote.
        CHECK(!a.newCell);
        CHECK_EQ(cur, it->second);
      } else {
        // A new record (first use, or recreated after reclamation): identity state.
        CHECK(a.newCell);
        CHECK_EQ(cur, 0.0);
        CHECK(issued.insert(a.recordId).second);  // a new record never has an old id
        it = written.emplace(a.recordId, 0).first;
      }
      uint32_t inst = 0;
      std::string key;
      CHECK(m.RecordInfo(a.recordId, &inst, &key));
      CHECK_EQ(key, a.overflow ? OverflowLabelKey() : churnKeys[l]);
      churnOverflows.fetch_add(a.overflow ? 1 : 0);
      if (lastId[l] != 0 && lastId[l] != a.recordId && !(lastOverflow[l] && !a.overflow)) {
        // The label set's previous record (or overflow record) is gone, not just hidden.
        churnReclaimsSeen.fetch_add(1);
        CHECK(!m.RecordInfo(lastId[l], &inst, &key));
      }
      lastId[l] = a.recordId;
      lastOverflow[l] = a.overflow;
      const int k = 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < k; j++) AddRelaxed(*c, 1);
      it->second += k;
      CHECK(m.Release(a.recordId));
      if (++ops % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    churnOps.store(ops);
    m.RetireArena(arena);
  });

  // Collector: collect until every writer is done, checking what can be checked of a
  // snapshot taken while cells are being written.
  struct Seen { double activity = 0; std::vector<double> state; };
  std::map<uint64_t, Seen> seen;           // by record id
  std::map<uint64_t, int> labelOf;         // writer record id -> label
  std::set<uint64_t> churnIds, reclaimedIds;
  long collects = 0, reclaimCollects = 0;
  uint64_t lastEpoch = 0;
  size_t failuresBefore = static_cast<size_t>(g_failures.load());
  std::map<uint64_t, uint64_t> lastUpdatedAt;  // record id -> epoch that last saw it updated
  auto check_snapshot = [&](const Collected& c, const CollectOptions& opts) {
    const uint32_t domain = opts.domain;
    CHECK_EQ(c.epoch, lastEpoch + 1);
    lastEpoch = c.epoch;
    CHECK(opts.reclaim || c.reclaimed.empty());
    for (uint64_t id : c.reclaimed) {
      CHECK(churnIds.count(id) == 1);  // only released churn records are ever reclaimed
      CHECK(reclaimedIds.insert(id).second);
      CHECK(lastUpdatedAt[id] <= opts.reclaimBefore);
    }
    size_t churnRows = 0;
    for (const Row& r : c.rows) {
      if (r.updated) lastUpdatedAt[r.id] = c.epoch;
      churnRows += r.instrument == churnId;
    }
    CHECK(churnRows <= kChurnLimit);
    for (const Row& r : c.rows) {
      CHECK(reclaimedIds.count(r.id) == 0);  // ids are never reused
      CHECK(domain == 0 || domainOf.at(r.instrument) == domain);
      Seen& prev = seen[r.id];
      double activity = 0;
      if (r.instrument == churnId) {
        churnIds.insert(r.id);
        activity = r.state[0];
        CHECK(activity >= prev.activity);
      } else {
        auto it = labelOf.find(r.id);
        if (it == labelOf.end()) {
          uint32_t inst = 0;
          std::string key;
          if (!m.RecordInfo(r.id, &inst, &key)) {
            Fail(__FILE__, __LINE__, "RecordInfo failed for a listed record");
            continue;
          }
          CHECK_EQ(inst, r.instrument);
          auto k = std::find(keys.begin(), keys.end(), key);
          if (k == keys.end()) {
            Fail(__FILE__, __LINE__, "unknown label key");
            continue;
          }
          it = labelOf.emplace(r.id, static_cast<int>(k - keys.begin())).first;
        }
        const Expected& e = expect[it->second];
        if (r.instrument == sumId) {
          activity = r.state[0];
          // Every cell only grows (positive increments), up to the final total.
          CHECK(activity >= prev.activity);
          CHECK(activity <= e.sum);
        } else {
          CHECK_EQ(r.instrument, histId);
          for (size_t b = 3; b < hn; b++) {
            CHECK(r.state[b] <= e.hist[b]);
            activity += r.state[b];
          }
          CHECK(activity >= prev.activity);
          CHECK(r.state[1] >= e.hist[1]);  // min
          CHECK(r.state[2] <= e.hist[2]);  // max
        }
      }
      // An activity change is always an update; a record not updated has exactly the
      // state of the previous collection (it may be updated with the same activity: a
      // torn read then, or a new record).
      if (activity != prev.activity) CHECK(r.updated);
      if (!r.updated) CHECK(r.state == prev.state);
      prev.activity = activity;
      prev.state = r.state;
      if (static_cast<size_t>(g_failures.load()) > failuresBefore + 50) return;
    }
  };
  do {  // at least one collection, however quickly the writers finish
    CollectOptions opts;
    opts.nowMs = static_cast<double>(collects);
    opts.reclaim = collects % 2 == 1;
    opts.domain = rotation[collects % std::size(rotation)];
    // Sometimes a reader lags a few collections behind.
    if (collects % 4 == 3) opts.reclaimBefore = lastEpoch > 3 ? lastEpoch - 3 : 0;
    Collected c = DoCollect(m, sizes, opts);
    collects++;
    reclaimCollects += opts.reclaim;
    if (!c.ok) break;
    check_snapshot(c, opts);
    if (static_cast<size_t>(g_failures.load()) > failuresBefore + 50) break;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  } while (writersDone.load() < kWriters);
  for (auto& th : threads) th.join();
  stopChurn.store(true);
  churn.join();

  // Quiescent: exact totals.
  auto check_totals = [&](const Collected& c, const char* when) {
    size_t sums = 0, hists = 0, bad = 0;
    for (const Row& r : c.rows) {
      if (r.instrument == churnId) continue;
      auto it = labelOf.find(r.id);
      if (it == labelOf.end()) {
        uint32_t inst = 0;
        std::string key;
        if (!m.RecordInfo(r.id, &inst, &key)) { bad++; continue; }
        auto k = std::find(keys.begin(), keys.end(), key);
        if (k == keys.end()) { bad++; continue; }
        it = labelOf.emplace(r.id, static_cast<int>(k - keys.begin())).first;
      }
      const Expected& e = expect[it->second];
      if (r.instrument == sumId) {
        sums++;
        if (r.state[0] != e.sum) {
          if (bad++ < 5) Fail(__FILE__, __LINE__, std::string(when) + ": sum " + Show(r.state[0]) + " != " + Show(e.sum));
        }
      } else {
        hists++;
        double buckets = 0;
        for (size_t b = 3; b < hn; b++) buckets += r.state[b];
        double count = Activity(AggregationKind::Histogram, e.hist.data(), hn);
        if (r.state != e.hist || buckets != count) {
          if (bad++ < 5) Fail(__FILE__, __LINE__, std::string(when) + ": histogram " + Show(r.state) + " != " + Show(e.hist));
        }
      }
    }
    CHECK_EQ(sums, static_cast<size_t>(kLabels));
    CHECK_EQ(hists, static_cast<size_t>(kLabels));
    CHECK_EQ(bad, 0u);
  };
  // The histogram count of each label is the number of records made into it.
  double totalHist = 0, totalSum = 0, streamSum = 0;
  for (const Expected& e : expect) {
    totalHist += Activity(AggregationKind::Histogram, e.hist.data(), hn);
    totalSum += e.sum;
  }
  for (const Stream& s : streams) {
    for (long i = 0; i < s.iters; i++) streamSum += s.SumV(i);
  }
  CHECK_EQ(totalHist, static_cast<double>(totalUpdates / 2));
  CHECK_EQ(totalSum, streamSum);

  CollectOptions all, allReclaim;
  allReclaim.reclaim = true;
  Collected f1 = DoCollect(m, sizes, false);
  REQUIRE(f1.ok);
  check_snapshot(f1, all);
  check_totals(f1, "after join");
  // Nothing changes any more: not updated, same totals.
  Collected f2 = DoCollect(m, sizes, false);
  REQUIRE(f2.ok);
  check_snapshot(f2, all);
  for (const Row& r : f2.rows) CHECK(!r.updated);
  check_totals(f2, "second final collect");
  // Two reclaiming collections drop every churn record (all released) and nothing else:
  // writers 1 and 3 still hold references to every writer record.
  Collected f3 = DoCollect(m, sizes, true);
  REQUIRE(f3.ok);
  check_snapshot(f3, allReclaim);
  Collected f4 = DoCollect(m, sizes, true);
  REQUIRE(f4.ok);
  check_snapshot(f4, allReclaim);
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(2 * kLabels));
  check_totals(f4, "after reclaiming");
  // The remaining writers exit: totals survive, all memory is returned.
  for (int t = 0; t < kWriters; t++) {
    if (t % 2 == 1) m.RetireArena(arenas[t]);
  }
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected f5 = DoCollect(m, sizes, false);
  REQUIRE(f5.ok);
  check_snapshot(f5, all);
  for (const Row& r : f5.rows) CHECK(!r.updated);
  check_totals(f5, "after every arena retired");
  // Their references went with them: the next reclaiming collection frees every record.
  Collected f6 = DoCollect(m, sizes, true);
  REQUIRE(f6.ok);
  CHECK(f6.rows.empty());
  CHECK_EQ(f6.reclaimed.size(), static_cast<size_t>(2 * kLabels));
  CHECK_EQ(m.RecordCount(), 0u);

  std::printf("    stress: %ld updates by %d writers, %ld concurrent collects (%ld reclaiming), "
              "%ld churn ops (%ld overflowed), %zu churn records reclaimed (%ld label sets moved)\n",
              totalUpdates, kWriters, collects, reclaimCollects, churnOps.load(), churnOverflows.load(),
              reclaimedIds.size(), churnReclaimsSeen.load());
  CHECK(collects > 0);
}

TEST(stress_retire_races_collect) {
  // Threads come and go: each registers an arena, writes shared records, and retires,
  // while the main thread collects. Totals must be exact at the end.
  RecordMap m;
  const uint32_t sumId = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const uint32_t mmId = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {mmId, 4}};
  constexpr int kLabelsHere = 8;
  const int generations = std::max(2, static_cast<int>(20 * std::min(g_scale, 5.0)));
  constexpr int kPerGen = 3;
  constexpr int kWrites = 2000;
  std::atomic<bool> done{false};
  std::thread collector([&] {
    uint64_t epoch = 0;
    while (!done.load()) {
      Collected c = DoCollect(m, sizes, false);
      if (!c.ok) return;
      CHECK_EQ(c.epoch, epoch + 1);
      epoch = c.epoch;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  for (int g = 0; g < generations; g++) {
    std::vector<std::thread> ts;
    for (int w = 0; w < kPerGen; w++) {
      ts.emplace_back([&, w] {
        uint32_t arena = m.RegisterArena();
        for (int l = 0; l < kLabelsHere; l++) {
          Acquired a, b;
          if (!m.Acquire(arena, sumId, Key("l", std::to_string(l)), 0, &a) ||
              !m.Acquire(arena, mmId, Key("l", std::to_string(l)), 0, &b)) {
            Fail(__FILE__, __LINE__, "Acquire failed");
            return;
          }
          double* s = CellPtr(m, arena, a, 1);
          double* mm = CellPtr(m, arena, b, 4);
          if (!s || !mm) return;
          for (int i = 0; i < kWrites; i++) {
            AddRelaxed(*s, 1);
            const double v = static_cast<double>((i * 7 + w) % 1000);
            AddRelaxed(mm[0], 1);
            AddRelaxed(mm[1], v);
            if (v < LoadRelaxed(mm[2])) StoreRelaxed(mm[2], v);
            if (v > LoadRelaxed(mm[3])) StoreRelaxed(mm[3], v);
          }
          CHECK(m.Release(a.recordId, arena));
          CHECK(m.Release(b.recordId, arena));
        }
        m.RetireArena(arena);
      });
    }
    for (auto& t : ts) t.join();
  }
  done.store(true);
  collector.join();
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.rows.size() == 2 * kLabelsHere);
  const double n = static_cast<double>(generations) * kPerGen * kWrites;
  double vsum = 0;
  for (int w = 0; w < kPerGen; w++) {
    for (int i = 0; i < kWrites; i++) vsum += (i * 7 + w) % 1000;
  }
  vsum *= generations;
  for (const Row& r : c.rows) {
    if (r.instrument == sumId) {
      CHECK_EQ(r.state, (std::vector<double>{n}));
    } else {
      CHECK_EQ(r.state, (std::vector<double>{n, vsum, 0, 999}));
    }
  }
  // Everything was released and has been exported: all of it is reclaimable now.
  Collected r1 = DoCollect(m, sizes, true);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed.size(), static_cast<size_t>(2 * kLabelsHere));
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(stress_worker_threads_reclaim) {
  // Worker threads as the JS layer runs them, concurrently with a collector that
  // reclaims: each thread caches (label -> record) with one reference per cache entry,
  // writes only its own cells and only while it holds a reference to the record (a
  // lookup, then its write, before the next lookup), drains its stale queue on a cache
  // miss after Acquire
  // reported pending work and on a "timer", and releases the drained entries; some hold
  // bound references; generations of threads exit with everything released, exit holding
  // references (terminated), or idle for a long time draining only on the timer.
  // Checks: no write is lost (summing every record's last collected state gives exactly
  // what was written), no record id is ever listed after it was reclaimed, an idle
  // thread's private records are reclaimed while it is still alive, and at the end every
  // record and arena is gone.
  RecordMap m;
  const uint32_t dom = m.RegisterDomain("app");
  const uint32_t sumId = m.RegisterInstrument("w.sum", MakeDesc("w.sum", AggregationKind::Sum), nullptr, dom);
  const uint32_t mmId = m.RegisterInstrument("w.mm", MakeDesc("w.mm", AggregationKind::MinMaxSumCount), nullptr, dom);
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {mmId, 4}};
  constexpr int kPool = 48;  // shared label sets; each generation uses a sliding window
  constexpr int kIdleLabels = 6;
  std::vector<std::string> keys, idleKeys;
  for (int l = 0; l < kPool; l++) keys.push_back(EncodeLabelKey({"route", "/r/" + std::to_string(l)}));
  for (int l = 0; l < kIdleLabels; l++) idleKeys.push_back(Key("idle", std::to_string(l)));
  const int generations = std::max(3, static_cast<int>(12 * std::min(g_scale, 5.0)));
  constexpr int kPerGen = 3;
  const long opsPerThread = std::max<long>(2000, static_cast<long>(40000 * std::min(g_scale, 5.0)));

  std::atomic<double> writtenSum{0}, writtenCount{0}, writtenMmSum{0};  // what all threads wrote
  auto addTotal = [](std::atomic<double>& a, double v) {
    double cur = a.load();
    while (!a.compare_exchange_weak(cur, cur + v)) {
    }
  };
  std::atomic<long> drains{0}, drainedIds{0}, released{0}, terminatedRefs{0};

  struct Cached {
    uint64_t id;
    double* cell;
  };
  // One thread's life; `idleUntil` makes it a long-lived worker that records into its
  // private label sets, then only drains on its timer until told to exit.
  auto worker = [&](int gen, int w, std::atomic<bool>* idleUntil, std::atomic<int>* idleReleased) {
    const uint32_t arena = m.RegisterArena();
    std::map<std::pair<uint32_t, int>, Cached> cache;  // (instrument, label) -> entry
    std::map<uint64_t, std::pair<uint32_t, int>> byId;
    bool pending = false;
    double sum = 0, count = 0, mmSum = 0;
    auto drain = [&] {
      pending = false;
      std::vector<uint64_t> ids;
      m.DrainStale(arena, &ids);
      drains.fetch_add(1);
      drainedIds.fetch_add(static_cast<long>(ids.size()));
      int n = 0;
      for (uint64_t id : ids) {
        auto it = byId.find(id);
        if (it == byId.end()) continue;  // a bound reference only: kept
        cache.erase(it->second);
        byId.erase(it);
        CHECK(m.Release(id, arena));
        n++;
      }
      released.fetch_add(n);
      return n;
    };
    auto get = [&](uint32_t inst, const std::string& key, int label) -> double* {
      auto it = cache.find({inst, label});
      if (it != cache.end()) return it->second.cell;
      if (pending) drain();
      Acquired a;
      if (!m.Acquire(arena, inst, key, 0, &a)) {
        Fail(__FILE__, __LINE__, "worker Acquire failed");
        return nullptr;
      }
      pending = pending || a.stalePending;
      double* c = CellPtr(m, arena, a, sizes.at(inst));
      if (c == nullptr) return nullptr;
      cache[{inst, label}] = {a.recordId, c};
      byId[a.recordId] = {inst, label};
      return c;
    };
    std::mt19937 rng(static_cast<uint32_t>(gen * 131 + w * 7 + 1));
    // A bound reference on one label set for the thread's whole life.
    Acquired bound;
    const int boundLabel = (gen * 5 + w) % kPool;
    if (!m.Acquire(arena, sumId, keys[boundLabel], 0, &bound)) {
      Fail(__FILE__, __LINE__, "bound Acquire failed");
      return;
    }
    double* boundCell = CellPtr(m, arena, bound, 1);
    if (boundCell == nullptr) return;
    const bool idle = idleUntil != nullptr;
    for (long i = 0; i < opsPerThread; i++) {
      // A window of 8 label sets that slides during the thread's life and with the
      // generation: label sets go idle while their thread still caches them.
      const int slide = gen * 4 + static_cast<int>(i * 16 / opsPerThread);
      const int label = idle ? static_cast<int>(rng() % kIdleLabels) : (slide + static_cast<int>(rng() % 8)) % kPool;
      const std::string& key = idle ? idleKeys[label] : keys[label];
      const double v = static_cast<double>(1 + rng() % 5);
      // Each measurement writes its cell right after its lookup, as JS does
      // (store.lookup(attrs).add(v)): a lookup that misses may drain the stale queue and
      // release other cached entries, this label set's sum among them, and a cell must not
      // be written once its reference is given back (the record may be reclaimed and its
      // cell freed: such a write is legally lost).
      double* s = get(sumId, key, label + (idle ? 1000 : 0));
      if (s == nullptr) return;
      AddRelaxed(*s, v);
      double* c = get(mmId, key, label + (idle ? 1000 : 0));
      if (c == nullptr) return;
      AddRelaxed(c[0], 1);
      AddRelaxed(c[1], v);
      if (v < LoadRelaxed(c[2])) StoreRelaxed(c[2], v);
      if (v > LoadRelaxed(c[3])) StoreRelaxed(c[3], v);
      sum += v;
      count += 1;
      mmSum += v;
      if (i % 7 == 0) {
        AddRelaxed(*boundCell, 1);
        sum += 1;
      }
      if (i % 512 == 0) {
        drain();  // the timer
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
    addTotal(writtenSum, sum);
    addTotal(writtenCount, count);
    addTotal(writtenMmSum, mmSum);
    if (idle) {
      // Records nothing more; its timer keeps draining until its private records are gone.
      while (!idleUntil->load()) {
        idleReleased->fetch_add(drain());
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    }
    switch (w % 3) {
      case 0:  // exits cleanly: caches and the bound handle let go first
        for (auto& [id, where] : byId) CHECK(m.Release(id, arena));
        CHECK(m.Release(bound.recordId, arena));
        break;
      case 1:  // terminated: every reference goes with the arena
        terminatedRefs.fetch_add(static_cast<long>(byId.size()) + 1);
        break;
      default:  // releases the bound handle only
        CHECK(m.Release(bound.recordId, arena));
        break;
    }
    m.RetireArena(arena);
  };

  // Collector: reclaiming collections (sometimes with a lagging reader) and plain ones.
  std::atomic<bool> stop{false};
  std::map<uint64_t, std::vector<double>> last;  // record id -> last collected state
  std::map<uint64_t, uint32_t> instOf;
  std::map<uint64_t, bool> idleOf;  // record id -> belongs to the idle thread's label sets
  std::set<uint64_t> reclaimed;
  long collects = 0, reclaimedCount = 0;
  uint64_t lastEpoch = 0;
  std::mutex lastMu;  // `last` is read by the idle check below, from this thread only
  auto collectOnce = [&](bool reclaim, uint64_t reclaimBefore) {
    CollectOptions o;
    o.domain = collects % 5 == 4 ? 0 : dom;
    o.reclaim = reclaim;
    o.reclaimBefore = reclaimBefore;
    Collected c = DoCollect(m, sizes, o);
    collects++;
    if (!c.ok) return c;
    CHECK_EQ(c.epoch, lastEpoch + 1);
    lastEpoch = c.epoch;
    std::lock_guard<std::mutex> lock(lastMu);
    for (const Row& r : c.rows) {
      CHECK(reclaimed.count(r.id) == 0);  // never listed again once reclaimed
      auto it = last.find(r.id);
      if (it != last.end()) {
        // Cumulative: never goes down.
        CHECK(r.state[0] >= it->second[0]);
        // `updated` means the state changed since the previous pass (its fingerprint, over
        // every value). Not Activity(): a writer caught between `count += 1` and its
        // sum/min/max stores changes a MinMaxSumCount state in the next pass with the
        // same count.
        CHECK_EQ(r.updated, r.state != it->second);
      }
      last[r.id] = r.state;
      if (instOf.emplace(r.id, r.instrument).second) {
        uint32_t inst = 0;
        std::string key;
        CHECK(m.RecordInfo(r.id, &inst, &key));  // only this thread reclaims
        idleOf[r.id] = key.find("idle") != std::string::npos;
      }
    }
    for (uint64_t id : c.reclaimed) {
      CHECK(reclaimed.insert(id).second);
      reclaimedCount++;
    }
    return c;
  };
  std::thread collector([&] {
    while (!stop.load()) {
      const bool reclaim = collects % 3 != 2;
      const uint64_t before = collects % 4 == 3 && lastEpoch > 2 ? lastEpoch - 2 : UINT64_MAX;
      if (!collectOnce(reclaim, before).ok) return;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });

  // One long-lived thread that goes idle; generations of short-lived ones meanwhile.
  std::atomic<bool> idleExit{false};
  std::atomic<int> idleReleased{0};
  std::thread idleThread([&] { worker(0, 1, &idleExit, &idleReleased); });
  for (int g = 0; g < generations; g++) {
    std::vector<std::thread> ts;
    for (int w = 0; w < kPerGen; w++) ts.emplace_back([&, g, w] { worker(g, w, nullptr, nullptr); });
    for (auto& t : ts) t.join();
  }
  // The idle thread's private records (label sets no one else uses) must be reclaimed
  // while it is alive: it drained its stale queue and let go.
  bool idleReclaimed = false;
  for (int i = 0; i < 4000 && !idleReclaimed; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(lastMu);
    size_t idleLive = 0, idleGone = 0;
    for (auto& [id, isIdle] : idleOf) {
      if (!isIdle) continue;
      if (reclaimed.count(id)) idleGone++;
      else idleLive++;
    }
    idleReclaimed = idleLive == 0 && idleGone >= 2 * kIdleLabels;
  }
  CHECK(idleReclaimed);
  idleExit.store(true);
  idleThread.join();
  CHECK(idleReleased.load() >= 2 * kIdleLabels);  // let go by draining, while alive
  stop.store(true);
  collector.join();

  // Quiescent: two more passes, then sum the last state of every record ever listed.
  REQUIRE(collectOnce(false, UINT64_MAX).ok);
  REQUIRE(collectOnce(true, UINT64_MAX).ok);
  double gotSum = 0, gotCount = 0, gotMmSum = 0;
  for (auto& [id, st] : last) {
    if (instOf[id] == sumId) {
      gotSum += st[0];
    } else {
      gotCount += st[0];
      gotMmSum += st[1];  // written after the count: torn reads must not lose it
    }
  }
  CHECK_EQ(gotSum, writtenSum.load());
  CHECK_EQ(gotCount, writtenCount.load());
  CHECK_EQ(gotMmSum, writtenMmSum.load());
  // Every thread is gone, so no references remain: everything is reclaimed.
  REQUIRE(collectOnce(true, UINT64_MAX).ok);
  CHECK_EQ(m.RecordCount(), 0u);
  CHECK_EQ(m.ArenaBytes(), 0u);
  std::printf("    worker stress: %d generations x %d threads + 1 idle, %.0f updates, %ld collects, "
              "%ld records reclaimed, %ld drains (%ld stale ids, %ld cached refs released), "
              "%ld refs dropped by retirement\n",
              generations, kPerGen, writtenCount.load(), collects, reclaimedCount, drains.load(),
              drainedIds.load(), released.load(), terminatedRefs.load());
  CHECK(reclaimedCount > 0);
  CHECK(released.load() > 0);
}

// A distribution state (Sketch or ExponentialHistogram) as plain data: header fields and
// bucket index -> count, independent of where the window sits in the cell.
struct DistNorm {
  double count = 0, sum = 0, min = 0, max = 0, zero = 0, scale = 0;
  std::map<int64_t, double> pos, neg;
  bool operator==(const DistNorm&) const = default;
};

DistNorm NormSketch(const std::vector<double>& s) {
  DistNorm n;
  n.count = s[sketch::kCount];
  n.sum = s[sketch::kSum];
  n.min = s[sketch::kMin];
  n.max = s[sketch::kMax];
  n.zero = s[sketch::kZero];
  if (std::isfinite(s[sketch::kBase])) {
    const auto base = static_cast<int64_t>(s[sketch::kBase]);
    for (size_t i = sketch::kHeader; i < s.size(); i++) {
      if (s[i] != 0) n.pos[base + static_cast<int64_t>(i - sketch::kHeader)] = s[i];
    }
  }
  return n;
}

DistNorm NormExphist(const std::vector<double>& s) {
  DistNorm n;
  n.count = s[exphist::kCount];
  n.sum = s[exphist::kSum];
  n.min = s[exphist::kMin];
  n.max = s[exphist::kMax];
  n.zero = s[exphist::kZero];
  n.scale = s[exphist::kScale];
  for (bool positive : {true, false}) {
    int64_t lo = 0, hi = 0;
    if (!exphist::UsedRange(s.data(), s.size(), positive, &lo, &hi)) continue;
    for (int64_t i = lo; i <= hi; i++) {
      double c = exphist::BucketCount(s.data(), s.size(), positive, i);
      if (c != 0) (positive ? n.pos : n.neg)[i] = c;
    }
  }
  return n;
}

std::string ShowNorm(const DistNorm& n) {
  std::string r = "{count " + Show(n.count) + ", sum " + Show(n.sum) + ", min " + Show(n.min) + ", max " +
                  Show(n.max) + ", zero " + Show(n.zero) + ", scale " + Show(n.scale) + ", pos";
  for (auto& [k, v] : n.pos) r += " " + std::to_string(k) + ":" + Show(v);
  r += ", neg";
  for (auto& [k, v] : n.neg) r += " " + std::to_string(k) + ":" + Show(v);
  return r + "}";
}

TEST(stress_distribution_cells_torn_reads) {
  // Sketch and ExponentialHistogram cells are updated in place, several doubles per value,
  // and their slow paths (moving the window, collapsing, downscaling) rewrite the whole
  // cell. The collector reads them mid-update, so Merge sees torn states: it must stay in
  // bounds (ASan) and the checkpoint must be exact once the writers stop.
  // Writers run the core's reference Update on a private copy and publish each changed
  // double with a relaxed atomic store: the JS plain stores, visible to TSan.
  RecordMap m;
  const uint32_t dom = m.RegisterDomain("dist");
  Descriptor sd = MakeDesc("dist.sketch", AggregationKind::Sketch);
  sd.maxSize = 16;  // small windows: the slow paths run all the time
  Descriptor ed = MakeDesc("dist.exphist", AggregationKind::ExponentialHistogram);
  ed.maxSize = 8;
  const size_t sn = CellSize(sd), en = CellSize(ed);
  REQUIRE(sn == sketch::CellSize(16));
  REQUIRE(en == exphist::CellSize(8));
  const sketch::Mapping mapping(sd.relativeAccuracy);
  const int32_t maxScale = ed.maxScale;
  const uint32_t sketchId = m.RegisterInstrument("dist.sketch", sd, nullptr, dom);
  const uint32_t exphistId = m.RegisterInstrument("dist.exphist", ed, nullptr, dom);
  const std::map<uint32_t, size_t> sizes = {{sketchId, sn}, {exphistId, en}};
  constexpr int kThreads = 3, kDistLabels = 8;
  const long iters = std::max<long>(2000, static_cast<long>(150000 * g_scale));
  std::vector<std::string> keys;
  for (int l = 0; l < kDistLabels; l++) keys.push_back(Key("shard", std::to_string(l)));

  // Final private states, [thread][label], for the expected merge.
  std::vector<std::vector<std::vector<double>>> finalSketch(kThreads), finalExphist(kThreads);
  std::vector<uint32_t> arenas(kThreads, 0);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const uint32_t arena = m.RegisterArena();
      arenas[t] = arena;
      std::vector<double*> sc(kDistLabels, nullptr), ec(kDistLabels, nullptr);
      std::vector<std::vector<double>> sp(kDistLabels), ep(kDistLabels);  // private copies
      std::vector<double> before;
      auto publish = [&](double* cell, const std::vector<double>& now) {
        for (size_t i = 0; i < now.size(); i++) {
          if (now[i] != before[i]) StoreRelaxed(cell[i], now[i]);
        }
      };
      std::mt19937_64 rng(1000 + static_cast<uint64_t>(t));
      bool ok = true;
      for (int l = 0; l < kDistLabels && ok; l++) {
        Acquired a, b;
        ok = m.Acquire(arena, sketchId, keys[l], 0, &a) && m.Acquire(arena, exphistId, keys[l], 0, &b);
        if (!ok) break;
        sc[l] = CellPtr(m, arena, a, sn);
        ec[l] = CellPtr(m, arena, b, en);
        ok = sc[l] && ec[l];
        if (!ok) break;
        sp[l] = Identity(AggregationKind::Sketch, sn);
        ep[l] = Identity(AggregationKind::ExponentialHistogram, en);
        CHECK_EQ(std::vector<double>(sc[l], sc[l] + sn), sp[l]);
        CHECK_EQ(std::vector<double>(ec[l], ec[l] + en), ep[l]);
      }
      if (!ok) Fail(__FILE__, __LINE__, "Acquire failed");
      for (long i = 0; i < iters && ok; i++) {
        const int l = static_cast<int>(rng() % kDistLabels);
        // Integers over six decades (and zeros): sums stay exact, windows keep moving.
        const int bits = static_cast<int>(rng() % 21);
        const double mag = static_cast<double>(rng() & ((uint64_t{1} << bits) - 1));
        before = sp[l];
        sketch::Update(sp[l].data(), sn, mapping, mag);
        publish(sc[l], sp[l]);
        const double v = (rng() & 1) ? -mag : mag;
        before = ep[l];
        exphist::Update(ep[l].data(), en, maxScale, v);
        publish(ec[l], ep[l]);
      }
      finalSketch[t] = sp;
      finalExphist[t] = ep;
      if (t == 0) m.RetireArena(arena);  // one thread exits, the others stay
      done.fetch_add(1);
    });
  }

  long collects = 0;
  std::map<uint64_t, double> lastCount;
  do {
    Collected c = DoCollect(m, sizes, collects % 2 == 1, 0, dom);
    collects++;
    if (!c.ok) break;
    for (const Row& r : c.rows) {
      // count is one double per cell, so the merged count only grows, whatever else tore.
      const double count = r.state[0];
      CHECK(count >= lastCount[r.id]);
      CHECK(count <= static_cast<double>(kThreads) * static_cast<double>(iters));
      lastCount[r.id] = count;
    }
    CHECK(c.reclaimed.empty());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  } while (done.load() < kThreads);
  for (auto& th : threads) th.join();

  // Expected: every thread's final state merged, in the reverse of Collect's order (the
  // retired thread 0 first, then live cells): Merge is order-independent.
  std::vector<DistNorm> expSketch(kDistLabels), expExphist(kDistLabels);
  double totalCount = 0;
  for (int l = 0; l < kDistLabels; l++) {
    std::vector<double> s = Identity(AggregationKind::Sketch, sn), e = Identity(AggregationKind::ExponentialHistogram, en);
    for (int t = kThreads - 1; t >= 0; t--) {
      if (finalSketch[t].size() != static_cast<size_t>(kDistLabels)) continue;
      MergeState(AggregationKind::Sketch, s.data(), finalSketch[t][l].data(), sn);
      MergeState(AggregationKind::ExponentialHistogram, e.data(), finalExphist[t][l].data(), en);
    }
    // Every value is accounted for: zero count plus buckets equals the count.
    CHECK_EQ(sketch::Total(s.data(), sn), s[sketch::kCount]);
    CHECK_EQ(exphist::Total(e.data(), en), e[exphist::kCount]);
    totalCount += s[sketch::kCount];
    expSketch[l] = NormSketch(s);
    expExphist[l] = NormExphist(e);
  }
  CHECK_EQ(totalCount, static_cast<double>(kThreads) * static_cast<double>(iters));

  auto check_final = [&](const char* when) {
    Collected c = DoCollect(m, sizes, false, 0, dom);
    if (!c.ok) return;
    CHECK_EQ(c.rows.size(), static_cast<size_t>(2 * kDistLabels));
    int bad = 0;
    for (const Row& r : c.rows) {
      uint32_t inst = 0;
      std::string key;
      if (!m.RecordInfo(r.id, &inst, &key)) {
        bad++;
        continue;
      }
      const int l = static_cast<int>(std::find(keys.begin(), keys.end(), key) - keys.begin());
      if (l >= kDistLabels) {
        bad++;
        continue;
      }
      const bool isSketch = r.instrument == sketchId;
      const DistNorm got = isSketch ? NormSketch(r.state) : NormExphist(r.state);
      const DistNorm& want = isSketch ? expSketch[l] : expExphist[l];
      if (!(got == want) && bad++ < 3) {
        Fail(__FILE__, __LINE__, std::string(when) + (isSketch ? ": sketch " : ": exphist ") + ShowNorm(got) +
                                     " != " + ShowNorm(want));
      }
    }
    CHECK_EQ(bad, 0);
  };
  check_final("after join");
  for (int t = 1; t < kThreads; t++) m.RetireArena(arenas[t]);
  CHECK_EQ(m.ArenaBytes(), 0u);
  check_final("after every arena retired");
  std::printf("    distribution stress: %ld values x 2 aggregations by %d writers, %ld concurrent collects\n",
              static_cast<long>(kThreads) * iters, kThreads, collects);
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
