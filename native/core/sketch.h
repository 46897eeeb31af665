// Sketch: a mergeable quantile sketch (DDSketch, Masson et al. 2019) with a fixed-size
// cell, so it lives in a slab like every other aggregator state.
//
// Mapping. With relative accuracy a (0 < a < 1), gamma = (1 + a) / (1 - a). A value
// v > 0 has key k = ceil(log_gamma(v)): bin k holds (gamma^(k-1), gamma^k], and
// Value(k) = 2 gamma^k / (gamma + 1) is within a relative error a of every value in it.
// Quantile(q) returns Value(k) of the bin holding the value of rank floor(q (n - 1)),
// clamped to [min, max], so |estimate - exact| <= a * exact for that rank, as long as the
// bin was not collapsed (below).
//
// Zero. Values below MinIndexable() = DBL_MIN * gamma (~2.2e-308), zero included, are
// counted in zeroCount and estimated as 0 (clamped to min).
//
// Cell (doubles): [count, sum, min, max, zeroCount, base, bin_0 .. bin_{M-1}].
//   Bin i counts key base + i. The window [base, base + M - 1] slides to follow the
//   data: while the used keys span at most M it only moves (a re-centering); when they
//   span more, the lowest keys are collapsed into the lowest kept key, hi - M + 1
//   (DDSketch's collapsing-lowest store), so the upper quantiles stay accurate and the
//   lower ones lose accuracy first. base is +Inf until the first positive value.
//   The JS Update (src/sdk/sketch.ts) increments one bin in place; moving the window is
//   its rare slow path, done in place without allocating.
// Merge keeps, as a key -> count map, collapse(union of both, M): the result is the same
// whatever the order or grouping of merges (the window position is a function of the
// used key range), so Merge is associative and commutative up to float rounding of sum.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hotmeter::sketch {

constexpr size_t kCount = 0;
constexpr size_t kSum = 1;
constexpr size_t kMin = 2;
constexpr size_t kMax = 3;
constexpr size_t kZero = 4;
constexpr size_t kBase = 5;
constexpr size_t kHeader = 6;

constexpr double kDefaultRelativeAccuracy = 0.01;
// 512 bins (a 4 KiB cell) at a = 0.01 keep full accuracy for values down to the max
// divided by gamma^511 ~ 2.7e4 (4.4 decades); lower ones collapse. (320 bins keep only
// ~600x: the median of a heavy-tailed latency distribution would already collapse.)
constexpr uint32_t kDefaultBins = 512;

inline size_t CellSize(uint32_t bins) { return kHeader + bins; }

class Mapping {
 public:
  explicit Mapping(double relativeAccuracy);
  double gamma() const { return gamma_; }
  double relativeAccuracy() const { return alpha_; }
  // Smallest value that gets a key; smaller ones go to the zero count.
  double MinIndexable() const { return minIndexable_; }
  // ceil(log_gamma(v)) for v >= MinIndexable().
  int64_t Key(double v) const;
  // The estimate for every value of bin `key`.
  double Value(int64_t key) const;

 private:
  double alpha_;
  double gamma_;
  double lnGamma_;
  double minIndexable_;
};

// The empty sketch.
void Init(double* s, size_t size);
// d := Merge(d, s).
void Merge(double* d, const double* s, size_t size);
// One value, exactly as the JS hot path does it (reference for tests). v >= 0, finite.
void Update(double* s, size_t size, const Mapping& m, double v);
// The q-quantile (0 <= q <= 1) of the state; NaN if it is empty or q is not in [0, 1].
double Quantile(const double* s, size_t size, const Mapping& m, double q);
// zeroCount + the sum of the bins: the number of values the bins account for.
double Total(const double* s, size_t size);

}  // namespace hotmeter::sketch
