#include "exponential_histogram.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

namespace hotmeter::exphist {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

size_t Buckets(size_t size) { return size > kHeader ? (size - kHeader) / 2 : 0; }
size_t BaseSlot(bool positive) { return positive ? kPosBase : kNegBase; }
size_t BucketStart(bool positive, size_t m) { return kHeader + (positive ? 0 : m); }

// The window for used indices [lo, hi] (span <= m): centered.
int64_t WindowBase(int64_t lo, int64_t hi, size_t m) {
  return lo - (static_cast<int64_t>(m) - (hi - lo + 1)) / 2;
}

// Moves a range's window to start at nb, in place. Precondition: every used index of
// the range lies in [nb, nb + m - 1].
void MoveWindow(double* s, size_t m, bool positive, int64_t nb) {
  double* b = s + BucketStart(positive, m);
  const int64_t d = nb - static_cast<int64_t>(s[BaseSlot(positive)]);
  if (d > 0) {
    const size_t dd = static_cast<uint64_t>(d) >= m ? m : static_cast<size_t>(d);
    for (size_t i = dd; i < m; i++) b[i - dd] = b[i];
    for (size_t i = m - dd; i < m; i++) b[i] = 0;
  } else if (d < 0) {
    const size_t u = static_cast<uint64_t>(-d) >= m ? m : static_cast<size_t>(-d);
    for (size_t p = m; p-- > 0;) {
      if (p + u < m) b[p + u] = b[p];
    }
    for (size_t p = 0; p < u; p++) b[p] = 0;
  }
  s[BaseSlot(positive)] = static_cast<double>(nb);
}

// index -> index >> c for both ranges, in place: each range is compacted to start at
// (lo >> c), every bucket moving down or staying (see exponential-histogram.ts).
void Downscale(double* s, size_t m, int32_t c) {
  if (c <= 0) return;
  for (bool positive : {true, false}) {
    int64_t lo = 0, hi = 0;
    if (!UsedRange(s, kHeader + 2 * m, positive, &lo, &hi)) continue;
    double* b = s + BucketStart(positive, m);
    const auto base = static_cast<int64_t>(s[BaseSlot(positive)]);
    const int64_t nb = lo >> c;
    for (int64_t i = lo; i <= hi; i++) {
      const auto src = static_cast<size_t>(i - base);
      const auto dst = static_cast<size_t>((i >> c) - nb);
      const double n = b[src];
      b[src] = 0;
      b[dst] += n;
    }
    s[BaseSlot(positive)] = static_cast<double>(nb);
  }
  s[kScale] -= c;
}

// The smallest c with (hi >> c) - (lo >> c) + 1 <= m.
int32_t ChangeToFit(int64_t lo, int64_t hi, size_t m) {
  int32_t c = 0;
  while ((hi >> c) - (lo >> c) + 1 > static_cast<int64_t>(m)) c++;
  return c;
}

}  // namespace

int64_t MapToIndex(double v, int32_t scale) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const int64_t exp = static_cast<int64_t>((bits >> 52) & 0x7ff) - 1023;
  const bool pow2 = (bits & 0xfffffffffffffULL) == 0;
  if (scale > 0) {
    if (v <= DBL_MIN) return (int64_t{-1022} << scale) - 1;
    if (pow2) return (exp << scale) - 1;
    const auto i = static_cast<int64_t>(std::floor(std::log(v) * std::ldexp(std::numbers::log2e, scale)));
    const int64_t maxIndex = (int64_t{1024} << scale) - 1;
    return i >= maxIndex ? maxIndex : i;
  }
  const int shift = -scale;
  if (v < DBL_MIN) {
    int64_t i = int64_t{-1022} >> shift;
    if (shift < 2) i--;
    return i;
  }
  return (exp + (pow2 ? -1 : 0)) >> shift;
}

double LowerBoundary(int64_t index, int32_t scale) {
  if (scale > 0) return std::exp(static_cast<double>(index) * std::ldexp(std::numbers::ln2, -scale));
  return std::ldexp(1.0, static_cast<int>(index * (int64_t{1} << -scale)));
}

void Init(double* s, size_t size) {
  for (size_t i = 0; i < size; i++) s[i] = 0;
  if (size < kHeader) return;
  s[kMin] = kInf;
  s[kMax] = -kInf;
  s[kScale] = kMaxScale;
  s[kPosBase] = kInf;
  s[kNegBase] = kInf;
}

bool UsedRange(const double* s, size_t size, bool positive, int64_t* lo, int64_t* hi) {
  const size_t m = Buckets(size);
  if (m == 0 || !std::isfinite(s[BaseSlot(positive)])) return false;
  const double* b = s + BucketStart(positive, m);
  size_t i = 0;
  while (i < m && b[i] == 0) i++;
  if (i == m) return false;
  size_t j = m - 1;
  while (b[j] == 0) j--;
  const auto base = static_cast<int64_t>(s[BaseSlot(positive)]);
  *lo = base + static_cast<int64_t>(i);
  *hi = base + static_cast<int64_t>(j);
  return true;
}

double BucketCount(const double* s, size_t size, bool positive, int64_t index) {
  const size_t m = Buckets(size);
  if (m == 0 || !std::isfinite(s[BaseSlot(positive)])) return 0;
  const int64_t p = index - static_cast<int64_t>(s[BaseSlot(positive)]);
  if (p < 0 || p >= static_cast<int64_t>(m)) return 0;
  return s[BucketStart(positive, m) + static_cast<size_t>(p)];
}

double Total(const double* s, size_t size) {
  if (size < kHeader) return 0;
  double n = s[kZero];
  for (size_t i = kHeader; i < size; i++) n += s[i];
  return n;
}

