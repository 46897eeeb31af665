// Internal to the Prometheus serializer (native/core/prometheus_*.cc): what its files share.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "prometheus_serializer.h"
#include "record.h"

namespace hotmeter::prometheus {

// Writes v into buf (at least 32 bytes); returns the length (prometheus_naming.cc).
size_t FormatNumber(char* buf, double v);

// Is the label name already what SanitizeLabelName would make of it? (prometheus_naming.cc)
bool IsCleanLabelName(std::string_view n);

// The TYPE of a family ("counter", ...; prometheus_naming.cc).
const char* TypeName(FamilyType t);

// The scope labels of an instrument's samples ("" when none or scope labels are off).
std::string ScopeText(const Descriptor& d, const Options& opts);

// A histogram state (explicit or exponential) as cumulative counts at its finite bounds,
// ascending (prometheus_writer.cc).
void CumulativeBuckets(const Descriptor& d, const double* st, size_t n, std::vector<std::pair<double, double>>* out);
// Count and sum of a histogram or summary state (prometheus_writer.cc).
void CountAndSum(const Descriptor& d, const double* st, size_t n, double* count, double* sum);

// Merging the `count` records `refs` of one series of a merged family (MergeKind), shared
// by the text and protobuf writers, which write the result each its own way
// (prometheus_writer.cc). Read only the snapshot; the vectors are the caller's scratch.
// Added, a Sum or PrecomputedSum: the total of the records' values.
double MergedSum(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count);
// Added, any other aggregation: the records' states (`n` doubles each) merged into `merged`.
void MergedStates(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, size_t n, std::vector<double>* merged);
// A record's exemplar slots in the snapshot (exemplar.h), or null when it has none.
const double* RecordExemplars(const Snapshot& snap, const SnapshotRecord& rec);
// Added: the series' exemplar slots, each the latest of that slot over the records with
// exemplars that keep as many slots as the first of them (equal bounds: aligned buckets),
// in `scratch`; null when no record has any.
const double* MergedExemplars(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, std::vector<double>* scratch);
// KeptLatest: the index into refs of the record updated last (the first of equals).
uint32_t LatestRef(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count);
// KeptQuantiles: the index into refs of the record of the largest count (the first of
// equals), whose quantiles are written; `total`/`sum` are all the records' count and sum.
uint32_t MostCountedRef(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, double* total, double* sum);
// CommonBuckets: `buckets` = the cumulative counts at the bounds every record has, summed;
// `total`/`sum` are all the records' count and sum. `other` is scratch.
void CommonBuckets(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, double* total, double* sum,
                   std::vector<std::pair<double, double>>* buckets, std::vector<std::pair<double, double>>* other);

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

  // Fills `entries` for a record's attributes (what Build renders; the protobuf writer
  // reads them as they are).
  void Parse(std::string_view key) {
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
  }

  // Fills `labels` for a record: its attributes, then the scope labels.
  void Build(std::string_view key, std::string_view scopeText) {
    Parse(key);
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

template <typename Header, typename Records>
void SerializationPlan::WalkRange(size_t lo, size_t hi, bool toEnd, Header&& header, Records&& records) const {
  size_t seen = 0;  // records before the current unit
  for (const Unit& u : units_) {
    const size_t n = u.end - u.begin;
    if (u.header()) {
      header(u, seen);
      continue;
    }
    const size_t a = std::max(seen, lo), b = std::min(seen + n, hi);
    if (a < b) records(u, u.begin + (a - seen), u.begin + (b - seen));
    seen += n;
    if (seen >= hi && !toEnd) break;
  }
}

// A unit's records [from, to) through writer `w`: its series when the family has merged
// ones, else the member's records.
template <typename W, typename U>
void WriteUnitRecords(W& w, const U& u, size_t from, size_t to) {
  if (u.merged != nullptr) {
    for (size_t k = from; k < to; k++) w.Series(*u.merged, k);
  } else {
    w.Member(*u.member, from, to);
  }
}

}  // namespace hotmeter::prometheus
