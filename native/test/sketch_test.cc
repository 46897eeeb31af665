// Tests of the distribution aggregators of the native core: the quantile sketch
// (native/core/sketch.*), the base-2 exponential histogram (native/core/exponential_histogram.*)
// and the Exact aggregation's cell, through their own API, the aggregator dispatch and
// the RecordMap. Self-contained: no framework, no Node. Built by CMakeLists.txt (plain
// cmake) and run by scripts/native-test.sh.
//
// Usage: sketch_test [--list] [name-substring ...]
// The last line printed is always "N passed, M failed"; the exit status is 1 if M > 0.
#include <algorithm>
#include <atomic>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../core/aggregator.h"
#include "../core/descriptor.h"
#include "../core/exponential_histogram.h"
#include "../core/record.h"
#include "../core/record_map.h"
#include "../core/sketch.h"
#include "check.h"

using namespace hotmeter;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Relative closeness for sums, whose float rounding depends on the merge order.
bool Close(double a, double b) { return a == b || std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)); }

// ---------------------------------------------------------------------------------------
// Distributions.

enum class Dist { Uniform, LogNormal, Pareto, Exponential, Mixed };
const char* DistName(Dist d) {
  switch (d) {
    case Dist::Uniform: return "uniform(0,1)";
    case Dist::LogNormal: return "lognormal(0,1)";
    case Dist::Pareto: return "pareto(1,1.5)";
    case Dist::Exponential: return "exponential(1)";
    case Dist::Mixed: return "mixed";
  }
  return "?";
}

double Draw(std::mt19937_64& rng, Dist d) {
  std::uniform_real_distribution<double> u(0, 1);
  switch (d) {
    case Dist::Uniform: return u(rng);
    case Dist::LogNormal: return std::lognormal_distribution<double>(0, 1)(rng);
    case Dist::Pareto: return std::pow(1 - u(rng), -1 / 1.5);  // x_m = 1, shape 1.5
    case Dist::Exponential: return std::exponential_distribution<double>(1)(rng);
    case Dist::Mixed: {
      double x = u(rng);
      if (x < 0.05) return 0;
      if (x < 0.5) return std::lognormal_distribution<double>(-3, 0.5)(rng);
      return std::lognormal_distribution<double>(1, 2)(rng);
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------
// Sketch helpers.

std::vector<double> SketchState(uint32_t bins) {
  std::vector<double> s(sketch::CellSize(bins), std::nan(""));
  sketch::Init(s.data(), s.size());
  return s;
}

struct SketchNorm {
  double count = 0, sum = 0, min = 0, max = 0, zero = 0;
  std::map<int64_t, double> bins;  // key -> count
};

SketchNorm Normalize(const std::vector<double>& s) {
  SketchNorm n;
  n.count = s[sketch::kCount];
  n.sum = s[sketch::kSum];
  n.min = s[sketch::kMin];
  n.max = s[sketch::kMax];
  n.zero = s[sketch::kZero];
  if (std::isfinite(s[sketch::kBase])) {
    const auto base = static_cast<int64_t>(s[sketch::kBase]);
    for (size_t i = sketch::kHeader; i < s.size(); i++) {
      if (s[i] != 0) n.bins[base + static_cast<int64_t>(i - sketch::kHeader)] = s[i];
    }
  }
  return n;
}

bool SameSketch(const SketchNorm& a, const SketchNorm& b, std::string* why) {
  if (a.count != b.count) return *why = "count " + Show(a.count) + " vs " + Show(b.count), false;
  if (!Close(a.sum, b.sum)) return *why = "sum " + Show(a.sum) + " vs " + Show(b.sum), false;
  if (a.min != b.min || a.max != b.max) return *why = "min/max", false;
  if (a.zero != b.zero) return *why = "zeroCount", false;
  if (a.bins != b.bins) return *why = "bins differ", false;
  return true;
}

// collapse(keys of `values`, m): what a sketch of m bins must hold, as key -> count.
SketchNorm ExpectedSketch(const sketch::Mapping& mp, const std::vector<double>& values, uint32_t m) {
  SketchNorm n;
  n.min = kInf;
  n.max = -kInf;
  std::vector<int64_t> keys;
  for (double v : values) {
    n.count++;
    n.sum += v;
    n.min = std::min(n.min, v);
    n.max = std::max(n.max, v);
    if (v < mp.MinIndexable()) n.zero++;
    else keys.push_back(mp.Key(v));
  }
  if (!keys.empty()) {
    const int64_t hi = *std::max_element(keys.begin(), keys.end());
    const int64_t floor = hi - static_cast<int64_t>(m) + 1;
    for (int64_t k : keys) n.bins[std::max(k, floor)]++;
  }
  return n;
}

std::vector<double> Merged(AggregationKind k, std::vector<double> a, const std::vector<double>& b) {
  MergeState(k, a.data(), b.data(), a.size());
  return a;
}

// Exact lower quantile: the value of rank floor(q (n - 1)) of sorted values.
double ExactQuantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)))];
}

