#include "prometheus_serializer.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "aggregator.h"
#include "exponential_histogram.h"
#include "output_pool.h"
#include "sketch.h"

namespace hotmeter::prometheus {

namespace {

bool IsObservable(InstrumentKind k) {
  return k == InstrumentKind::ObservableCounter || k == InstrumentKind::ObservableUpDownCounter ||
         k == InstrumentKind::ObservableGauge;
}

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
  if (s.empty()) s = "_";
  return s;
}

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

// ---- Formatting ---------------------------------------------------------------------------

// Writes v into buf (at least 32 bytes); returns the length.
static size_t FormatNumber(char* buf, double v) {
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

FamilyName NameFor(const Descriptor& d, Format format) {
  FamilyType type = TypeOf(d);
  std::string base = SanitizeMetricName(d.name);
  FamilyName f;
  f.unit = UnitWord(d.unit, type == FamilyType::Gauge);
  if (type == FamilyType::Counter && base.size() > 6 && EndsWith(base, "_total")) base.resize(base.size() - 6);
  if (!f.unit.empty() && base != f.unit && !EndsWith(base, "_" + f.unit)) base += "_" + f.unit;
  if (type == FamilyType::Counter) {
    f.sample = base + "_total";
    f.family = format == Format::OpenMetrics100 ? base : f.sample;
  } else {
    f.family = base;
    f.sample = base;
  }
  return f;
}

// ---- Snapshot -----------------------------------------------------------------------------

void TakeSnapshot(RecordMap& map, const CollectOptions& opts, const std::vector<uint32_t>* include,
                  Snapshot* out) {
  // Room for every record now (records made before the pass takes the lock grow the
  // vectors): growing while the lock is held would fault in and copy about twice the
  // memory, and fresh pages are most of a first scrape's snapshot.
  size_t records = 0, doubles = 0;
  map.PassSize(opts.domain, include, &records, &doubles);
  out->records.reserve(out->records.size() + records);
  out->states.reserve(out->states.size() + doubles);
  CollectOptions pinned = opts;
  pinned.pinLabels = true;
  const Instrument* last = nullptr;
  bool included = false;
  bool observable = false;
  bool copied = false;  // `last` has its SnapshotInstrument
  out->epoch = map.CollectPass(
      pinned,
      [&](const CheckpointView& v) {
        if (v.instrument != last) {
          last = v.instrument;
          included = include == nullptr || std::binary_search(include->begin(), include->end(), v.instrument->id);
          observable = IsObservable(v.instrument->descriptor.kind);
          copied = false;
        }
        if (!included) return;
        if (!v.updated && opts.reclaim) out->stale.push_back(v.id);
        // Not observed since this reader's previous collection.
        if (observable && !v.fresh) return;
        if (!copied) {
          SnapshotInstrument si;
          si.id = v.instrument->id;
          si.descriptor = v.instrument->descriptor;
          si.cellSize = v.instrument->cellSize;
          si.firstRecord = out->records.size();
          out->instruments.push_back(std::move(si));
          copied = true;
        }
        SnapshotRecord sr;
        sr.id = v.id;
        sr.labels = v.record->labels;
        sr.labelSize = static_cast<uint32_t>(sr.labels->view().size()) & 0x7fffffffu;
        sr.plain = sr.labels->plain() ? 1 : 0;
        sr.lastUpdateEpoch = v.record->lastUpdateEpoch;
        sr.shape = sr.labels->shape();
        sr.startTimeMs = v.record->startTimeMs;
        sr.stateOffset = out->states.size();
        out->states.insert(out->states.end(), v.state, v.state + v.instrument->cellSize);
        out->records.push_back(sr);
        out->instruments.back().recordCount++;
      },
      &out->reclaimed);
  out->pin = RecordMap::LabelPin(&map);  // the pass took it
}

namespace {
std::mutex stashMu;
Snapshot* stashed = nullptr;  // owned; guarded by stashMu
}  // namespace

Snapshot ReuseSnapshot() {
  Snapshot* s;
  {
    std::lock_guard<std::mutex> lock(stashMu);
    s = stashed;
    stashed = nullptr;
  }
  if (s == nullptr) return Snapshot();
  Snapshot out = std::move(*s);
  delete s;
  return out;
}

void StashSnapshot(Snapshot&& s) {
  s.epoch = 0;
  s.instruments.clear();
  s.pin.reset();
  s.records.clear();
  s.states.clear();
  s.stale.clear();
  s.reclaimed.clear();
  auto* kept = new Snapshot(std::move(s));
  Snapshot* drop = nullptr;
  {
    std::lock_guard<std::mutex> lock(stashMu);
    if (stashed == nullptr || stashed->states.capacity() < kept->states.capacity()) {
      drop = stashed;
      stashed = kept;
    } else {
      drop = kept;
    }
  }
  delete drop;  // outside the lock: frees up to tens of MB
}

// ---- Output -------------------------------------------------------------------------------

namespace {
constexpr size_t kHuge = size_t{2} << 20;

char* AllocateBlock(size_t* cap, bool hugePages = true) {
  if (*cap >= kHuge) {
    *cap = (*cap + kHuge - 1) / kHuge * kHuge;
    return MapLarge(*cap, hugePages);
  }
  void* p = std::malloc(*cap);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}

// Frees what AllocateBlock returned with this capacity.
void FreeBlock(char* p, size_t cap) noexcept {
  if (cap >= kHuge) {
    UnmapLarge(p, cap);
  } else {
    std::free(p);
  }
}
}  // namespace

void* AllocateLarge(size_t bytes) {
  size_t cap = std::max<size_t>(bytes, 1);
  return AllocateBlock(&cap, false);
}

void FreeLarge(void* p, size_t bytes) noexcept {
  size_t cap = std::max<size_t>(bytes, 1);
  if (cap >= kHuge) cap = (cap + kHuge - 1) / kHuge * kHuge;
  FreeBlock(static_cast<char*>(p), cap);
}

Chunk::Chunk(size_t capacity) : cap_(std::max<size_t>(capacity, 64)) {
  if (cap_ == OutputPool::kBlockBytes) data_ = OutputPool::Global().Take();
  if (data_ == nullptr) data_ = AllocateBlock(&cap_);
}

void FreeChunkData(char* data, size_t capacity) noexcept {
  if (data == nullptr) return;
  if (capacity == OutputPool::kBlockBytes) {
    OutputPool::Global().Give(data);
  } else {
    FreeBlock(data, capacity);
  }
}

Chunk::~Chunk() { FreeChunkData(data_, cap_); }

Chunk::Chunk(Chunk&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
  o.data_ = nullptr;
  o.size_ = o.cap_ = 0;
}

Chunk& Chunk::operator=(Chunk&& o) noexcept {
  if (this != &o) {
    FreeChunkData(data_, cap_);
    data_ = o.data_;
    size_ = o.size_;
    cap_ = o.cap_;
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  return *this;
}

char* Chunk::release() {
  char* p = data_;
  data_ = nullptr;
  size_ = cap_ = 0;
  return p;
}

void Chunk::Grow(size_t need) {
  size_t cap = std::max<size_t>({64, cap_ * 2, size_ + need});
  char* p = AllocateBlock(&cap);
  if (size_ > 0) std::memcpy(p, data_, size_);
  FreeChunkData(data_, cap_);
  data_ = p;
  cap_ = cap;
}

ChunkedOutput::ChunkedOutput(size_t chunkBytes)
    : chunkBytes_(std::max<size_t>(chunkBytes, 4096)), cur_(chunkBytes_ + (size_t{64} << 10)) {}

void ChunkedOutput::Cut() {
  chunks_.push_back(std::move(cur_));
  cur_ = Chunk(chunkBytes_ + (size_t{64} << 10));
}

std::vector<Chunk> ChunkedOutput::Take() {
  if (!cur_.empty()) chunks_.push_back(std::move(cur_));
  cur_ = Chunk();
  std::vector<Chunk> out;
  out.swap(chunks_);
  return out;
}

void ChunkedOutput::Append(std::vector<Chunk> chunks) {
  if (!cur_.empty()) Cut();
  for (auto& c : chunks) {
    if (!c.empty()) chunks_.push_back(std::move(c));
  }
}

std::string Join(const std::vector<Chunk>& chunks) {
  std::string s;
  size_t n = 0;
  for (const auto& c : chunks) n += c.size();
  s.reserve(n);
  for (const auto& c : chunks) s.append(c.view());
  return s;
}

// ---- Serialize ----------------------------------------------------------------------------

namespace {

// The scope labels of an instrument's samples ("" when none or scope labels are off).
std::string ScopeText(const Descriptor& d, const Options& opts) {
  std::string scopeText;
  if (opts.scopeLabels) {
    if (!d.scopeName.empty()) {
      scopeText += "otel_scope_name=\"";
      AppendLabelValue(&scopeText, d.scopeName);
      scopeText += '"';
    }
    if (!d.scopeVersion.empty()) {
      if (!scopeText.empty()) scopeText += ',';
      scopeText += "otel_scope_version=\"";
      AppendLabelValue(&scopeText, d.scopeVersion);
      scopeText += '"';
    }
  }
  return scopeText;
}

// A record's label text (`k="v",...` without braces): sanitized names, collisions merged,
// reserved names renamed, then the scope labels. One per thread: the plan's identity pass
// and each writer have their own.
struct LabelText {
  const Options& opts;
  explicit LabelText(const Options& op) : opts(op) {}
  // Sanitized label names by raw key (views into the snapshot's label sets); values stay
  // put (nodes).
  std::unordered_map<std::string_view, std::string> names;
  std::string labels;  // the current record's label text, without braces
  struct Entry {
    std::string_view name;
    std::string_view value;
    int next = -1;   // the next value merged into this label (name collision)
    bool head = true;
  };
  std::vector<Entry> entries;

  std::string_view LabelNameOf(std::string_view raw) {
    if (IsCleanLabelName(raw)) return raw;
    auto it = names.find(raw);
    if (it == names.end()) it = names.emplace(raw, SanitizeLabelName(raw)).first;
    return it->second;
  }

  // entries (names sanitized, renamed, collisions merged) from `parsed`.
  void BuildEntries() {
    entries.clear();
    entryRawNames.clear();
    for (const auto& [raw, value] : parsed) {
      entryRawNames.push_back(raw);
      Entry e;
      e.name = LabelNameOf(raw);
      e.value = value;
      // `le` and `quantile` are renamed on every family: Prometheus tooling reads them as
      // bucket and quantile labels wherever they appear.
      if (e.name == "le" || e.name == "quantile" ||
          (opts.scopeLabels && (e.name == "otel_scope_name" || e.name == "otel_scope_version"))) {
        auto it = names.find(e.name);
        if (it == names.end()) it = names.emplace(e.name, "exported_" + std::string(e.name)).first;
        e.name = it->second;
      }
      int into = -1;
      for (size_t j = 0; j < entries.size(); j++) {
        if (entries[j].head && entries[j].name == e.name) {
          into = static_cast<int>(j);
          break;
        }
      }
      e.head = into < 0;
      entries.push_back(e);
      if (into >= 0) {
        int t = into;
        while (entries[static_cast<size_t>(t)].next >= 0) t = entries[static_cast<size_t>(t)].next;
        entries[static_cast<size_t>(t)].next = static_cast<int>(entries.size() - 1);
      }
    }
  }

  // The current record's attributes as (raw name, value text) pairs.
  std::vector<std::pair<std::string_view, std::string_view>> parsed;
  // The raw names `entries` was built from, in order (views into the snapshot's label
  // sets). Records of an instrument mostly share their attribute names: when the next
  // record's are the same, only the values change and the names' sanitizing and merging
  // are not redone.
  std::vector<std::string_view> entryRawNames;

  // Fills `labels` for a record: its attributes, then the scope labels.
  void Build(std::string_view key, std::string_view scopeText) {
    parsed.clear();
    size_t i = 0;
    std::string_view part, tagged;
    while (NextLabelKeyPart(key, &i, &part) && NextLabelKeyPart(key, &i, &tagged)) {
      // Drop the type tag ('s', 'n', 'b', 'a'): the value's text is what follows it.
      parsed.emplace_back(part, tagged.empty() ? tagged : tagged.substr(1));
    }
    bool sameNames = parsed.size() == entryRawNames.size();
    for (size_t k = 0; sameNames && k < parsed.size(); k++) sameNames = parsed[k].first == entryRawNames[k];
    if (sameNames) {
      for (size_t k = 0; k < parsed.size(); k++) entries[k].value = parsed[k].second;
    } else {
      BuildEntries();
    }
    labels.clear();
    for (const Entry& e : entries) {
      if (!e.head) continue;
      if (!labels.empty()) labels.push_back(',');
      labels.append(e.name);
      labels.append("=\"");
      AppendLabelValue(&labels, e.value);
      for (int t = e.next; t >= 0; t = entries[static_cast<size_t>(t)].next) {
        labels.push_back(';');
        AppendLabelValue(&labels, entries[static_cast<size_t>(t)].value);
      }
      labels.push_back('"');
    }
    if (!scopeText.empty()) {
      if (!labels.empty()) labels.push_back(',');
      labels.append(scopeText);
    }
  }
};

// A histogram state as cumulative counts at its finite bounds, ascending.
void CumulativeBuckets(const Descriptor& d, const double* st, size_t n, std::vector<std::pair<double, double>>* out) {
  out->clear();
  if (d.aggregation == AggregationKind::Histogram) {
    double cum = 0;
    for (size_t i = 0; i < d.bounds.size() && 3 + i < n; i++) {
      cum += st[3 + i];
      out->emplace_back(d.bounds[i], cum);
    }
    return;
  }
  double cum = st[exphist::kZero];
  int64_t lo = 0, hi = 0;
  if (exphist::UsedRange(st, n, false, &lo, &hi)) {
    for (int64_t i = lo; i <= hi; i++) cum += exphist::BucketCount(st, n, false, i);
  }
  out->emplace_back(0.0, cum);
  if (exphist::UsedRange(st, n, true, &lo, &hi)) {
    const auto scale = static_cast<int32_t>(st[exphist::kScale]);
    for (int64_t i = lo; i <= hi; i++) {
      cum += exphist::BucketCount(st, n, true, i);
      out->emplace_back(exphist::LowerBoundary(i + 1, scale), cum);
    }
  }
}

// Count and sum of a histogram or summary state.
void CountAndSum(const Descriptor& d, const double* st, size_t n, double* count, double* sum) {
  switch (d.aggregation) {
    case AggregationKind::Histogram: {
      double c = 0;
      for (size_t i = 3; i < n; i++) c += st[i];
      *count = c;
      *sum = st[0];
      return;
    }
    case AggregationKind::ExponentialHistogram:
      *count = exphist::Total(st, n);
      *sum = st[exphist::kSum];
      return;
    case AggregationKind::Sketch:
      *count = sketch::Total(st, n);
      *sum = st[sketch::kSum];
      return;
    case AggregationKind::MinMaxSumCount:
    case AggregationKind::Exact:
      *count = st[0];
      *sum = st[1];
      return;
    default:
      *count = 0;
      *sum = st[0];
      return;
  }
}

// Writes records and merged series.
struct Writer {
  const Options& opts;
  const ExactQuantiles& exact;
  const Snapshot& snap;
  Chunk& o;
  ChunkedOutput* out;
  LabelText lt;
  const std::string& labels;  // lt.labels
  std::vector<std::string> quantileLabels;  // of the current instrument

  // The current instrument's constants (Setup).
  const SnapshotInstrument* cur = nullptr;
  std::string sample;       // the base of sample names
  std::string createdName;  // `<family>_created`
  bool created = false;     // OpenMetrics counter, histogram or summary: writes `_created`
  std::string scopeText;
  std::vector<std::string> leTail;  // `le="bound"} ` per bucket
  const std::vector<double>* quantiles = nullptr;
  std::unique_ptr<sketch::Mapping> mapping;
  size_t n = 0;
  std::string scratch;
  std::vector<double> merged;                                  // a merged state
  std::vector<std::pair<double, double>> buckets, otherBuckets;  // CommonBuckets

  Writer(const Options& op, const ExactQuantiles& ex, const Snapshot& sn, ChunkedOutput* co)
      : opts(op), exact(ex), snap(sn), o(co->cur()), out(co), lt(op), labels(lt.labels) {}

  const std::vector<double>& QuantilesOf(uint32_t instrument) {
    auto it = opts.instrumentQuantiles.find(instrument);
    const std::vector<double>& qs = it == opts.instrumentQuantiles.end() ? opts.quantiles : it->second;
    quantileLabels.clear();
    for (double q : qs) {
      std::string s = "quantile=\"";
      AppendNumber(&s, q);
      s += '"';
      quantileLabels.push_back(std::move(s));
    }
    return qs;
  }

  void Setup(const SnapshotInstrument& si) {
    if (cur == &si) return;
    cur = &si;
    const Descriptor& d = si.descriptor;
    const FamilyName fn = NameFor(d, opts.format);
    const FamilyType type = TypeOf(d);
    sample = fn.sample;
    created = opts.format == Format::OpenMetrics100 &&
              (type == FamilyType::Counter || type == FamilyType::Histogram || type == FamilyType::Summary);
    createdName = fn.family + "_created";
    scopeText = ScopeText(d, opts);
    leTail.clear();
    if (d.aggregation == AggregationKind::Histogram) {
      for (double b : d.bounds) {
        std::string s = "le=\"";
        AppendNumber(&s, b);
        s += "\"} ";
        leTail.push_back(std::move(s));
      }
      leTail.push_back("le=\"+Inf\"} ");
    }
    quantiles = &QuantilesOf(si.id);
    mapping.reset();
    if (d.aggregation == AggregationKind::Sketch) mapping = std::make_unique<sketch::Mapping>(d.relativeAccuracy);
    n = si.cellSize;
  }

  // name suffix{labels,extra} value\n, with one capacity check.
  void Sample(std::string_view name, std::string_view suffix, std::string_view extra, double v) {
    const bool braces = !labels.empty() || !extra.empty();
    const bool comma = !labels.empty() && !extra.empty();
    char* p = o.Extend(name.size() + suffix.size() + labels.size() + extra.size() + 4 + 32);
    char* const start = p;
    auto put = [&p](std::string_view s) {
      std::memcpy(p, s.data(), s.size());
      p += s.size();
    };
    put(name);
    put(suffix);
    if (braces) {
      *p++ = '{';
      put(labels);
      if (comma) *p++ = ',';
      put(extra);
      *p++ = '}';
    }
    *p++ = ' ';
    p += FormatNumber(p, v);
    *p++ = '\n';
    o.Shrink(static_cast<size_t>(p - start));
  }

  // The current record's `name_bucket{labels,` (histograms: written once per record, not
  // once per bucket line).
  std::string bucketPrefix;

  // bucketPrefix, then `tail` (`le="..."} `), the value and a newline.
  void BucketLine(std::string_view tail, double v) {
    char* p = o.Extend(bucketPrefix.size() + tail.size() + 1 + 32);
    char* const start = p;
    std::memcpy(p, bucketPrefix.data(), bucketPrefix.size());
    p += bucketPrefix.size();
    std::memcpy(p, tail.data(), tail.size());
    p += tail.size();
    p += FormatNumber(p, v);
    *p++ = '\n';
    o.Shrink(static_cast<size_t>(p - start));
  }

  // `<family>_created`: whole milliseconds (as OTLP's start time) in seconds.
  void Created(double startTimeMs) {
    if (created) Sample(createdName, "", "", std::floor(startTimeMs) / 1000);
  }

  // The quantile samples of a summary state of the current instrument.
  void Quantiles(AggregationKind agg, uint64_t recordId, const double* st) {
    const std::vector<double>& qs = *quantiles;
    switch (agg) {
      case AggregationKind::Sketch:
        if (sketch::Total(st, n) > 0) {
          for (size_t q = 0; q < qs.size(); q++) Sample(sample, "", quantileLabels[q], sketch::Quantile(st, n, *mapping, qs[q]));
        }
        break;
      case AggregationKind::Exact: {
        auto it = exact.find(recordId);
        if (it != exact.end()) {
          for (size_t q = 0; q < qs.size() && q < it->second.size(); q++) Sample(sample, "", quantileLabels[q], it->second[q]);
        }
        break;
      }
      case AggregationKind::MinMaxSumCount:
        if (st[0] > 0) {
          Sample(sample, "", "quantile=\"0\"", st[2]);
          Sample(sample, "", "quantile=\"1\"", st[3]);
        }
        break;
      default:
        break;
    }
  }

  // One state's samples (labels built, Setup done), without `_created`.
  void Samples(uint64_t recordId, const double* st) {
    const Descriptor& d = cur->descriptor;
    switch (d.aggregation) {
      case AggregationKind::Sum:
      case AggregationKind::PrecomputedSum:
      case AggregationKind::LastValue:
        Sample(sample, "", "", st[0]);
        break;
      case AggregationKind::Histogram: {
        bucketPrefix.assign(sample);
        bucketPrefix.append("_bucket{");
        bucketPrefix.append(labels);
        if (!labels.empty()) bucketPrefix.push_back(',');
        double cum = 0;
        for (size_t i = 3; i < n; i++) {
          cum += st[i];
          BucketLine(leTail[i - 3], cum);
        }
        Sample(sample, "_sum", "", st[0]);
        Sample(sample, "_count", "", cum);
        break;
      }
      case AggregationKind::ExponentialHistogram: {
        const double count = exphist::Total(st, n);
        double cum = st[exphist::kZero];
        int64_t lo = 0, hi = 0;
        if (exphist::UsedRange(st, n, false, &lo, &hi)) {
          for (int64_t i = lo; i <= hi; i++) cum += exphist::BucketCount(st, n, false, i);
        }
        Sample(sample, "_bucket", "le=\"0\"", cum);
        if (exphist::UsedRange(st, n, true, &lo, &hi)) {
          const auto scale = static_cast<int32_t>(st[exphist::kScale]);
          for (int64_t i = lo; i <= hi; i++) {
            cum += exphist::BucketCount(st, n, true, i);
            scratch = "le=\"";
            AppendNumber(&scratch, exphist::LowerBoundary(i + 1, scale));
            scratch += '"';
            Sample(sample, "_bucket", scratch, cum);
          }
        }
        Sample(sample, "_bucket", "le=\"+Inf\"", count);
        Sample(sample, "_sum", "", st[exphist::kSum]);
        Sample(sample, "_count", "", count);
        break;
      }
      case AggregationKind::Sketch:
      case AggregationKind::Exact:
      case AggregationKind::MinMaxSumCount: {
        Quantiles(d.aggregation, recordId, st);
        double count = 0, sum = 0;
        CountAndSum(d, st, n, &count, &sum);
        Sample(sample, "_sum", "", sum);
        Sample(sample, "_count", "", count);
        break;
      }
      case AggregationKind::Drop:
        break;
    }
  }

  const double* StateOf(size_t record) const { return snap.states.data() + snap.records[record].stateOffset; }

  void Member(const SnapshotInstrument& si, size_t begin, size_t end) {
    Setup(si);
    for (size_t r = begin; r < end; r++) {
      const SnapshotRecord& rec = snap.records[r];
      lt.Build(rec.labelKey(), scopeText);
      Samples(rec.id, snap.states.data() + rec.stateOffset);
      Created(rec.startTimeMs);
      out->MaybeCut();
    }
  }

  // Series s of a merged family: its records as one series (MergeKind).
  void Series(const MergedFamily& mf, size_t s) {
    const MergedFamily::Series& se = mf.series[s];
    const MergedFamily::Ref* refs = mf.refs.data() + se.first;
    const SnapshotRecord& rec0 = snap.records[refs[0].record];
    Setup(*refs[0].instrument);
    lt.Build(rec0.labelKey(), scopeText);  // every record of the series has this text
    double start = rec0.startTimeMs;
    for (uint32_t k = 1; k < se.count; k++) start = std::min(start, snap.records[refs[k].record].startTimeMs);
    if (se.count == 1) {
      Samples(rec0.id, StateOf(refs[0].record));
    } else {
      switch (se.how) {
        case MergeKind::Added: {
          const AggregationKind agg = refs[0].instrument->descriptor.aggregation;
          if (agg == AggregationKind::Sum || agg == AggregationKind::PrecomputedSum) {
            double v = 0;
            for (uint32_t k = 0; k < se.count; k++) v += StateOf(refs[k].record)[0];
            Sample(sample, "", "", v);
          } else {
            const double* st0 = StateOf(refs[0].record);
            merged.assign(st0, st0 + n);
            for (uint32_t k = 1; k < se.count; k++) MergeState(agg, merged.data(), StateOf(refs[k].record), n);
            Samples(rec0.id, merged.data());
          }
          break;
        }
        case MergeKind::KeptLatest: {
          uint32_t best = 0;
          for (uint32_t k = 1; k < se.count; k++) {
            if (snap.records[refs[k].record].lastUpdateEpoch > snap.records[refs[best].record].lastUpdateEpoch) best = k;
          }
          Setup(*refs[best].instrument);
          Samples(snap.records[refs[best].record].id, StateOf(refs[best].record));
          break;
        }
        case MergeKind::KeptQuantiles: {
          uint32_t best = 0;
          double bestCount = -1, count = 0, sum = 0;
          for (uint32_t k = 0; k < se.count; k++) {
            const SnapshotInstrument& si = *refs[k].instrument;
            double c = 0, t = 0;
            CountAndSum(si.descriptor, StateOf(refs[k].record), si.cellSize, &c, &t);
            count += c;
            sum += t;
            if (c > bestCount) {
              bestCount = c;
              best = k;
            }
          }
          Setup(*refs[best].instrument);
          Quantiles(cur->descriptor.aggregation, snap.records[refs[best].record].id, StateOf(refs[best].record));
          Sample(sample, "_sum", "", sum);
          Sample(sample, "_count", "", count);
          break;
        }
        case MergeKind::CommonBuckets: {
          double count = 0, sum = 0;
          for (uint32_t k = 0; k < se.count; k++) {
            const SnapshotInstrument& si = *refs[k].instrument;
            const double* st = StateOf(refs[k].record);
            double c = 0, t = 0;
            CountAndSum(si.descriptor, st, si.cellSize, &c, &t);
            count += c;
            sum += t;
            if (k == 0) {
              CumulativeBuckets(si.descriptor, st, si.cellSize, &buckets);
              continue;
            }
            CumulativeBuckets(si.descriptor, st, si.cellSize, &otherBuckets);
            size_t keep = 0, j = 0;
            for (const auto& [le, cum] : buckets) {
              while (j < otherBuckets.size() && otherBuckets[j].first < le) j++;
              if (j < otherBuckets.size() && otherBuckets[j].first == le) buckets[keep++] = {le, cum + otherBuckets[j].second};
            }
            buckets.resize(keep);
          }
          for (const auto& [le, cum] : buckets) {
            scratch = "le=\"";
            AppendNumber(&scratch, le);
            scratch += '"';
            Sample(sample, "_bucket", scratch, cum);
          }
          Sample(sample, "_bucket", "le=\"+Inf\"", count);
          Sample(sample, "_sum", "", sum);
          Sample(sample, "_count", "", count);
          break;
        }
      }
    }
    Created(start);
    out->MaybeCut();
  }
};

// Whether records [lo, hi) of one instrument may render the same label text, and their
// mean label key size. Plain label sets never render alike, nor do sets of one shape
// that merges no names (LabelSet::ShapeOf); the cardinality limit's overflow set
// (`otel_metric_overflow="true"`) renders like another only if that has one attribute of
// that name. One pass over the records; label keys are read only for records whose shape
// is not the first one's (the overflow set, mixed shapes).
bool MemberMayCollide(const Snapshot& snap, size_t lo, size_t hi, double* labelBytes) {
  const std::string_view overflow = OverflowLabelKey();
  bool plain = true, oneShape = true, overflowSeen = false;
  size_t first = hi;  // a record that is not the overflow set: its shape is the first one
  double bytes = 0;
  for (size_t r = lo; r < hi; r++) {
    const SnapshotRecord& rec = snap.records[r];
    bytes += static_cast<double>(rec.labelSize);
    if (first < hi && rec.shape == snap.records[first].shape) {
      plain = plain && rec.plain;
      continue;
    }
    if (!overflowSeen && rec.labelKey() == overflow) {
      overflowSeen = true;
      continue;
    }
    plain = plain && rec.plain;
    if (first == hi) {
      first = r;
    } else {
      oneShape = false;
    }
  }
  *labelBytes = hi > lo ? bytes / static_cast<double>(hi - lo) : 0;
  if (first == hi) return false;  // no records, or the overflow set alone
  oneShape = oneShape && (snap.records[first].shape & LabelSet::kShapeMerges) == 0;
  if (!plain && !oneShape) return true;
  if (!overflowSeen) return false;
  if (!oneShape) return true;  // several plain shapes besides the overflow set: not told apart here
  const std::string_view key = snap.records[first].labelKey();
  size_t pos = 0;
  std::string_view name, value;
  if (!NextLabelKeyPart(key, &pos, &name) || !NextLabelKeyPart(key, &pos, &value) || pos < key.size()) return false;
  return SanitizeLabelName(name) == "otel_metric_overflow";
}

// How the records of one series identity are merged (see MergeKind); all are of one
// family type.
MergeKind MergeKindOf(FamilyType type, const MergedFamily::Ref* refs, uint32_t count) {
  const SnapshotInstrument& a = *refs[0].instrument;
  const AggregationKind agg = a.descriptor.aggregation;
  bool same = true;  // one aggregation and layout (and bounds, accuracy)
  bool sums = true;  // every one a sum
  for (uint32_t k = 0; k < count; k++) {
    const SnapshotInstrument& b = *refs[k].instrument;
    const AggregationKind bk = b.descriptor.aggregation;
    sums = sums && (bk == AggregationKind::Sum || bk == AggregationKind::PrecomputedSum);
    same = same && bk == agg && b.cellSize == a.cellSize && b.descriptor.bounds == a.descriptor.bounds &&
           (agg != AggregationKind::Sketch || b.descriptor.relativeAccuracy == a.descriptor.relativeAccuracy);
  }
  switch (type) {
    case FamilyType::Counter:
      return MergeKind::Added;
    case FamilyType::Gauge:
      return sums ? MergeKind::Added : MergeKind::KeptLatest;
    case FamilyType::Histogram:
      return same ? MergeKind::Added : MergeKind::CommonBuckets;
    case FamilyType::Summary:
      return same && (agg == AggregationKind::Sketch || agg == AggregationKind::MinMaxSumCount) ? MergeKind::Added
                                                                                               : MergeKind::KeptQuantiles;
    case FamilyType::Skip:
      break;
  }
  return MergeKind::KeptLatest;
}

// The names a family of this type uses: its TYPE names in both formats and its samples'
// (`_created` of OpenMetrics included).
std::vector<std::string> ClaimedNames(const Descriptor& d, FamilyType type) {
  FamilyName text = NameFor(d, Format::Text004);
  FamilyName om = NameFor(d, Format::OpenMetrics100);
  std::vector<std::string> v = {text.family};
  if (om.family != text.family) v.push_back(om.family);
  switch (type) {
    case FamilyType::Histogram:
      v.push_back(text.sample + "_bucket");
      [[fallthrough]];
    case FamilyType::Summary:
      v.push_back(text.sample + "_count");
      v.push_back(text.sample + "_sum");
      [[fallthrough]];
    case FamilyType::Counter:
      v.push_back(om.family + "_created");
      break;
    default:
      break;
  }
  return v;
}

}  // namespace

SerializationPlan::SerializationPlan(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact,
                                     std::vector<uint32_t>* dropped)
    : snap_(snap), opts_(opts), exact_(exact) {
  // Group instruments into families (registration order decides clashes).
  std::unordered_map<std::string, size_t> claimed;  // name -> family index
  const size_t kReserved = SIZE_MAX;
  for (const std::string& r : opts.reservedNames) claimed.emplace(r, kReserved);
  for (const SnapshotInstrument& si : snap.instruments) {
    const Descriptor& d = si.descriptor;
    const FamilyType type = TypeOf(d);
    if (type == FamilyType::Skip) continue;
    const std::vector<std::string> names = ClaimedNames(d, type);
    const std::string& textKey = names[0];
    size_t joined = SIZE_MAX;
    bool clash = false;
    for (const std::string& nm : names) {
      auto it = claimed.find(nm);
      if (it == claimed.end()) continue;
      if (it->second == kReserved) {
        clash = true;
        break;
      }
      const PlanFamily& f = families_[it->second];
      if (f.type != type || f.textKey != textKey) {
        clash = true;
        break;
      }
      joined = it->second;
    }
    if (clash) {
      if (dropped) dropped->push_back(si.id);
      continue;
    }
    if (joined == SIZE_MAX) {
      PlanFamily f;
      FamilyName fn = NameFor(d, opts.format);
      f.name = fn.family;
      f.textKey = textKey;
      f.type = type;
      f.unit = fn.unit;
      f.help = d.description.empty() ? d.name : d.description;
      joined = families_.size();
      families_.push_back(std::move(f));
      for (const std::string& nm : names) claimed.emplace(nm, joined);
    }
    families_[joined].members.push_back(&si);
  }
  std::vector<size_t> order(families_.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return families_[a].name < families_[b].name; });

  // The work in output order (families_ is complete: the pointers stay valid). A record's
  // weight estimates its text: its lines times (its instrument's mean label key, the
  // sample name and ~30 bytes of suffix, `le`, value, `_created`).
  const bool om = opts.format == Format::OpenMetrics100;
  std::vector<Unit> members;
  for (size_t idx : order) {
    const PlanFamily& f = families_[idx];
    units_.push_back({&f, nullptr, 0, 0, 0});
    // Records of two members can share a label text only if the members' scope labels
    // are the same; records of one member only if its label sets are not all plain and
    // not all of one shape that merges no names (LabelSet::ShapeOf): 200 and "200".
    bool mayCollide = false;
    for (size_t i = 0; i < f.members.size() && !mayCollide; i++) {
      for (size_t j = 0; j < i && !mayCollide; j++) {
        const Descriptor& a = f.members[i]->descriptor;
        const Descriptor& b = f.members[j]->descriptor;
        mayCollide = !opts.scopeLabels || (a.scopeName == b.scopeName && a.scopeVersion == b.scopeVersion);
      }
    }
    members.clear();
    for (const SnapshotInstrument* si : f.members) {
      double lines = 1;
      switch (si->descriptor.aggregation) {
        case AggregationKind::Histogram: lines = static_cast<double>(si->descriptor.bounds.size() + 3); break;
        case AggregationKind::ExponentialHistogram: lines = 12; break;
        case AggregationKind::Sketch:
        case AggregationKind::Exact: lines = static_cast<double>(opts.quantiles.size() + 2); break;
        case AggregationKind::MinMaxSumCount: lines = 4; break;
        default: break;
      }
      if (om && f.type != FamilyType::Gauge) lines += 1;  // `_created`
      const size_t lo = si->firstRecord, hi = si->firstRecord + si->recordCount;
      double labelBytes = 0;
      if (MemberMayCollide(snap, lo, hi, &labelBytes)) mayCollide = true;
      const double w = lines * (labelBytes + static_cast<double>(f.name.size()) + 30);
      members.push_back({&f, si, lo, hi, w});
    }
    std::unique_ptr<MergedFamily> mf = mayCollide ? MergeFamily(f) : nullptr;
    if (mf == nullptr) {
      for (const Unit& u : members) {
        units_.push_back(u);
        total_ += u.end - u.begin;
        weight_ += u.weight * static_cast<double>(u.end - u.begin);
      }
      continue;
    }
    double w = 0, records = 0;
    for (const Unit& u : members) {
      w += u.weight * static_cast<double>(u.end - u.begin);
      records += static_cast<double>(u.end - u.begin);
    }
    w = records > 0 ? w / records : 0;
    const size_t series = mf->series.size();
    units_.push_back({&f, nullptr, 0, series, w, mf.get()});
    total_ += series;
    weight_ += w * static_cast<double>(series);
    merged_.push_back(std::move(mf));
  }
  std::sort(collisions_.begin(), collisions_.end());
  collisions_.erase(std::unique(collisions_.begin(), collisions_.end()), collisions_.end());
  unsigned threads = opts.threads;
  if (threads == 0) threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  threads_ = total_ < opts.parallelMinRecords || total_ < threads ? 1 : threads;
}

std::unique_ptr<MergedFamily> SerializationPlan::MergeFamily(const PlanFamily& f) {
  // Each record's label text, once: records of one text are one series, in the order of
  // their first record (members in registration order, then their records).
  LabelText lt(opts_);
  std::unordered_map<std::string, uint32_t> seriesOf;
  std::vector<uint32_t> order;  // series of each record, members then records
  std::vector<uint32_t> sizes;  // records per series
  for (const SnapshotInstrument* si : f.members) {
    const std::string scopeText = ScopeText(si->descriptor, opts_);
    for (size_t r = si->firstRecord; r < si->firstRecord + si->recordCount; r++) {
      lt.Build(snap_.records[r].labelKey(), scopeText);
      auto [it, added] = seriesOf.try_emplace(lt.labels, static_cast<uint32_t>(sizes.size()));
      if (added) sizes.push_back(0);
      sizes[it->second]++;
      order.push_back(it->second);
    }
  }
  if (sizes.size() == order.size()) return nullptr;  // no two records share a text
  auto mf = std::make_unique<MergedFamily>();
  mf->series.resize(sizes.size());
  uint32_t at = 0;
  for (size_t s = 0; s < sizes.size(); s++) {
    mf->series[s].first = at;
    at += sizes[s];
  }
  mf->refs.resize(order.size());
  size_t k = 0;
  for (const SnapshotInstrument* si : f.members) {
    for (size_t r = si->firstRecord; r < si->firstRecord + si->recordCount; r++) {
      MergedFamily::Series& se = mf->series[order[k++]];
      mf->refs[se.first + se.count++] = {si, r};
    }
  }
  for (MergedFamily::Series& se : mf->series) {
    if (se.count < 2) continue;
    const MergedFamily::Ref* refs = mf->refs.data() + se.first;
    se.how = MergeKindOf(f.type, refs, se.count);
    for (uint32_t j = 1; j < se.count; j++) collisions_.push_back({refs[0].instrument->id, refs[j].instrument->id, se.how});
  }
  return mf;
}

std::vector<size_t> SerializationPlan::Split(size_t lo, size_t hi, size_t pieces) const {
  std::vector<size_t> split(std::max<size_t>(pieces, 1) + 1, hi);
  split[0] = lo;
  if (pieces <= 1 || hi <= lo) return split;
  auto each = [&](auto f) {  // f(first record of the overlap, records, weight per record)
    size_t seen = 0;
    for (const Unit& u : units_) {
      if (u.header()) continue;
      const size_t n = u.end - u.begin;
      const size_t a = std::max(seen, lo), b = std::min(seen + n, hi);
      if (a < b) f(a, b - a, u.weight);
      seen += n;
    }
  };
  double weight = 0;
  each([&](size_t, size_t m, double w) { weight += static_cast<double>(m) * w; });
  size_t next = 1;
  double acc = 0;
  each([&](size_t a, size_t m, double w) {
    while (next < pieces && acc + static_cast<double>(m) * w >= weight * static_cast<double>(next) / static_cast<double>(pieces)) {
      const double need = weight * static_cast<double>(next) / static_cast<double>(pieces) - acc;
      const size_t k = w > 0 ? std::min(m, static_cast<size_t>(std::ceil(need / w))) : 0;
      split[next] = std::max(split[next - 1], a + k);
      next++;
    }
    acc += static_cast<double>(m) * w;
  });
  return split;
}

std::vector<size_t> SerializationPlan::Parts(size_t bytes) const {
  const double pieces = std::ceil(weight_ / static_cast<double>(std::max<size_t>(bytes, 1)));
  std::vector<size_t> split = Split(0, total_, pieces > 1 ? static_cast<size_t>(pieces) : 1);
  split.erase(std::unique(split.begin() + 1, split.end()), split.end());  // no empty parts
  if (split.size() == 1) split.push_back(total_);                       // none at all: one
  return split;
}

void SerializationPlan::Write(size_t lo, size_t hi, bool first, bool last, ChunkedOutput* out) const {
  const size_t threads = std::min<size_t>(threads_, std::max<size_t>(1, (hi - lo) / 256));
  if (threads <= 1) {
    WriteRange(lo, hi, first, last, out);
    return;
  }
  const std::vector<size_t> split = Split(lo, hi, threads);
  std::vector<std::unique_ptr<ChunkedOutput>> parts;
  for (size_t p = 0; p < threads; p++) parts.push_back(std::make_unique<ChunkedOutput>(opts_.chunkBytes));
  auto run = [&](size_t p) { WriteRange(split[p], split[p + 1], first && p == 0, last && p == threads - 1, parts[p].get()); };
  std::vector<std::thread> pool;
  for (size_t p = 1; p < threads; p++) pool.emplace_back(run, p);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& part : parts) out->Append(part->Take());
}

// Records [lo, hi) and the headers of the families whose first record falls in that range
// (and, for the last range, of the families after the last record: empty ones).
void SerializationPlan::WriteRange(size_t lo, size_t hi, bool first, bool last, ChunkedOutput* out) const {
  const bool om = opts_.format == Format::OpenMetrics100;
  Writer w(opts_, exact_, snap_, out);
  Chunk& o = out->cur();
  if (first) o.append(opts_.prefix);
  size_t seen = 0;  // records before the current unit
  for (const Unit& u : units_) {
    const size_t n = u.end - u.begin;
    if (u.header()) {
      const bool mine = (seen >= lo && seen < hi) || (last && seen == total_);
      if (mine) {
        const PlanFamily& f = *u.family;
        o.append("# HELP ");
        o.append(f.name);
        o.push_back(' ');
        AppendHelp(&o, f.help, opts_.format);
        o.append("\n# TYPE ");
        o.append(f.name);
        o.push_back(' ');
        o.append(TypeName(f.type));
        o.push_back('\n');
        if (om && !f.unit.empty()) {
          o.append("# UNIT ");
          o.append(f.name);
          o.push_back(' ');
          o.append(f.unit);
          o.push_back('\n');
        }
      }
      continue;
    }
    const size_t a = std::max(seen, lo), b = std::min(seen + n, hi);
    if (a < b && u.merged != nullptr) {
      for (size_t k = u.begin + (a - seen); k < u.begin + (b - seen); k++) w.Series(*u.merged, k);
    } else if (a < b) {
      w.Member(*u.member, u.begin + (a - seen), u.begin + (b - seen));
    }
    seen += n;
    if (seen >= hi && !last) break;
  }
  if (om && last) o.append("# EOF\n");
}

void Serialize(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact, ChunkedOutput* out,
               std::vector<uint32_t>* dropped, std::vector<Collision>* collisions) {
  SerializationPlan plan(snap, opts, exact, dropped);
  if (collisions != nullptr) *collisions = plan.collisions();
  plan.Write(0, plan.records(), true, true, out);
}

}  // namespace hotmeter::prometheus