void Merge(double* d, const double* s, size_t size) {
  if (size < kHeader) return;
  const size_t m = Buckets(size);
  d[kCount] += s[kCount];
  d[kSum] += s[kSum];
  if (s[kMin] < d[kMin]) d[kMin] = s[kMin];
  if (s[kMax] > d[kMax]) d[kMax] = s[kMax];
  d[kZero] += s[kZero];

  struct Side {
    bool has = false;
    int64_t lo = 0, hi = 0;
  };
  Side dr[2], sr[2];  // [positive, negative]
  for (int r = 0; r < 2; r++) {
    dr[r].has = UsedRange(d, size, r == 0, &dr[r].lo, &dr[r].hi);
    sr[r].has = UsedRange(s, size, r == 0, &sr[r].lo, &sr[r].hi);
  }
  const auto ds = static_cast<int32_t>(d[kScale]);
  const auto ss = static_cast<int32_t>(s[kScale]);
  const bool dHas = dr[0].has || dr[1].has;
  const bool sHas = sr[0].has || sr[1].has;
  if (!sHas) {
    if (!dHas) d[kScale] = std::min(ds, ss);
    return;
  }
  if (!dHas) {
    std::copy(s + kScale, s + size, d + kScale);
    return;
  }

  // The scale both fit at: the smaller one, lowered until every range spans <= m.
  const int32_t scale = std::min(ds, ss);
  int32_t change = 0;
  int64_t lo[2], hi[2];
  for (int r = 0; r < 2; r++) {
    lo[r] = std::numeric_limits<int64_t>::max();
    hi[r] = std::numeric_limits<int64_t>::min();
    if (dr[r].has) {
      lo[r] = std::min(lo[r], dr[r].lo >> (ds - scale));
      hi[r] = std::max(hi[r], dr[r].hi >> (ds - scale));
    }
    if (sr[r].has) {
      lo[r] = std::min(lo[r], sr[r].lo >> (ss - scale));
      hi[r] = std::max(hi[r], sr[r].hi >> (ss - scale));
    }
    if (dr[r].has || sr[r].has) change = std::max(change, ChangeToFit(lo[r], hi[r], m));
  }
  const int32_t fs = scale - change;

  thread_local std::vector<double> out;
  for (int r = 0; r < 2; r++) {
    const bool positive = r == 0;
    if (!dr[r].has && !sr[r].has) continue;
    if (dr[r].has && !sr[r].has && ds == fs) continue;  // d's range is already the result
    const size_t bs = BaseSlot(positive), b0 = BucketStart(positive, m);
    if (!dr[r].has && ss == fs) {  // s's range is the result
      d[bs] = s[bs];
      std::copy(s + b0, s + b0 + m, d + b0);
      continue;
    }
    const int64_t nb = WindowBase(lo[r] >> change, hi[r] >> change, m);
    out.assign(m, 0);
    const double* states[2] = {d, s};
    const int32_t scales[2] = {ds, ss};
    const bool has[2] = {dr[r].has, sr[r].has};
    for (int k = 0; k < 2; k++) {
      if (!has[k]) continue;
      const double* x = states[k];
      const auto base = static_cast<int64_t>(x[bs]);
      const int32_t c = scales[k] - fs;
      for (size_t i = 0; i < m; i++) {
        const double n = x[b0 + i];
        if (n == 0) continue;
        out[static_cast<size_t>(((base + static_cast<int64_t>(i)) >> c) - nb)] += n;
      }
    }
    d[bs] = static_cast<double>(nb);
    std::copy(out.begin(), out.end(), d + b0);
  }
  d[kScale] = fs;
}

void Update(double* s, size_t size, int32_t maxScale, double v) {
  const size_t m = Buckets(size);
  s[kCount] += 1;
  s[kSum] += v;
  if (v < s[kMin]) s[kMin] = v;
  if (v > s[kMax]) s[kMax] = v;
  if (v == 0 || m == 0) {
    s[kZero] += 1;
    return;
  }
  const bool positive = v > 0;
  const double a = std::fabs(v);
  double* b = s + BucketStart(positive, m);
  const size_t bs = BaseSlot(positive);
  {
    const int64_t idx = MapToIndex(a, static_cast<int32_t>(s[kScale]));
    const double p = static_cast<double>(idx) - s[bs];
    if (p >= 0 && p < static_cast<double>(m)) {
      b[static_cast<size_t>(p)] += 1;
      return;
    }
  }
  // Slow path: the index is outside the window.
  if (s[kScale] > maxScale) Downscale(s, m, static_cast<int32_t>(s[kScale]) - maxScale);
  for (;;) {
    const auto scale = static_cast<int32_t>(s[kScale]);
    const int64_t idx = MapToIndex(a, scale);
    int64_t lo = 0, hi = 0;
    if (!UsedRange(s, size, positive, &lo, &hi)) {
      const int64_t nb = WindowBase(idx, idx, m);
      s[bs] = static_cast<double>(nb);
      std::fill(b, b + m, 0.0);
      b[static_cast<size_t>(idx - nb)] += 1;
      return;
    }
    lo = std::min(lo, idx);
    hi = std::max(hi, idx);
    const int32_t c = ChangeToFit(lo, hi, m);
    if (c == 0) {
      int64_t base = static_cast<int64_t>(s[bs]);
      if (idx < base || idx >= base + static_cast<int64_t>(m)) {
        base = WindowBase(lo, hi, m);
        MoveWindow(s, m, positive, base);
      }
      b[static_cast<size_t>(idx - base)] += 1;
      return;
    }
    Downscale(s, m, c);
  }
}

}  // namespace hotmeter::exphist