const double kQuantiles[] = {0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

// ---------------------------------------------------------------------------------------
// Sketch tests.

TEST(sketch_mapping_relative_error) {
  for (double alpha : {0.001, 0.01, 0.02, 0.05, 0.2}) {
    sketch::Mapping mp(alpha);
    CHECK(std::fabs(mp.gamma() - (1 + alpha) / (1 - alpha)) < 1e-12);
    std::mt19937_64 rng(7);
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
      // log-uniform over the whole normal range
      const double v = std::exp(std::uniform_real_distribution<double>(-700, 700)(rng));
      const int64_t k = mp.Key(v);
      // bin k holds (gamma^(k-1), gamma^k]
      CHECK(std::pow(mp.gamma(), static_cast<double>(k - 1)) < v * (1 + 1e-12));
      CHECK(v <= std::pow(mp.gamma(), static_cast<double>(k)) * (1 + 1e-12));
      worst = std::max(worst, std::fabs(mp.Value(k) - v) / v);
    }
    CHECK_MSG(worst <= alpha * (1 + 1e-9), "alpha " + Show(alpha) + " worst " + Show(worst));
  }
  sketch::Mapping mp(0.01);
  CHECK(mp.MinIndexable() > DBL_MIN && mp.MinIndexable() < 2.3e-308);
  // Exact powers of gamma are the upper (inclusive) edge of their bin.
  for (int64_t k : {-50, -1, 0, 1, 7, 300}) {
    const double v = mp.Value(k) * (1 + mp.gamma()) / 2;  // ~ gamma^k
    CHECK(mp.Key(v * (1 - 1e-9)) == k);
    CHECK(mp.Key(v * (1 + 1e-9)) == k + 1);
  }
  CHECK(mp.Key(1) == 0);
}

TEST(sketch_identity_and_empty) {
  std::vector<double> s(sketch::CellSize(16), 12345.0);
  sketch::Init(s.data(), s.size());
  CHECK_EQ(s[sketch::kCount], 0);
  CHECK_EQ(s[sketch::kMin], kInf);
  CHECK_EQ(s[sketch::kMax], -kInf);
  CHECK_EQ(s[sketch::kBase], kInf);
  for (size_t i = sketch::kHeader; i < s.size(); i++) CHECK_EQ(s[i], 0);
  sketch::Mapping mp(0.01);
  CHECK(std::isnan(sketch::Quantile(s.data(), s.size(), mp, 0.5)));
  // The aggregator dispatch gives the same identity and activity 0.
  std::vector<double> t(s.size(), 1.0);
  InitState(AggregationKind::Sketch, t.data(), t.size());
  CHECK(t == s);
  CHECK_EQ(Activity(AggregationKind::Sketch, t.data(), t.size()), 0);
  // Zeros and tiny values go to the zero count; quantiles of zeros are 0.
  sketch::Update(s.data(), s.size(), mp, 0);
  sketch::Update(s.data(), s.size(), mp, 1e-310);
  sketch::Update(s.data(), s.size(), mp, 0);
  CHECK_EQ(s[sketch::kZero], 3);
  CHECK_EQ(s[sketch::kBase], kInf);
  CHECK_EQ(sketch::Quantile(s.data(), s.size(), mp, 0.5), 0);
  CHECK_EQ(sketch::Quantile(s.data(), s.size(), mp, 1), 1e-310);
  CHECK(std::isnan(sketch::Quantile(s.data(), s.size(), mp, 1.5)));
  CHECK(std::isnan(sketch::Quantile(s.data(), s.size(), mp, std::nan(""))));
  // Merge with the identity changes nothing, on either side, bin for bin.
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 200; trial++) {
    std::vector<double> a = SketchState(16), id = SketchState(16);
    const int n = static_cast<int>(rng() % 50);
    for (int i = 0; i < n; i++) sketch::Update(a.data(), a.size(), mp, Draw(rng, Dist::Mixed));
    CHECK(Merged(AggregationKind::Sketch, a, id) == a);
    CHECK(Merged(AggregationKind::Sketch, id, a) == a);
  }
}

TEST(sketch_update_matches_collapse_of_keys) {
  // A single stream holds collapse(keys, M), whatever the order of the values: the
  // window moves up and down and collapses into the lowest kept key.
  std::mt19937_64 rng(2);
  for (uint32_t m : {2u, 3u, 8u, 16u, 64u, 320u}) {
    for (double alpha : {0.01, 0.05}) {
      sketch::Mapping mp(alpha);
      for (int trial = 0; trial < 60; trial++) {
        std::vector<double> s = SketchState(m), values;
        const int n = 1 + static_cast<int>(rng() % 400);
        const Dist d = static_cast<Dist>(rng() % 5);
        for (int i = 0; i < n; i++) values.push_back(Draw(rng, d));
        if (trial % 3 == 1) std::sort(values.begin(), values.end());
        if (trial % 3 == 2) std::sort(values.rbegin(), values.rend());
        for (double v : values) sketch::Update(s.data(), s.size(), mp, v);
        std::string why;
        if (!SameSketch(Normalize(s), ExpectedSketch(mp, values, m), &why)) {
          Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + " " + DistName(d) + ": " + why);
          return;
        }
        CHECK_EQ(sketch::Total(s.data(), s.size()), s[sketch::kCount]);
      }
    }
  }
}

