// Prometheus serialization plan: families, output order, the merge of colliding series, splits.
#include "prometheus_serializer.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "prometheus_internal.h"
#include "record_map.h"

namespace hotmeter::prometheus {

namespace {

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
std::vector<std::string> ClaimedNames(const Descriptor& d, FamilyType type, const Options& opts) {
  FamilyName text = NameFor(d, Format::Text004, opts);
  FamilyName om = NameFor(d, Format::OpenMetrics100, opts);
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
    const std::vector<std::string> names = ClaimedNames(d, type, opts);
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
      FamilyName fn = NameFor(d, opts.format, opts);
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

}  // namespace hotmeter::prometheus
