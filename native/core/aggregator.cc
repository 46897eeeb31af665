#include "aggregator.h"

#include <atomic>
#include <limits>

#include "exponential_histogram.h"
#include "sketch.h"

namespace hotmeter {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

size_t CellSize(AggregationKind kind, size_t boundCount) {
  switch (kind) {
    case AggregationKind::Drop: return 0;
    case AggregationKind::Sum: return 1;
    case AggregationKind::LastValue: return 2;
    case AggregationKind::PrecomputedSum: return 2;
    case AggregationKind::MinMaxSumCount: return 4;
    case AggregationKind::Histogram: return 3 + boundCount + 1;
    case AggregationKind::Sketch: return sketch::CellSize(sketch::kDefaultBins);
    case AggregationKind::ExponentialHistogram: return exphist::CellSize(exphist::kDefaultMaxSize);
    case AggregationKind::Exact: return 4;
  }
  return 0;
}

uint32_t EffectiveMaxSize(const Descriptor& d) {
  switch (d.aggregation) {
    case AggregationKind::Sketch: return d.maxSize != 0 ? d.maxSize : sketch::kDefaultBins;
    case AggregationKind::ExponentialHistogram: return d.maxSize != 0 ? d.maxSize : exphist::kDefaultMaxSize;
    default: return d.maxSize;
  }
}

size_t CellSize(const Descriptor& d) {
  switch (d.aggregation) {
    case AggregationKind::Sketch: return sketch::CellSize(EffectiveMaxSize(d));
    case AggregationKind::ExponentialHistogram: return exphist::CellSize(EffectiveMaxSize(d));
    default: return CellSize(d.aggregation, d.bounds.size());
  }
}

void InitState(AggregationKind kind, double* s, size_t size) {
  for (size_t i = 0; i < size; i++) s[i] = 0;
  switch (kind) {
    case AggregationKind::MinMaxSumCount:
    case AggregationKind::Exact: s[2] = kInf; s[3] = -kInf; break;
    case AggregationKind::Sketch: sketch::Init(s, size); break;
    case AggregationKind::ExponentialHistogram: exphist::Init(s, size); break;
    case AggregationKind::Histogram: s[1] = kInf; s[2] = -kInf; break;
    default: break;
  }
}

void MergeState(AggregationKind kind, double* d, const double* s, size_t size) {
  switch (kind) {
    case AggregationKind::Drop: return;
    case AggregationKind::Sum: d[0] += s[0]; return;
    case AggregationKind::LastValue:
      // [value, stamp]: the write with the greatest stamp wins, whatever thread (or
      // retired thread) made it and in whatever order the states are merged. Stamps are
      // a clock every thread reads (src/api/handles.ts), so "greatest" is "last in time";
      // 0 is the identity (never written). Equal stamps (writes less than the clock's
      // resolution apart) keep the greater value, so the merge stays commutative.
      if (s[1] > d[1] || (s[1] == d[1] && s[0] > d[0])) {
        d[0] = s[0];
        d[1] = s[1];
      }
      return;
    case AggregationKind::PrecomputedSum:
      // Per-thread observed totals add up; the stamp is the latest observation's.
      d[0] += s[0];
      if (s[1] > d[1]) d[1] = s[1];
      return;
    case AggregationKind::MinMaxSumCount:
    case AggregationKind::Exact:
      d[0] += s[0];
      d[1] += s[1];
      if (s[2] < d[2]) d[2] = s[2];
      if (s[3] > d[3]) d[3] = s[3];
      return;
    case AggregationKind::Histogram:
      d[0] += s[0];
      if (s[1] < d[1]) d[1] = s[1];
      if (s[2] > d[2]) d[2] = s[2];
      for (size_t i = 3; i < size; i++) d[i] += s[i];
      return;
    case AggregationKind::Sketch: sketch::Merge(d, s, size); return;
    case AggregationKind::ExponentialHistogram: exphist::Merge(d, s, size); return;
  }
}

double Activity(AggregationKind kind, const double* s, size_t size) {
  switch (kind) {
    case AggregationKind::Drop: return 0;
    case AggregationKind::Sum: return s[0];
    case AggregationKind::LastValue:
    case AggregationKind::PrecomputedSum: return s[1];
    case AggregationKind::MinMaxSumCount:
    case AggregationKind::Sketch:
    case AggregationKind::ExponentialHistogram:
    case AggregationKind::Exact: return s[0];  // count
    case AggregationKind::Histogram: {
      double n = 0;
      for (size_t i = 3; i < size; i++) n += s[i];
      return n;
    }
  }
  return 0;
}

void LoadCell(double* out, const double* cell, size_t size) {
  for (size_t i = 0; i < size; i++) {
    // The cell's owner thread writes it with plain stores from JIT code; we only read.
    out[i] = std::atomic_ref<double>(const_cast<double&>(cell[i])).load(std::memory_order_relaxed);
  }
}

size_t BucketIndex(const double* bounds, size_t n, double v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) >> 1;
    if (v <= bounds[mid]) hi = mid; else lo = mid + 1;
  }
  return lo;
}

}  // namespace hotmeter