TEST(sketch_merge_associative_commutative) {
  std::mt19937_64 rng(3);
  sketch::Mapping mp(0.02);
  int collapsedMerges = 0;
  for (uint32_t m : {2u, 5u, 16u, 40u, 128u}) {
    auto random_state = [&](std::vector<double>* values) {
      std::vector<double> s = SketchState(m);
      const int n = static_cast<int>(rng() % 300);
      const Dist d = static_cast<Dist>(rng() % 5);
      const double scale = std::exp(std::uniform_real_distribution<double>(-10, 10)(rng));
      for (int i = 0; i < n; i++) {
        const double v = Draw(rng, d) * scale;
        values->push_back(v);
        sketch::Update(s.data(), s.size(), mp, v);
      }
      return s;
    };
    for (int trial = 0; trial < 300; trial++) {
      std::vector<double> va, vb, vc;
      auto a = random_state(&va), b = random_state(&vb), c = random_state(&vc);
      const auto k = AggregationKind::Sketch;
      const auto ab = Merged(k, a, b), ba = Merged(k, b, a);
      const auto left = Merged(k, ab, c), right = Merged(k, a, Merged(k, b, c));
      std::string why;
      // Commutative bin for bin (the window is a function of the used keys).
      for (size_t i = 0; i < ab.size(); i++) {
        if (i == sketch::kSum ? !Close(ab[i], ba[i]) : ab[i] != ba[i]) {
          Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + ": merge not commutative at " + std::to_string(i));
          return;
        }
      }
      if (!SameSketch(Normalize(left), Normalize(right), &why)) {
        Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + ": merge not associative: " + why);
        return;
      }
      // Merging the parts equals the whole stream (the property Collect relies on).
      std::vector<double> all = va;
      all.insert(all.end(), vb.begin(), vb.end());
      all.insert(all.end(), vc.begin(), vc.end());
      const SketchNorm whole = ExpectedSketch(mp, all, m);
      if (!SameSketch(Normalize(left), whole, &why)) {
        Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + ": merge != whole stream: " + why);
        return;
      }
      if (whole.bins.size() > 1 && !whole.bins.empty() &&
          whole.bins.rbegin()->first - whole.bins.begin()->first + 1 >= static_cast<int64_t>(m)) {
        collapsedMerges++;
      }
      // Every bin of the result is inside its window.
      CHECK_EQ(sketch::Total(left.data(), left.size()), left[sketch::kCount]);
    }
  }
  CHECK(collapsedMerges > 100);  // the collapsing path was exercised
}

TEST(sketch_merge_different_windows) {
  // Two sketches far apart: the merge re-centers and collapses the low one.
  sketch::Mapping mp(0.01);
  const uint32_t m = 64;
  std::vector<double> lo = SketchState(m), hi = SketchState(m);
  std::vector<double> vlo, vhi;
  for (int i = 1; i <= 100; i++) {
    vlo.push_back(1e-3 * (1 + i / 100.0));
    vhi.push_back(1e3 * (1 + i / 100.0));
  }
  for (double v : vlo) sketch::Update(lo.data(), lo.size(), mp, v);
  for (double v : vhi) sketch::Update(hi.data(), hi.size(), mp, v);
  auto merged = Merged(AggregationKind::Sketch, lo, hi);
  std::vector<double> all = vlo;
  all.insert(all.end(), vhi.begin(), vhi.end());
  std::string why;
  CHECK_MSG(SameSketch(Normalize(merged), ExpectedSketch(mp, all, m), &why), why);
  // The upper half is still exact to alpha; the low half collapsed (estimate >= truth).
  std::sort(all.begin(), all.end());
  for (double q : {0.6, 0.75, 0.9, 0.99}) {
    const double e = sketch::Quantile(merged.data(), merged.size(), mp, q), x = ExactQuantile(all, q);
    CHECK_MSG(std::fabs(e - x) <= 0.01 * x * (1 + 1e-9), "q " + Show(q));
  }
  CHECK(sketch::Quantile(merged.data(), merged.size(), mp, 0.25) > ExactQuantile(all, 0.25));
  // Two windows that fit together keep every bin.
  std::vector<double> a = SketchState(m), b = SketchState(m), va, vb;
  for (int i = 0; i < 50; i++) {
    va.push_back(1 + i * 0.01);
    vb.push_back(1.5 + i * 0.01);
  }
  for (double v : va) sketch::Update(a.data(), a.size(), mp, v);
  for (double v : vb) sketch::Update(b.data(), b.size(), mp, v);
  CHECK(a[sketch::kBase] != b[sketch::kBase]);
  va.insert(va.end(), vb.begin(), vb.end());
  const auto ab = Merged(AggregationKind::Sketch, a, b);
  CHECK_MSG(SameSketch(Normalize(ab), ExpectedSketch(mp, va, m), &why), why);
  CHECK_EQ(ExpectedSketch(mp, va, m).bins.size(), Normalize(ab).bins.size());
}

struct ErrorStats {
  double worst = 0;
  double worstQ = 0;
};

