// ExponentialHistogram: the OpenTelemetry base-2 exponential bucket histogram
// (data model: ExponentialHistogramDataPoint), in a fixed-size cell.
//
// Mapping (as OpenTelemetry JS sdk-metrics' LogarithmMapping / ExponentMapping). At
// scale s, base = 2^(2^-s) and bucket `index` holds (base^index, base^(index+1)]
// (upper-inclusive). For v > 0:
//   s > 0:  index = floor(ln(v) * 2^s / ln 2), except an exact power of two 2^e, whose
//           index is (e << s) - 1 (the rounding of the logarithm must not move it up);
//   s <= 0: index = (e + (v is a power of two ? -1 : 0)) >> -s, e the float's exponent.
// Subnormal values map to the lowest normal bucket. Scales run from 20 down to -10.
//
// Cell (doubles): [count, sum, min, max, zeroCount, scale, posBase, negBase,
//                  pos_0 .. pos_{M-1}, neg_0 .. neg_{M-1}], M = maxSize (default 160).
//   pos_i counts positive values of bucket index posBase + i; neg_i counts values v < 0
//   by the index of -v. A base is +Inf until its range gets a value; the empty state has
//   scale 20 and no buckets, and the first value sets the scale to the configured max
//   scale. When the used indices of a range would span more than M, both ranges are
//   downscaled by the smallest change c that fits (index -> index >> c, scale -= c),
//   as OpenTelemetry does; otherwise the window only moves to re-center. The JS Update
//   (src/sdk/exponential-histogram.ts) increments one bucket in place; downscaling and
//   moving the window are its rare slow path, in place without allocating.
// Merge downscales both states to the smaller scale, then further until each range fits
// in M buckets. zeroCount counts exact zeros (zero threshold 0).
#pragma once
#include <cstddef>
#include <cstdint>

namespace hotmeter::exphist {

constexpr size_t kCount = 0;
constexpr size_t kSum = 1;
constexpr size_t kMin = 2;
constexpr size_t kMax = 3;
constexpr size_t kZero = 4;
constexpr size_t kScale = 5;
constexpr size_t kPosBase = 6;
constexpr size_t kNegBase = 7;
constexpr size_t kHeader = 8;

constexpr int32_t kMaxScale = 20;
constexpr int32_t kMinScale = -10;
constexpr uint32_t kDefaultMaxSize = 160;
constexpr uint32_t kMinMaxSize = 2;

inline size_t CellSize(uint32_t maxSize) { return kHeader + 2 * static_cast<size_t>(maxSize); }

// The bucket index of v > 0 (finite) at `scale`.
int64_t MapToIndex(double v, int32_t scale);
// The lower (exclusive) boundary of bucket `index` at `scale`, for normal values.
double LowerBoundary(int64_t index, int32_t scale);

// The empty histogram.
void Init(double* s, size_t size);
// d := Merge(d, s).
void Merge(double* d, const double* s, size_t size);
// One value (any finite v; the Histogram instrument only records v >= 0), exactly as
// the JS hot path does it (reference for tests).
void Update(double* s, size_t size, int32_t maxScale, double v);

// The used (non-zero) index range of the positive or negative buckets; false if none.
bool UsedRange(const double* s, size_t size, bool positive, int64_t* lo, int64_t* hi);
// The count of bucket `index` (0 outside the window).
double BucketCount(const double* s, size_t size, bool positive, int64_t index);
// zeroCount + every bucket.
double Total(const double* s, size_t size);

}  // namespace hotmeter::exphist
