// Prometheus exposition (text format 0.0.4 and OpenMetrics 1.0.0) straight from the
// record map's checkpoints, without building JS objects.
//
// Two steps, so the record map's lock is held only while reading cells:
//   TakeSnapshot  runs RecordMap::CollectPass (the same pass as Collect: epoch, update
//                 detection, stale queues, reclamation) and copies, under the lock, what
//                 serialization needs: descriptors and checkpoint states; label keys are
//                 pointed at (the interned LabelSets, kept by the snapshot's label pin).
//   Serialize     writes the text from the snapshot, lock-free, on any thread.
//
// Naming follows the OpenTelemetry "Prometheus and OpenMetrics compatibility" rules:
//   - metric names: characters outside [a-zA-Z0-9_:] become '_', runs of '_' collapse to
//     one, a leading digit gets a '_' prefix; then the unit as a word (UnitWord) unless
//     the name already ends with it; monotonic sums are counters whose samples end in
//     `_total` (the text format's family name ends in `_total` too; OpenMetrics names
//     the family without it and gives its `# UNIT`).
//   - label names: characters outside [a-zA-Z0-9_] become '_', runs of '_' collapse
//     (so no label starts with the reserved "__"), a leading digit gets a '_' prefix.
//     Attributes whose names collide after that are merged into one label whose values
//     are joined with ';' in the order of the original keys. A label that would clash
//     with one the format or Prometheus tooling gives a meaning (`le`, `quantile`, and
//     `otel_scope_name` / `otel_scope_version` when scope labels are on) is renamed
//     `exported_<name>` on every family, as Prometheus renames clashing target labels.
//   - label values: the attribute's text (strings as they are, numbers as JavaScript
//     prints them, booleans, arrays as JSON), escaping '\\', '"' and newline.
//   - families: sorted by name; HELP and TYPE (and UNIT) once per family; instruments of
//     several scopes with the same name and type share a family (their samples differ by
//     otel_scope_name). An instrument whose family or sample names are taken by another
//     of a different type is dropped (the first registered wins; the caller warns).
//   - series: never two with one name and label text. Records that render alike (members
//     of one family and scope: names that sanitize alike, a name registered again with
//     another description, a counter and an observable counter; attributes that differ
//     only in type, 200 and "200") are written as one series (MergeKind), the family
//     with its first member's description; SerializationPlan::collisions() lists them.
// Aggregations: Sum -> counter (monotonic) or gauge; LastValue -> gauge; Histogram ->
// histogram (cumulative buckets, `+Inf`); ExponentialHistogram -> classic histogram
// (`le="0"` for zeros, then the upper boundary of every positive bucket in use);
// Sketch -> summary (Options::quantiles); Exact -> summary (quantiles computed by the
// caller from the values it holds); MinMaxSumCount -> summary with quantile 0 (min) and
// 1 (max). Summaries of an empty state have no quantile samples. OpenMetrics counters,
// histograms and summaries carry `<family>_created` per series: the record's start time
// (whole milliseconds, as OTLP exports it) in seconds; the text format has no `_created`.
#pragma once
// See docs/design.md, "Prometheus output: snapshot, chunks and the output pool".
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "descriptor.h"
#include "record_map.h"