// The worst relative error of the sketch's quantiles (kQuantiles) on `n` values of `d`.
// Quantiles whose exact value fell into a collapsed bin (only when the keys span more
// than m bins) are skipped; *collapsed tells whether there were any.
ErrorStats QuantileErrors(Dist d, double alpha, uint32_t m, int n, uint64_t seed, bool* collapsed) {
  std::mt19937_64 rng(seed);
  sketch::Mapping mp(alpha);
  std::vector<double> s = SketchState(m), values;
  for (int i = 0; i < n; i++) {
    const double v = Draw(rng, d);
    values.push_back(v);
    sketch::Update(s.data(), s.size(), mp, v);
  }
  std::sort(values.begin(), values.end());
  int64_t minKey = INT64_MAX, maxKey = INT64_MIN;
  for (double v : values) {
    if (v < mp.MinIndexable()) continue;
    minKey = std::min(minKey, mp.Key(v));
    maxKey = std::max(maxKey, mp.Key(v));
  }
  const int64_t lowestKept = maxKey - static_cast<int64_t>(m) + 1;
  *collapsed = minKey < lowestKept;
  ErrorStats st;
  for (double q : kQuantiles) {
    const double x = ExactQuantile(values, q);
    if (*collapsed && x >= mp.MinIndexable() && mp.Key(x) <= lowestKept && q > 0) continue;
    const double e = sketch::Quantile(s.data(), s.size(), mp, q);
    const double err = x == 0 ? std::fabs(e) : std::fabs(e - x) / x;
    if (err > st.worst) {
      st.worst = err;
      st.worstQ = q;
    }
  }
  return st;
}

