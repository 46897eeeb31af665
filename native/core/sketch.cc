#include "sketch.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

namespace hotmeter::sketch {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

size_t Bins(size_t size) { return size > kHeader ? size - kHeader : 0; }

// The lowest and highest used key (a bin with a non-zero count); false if none.
bool UsedRange(const double* s, size_t m, int64_t* lo, int64_t* hi) {
  if (!std::isfinite(s[kBase])) return false;
  const double* b = s + kHeader;
  size_t i = 0;
  while (i < m && b[i] == 0) i++;
  if (i == m) return false;
  size_t j = m - 1;
  while (b[j] == 0) j--;
  const auto base = static_cast<int64_t>(s[kBase]);
  *lo = base + static_cast<int64_t>(i);
  *hi = base + static_cast<int64_t>(j);
  return true;
}

// The window for used keys [lo, hi]: centered if they fit, else the top m keys.
int64_t WindowBase(int64_t lo, int64_t hi, size_t m) {
  const auto mm = static_cast<int64_t>(m);
  const int64_t span = hi - lo + 1;
  if (span <= mm) return lo - (mm - span) / 2;
  return hi - mm + 1;
}

// Moves the window to start at key nb, in place; keys below nb collapse into its first
// bin. Precondition: no used key above nb + m - 1.
void MoveWindow(double* s, size_t m, int64_t nb) {
  double* b = s + kHeader;
  const int64_t d = nb - static_cast<int64_t>(s[kBase]);
  if (d > 0) {
    const size_t dd = static_cast<uint64_t>(d) >= m ? m : static_cast<size_t>(d);
    double collapsed = 0;
    for (size_t i = 0; i < dd; i++) collapsed += b[i];
    for (size_t i = dd; i < m; i++) b[i - dd] = b[i];
    for (size_t i = m - dd; i < m; i++) b[i] = 0;
    b[0] += collapsed;
  } else if (d < 0) {
    const size_t u = static_cast<uint64_t>(-d) >= m ? m : static_cast<size_t>(-d);
    for (size_t p = m; p-- > 0;) {
      if (p + u < m) b[p + u] = b[p];
    }
    for (size_t p = 0; p < u; p++) b[p] = 0;
  }
  s[kBase] = static_cast<double>(nb);
}

}  // namespace

Mapping::Mapping(double relativeAccuracy)
    : alpha_(relativeAccuracy),
      gamma_((1 + relativeAccuracy) / (1 - relativeAccuracy)),
      // ln((1 + a) / (1 - a)) = log1p(2a / (1 - a)), accurate for small a.
      lnGamma_(std::log1p(2 * relativeAccuracy / (1 - relativeAccuracy))),
      minIndexable_(DBL_MIN * gamma_) {}

int64_t Mapping::Key(double v) const {
  return static_cast<int64_t>(std::ceil(std::log(v) * (1 / lnGamma_)));
}

double Mapping::Value(int64_t key) const {
  return std::exp(static_cast<double>(key) * lnGamma_) * (2 / (1 + gamma_));
}

void Init(double* s, size_t size) {
  for (size_t i = 0; i < size; i++) s[i] = 0;
  if (size < kHeader) return;
  s[kMin] = kInf;
  s[kMax] = -kInf;
  s[kBase] = kInf;
}

void Merge(double* d, const double* s, size_t size) {
  if (size < kHeader) return;
  const size_t m = Bins(size);
  d[kCount] += s[kCount];
  d[kSum] += s[kSum];
  if (s[kMin] < d[kMin]) d[kMin] = s[kMin];
  if (s[kMax] > d[kMax]) d[kMax] = s[kMax];
  d[kZero] += s[kZero];
  if (m == 0) return;

  int64_t slo = 0, shi = 0, dlo = 0, dhi = 0;
  if (!UsedRange(s, m, &slo, &shi)) return;
  if (!UsedRange(d, m, &dlo, &dhi)) {
    d[kBase] = s[kBase];
    std::copy(s + kHeader, s + kHeader + m, d + kHeader);
    return;
  }
  const int64_t nb = WindowBase(std::min(slo, dlo), std::max(shi, dhi), m);
  thread_local std::vector<double> out;
  out.assign(m, 0);
  const double* states[2] = {d, s};
  for (const double* x : states) {
    const auto base = static_cast<int64_t>(x[kBase]);
    for (size_t i = 0; i < m; i++) {
      const double c = x[kHeader + i];
      if (c == 0) continue;
      const int64_t key = base + static_cast<int64_t>(i);
      out[static_cast<size_t>(std::max(key, nb) - nb)] += c;
    }
  }
  d[kBase] = static_cast<double>(nb);
  std::copy(out.begin(), out.end(), d + kHeader);
}

void Update(double* s, size_t size, const Mapping& mp, double v) {
  const size_t m = Bins(size);
  s[kCount] += 1;
  s[kSum] += v;
  if (v < s[kMin]) s[kMin] = v;
  if (v > s[kMax]) s[kMax] = v;
  if (v < mp.MinIndexable() || m == 0) {
    s[kZero] += 1;
    return;
  }
  const int64_t k = mp.Key(v);
  double* b = s + kHeader;
  const double p = static_cast<double>(k) - s[kBase];
  if (p >= 0 && p < static_cast<double>(m)) {
    b[static_cast<size_t>(p)] += 1;
    return;
  }
  // Slow path: the key is outside the window.
  int64_t lo = 0, hi = 0;
  if (!UsedRange(s, m, &lo, &hi)) {
    const int64_t nb = WindowBase(k, k, m);
    s[kBase] = static_cast<double>(nb);
    std::fill(b, b + m, 0.0);
    b[static_cast<size_t>(k - nb)] += 1;
    return;
  }
  const int64_t nb = WindowBase(std::min(lo, k), std::max(hi, k), m);
  MoveWindow(s, m, nb);
  b[static_cast<size_t>(std::max(k, nb) - nb)] += 1;
}

double Total(const double* s, size_t size) {
  if (size < kHeader) return 0;
  double n = s[kZero];
  for (size_t i = kHeader; i < size; i++) n += s[i];
  return n;
}

double Quantile(const double* s, size_t size, const Mapping& mp, double q) {
  if (size < kHeader || !(q >= 0 && q <= 1)) return std::nan("");
  const double total = Total(s, size);
  if (!(total > 0)) return std::nan("");
  const double lo = s[kMin], hi = s[kMax];
  if (q == 0) return lo;
  if (q == 1) return hi;
  const double rank = q * (total - 1);
  double n = s[kZero];
  double est = hi;
  if (n > rank) {
    est = 0;
  } else {
    const auto base = static_cast<int64_t>(s[kBase]);
    for (size_t i = 0; i < Bins(size); i++) {
      n += s[kHeader + i];
      if (n > rank) {
        est = mp.Value(base + static_cast<int64_t>(i));
        break;
      }
    }
  }
  return std::min(std::max(est, lo), hi);
}

}  // namespace hotmeter::sketch
