// Prometheus names, units and family types, and the text of numbers, label values and HELP.
#include "prometheus_serializer.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

#include "prometheus_internal.h"

namespace hotmeter::prometheus {

namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Characters outside the allowed set become '_', runs of '_' collapse, a leading digit
// gets a '_' prefix. Bytes of a multi-byte UTF-8 character each become '_' and collapse
// into one, as the UTF-16 code units of a surrogate pair do in the TypeScript version.
std::string Sanitize(std::string_view in, bool allowColon) {
  std::string s;
  s.reserve(in.size() + 1);
  for (char c : in) {
    bool ok = IsAlpha(c) || IsDigit(c) || c == '_' || (allowColon && c == ':');
    char o = ok ? c : '_';
    if (o == '_' && !s.empty() && s.back() == '_') continue;
    s.push_back(o);
  }
  if (!s.empty() && IsDigit(s[0])) s.insert(s.begin(), '_');
  if (s.empty()) s.push_back('_');  // not s = "_": GCC 12 misreports -Wrestrict there
  return s;
}

}  // namespace

// Is the label name already what SanitizeLabelName would make of it?
bool IsCleanLabelName(std::string_view n) {
  if (n.empty() || IsDigit(n[0])) return false;
  char prev = 0;
  for (char c : n) {
    if (!(IsAlpha(c) || IsDigit(c) || c == '_')) return false;
    if (c == '_' && prev == '_') return false;
    prev = c;
  }
  return true;
}

const char* TypeName(FamilyType t) {
  switch (t) {
    case FamilyType::Counter: return "counter";
    case FamilyType::Gauge: return "gauge";
    case FamilyType::Histogram: return "histogram";
    case FamilyType::Summary: return "summary";
    case FamilyType::Skip: break;
  }
  return "unknown";
}

namespace {

struct UnitEntry {
  const char* unit;
  const char* word;
};
// Must match UNIT_WORDS / PER_UNIT in src/exporters/prometheus/naming.ts.
constexpr UnitEntry kUnitWords[] = {
    {"d", "days"},          {"h", "hours"},         {"min", "minutes"},     {"s", "seconds"},
    {"ms", "milliseconds"}, {"us", "microseconds"}, {"ns", "nanoseconds"},  {"By", "bytes"},
    {"KiBy", "kibibytes"},  {"MiBy", "mebibytes"},  {"GiBy", "gibibytes"},  {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},   {"MBy", "megabytes"},   {"GBy", "gigabytes"},   {"TBy", "terabytes"},
    {"m", "meters"},        {"V", "volts"},         {"A", "amperes"},       {"J", "joules"},
    {"W", "watts"},         {"g", "grams"},         {"Cel", "celsius"},     {"Hz", "hertz"},
    {"%", "percent"},
};
constexpr UnitEntry kPerUnit[] = {
    {"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"}, {"w", "week"}, {"mo", "month"}, {"y", "year"},
};

const char* Lookup(const UnitEntry* table, size_t n, std::string_view u) {
  for (size_t i = 0; i < n; i++) {
    if (u == table[i].unit) return table[i].word;
  }
  return nullptr;
}

std::string_view Trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// Sanitized as a metric name, without one leading and one trailing '_'.
std::string UnitPart(std::string_view w) {
  std::string s = Sanitize(w, true);
  if (!s.empty() && s.front() == '_') s.erase(s.begin());
  if (!s.empty() && s.back() == '_') s.pop_back();
  return s;
}

}  // namespace

// Writes v into buf (at least 32 bytes); returns the length.
size_t FormatNumber(char* buf, double v) {
  if (std::isnan(v)) {
    std::memcpy(buf, "NaN", 3);
    return 3;
  }
  if (std::isinf(v)) {
    std::memcpy(buf, v > 0 ? "+Inf" : "-Inf", 4);
    return 4;
  }
  if (v == 0) {
    buf[0] = '0';
    return 1;
  }
  char* p = buf;
  if (v < 0) *p++ = '-';
  const double a = std::fabs(v);
  if (a < 9007199254740992.0 && a == std::trunc(a)) {
    return static_cast<size_t>(std::to_chars(p, buf + 32, static_cast<uint64_t>(a)).ptr - buf);
  }
  // Shortest round-trip digits, then laid out as ECMAScript's Number::toString does.
  char sci[32];
  const char* end = std::to_chars(sci, sci + sizeof sci, a, std::chars_format::scientific).ptr;  // d[.ddd]e(+|-)xx
  char digits[24];
  int k = 0;
  const char* q = sci;
  for (; *q != 'e'; q++) {
    if (*q != '.') digits[k++] = *q;
  }
  int exp10 = 0;
  std::from_chars(q + (q[1] == '+' ? 2 : 1), end, exp10);
  const int n = exp10 + 1;  // value = 0.d1d2..dk * 10^n
  if (k <= n && n <= 21) {
    std::memcpy(p, digits, static_cast<size_t>(k));
    p += k;
    std::memset(p, '0', static_cast<size_t>(n - k));
    p += n - k;
  } else if (0 < n && n <= 21) {
    std::memcpy(p, digits, static_cast<size_t>(n));
    p += n;
    *p++ = '.';
    std::memcpy(p, digits + n, static_cast<size_t>(k - n));
    p += k - n;
  } else if (-6 < n && n <= 0) {
    *p++ = '0';
    *p++ = '.';
    std::memset(p, '0', static_cast<size_t>(-n));
    p += -n;
    std::memcpy(p, digits, static_cast<size_t>(k));
    p += k;
  } else {
    *p++ = digits[0];
    if (k > 1) {
      *p++ = '.';
      std::memcpy(p, digits + 1, static_cast<size_t>(k - 1));
      p += k - 1;
    }
    *p++ = 'e';
    *p++ = n - 1 >= 0 ? '+' : '-';
    p = std::to_chars(p, buf + 32, std::abs(n - 1)).ptr;
  }
  return static_cast<size_t>(p - buf);
}