TEST(sketch_quantile_error_within_alpha) {
  for (Dist d : {Dist::Uniform, Dist::LogNormal, Dist::Pareto, Dist::Exponential, Dist::Mixed}) {
    for (double alpha : {0.005, 0.01, 0.05}) {
      // Bins enough for the whole range: every quantile is within alpha.
      bool collapsed = false;
      ErrorStats big = QuantileErrors(d, alpha, 4096, 100000, 11, &collapsed);
      CHECK_MSG(big.worst <= alpha * (1 + 1e-9),
                std::string(DistName(d)) + " alpha " + Show(alpha) + " worst " + Show(big.worst) + " at q " + Show(big.worstQ));
      // The default bins: the quantiles above the collapsed bin stay within alpha.
      ErrorStats def = QuantileErrors(d, alpha, sketch::kDefaultBins, 100000, 12, &collapsed);
      CHECK_MSG(def.worst <= alpha * (1 + 1e-9),
                std::string(DistName(d)) + " (default bins) alpha " + Show(alpha) + " worst " + Show(def.worst));
      if (alpha == 0.01) {
        std::printf("    %-15s alpha %.3f: max relative error %.5f (4096 bins), %.5f (%u bins%s)\n",
                    DistName(d), alpha, big.worst, def.worst, sketch::kDefaultBins, collapsed ? ", low end collapsed" : "");
      }
    }
  }
  // With the default bins (a ratio of ~2.7e4 below the max at alpha 0.01), the median
  // and above are kept for these distributions; the bimodal mix spans ~1e5 and keeps
  // its upper tail.
  for (Dist d : {Dist::Uniform, Dist::LogNormal, Dist::Pareto, Dist::Exponential, Dist::Mixed}) {
    std::mt19937_64 rng(13);
    sketch::Mapping mp(0.01);
    std::vector<double> s = SketchState(sketch::kDefaultBins), values;
    for (int i = 0; i < 100000; i++) {
      values.push_back(Draw(rng, d));
      sketch::Update(s.data(), s.size(), mp, values.back());
    }
    std::sort(values.begin(), values.end());
    for (double q : {0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
      if (d == Dist::Mixed && q < 0.9) continue;
      const double x = ExactQuantile(values, q), e = sketch::Quantile(s.data(), s.size(), mp, q);
      CHECK_MSG(std::fabs(e - x) <= 0.01 * x * (1 + 1e-9), std::string(DistName(d)) + " q " + Show(q));
    }
    CHECK_EQ(sketch::Quantile(s.data(), s.size(), mp, 0), values.front());
    CHECK_EQ(sketch::Quantile(s.data(), s.size(), mp, 1), values.back());
    CHECK_EQ(s[sketch::kCount], 100000);
  }
}

TEST(sketch_through_record_map) {
  // A Sketch instrument with its own parameters: CellSize(descriptor), Acquire's cell
  // initialisation, Collect's checkpoint of two threads' cells (two arenas).
  RecordMap m;
  Descriptor d;
  d.name = "latency";
  d.kind = InstrumentKind::Histogram;
  d.aggregation = AggregationKind::Sketch;
  d.relativeAccuracy = 0.02;
  d.maxSize = 100;
  const size_t n = CellSize(d);
  CHECK_EQ(n, sketch::kHeader + 100);
  CHECK_EQ(CellSize(AggregationKind::Sketch, 0), sketch::kHeader + sketch::kDefaultBins);
  const uint32_t domain = m.RegisterDomain("");
  bool existed = true;
  const uint32_t inst = m.RegisterInstrument("latency", d, &existed, domain);
  CHECK(!existed);
  const uint32_t a1 = m.RegisterArena(), a2 = m.RegisterArena();
  Acquired c1, c2;
  REQUIRE(m.Acquire(a1, inst, EncodeLabelKey({"k", "v"}), 0, &c1));
  REQUIRE(m.Acquire(a2, inst, EncodeLabelKey({"k", "v"}), 0, &c2));
  REQUIRE(c1.recordId == c2.recordId);
  double *p1 = nullptr, *p2 = nullptr;
  size_t dbl = 0;
  REQUIRE(m.SlabMemory(a1, c1.slab, &p1, &dbl));
  REQUIRE(m.SlabMemory(a2, c2.slab, &p2, &dbl));
  p1 += c1.offset;
  p2 += c2.offset;
  CHECK_EQ(p1[sketch::kBase], kInf);  // initialised by Acquire
  sketch::Mapping mp(0.02);
  std::mt19937_64 rng(5);  // 100 bins at alpha 0.02 keep a ratio of ~50 below the max
  std::vector<double> all;
  for (int i = 0; i < 5000; i++) {
    const double v = Draw(rng, Dist::Exponential);
    all.push_back(v);
    sketch::Update(i % 2 ? p1 : p2, n, mp, v);
  }
  std::vector<double> out;
  CollectOptions opts;
  opts.domain = domain;
  m.Collect(opts, &out);
  REQUIRE(out.size() == 3 + 4 + n);
  CHECK_EQ(out[1], 1);
  std::vector<double> st(out.begin() + 7, out.end());
  std::string why;
  CHECK_MSG(SameSketch(Normalize(st), ExpectedSketch(mp, all, 100), &why), why);
  std::sort(all.begin(), all.end());
  for (double q : {0.5, 0.9, 0.99}) {
    const double x = ExactQuantile(all, q), e = sketch::Quantile(st.data(), st.size(), mp, q);
    CHECK_MSG(std::fabs(e - x) <= 0.02 * x * (1 + 1e-9), "q " + Show(q) + ": " + Show(e) + " vs " + Show(x) + " max " + Show(all.back()));
  }
  // A thread exit folds its cell into the record; nothing is lost.
  m.RetireArena(a1);
  out.clear();
  m.Collect(opts, &out);
  REQUIRE(out.size() == 3 + 4 + n);
  std::vector<double> st2(out.begin() + 7, out.end());
  CHECK_MSG(SameSketch(Normalize(st2), Normalize(st), &why), why);
  Descriptor got;
  REQUIRE(m.GetDescriptor(inst, &got));
  CHECK_EQ(got.maxSize, 100);
  CHECK_EQ(got.relativeAccuracy, 0.02);
}

// ---------------------------------------------------------------------------------------
// Exponential histogram helpers.

std::vector<double> ExpState(uint32_t maxSize) {
  std::vector<double> s(exphist::CellSize(maxSize), std::nan(""));
  exphist::Init(s.data(), s.size());
  return s;
}

struct ExpNorm {
  double count = 0, sum = 0, min = 0, max = 0, zero = 0;
  int32_t scale = 0;
  std::map<int64_t, double> pos, neg;
};

ExpNorm Normalize(const std::vector<double>& s, bool) {
  ExpNorm n;
  n.count = s[exphist::kCount];
  n.sum = s[exphist::kSum];
  n.min = s[exphist::kMin];
  n.max = s[exphist::kMax];
  n.zero = s[exphist::kZero];
  n.scale = static_cast<int32_t>(s[exphist::kScale]);
  const size_t m = (s.size() - exphist::kHeader) / 2;
  for (bool positive : {true, false}) {
    const double base = s[positive ? exphist::kPosBase : exphist::kNegBase];
    if (!std::isfinite(base)) continue;
    for (size_t i = 0; i < m; i++) {
      const double c = s[exphist::kHeader + (positive ? 0 : m) + i];
      if (c != 0) (positive ? n.pos : n.neg)[static_cast<int64_t>(base) + static_cast<int64_t>(i)] = c;
    }
  }
  return n;
}

bool SameExp(const ExpNorm& a, const ExpNorm& b, std::string* why) {
  if (a.count != b.count) return *why = "count " + Show(a.count) + " vs " + Show(b.count), false;
  if (!Close(a.sum, b.sum)) return *why = "sum", false;
  if (a.min != b.min || a.max != b.max) return *why = "min/max", false;
  if (a.zero != b.zero) return *why = "zeroCount", false;
  if (a.scale != b.scale) return *why = "scale " + std::to_string(a.scale) + " vs " + std::to_string(b.scale), false;
  if (a.pos != b.pos) return *why = "positive buckets differ", false;
  if (a.neg != b.neg) return *why = "negative buckets differ", false;
  return true;
}

// The histogram `values` must give: the largest scale <= maxScale at which each range's
// indices span at most m, every value mapped directly at that scale.
ExpNorm ExpectedExp(const std::vector<double>& values, uint32_t m, int32_t maxScale) {
  ExpNorm n;
  n.min = kInf;
  n.max = -kInf;
  n.scale = exphist::kMaxScale;
  bool any = false;
  for (double v : values) {
    n.count++;
    n.sum += v;
    n.min = std::min(n.min, v);
    n.max = std::max(n.max, v);
    if (v == 0) n.zero++;
    else any = true;
  }
  if (!any) return n;
  for (int32_t scale = maxScale;; scale--) {
    int64_t lo[2] = {INT64_MAX, INT64_MAX}, hi[2] = {INT64_MIN, INT64_MIN};
    for (double v : values) {
      if (v == 0) continue;
      const int r = v > 0 ? 0 : 1;
      const int64_t i = exphist::MapToIndex(std::fabs(v), scale);
      lo[r] = std::min(lo[r], i);
      hi[r] = std::max(hi[r], i);
    }
    bool fits = true;
    for (int r = 0; r < 2; r++) {
      if (lo[r] != INT64_MAX && hi[r] - lo[r] + 1 > static_cast<int64_t>(m)) fits = false;
    }
    if (fits) {
      n.scale = scale;
      for (double v : values) {
        if (v == 0) continue;
        (v > 0 ? n.pos : n.neg)[exphist::MapToIndex(std::fabs(v), scale)]++;
      }
      return n;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Exponential histogram tests.

TEST(exphist_index_known_values) {
  using exphist::MapToIndex;
  // Scale 0: bucket i is (2^i, 2^(i+1)].
  CHECK_EQ(MapToIndex(1, 0), -1);
  CHECK_EQ(MapToIndex(1.5, 0), 0);
  CHECK_EQ(MapToIndex(2, 0), 0);
  CHECK_EQ(MapToIndex(3, 0), 1);
  CHECK_EQ(MapToIndex(4, 0), 1);
  CHECK_EQ(MapToIndex(4.000000001, 0), 2);
  CHECK_EQ(MapToIndex(0.5, 0), -2);
  CHECK_EQ(MapToIndex(0.75, 0), -1);
  // Scale 1: base sqrt(2).
  CHECK_EQ(MapToIndex(1, 1), -1);
  CHECK_EQ(MapToIndex(1.4, 1), 0);
  CHECK_EQ(MapToIndex(1.5, 1), 1);
  CHECK_EQ(MapToIndex(2, 1), 1);
  CHECK_EQ(MapToIndex(2.5, 1), 2);
  CHECK_EQ(MapToIndex(4, 1), 3);
  // Scale -1: base 4.
  CHECK_EQ(MapToIndex(1, -1), -1);
  CHECK_EQ(MapToIndex(2, -1), 0);
  CHECK_EQ(MapToIndex(4, -1), 0);
  CHECK_EQ(MapToIndex(5, -1), 1);
  CHECK_EQ(MapToIndex(16, -1), 1);
  CHECK_EQ(MapToIndex(17, -1), 2);
  // Scale -10 holds every positive double in buckets -1 and 0.
  CHECK_EQ(MapToIndex(DBL_MAX, -10), 0);
  CHECK_EQ(MapToIndex(1, -10), -1);
  CHECK_EQ(MapToIndex(2.5, -10), 0);
  CHECK_EQ(MapToIndex(DBL_MIN, -10), -1);
  CHECK_EQ(MapToIndex(5e-324, -10), -1);
  // Scale 3, OpenTelemetry's example boundaries: 2^(i/8).
  CHECK_EQ(MapToIndex(std::pow(2, 1.0 / 8) * (1 + 1e-12), 3), 1);
  CHECK_EQ(MapToIndex(std::pow(2, 1.0 / 8) * (1 - 1e-12), 3), 0);
  // Extremes at the max scale.
  CHECK_EQ(MapToIndex(DBL_MAX, 20), (int64_t{1024} << 20) - 1);
  CHECK_EQ(MapToIndex(DBL_MIN, 20), (int64_t{-1022} << 20) - 1);
  CHECK_EQ(MapToIndex(1e-310, 20), (int64_t{-1022} << 20) - 1);  // subnormal
  CHECK_EQ(MapToIndex(1e-310, 0), -1023);
  CHECK_EQ(MapToIndex(1e-310, -2), -256);
  CHECK_EQ(MapToIndex(1e-310, -1), -512);

  // Every power of two at every scale sits at the top of its bucket; the next double up
  // starts the next bucket (scale >= 0), and powers of two are the scale <= 0 boundaries.
  int checked = 0;
  for (int32_t scale = -10; scale <= 20; scale++) {
    for (int e = -1022; e <= 1023; e++) {
      const double v = std::ldexp(1.0, e);
      const int64_t i = MapToIndex(v, scale);
      const int64_t expect = scale > 0 ? (int64_t{e} << scale) - 1 : (int64_t{e} - 1) >> -scale;
      if (i != expect) {
        Fail(__FILE__, __LINE__, "2^" + std::to_string(e) + " at scale " + std::to_string(scale) + ": " +
                                     std::to_string(i) + " vs " + std::to_string(expect));
        return;
      }
      if (scale == 0 && e < 1023) CHECK_EQ(MapToIndex(std::nextafter(v, kInf), scale), i + 1);
      if (scale > 0 && e < 1023) {
        // (The logarithm is not exact next to a boundary; a relative 1e-9 is far enough.)
        CHECK_EQ(MapToIndex(v * (1 + 1e-9), scale), i + 1);
        CHECK_EQ(MapToIndex(v * (1 - 1e-9), scale), i);
      }
      if (scale <= 0 && (e % (1 << -scale)) == 0 && e > -1022) {
        CHECK_EQ(MapToIndex(std::nextafter(v, kInf), scale), i + 1);
      }
      checked++;
    }
  }
  CHECK(checked == 31 * 2046);
  // Random values lie within their bucket's boundaries.
  std::mt19937_64 rng(9);
  for (int32_t scale : {-4, -1, 0, 1, 3, 8, 20}) {
    for (int k = 0; k < 20000; k++) {
      const double v = std::exp(std::uniform_real_distribution<double>(-600, 600)(rng));
      const int64_t i = MapToIndex(v, scale);
      const double lo = exphist::LowerBoundary(i, scale), hi = exphist::LowerBoundary(i + 1, scale);
      CHECK(lo <= v * (1 + 1e-12) && v <= hi * (1 + 1e-12));
    }
  }
}

TEST(exphist_identity_and_zero) {
  std::vector<double> s(exphist::CellSize(8), 777.0);
  InitState(AggregationKind::ExponentialHistogram, s.data(), s.size());
  CHECK_EQ(s[exphist::kScale], 20);
  CHECK_EQ(s[exphist::kPosBase], kInf);
  CHECK_EQ(s[exphist::kNegBase], kInf);
  CHECK_EQ(s[exphist::kMin], kInf);
  CHECK_EQ(Activity(AggregationKind::ExponentialHistogram, s.data(), s.size()), 0);
  CHECK_EQ(CellSize(AggregationKind::ExponentialHistogram, 0), exphist::CellSize(160));
  exphist::Update(s.data(), s.size(), 20, 0);
  CHECK_EQ(s[exphist::kZero], 1);
  CHECK_EQ(s[exphist::kScale], 20);
  // The first value sets the configured max scale.
  exphist::Update(s.data(), s.size(), 5, 3.0);
  CHECK_EQ(s[exphist::kScale], 5);
  CHECK_EQ(exphist::BucketCount(s.data(), s.size(), true, exphist::MapToIndex(3.0, 5)), 1);
  CHECK_EQ(Activity(AggregationKind::ExponentialHistogram, s.data(), s.size()), 2);
  // Merge with the identity, either side, changes nothing.
  std::mt19937_64 rng(2);
  for (int trial = 0; trial < 200; trial++) {
    std::vector<double> a = ExpState(8), id = ExpState(8);
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; i++) {
      exphist::Update(a.data(), a.size(), 20, Draw(rng, Dist::Mixed) * (rng() % 4 == 0 ? -1 : 1));
    }
    CHECK(Merged(AggregationKind::ExponentialHistogram, a, id) == a);
    CHECK(Merged(AggregationKind::ExponentialHistogram, id, a) == a);
  }
}

TEST(exphist_downscale_preserves_counts) {
  std::mt19937_64 rng(4);
  int downscaled = 0;
  for (uint32_t m : {2u, 3u, 4u, 16u, 160u}) {
    for (int32_t maxScale : {20, 8, 0, -3}) {
      for (int trial = 0; trial < 40; trial++) {
        std::vector<double> s = ExpState(m), values;
        const int n = 1 + static_cast<int>(rng() % 500);
        const Dist d = static_cast<Dist>(rng() % 5);
        const double spread = std::uniform_real_distribution<double>(0.1, 30)(rng);
        for (int i = 0; i < n; i++) {
          double v = std::pow(Draw(rng, d), spread);
          if (trial % 4 == 3 && rng() % 3 == 0) v = -v;
          if (!std::isfinite(v)) v = 1;
          values.push_back(v);
        }
        if (trial % 5 == 1) std::sort(values.begin(), values.end());
        if (trial % 5 == 2) std::sort(values.rbegin(), values.rend());
        for (double v : values) exphist::Update(s.data(), s.size(), maxScale, v);
        std::string why;
        const ExpNorm want = ExpectedExp(values, m, maxScale);
        if (!SameExp(Normalize(s, true), want, &why)) {
          Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + " maxScale " + std::to_string(maxScale) + " " +
                                       DistName(d) + ": " + why);
          return;
        }
        CHECK_EQ(exphist::Total(s.data(), s.size()), s[exphist::kCount]);
        if (want.scale < maxScale && (!want.pos.empty() || !want.neg.empty())) downscaled++;
      }
    }
  }
  CHECK(downscaled > 200);
  // A wide range at the default size: 1e-9 .. 1e9 needs scale 2 in 160 buckets.
  std::vector<double> s = ExpState(160);
  for (double v = 1e-9; v < 1e9; v *= 1.001) exphist::Update(s.data(), s.size(), 20, v);
  int64_t lo = 0, hi = 0;
  REQUIRE(exphist::UsedRange(s.data(), s.size(), true, &lo, &hi));
  CHECK(hi - lo + 1 <= 160);
  CHECK(s[exphist::kScale] < 20);
  CHECK_EQ(exphist::Total(s.data(), s.size()), s[exphist::kCount]);
  std::printf("    1e-9 .. 1e9 in 160 buckets: scale %g, %lld buckets used\n", s[exphist::kScale],
              static_cast<long long>(hi - lo + 1));
}

TEST(exphist_merge_different_scales) {
  // A narrow state at scale 20 and a wide one at a low scale: the merge takes the
  // smaller scale, then lowers it until the union fits.
  const uint32_t m = 20;
  std::vector<double> narrow = ExpState(m), wide = ExpState(m), vn, vw;
  for (int i = 0; i < 10; i++) vn.push_back(1 + i * 1e-6);
  for (int i = 0; i < 10; i++) vw.push_back(std::ldexp(1.0, i * 3));
  for (double v : vn) exphist::Update(narrow.data(), narrow.size(), 20, v);
  for (double v : vw) exphist::Update(wide.data(), wide.size(), 20, v);
  CHECK(narrow[exphist::kScale] > wide[exphist::kScale]);
  std::vector<double> all = vn;
  all.insert(all.end(), vw.begin(), vw.end());
  const ExpNorm want = ExpectedExp(all, m, 20);
  std::string why;
  const auto ab = Merged(AggregationKind::ExponentialHistogram, narrow, wide);
  const auto ba = Merged(AggregationKind::ExponentialHistogram, wide, narrow);
  CHECK_MSG(SameExp(Normalize(ab, true), want, &why), why);
  CHECK(ab == ba);
  CHECK(want.scale <= wide[exphist::kScale]);
  // Ranges that fit only at a lower scale than either state's.
  std::vector<double> a = ExpState(m), b = ExpState(m);
  for (int i = 0; i < 10; i++) exphist::Update(a.data(), a.size(), 20, 1 + i);
  for (int i = 0; i < 10; i++) exphist::Update(b.data(), b.size(), 20, 1e6 * (1 + i));
  std::vector<double> vab;
  for (int i = 0; i < 10; i++) vab.push_back(1 + i);
  for (int i = 0; i < 10; i++) vab.push_back(1e6 * (1 + i));
  const ExpNorm want2 = ExpectedExp(vab, m, 20);
  CHECK(want2.scale < std::min(a[exphist::kScale], b[exphist::kScale]));
  CHECK_MSG(SameExp(Normalize(Merged(AggregationKind::ExponentialHistogram, a, b), true), want2, &why), why);
}

TEST(exphist_merge_associative_commutative) {
  std::mt19937_64 rng(6);
  int scaleChanges = 0;
  for (uint32_t m : {2u, 4u, 12u, 40u, 160u}) {
    for (int32_t maxScale : {20, 4, -2}) {
      auto random_state = [&](std::vector<double>* values) {
        std::vector<double> s = ExpState(m);
        const int n = static_cast<int>(rng() % 200);
        const Dist d = static_cast<Dist>(rng() % 5);
        const double spread = std::uniform_real_distribution<double>(0.01, 10)(rng);
        const double scale = std::exp(std::uniform_real_distribution<double>(-20, 20)(rng));
        const bool negatives = rng() % 3 == 0;
        for (int i = 0; i < n; i++) {
          double v = std::pow(Draw(rng, d), spread) * scale;
          if (negatives && rng() % 2) v = -v;
          if (!std::isfinite(v)) v = 2;
          values->push_back(v);
          exphist::Update(s.data(), s.size(), maxScale, v);
        }
        return s;
      };
      for (int trial = 0; trial < 150; trial++) {
        std::vector<double> va, vb, vc;
        auto a = random_state(&va), b = random_state(&vb), c = random_state(&vc);
        const auto k = AggregationKind::ExponentialHistogram;
        const auto ab = Merged(k, a, b), ba = Merged(k, b, a);
        for (size_t i = 0; i < ab.size(); i++) {
          if (i == exphist::kSum ? !Close(ab[i], ba[i]) : ab[i] != ba[i]) {
            Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + ": merge not commutative at " + std::to_string(i));
            return;
          }
        }
        const auto left = Merged(k, ab, c), right = Merged(k, a, Merged(k, b, c));
        std::string why;
        if (!SameExp(Normalize(left, true), Normalize(right, true), &why)) {
          Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + ": merge not associative: " + why);
          return;
        }
        std::vector<double> all = va;
        all.insert(all.end(), vb.begin(), vb.end());
        all.insert(all.end(), vc.begin(), vc.end());
        const ExpNorm whole = ExpectedExp(all, m, maxScale);
        // Every part's scale is >= the whole's; the merge finds the whole's.
        if (!SameExp(Normalize(left, true), whole, &why)) {
          Fail(__FILE__, __LINE__, "m=" + std::to_string(m) + " maxScale " + std::to_string(maxScale) +
                                       ": merge != whole stream: " + why);
          return;
        }
        if (whole.scale < std::min({a[exphist::kScale], b[exphist::kScale], c[exphist::kScale]})) scaleChanges++;
        CHECK_EQ(exphist::Total(left.data(), left.size()), left[exphist::kCount]);
      }
    }
  }
  CHECK(scaleChanges > 50);  // merges that had to lower the scale below every input's
}