namespace hotmeter::prometheus {

// Protobuf: the Prometheus protobuf exposition (io.prometheus.client.MetricFamily messages,
// each prefixed by its varint length; prometheus_protobuf.cc). Names and labels as Text004;
// exponential histograms as native histograms.
enum class Format : uint8_t { Text004 = 0, OpenMetrics100 = 1, Protobuf = 2 };
enum class FamilyType : uint8_t { Counter, Gauge, Histogram, Summary, Skip };

struct Options {
  Format format = Format::Text004;
  // otel_scope_name / otel_scope_version labels (when not empty) on every sample.
  bool scopeLabels = true;
  // Summary quantiles (sketch and exact), each in [0, 1]; instruments listed in
  // instrumentQuantiles use their own.
  std::vector<double> quantiles = {0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999};
  std::unordered_map<uint32_t, std::vector<double>> instrumentQuantiles;
  // Written verbatim before the families (the caller's target_info family).
  std::string prefix;
  // Protobuf: the target_info family's labels (names already sanitized; written first when
  // not empty). The text formats take target_info in `prefix`, which Protobuf ignores.
  std::vector<std::pair<std::string, std::string>> targetInfo;
  // Names the prefix uses (e.g. "target_info", "target"): instruments mapping to them
  // are dropped.
  std::vector<std::string> reservedNames;
  // Prepended to every metric name before it is sanitized (exporter-prometheus' `prefix`,
  // with its '_').
  std::string namePrefix;
  // Names without the unit word (the OpenTelemetry Go exporter's WithoutUnits; the names
  // @opentelemetry/exporter-prometheus writes). No UNIT metadata either.
  bool withoutUnits = false;
  // Counters without the `_total` suffix in the text format (the OpenTelemetry Go
  // exporter's WithoutCounterSuffixes); OpenMetrics requires it and keeps it.
  bool withoutCounterSuffixes = false;
  // `name="value"` pairs written after the scope labels on every sample (resource
  // attributes as constant labels), rendered by the caller; "" for none.
  std::string constantLabels;
  // Written after every sample's value (" <ms>": a timestamp), "" for none.
  std::string sampleSuffix;
  // Output is cut into chunks of about this many bytes, at line ends.
  size_t chunkBytes = (size_t{2} << 20) - (size_t{64} << 10);
  // Serialization threads: 0 picks min(hardware threads, 4); the output is the same
  // whatever the count. Scrapes of fewer than parallelMinRecords records use one.
  unsigned threads = 0;
  size_t parallelMinRecords = 16384;
};

// Exact summaries: record id -> one value per quantile of its instrument.
using ExactQuantiles = std::unordered_map<uint64_t, std::vector<double>>;

// Large blocks are 2 MiB aligned, in 4 KiB pages (see MapLarge).
void* AllocateLarge(size_t bytes);
void FreeLarge(void* p, size_t bytes) noexcept;  // bytes: as given to AllocateLarge

// An allocator for the snapshot's big vectors: fewer page faults while the lock is held.
template <class T>
struct LargeAllocator {
  using value_type = T;
  LargeAllocator() = default;
  template <class U>
  LargeAllocator(const LargeAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(AllocateLarge(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { FreeLarge(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const LargeAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const LargeAllocator<U>&) const noexcept { return false; }
};

struct SnapshotInstrument {
  uint32_t id = 0;
  Descriptor descriptor;
  size_t cellSize = 0;
  size_t firstRecord = 0;  // index into Snapshot::records
  size_t recordCount = 0;
};

struct SnapshotRecord {
  uint64_t id = 0;
  const LabelSet* labels = nullptr;  // alive while the Snapshot's label pin is held
  size_t stateOffset = 0;            // into Snapshot::states
  uint32_t labelSize : 31 = 0;       // labels->view().size()
  uint32_t plain : 1 = 0;            // labels->plain()
  uint32_t lastUpdateEpoch = 0;      // Record::lastUpdateEpoch: later epochs were updated later
  double startTimeMs = 0;            // Record::startTimeMs: the series' start (`_created`)
  uint32_t shape = 0;                // labels->shape()
  // Into Snapshot::exemplars (exemplar.h slots, as many as the instrument keeps), or
  // kNoExemplars.
  static constexpr size_t kNoExemplars = SIZE_MAX;
  size_t exemplarOffset = kNoExemplars;
  std::string_view labelKey() const { return labels->view(); }
};

struct Snapshot {
  uint64_t epoch = 0;
  std::vector<SnapshotInstrument> instruments;  // instrument registration order
  std::vector<SnapshotRecord, LargeAllocator<SnapshotRecord>> records;
  std::vector<double, LargeAllocator<double>> states;
  std::vector<double> exemplars;  // the records' exemplar slots (SnapshotRecord::exemplarOffset)
  // Keeps the records' label sets (interned in the RecordMap) from being freed, so the
  // snapshot points at them instead of copying their bytes; held from TakeSnapshot until
  // the Snapshot goes or is stashed.
  RecordMap::LabelPin pin;
  // Kept records of included instruments that were not updated in this pass (the
  // provider evicts its cached handles of them); filled by reclaiming passes only.
  std::vector<uint64_t> stale;
  std::vector<uint64_t> reclaimed;
};

// One collection pass of `opts.domain` (RecordMap::CollectPass). Records of instruments
// not in `include` (sorted ids; nullptr means every instrument) are checkpointed and may
// be reclaimed like any other, but are not copied. Observable instruments' records are
// copied only when updated in this pass (what the provider's checkpoint exports).
void TakeSnapshot(RecordMap& map, const CollectOptions& opts, const std::vector<uint32_t>* include,
                  Snapshot* out);

// The last serialized snapshot's memory, kept for the next one: TakeSnapshot runs on the JS
// thread under the record map's lock, and fresh pages there cost a fault and the kernel's
// zeroing each (tens of MB at 100,000 series). Holds at most one snapshot (the larger
// capacity wins); thread-safe.
//   ReuseSnapshot()        an empty Snapshot, with the stashed one's capacity if any
//   StashSnapshot(s)       empties `s` and keeps its memory
Snapshot ReuseSnapshot();
void StashSnapshot(Snapshot&& s);

// A block of output text in memory from std::malloc / MapLarge: move-only; the
// owner frees it (or release() hands the pointer to a caller that will FreeChunkData it).
// Blocks of exactly OutputPool::kBlockBytes (the default chunk) come from and go back to
// the OutputPool, so repeated scrapes write into memory that is already mapped.
// Blocks of 2 MiB or more are 2 MiB aligned and advised as transparent huge pages where
// the system has them: writing hundreds of MB of fresh memory through 4 KiB page faults
// costs more than formatting it.
class Chunk {
 public:
  Chunk() = default;
  explicit Chunk(size_t capacity);
  ~Chunk();
  Chunk(Chunk&& o) noexcept;
  Chunk& operator=(Chunk&& o) noexcept;
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  char back() const { return data_[size_ - 1]; }
  std::string_view view() const { return {data_, size_}; }
  size_t capacity() const { return cap_; }
  // Gives up ownership: free the result with FreeChunkData(result, capacity()).
  char* release();

  void append(const char* p, size_t n) {
    if (n > cap_ - size_) Grow(n);
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void append(size_t n, char c) {
    if (n > cap_ - size_) Grow(n);
    std::memset(data_ + size_, c, n);
    size_ += n;
  }
  void push_back(char c) {
    if (size_ == cap_) Grow(1);
    data_[size_++] = c;
  }
  // Makes room for n bytes, counts them as written and returns where they start; then
  // Shrink(used) gives back the ones not used (the last Extend's n - used).
  char* Extend(size_t n) {
    if (n > cap_ - size_) Grow(n);
    extended_ = n;
    size_ += n;
    return data_ + size_ - n;
  }
  void Shrink(size_t used) { size_ -= extended_ - used; }

 private:
  void Grow(size_t need);
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
  size_t extended_ = 0;
};

// Frees (or pools) what Chunk::release() gave up; `capacity` is the Chunk's capacity().
void FreeChunkData(char* data, size_t capacity) noexcept;

// Text in chunks of whole lines (each chunk is valid UTF-8 on its own).
class ChunkedOutput {
 public:
  explicit ChunkedOutput(size_t chunkBytes = kDefaultChunkBytes);
  static constexpr size_t kDefaultChunkBytes = (size_t{2} << 20) - (size_t{64} << 10);
  Chunk& cur() { return cur_; }
  // Starts a new chunk if the current one is full. Call between lines only.
  void MaybeCut() {
    if (cur_.size() >= chunkBytes_) Cut();
  }
  // Moves every chunk out (the last one included, if not empty).
  std::vector<Chunk> Take();
  // Appends chunks written elsewhere (after the current one).
  void Append(std::vector<Chunk> chunks);

 private:
  void Cut();
  size_t chunkBytes_;
  Chunk cur_;
  std::vector<Chunk> chunks_;
};

// The chunks as one string (tests, small outputs).
std::string Join(const std::vector<Chunk>& chunks);

// How the records of one series identity (family, label text) were written as one series.
enum class MergeKind : uint8_t {
  // Exactly: sums added; histograms with equal bounds, exponential histograms, sketches
  // of one accuracy and min/max/sum/count merged as their aggregator merges threads.
  Added = 0,
  // Gauges with a last value among them: the value of the record updated last (the
  // latest collection epoch that saw an update; the first record on a tie).
  KeptLatest = 1,
  // Summaries that cannot be merged (exact values, mixed aggregations): count and sum
  // added, the quantiles of the record with the largest count (the first on a tie).
  KeptQuantiles = 2,
  // Histograms with different buckets: count and sum added, buckets at the bounds every
  // record has (its cumulative count there is exact), the others left out.
  CommonBuckets = 3,
};

// Records of two instruments (or of one: attributes that differ only in type or in
// characters label names cannot hold) written as one series.
struct Collision {
  uint32_t instrument = 0;  // of the series' first record
  uint32_t other = 0;       // of another record merged into it (may equal instrument)
  MergeKind how = MergeKind::Added;
  bool operator<(const Collision& o) const {
    return instrument != o.instrument ? instrument < o.instrument : other != o.other ? other < o.other : how < o.how;
  }
  bool operator==(const Collision& o) const { return instrument == o.instrument && other == o.other && how == o.how; }
};

// A family whose records have series identities in common: its series in output order,
// each one or more records (SerializationPlan; read by the writers).
struct MergedFamily {
  struct Ref {
    const SnapshotInstrument* instrument;
    size_t record;  // index into Snapshot::records
  };
  struct Series {
    uint32_t first = 0;  // into refs
    uint32_t count = 0;
    MergeKind how = MergeKind::Added;
  };
  std::vector<Ref> refs;  // grouped by series
  std::vector<Series> series;
};

// A serialization's output order, computed once from a snapshot: instruments grouped into
// families (clashing ones dropped into `dropped`), families sorted by name. One exposition
// never holds a series identity (name and label text) twice: in a family where two records
// may render the same labels (members of one scope text, or a member whose label sets are
// neither all LabelSet::plain nor all of one shape that merges no names), the plan
// renders every record's label text once and makes the records
// of one text one series (MergedFamily, MergeKind; collisions() lists them). The series, in
// output order, are numbered [0, records()); any range of them can be written on its own,
// and the ranges of a split written one after another are the text Serialize writes. So a
// scrape can be written in parts, each when its reader wants it (a stream), and a part by
// several threads. Reads the snapshot, options and exact values it was made with (they
// must outlive it and stay unchanged); const methods may run on several threads at once.
class SerializationPlan {
 public:
  SerializationPlan(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact,
                    std::vector<uint32_t>* dropped);
  SerializationPlan(const SerializationPlan&) = delete;
  SerializationPlan& operator=(const SerializationPlan&) = delete;

  // Series in the output (records, less those merged into another's series).
  size_t records() const { return total_; }
  // Every (instrument, other, how) whose records were merged, sorted, without repeats.
  const std::vector<Collision>& collisions() const { return collisions_; }
  // Estimated bytes of the text (records only).
  double estimatedBytes() const { return weight_; }
  // Split points {lo, .., hi} of [lo, hi) into `pieces` ranges of about equal text.
  std::vector<size_t> Split(size_t lo, size_t hi, size_t pieces) const;
  // Split points {0, .., records()} into ranges of about `bytes` of text each; no range
  // is empty unless there are no records (then one: the headers and prefix).
  std::vector<size_t> Parts(size_t bytes) const;
  // Writes records [lo, hi) and the headers of families whose first record is among them,
  // by several threads when the plan is large (Options::threads, parallelMinRecords).
  // `first`: the range starts the text (writes Options::prefix); `last`: it ends it (the
  // headers of trailing families without records, OpenMetrics' `# EOF`).
  void Write(size_t lo, size_t hi, bool first, bool last, ChunkedOutput* out) const;

 private:
  struct PlanFamily {
    std::string name;     // TYPE / HELP / UNIT name in the output format
    std::string textKey;  // the text format's family name (identity with the type)
    FamilyType type = FamilyType::Skip;
    std::string unit;
    std::string help;
    std::vector<const SnapshotInstrument*> members;
  };
  // A family's header (member and merged null), a member's records [begin, end) of the
  // snapshot, or a merged family's series [begin, end).
  struct Unit {
    const PlanFamily* family;
    const SnapshotInstrument* member;
    size_t begin, end;
    double weight;  // estimated bytes per record
    const MergedFamily* merged = nullptr;
    bool header() const { return member == nullptr && merged == nullptr; }
  };
  void WriteRange(size_t lo, size_t hi, bool first, bool last, ChunkedOutput* out) const;
  // WriteRange for Format::Protobuf (prometheus_protobuf.cc).
  void WriteRangeProtobuf(size_t lo, size_t hi, bool first, ChunkedOutput* out) const;
  // The walk of units_ both writers make for the records [lo, hi): header(unit, seen) at
  // each family header (seen: the records before it), records(unit, from, to) for a unit's
  // records [from, to) in the range. Stops once past hi unless `toEnd`. Defined in
  // prometheus_internal.h.
  template <typename Header, typename Records>
  void WalkRange(size_t lo, size_t hi, bool toEnd, Header&& header, Records&& records) const;
  // The family's series when some of its records share one, else null.
  std::unique_ptr<MergedFamily> MergeFamily(const PlanFamily& f);

  const Snapshot& snap_;
  const Options& opts_;
  const ExactQuantiles& exact_;
  std::vector<PlanFamily> families_;  // complete before units_ point into it
  std::vector<Unit> units_;
  std::vector<std::unique_ptr<MergedFamily>> merged_;  // units_ point into them
  std::vector<Collision> collisions_;
  size_t total_ = 0;
  double weight_ = 0;
  unsigned threads_ = 1;
};

// Writes the snapshot's families: SerializationPlan's whole range. `dropped` receives the
// ids of instruments left out because of a name clash, `collisions` the plan's collisions().
void Serialize(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact,
               ChunkedOutput* out, std::vector<uint32_t>* dropped,
               std::vector<Collision>* collisions = nullptr);

// ---- Formatting, exposed for tests -----------------------------------------------------

// A sample value as JavaScript's String(v) prints it (shortest round-trip digits), except
// +Inf, -Inf and NaN; -0 prints "0".
void AppendNumber(std::string* out, double v);
void AppendNumber(Chunk* out, double v);
// Escapes '\\', '"' and '\n'.
void AppendLabelValue(std::string* out, std::string_view v);
void AppendLabelValue(Chunk* out, std::string_view v);
// Escapes '\\' and '\n' (and '"' in OpenMetrics).
void AppendHelp(std::string* out, std::string_view v, Format format);
void AppendHelp(Chunk* out, std::string_view v, Format format);
std::string SanitizeMetricName(std::string_view name);
std::string SanitizeLabelName(std::string_view name);
// The unit as Prometheus words ("s" -> "seconds", "By/s" -> "bytes_per_second",
// annotations in braces dropped, "1" -> "ratio" for gauges and "" otherwise).
std::string UnitWord(std::string_view unit, bool gauge);

FamilyType TypeOf(const Descriptor& d);

struct FamilyName {
  std::string family;  // the TYPE / HELP name in the format
  std::string sample;  // the base of sample names (counters: with `_total`)
  std::string unit;    // UNIT word ("" when none)
};
FamilyName NameFor(const Descriptor& d, Format format, const Options& opts = Options{});

// ---- Protobuf pieces, exposed for tests (prometheus_protobuf.cc) -----------------------

namespace pb {
// Appends v as a base-128 varint (1 to 10 bytes).
void AppendVarint(std::string* out, uint64_t v);
// sint32 / sint64 encoding: 0, -1, 1, -2 .. -> 0, 1, 2, 3 ..
inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }

struct Span {
  int32_t offset = 0;  // the first span: its first bucket's index; later: empty buckets since the previous span
  uint32_t length = 0;
  bool operator==(const Span& o) const { return offset == o.offset && length == o.length; }
};
// A native histogram: Prometheus bucket index i of schema s holds (b^(i-1), b^i] for
// positive values (and the mirror for negative ones), b = 2^(2^-s); `deltas` are each
// bucket's count less the previous bucket's (the first: less 0), spans' buckets in order.
struct NativeHistogram {
  int32_t schema = 0;
  double zeroThreshold = 0;
  uint64_t zeroCount = 0;
  uint64_t count = 0;
  double sum = 0;
  std::vector<Span> positiveSpans, negativeSpans;
  std::vector<int64_t> positiveDeltas, negativeDeltas;
};
// The zero threshold written for every native histogram: hotmeter's zero bucket holds exact
// zeros only, but a threshold of 0 with no buckets reads as a classic histogram to
// Prometheus; the smallest positive double keeps every scrape's threshold the same.
constexpr double kZeroThreshold = 4.9406564584124654e-324;
// An exponential histogram state (cell of `n` doubles) as a native histogram: its scale
// clamped to Prometheus' 8 by merging buckets (index >> (scale - 8)), OpenTelemetry's
// index i (holding (b^i, b^(i+1)]) as Prometheus' i + 1; runs of at most 2 empty buckets
// inside a span, longer gaps start a new span (as client_golang). False when the scale is
// below -4 (Prometheus has no such schema): the caller writes classic buckets instead.
bool ToNativeHistogram(const double* st, size_t n, NativeHistogram* out);
}  // namespace pb

}  // namespace hotmeter::prometheus