template <class Out>
void AppendNumberT(Out* out, double v) {
  char buf[32];
  out->append(buf, FormatNumber(buf, v));
}

template <class Out>
void AppendLabelValueT(Out* out, std::string_view v) {
  size_t start = 0;
  for (size_t i = 0; i < v.size(); i++) {
    char c = v[i];
    const char* esc = nullptr;
    if (c == '\\') esc = "\\\\";
    else if (c == '"') esc = "\\\"";
    else if (c == '\n') esc = "\\n";
    else continue;
    out->append(v.data() + start, i - start);
    out->append(esc, 2);
    start = i + 1;
  }
  out->append(v.data() + start, v.size() - start);
}

template <class Out>
void AppendHelpT(Out* out, std::string_view v, Format format) {
  for (char c : v) {
    if (c == '\\') out->append("\\\\", 2);
    else if (c == '\n') out->append("\\n", 2);
    else if (c == '"' && format == Format::OpenMetrics100) out->append("\\\"", 2);
    else out->push_back(c);
  }
}

void AppendNumber(std::string* out, double v) { AppendNumberT(out, v); }
void AppendNumber(Chunk* out, double v) { AppendNumberT(out, v); }
void AppendLabelValue(std::string* out, std::string_view v) { AppendLabelValueT(out, v); }
void AppendLabelValue(Chunk* out, std::string_view v) { AppendLabelValueT(out, v); }
void AppendHelp(std::string* out, std::string_view v, Format format) { AppendHelpT(out, v, format); }
void AppendHelp(Chunk* out, std::string_view v, Format format) { AppendHelpT(out, v, format); }

std::string SanitizeMetricName(std::string_view name) { return Sanitize(name, true); }
std::string SanitizeLabelName(std::string_view name) { return Sanitize(name, false); }

std::string UnitWord(std::string_view unitIn, bool gauge) {
  std::string stripped;
  int depth = 0;
  // Annotations in braces ("{request}") are dropped (the first '}' closes).
  for (size_t i = 0; i < unitIn.size(); i++) {
    char c = unitIn[i];
    if (depth == 0 && c == '{' && unitIn.find('}', i) != std::string_view::npos) {
      depth = 1;
      continue;
    }
    if (depth == 1) {
      if (c == '}') depth = 0;
      continue;
    }
    stripped.push_back(c);
  }
  std::string_view u = Trim(stripped);
  if (u.empty()) return "";
  if (u == "1") return gauge ? "ratio" : "";
  size_t slash = u.find('/');
  constexpr size_t nWords = sizeof kUnitWords / sizeof kUnitWords[0];
  constexpr size_t nPer = sizeof kPerUnit / sizeof kPerUnit[0];
  if (slash != std::string_view::npos) {
    std::string_view a = u.substr(0, slash), b = u.substr(slash + 1);
    const char* aw = Lookup(kUnitWords, nWords, a);
    std::string as = aw ? aw : std::string(a);
    const char* bw = Lookup(kPerUnit, nPer, b);
    if (bw == nullptr) bw = Lookup(kUnitWords, nWords, b);
    std::string bs = bw ? bw : std::string(b);
    return UnitPart(as.empty() ? "per_" + bs : as + "_per_" + bs);
  }
  const char* w = Lookup(kUnitWords, nWords, u);
  return UnitPart(w ? std::string_view(w) : u);
}

FamilyType TypeOf(const Descriptor& d) {
  switch (d.aggregation) {
    case AggregationKind::Drop: return FamilyType::Skip;
    case AggregationKind::Sum:
    case AggregationKind::PrecomputedSum: return d.monotonic ? FamilyType::Counter : FamilyType::Gauge;
    case AggregationKind::LastValue: return FamilyType::Gauge;
    case AggregationKind::Histogram:
    case AggregationKind::ExponentialHistogram: return FamilyType::Histogram;
    case AggregationKind::Sketch:
    case AggregationKind::MinMaxSumCount:
    case AggregationKind::Exact: return FamilyType::Summary;
  }
  return FamilyType::Skip;
}

FamilyName NameFor(const Descriptor& d, Format format, const Options& opts) {
  if (format == Format::Protobuf) format = Format::Text004;  // protobuf names are the text format's
  FamilyType type = TypeOf(d);
  std::string base = SanitizeMetricName(opts.namePrefix.empty() ? d.name : opts.namePrefix + d.name);
  FamilyName f;
  if (!opts.withoutUnits) f.unit = UnitWord(d.unit, type == FamilyType::Gauge);
  const bool suffix = !(opts.withoutCounterSuffixes && format == Format::Text004);
  if (type == FamilyType::Counter && suffix && base.size() > 6 && EndsWith(base, "_total")) base.resize(base.size() - 6);
  if (!f.unit.empty() && base != f.unit && !EndsWith(base, "_" + f.unit)) base += "_" + f.unit;
  if (type == FamilyType::Counter && suffix) {
    f.sample = base + "_total";
    f.family = format == Format::OpenMetrics100 ? base : f.sample;
  } else {
    f.family = base;
    f.sample = base;
  }
  return f;
}

}  // namespace hotmeter::prometheus