// ---------------------------------------------------------------------------------------
// Exact.

TEST(exact_cell_is_min_max_sum_count) {
  CHECK_EQ(CellSize(AggregationKind::Exact, 7), 4);
  std::vector<double> a(4), b(4);
  InitState(AggregationKind::Exact, a.data(), 4);
  CHECK(a == (std::vector<double>{0, 0, kInf, -kInf}));
  b = {2, 5, 1, 4};
  a = Merged(AggregationKind::Exact, a, b);
  CHECK(a == b);
  a = Merged(AggregationKind::Exact, a, {1, 10, 10, 10});
  CHECK(a == (std::vector<double>{3, 15, 1, 10}));
  CHECK_EQ(Activity(AggregationKind::Exact, a.data(), 4), 3);
  Descriptor d;
  d.aggregation = AggregationKind::Exact;
  CHECK_EQ(CellSize(d), 4);
  d.aggregation = AggregationKind::ExponentialHistogram;
  d.maxSize = 4;
  CHECK_EQ(CellSize(d), exphist::CellSize(4));
  CHECK_EQ(EffectiveMaxSize(d), 4);
  d.maxSize = 0;
  CHECK_EQ(EffectiveMaxSize(d), 160);
  d.aggregation = AggregationKind::Sketch;
  CHECK_EQ(EffectiveMaxSize(d), sketch::kDefaultBins);
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
