// Tests of the aggregators (native/core/aggregator.h): cell sizes, initial states, merges, buckets.
//
// Usage: core_aggregator_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "core_helpers.h"

namespace {

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

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
