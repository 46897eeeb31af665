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
        sr.labelSize = sr.labels->view().size();
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

// Per-instrument constants of a serialization.
struct Writer {
  const Options& opts;
  const ExactQuantiles& exact;
  const Snapshot& snap;
  Chunk& o;
  ChunkedOutput* out;
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
  std::vector<std::string> quantileLabels;  // of the current instrument

  Writer(const Options& op, const ExactQuantiles& ex, const Snapshot& sn, ChunkedOutput* co)
      : opts(op), exact(ex), snap(sn), o(co->cur()), out(co) {}

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
  void BuildLabels(std::string_view key, std::string_view scopeText) {
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

  void Member(const SnapshotInstrument& si, size_t begin, size_t end) {
    const Descriptor& d = si.descriptor;
    const FamilyName fn = NameFor(d, opts.format);
    const std::string& sample = fn.sample;
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
    std::vector<std::string> leTail;  // `le="bound"} ` per bucket
    if (d.aggregation == AggregationKind::Histogram) {
      for (double b : d.bounds) {
        std::string s = "le=\"";
        AppendNumber(&s, b);
        s += "\"} ";
        leTail.push_back(std::move(s));
      }
      leTail.push_back("le=\"+Inf\"} ");
    }
    const std::vector<double>& quantiles = QuantilesOf(si.id);
    std::unique_ptr<sketch::Mapping> mapping;
    if (d.aggregation == AggregationKind::Sketch) mapping = std::make_unique<sketch::Mapping>(d.relativeAccuracy);
    const size_t n = si.cellSize;
    std::string scratch;
    for (size_t r = begin; r < end; r++) {
      const SnapshotRecord& rec = snap.records[r];
      const double* st = snap.states.data() + rec.stateOffset;
      BuildLabels(rec.labelKey(), scopeText);
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
        case AggregationKind::Sketch: {
          const double count = sketch::Total(st, n);
          if (count > 0) {
            for (size_t q = 0; q < quantiles.size(); q++) {
              Sample(sample, "", quantileLabels[q], sketch::Quantile(st, n, *mapping, quantiles[q]));
            }
          }
          Sample(sample, "_sum", "", st[sketch::kSum]);
          Sample(sample, "_count", "", count);
          break;
        }
        case AggregationKind::Exact: {
          auto it = exact.find(rec.id);
          if (it != exact.end()) {
            for (size_t q = 0; q < quantiles.size() && q < it->second.size(); q++) {
              Sample(sample, "", quantileLabels[q], it->second[q]);
            }
          }
          Sample(sample, "_sum", "", st[1]);
          Sample(sample, "_count", "", st[0]);
          break;
        }
        case AggregationKind::MinMaxSumCount:
          if (st[0] > 0) {
            Sample(sample, "", "quantile=\"0\"", st[2]);
            Sample(sample, "", "quantile=\"1\"", st[3]);
          }
          Sample(sample, "_sum", "", st[1]);
          Sample(sample, "_count", "", st[0]);
          break;
        case AggregationKind::Drop:
          break;
      }
      out->MaybeCut();
    }
  }
};

// The names a family of this type uses: its TYPE names in both formats and its samples'.
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
  // sample name and ~30 bytes of suffix, `le`, value).
  for (size_t idx : order) {
    const PlanFamily& f = families_[idx];
    units_.push_back({&f, nullptr, 0, 0, 0});
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
      const size_t lo = si->firstRecord, hi = si->firstRecord + si->recordCount;
      double labelBytes = 0;
      for (size_t r = lo; r < hi; r++) labelBytes += static_cast<double>(snap.records[r].labelSize);
      if (hi > lo) labelBytes /= static_cast<double>(hi - lo);
      const double w = lines * (labelBytes + static_cast<double>(f.name.size()) + 30);
      units_.push_back({&f, si, lo, hi, w});
      total_ += si->recordCount;
      weight_ += w * static_cast<double>(si->recordCount);
    }
  }
  unsigned threads = opts.threads;
  if (threads == 0) threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  threads_ = total_ < opts.parallelMinRecords || total_ < threads ? 1 : threads;
}

std::vector<size_t> SerializationPlan::Split(size_t lo, size_t hi, size_t pieces) const {
  std::vector<size_t> split(std::max<size_t>(pieces, 1) + 1, hi);
  split[0] = lo;
  if (pieces <= 1 || hi <= lo) return split;
  auto each = [&](auto f) {  // f(first record of the overlap, records, weight per record)
    size_t seen = 0;
    for (const Unit& u : units_) {
      if (u.member == nullptr) continue;
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
    if (u.member == nullptr) {
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
    if (a < b) w.Member(*u.member, u.begin + (a - seen), u.begin + (b - seen));
    seen += n;
    if (seen >= hi && !last) break;
  }
  if (om && last) o.append("# EOF\n");
}

void Serialize(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact, ChunkedOutput* out,
               std::vector<uint32_t>* dropped) {
  SerializationPlan plan(snap, opts, exact, dropped);
  plan.Write(0, plan.records(), true, true, out);
}

}  // namespace hotmeter::prometheus
