// Prometheus text writing: a plan's records and merged series as samples, in parts and threads.
#include "prometheus_serializer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "aggregator.h"
#include "exemplar.h"
#include "exponential_histogram.h"
#include "prometheus_internal.h"
#include "sketch.h"

namespace hotmeter::prometheus {

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
  if (!opts.constantLabels.empty()) {
    if (!scopeText.empty()) scopeText += ',';
    scopeText += opts.constantLabels;
  }
  return scopeText;
}

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

namespace {
const double* RecordState(const Snapshot& snap, size_t record) { return snap.states.data() + snap.records[record].stateOffset; }
}  // namespace

double MergedSum(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count) {
  double v = 0;
  for (uint32_t k = 0; k < count; k++) v += RecordState(snap, refs[k].record)[0];
  return v;
}

void MergedStates(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, size_t n, std::vector<double>* merged) {
  const AggregationKind agg = refs[0].instrument->descriptor.aggregation;
  const double* st0 = RecordState(snap, refs[0].record);
  merged->assign(st0, st0 + n);
  for (uint32_t k = 1; k < count; k++) MergeState(agg, merged->data(), RecordState(snap, refs[k].record), n);
}

const double* RecordExemplars(const Snapshot& snap, const SnapshotRecord& rec) {
  return rec.exemplarOffset != SnapshotRecord::kNoExemplars ? snap.exemplars.data() + rec.exemplarOffset : nullptr;
}

const double* MergedExemplars(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, std::vector<double>* scratch) {
  size_t slots = 0;  // of the first record with exemplars
  for (uint32_t k = 0; k < count; k++) {
    const double* ex = RecordExemplars(snap, snap.records[refs[k].record]);
    const size_t ks = exemplar::Slots(refs[k].instrument->descriptor);
    if (ex == nullptr || ks == 0 || (slots != 0 && ks != slots)) continue;
    if (slots == 0) scratch->assign(ks * exemplar::kDoubles, 0.0);
    slots = ks;
    exemplar::Merge(scratch->data(), ex, slots);
  }
  return slots != 0 ? scratch->data() : nullptr;
}

uint32_t LatestRef(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count) {
  uint32_t best = 0;
  for (uint32_t k = 1; k < count; k++) {
    if (snap.records[refs[k].record].lastUpdateEpoch > snap.records[refs[best].record].lastUpdateEpoch) best = k;
  }
  return best;
}

uint32_t MostCountedRef(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, double* total, double* sum) {
  uint32_t best = 0;
  double bestCount = -1;
  *total = 0;
  *sum = 0;
  for (uint32_t k = 0; k < count; k++) {
    const SnapshotInstrument& si = *refs[k].instrument;
    double c = 0, t = 0;
    CountAndSum(si.descriptor, RecordState(snap, refs[k].record), si.cellSize, &c, &t);
    *total += c;
    *sum += t;
    if (c > bestCount) {
      bestCount = c;
      best = k;
    }
  }
  return best;
}

void CommonBuckets(const Snapshot& snap, const MergedFamily::Ref* refs, uint32_t count, double* total, double* sum,
                   std::vector<std::pair<double, double>>* buckets, std::vector<std::pair<double, double>>* other) {
  *total = 0;
  *sum = 0;
  for (uint32_t k = 0; k < count; k++) {
    const SnapshotInstrument& si = *refs[k].instrument;
    const double* st = RecordState(snap, refs[k].record);
    double c = 0, t = 0;
    CountAndSum(si.descriptor, st, si.cellSize, &c, &t);
    *total += c;
    *sum += t;
    if (k == 0) {
      CumulativeBuckets(si.descriptor, st, si.cellSize, buckets);
      continue;
    }
    CumulativeBuckets(si.descriptor, st, si.cellSize, other);
    size_t keep = 0, j = 0;
    for (const auto& [le, cum] : *buckets) {
      while (j < other->size() && (*other)[j].first < le) j++;
      if (j < other->size() && (*other)[j].first == le) (*buckets)[keep++] = {le, cum + (*other)[j].second};
    }
    buckets->resize(keep);
  }
}

namespace {

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
  std::vector<double> mergedExemplars;                         // a merged series' exemplar slots
  std::vector<std::pair<double, double>> buckets, otherBuckets;  // CommonBuckets

  Writer(const Options& op, const ExactQuantiles& ex, const Snapshot& sn, ChunkedOutput* co)
      : opts(op), exact(ex), snap(sn), o(co->cur()), out(co), lt(op), labels(lt.labels) {}

  // The pass's quantiles of the instrument, else its descriptor's own, else the exporter's.
  const std::vector<double>& QuantilesOf(const SnapshotInstrument& si) {
    auto it = opts.instrumentQuantiles.find(si.id);
    const std::vector<double>& qs = it != opts.instrumentQuantiles.end() ? it->second
                                    : !si.descriptor.quantiles.empty()    ? si.descriptor.quantiles
                                                                          : opts.quantiles;
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
    const FamilyName fn = NameFor(d, opts.format, opts);
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
    quantiles = &QuantilesOf(si);
    mapping.reset();
    if (d.aggregation == AggregationKind::Sketch) mapping = std::make_unique<sketch::Mapping>(d.relativeAccuracy);
    n = si.cellSize;
  }

  // The current record's exemplar slots (OpenMetrics only; null: none).
  const double* ex = nullptr;

  // ` # {trace_id="...",span_id="..."} value timestamp` of an exemplar slot (OpenMetrics;
  // at most kExemplarBytes). The label set is 64 characters, within the 128 allowed.
  static constexpr size_t kExemplarBytes = 48 + 32 + 16 + 2 + 32 + 32;
  static char* PutExemplar(char* p, const double* slot) {
    std::string t = " # {";
    if (exemplar::HasSpan(slot)) {
      t += "trace_id=\"";
      exemplar::AppendHexWords(&t, slot + exemplar::kTrace, 4);
      t += "\",span_id=\"";
      exemplar::AppendHexWords(&t, slot + exemplar::kSpan, 2);
      t += '"';
    }
    t += "} ";
    std::memcpy(p, t.data(), t.size());
    p += t.size();
    p += FormatNumber(p, slot[exemplar::kValue]);
    *p++ = ' ';
    p += FormatNumber(p, slot[exemplar::kTime] / 1000);
    return p;
  }

  // name suffix{labels,extra} value\n, with one capacity check; then the exemplar of
  // `slot` when it holds one.
  void Sample(std::string_view name, std::string_view suffix, std::string_view extra, double v,
              const double* slot = nullptr) {
    const bool braces = !labels.empty() || !extra.empty();
    const bool comma = !labels.empty() && !extra.empty();
    const std::string& ts = opts.sampleSuffix;
    if (slot != nullptr && slot[exemplar::kTime] == 0) slot = nullptr;
    char* p = o.Extend(name.size() + suffix.size() + labels.size() + extra.size() + ts.size() + 4 + 32 +
                       (slot != nullptr ? kExemplarBytes : 0));
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
    put(ts);
    if (slot != nullptr) p = PutExemplar(p, slot);
    *p++ = '\n';
    o.Shrink(static_cast<size_t>(p - start));
  }

  // The current record's `name_bucket{labels,` (histograms: written once per record, not
  // once per bucket line).
  std::string bucketPrefix;

  // bucketPrefix, then `tail` (`le="..."} `), the value and a newline.
  void BucketLine(std::string_view tail, double v, const double* slot) {
    const std::string& ts = opts.sampleSuffix;
    if (slot != nullptr && slot[exemplar::kTime] == 0) slot = nullptr;
    char* p = o.Extend(bucketPrefix.size() + tail.size() + ts.size() + 1 + 32 + (slot != nullptr ? kExemplarBytes : 0));
    char* const start = p;
    std::memcpy(p, bucketPrefix.data(), bucketPrefix.size());
    p += bucketPrefix.size();
    std::memcpy(p, tail.data(), tail.size());
    p += tail.size();
    p += FormatNumber(p, v);
    std::memcpy(p, ts.data(), ts.size());
    p += ts.size();
    if (slot != nullptr) p = PutExemplar(p, slot);
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
        Sample(sample, "", "", st[0], ex);  // ex: a counter's one slot
        break;
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
          BucketLine(leTail[i - 3], cum, ex != nullptr ? ex + (i - 3) * exemplar::kDoubles : nullptr);
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
        // The one exemplar slot goes on the first line whose bound holds its value.
        const double* slot = ex;
        auto exemplarAt = [&slot](double le) {
          const double* s = slot != nullptr && slot[exemplar::kValue] <= le ? slot : nullptr;
          if (s != nullptr) slot = nullptr;
          return s;
        };
        Sample(sample, "_bucket", "le=\"0\"", cum, exemplarAt(0));
        if (exphist::UsedRange(st, n, true, &lo, &hi)) {
          const auto scale = static_cast<int32_t>(st[exphist::kScale]);
          for (int64_t i = lo; i <= hi; i++) {
            cum += exphist::BucketCount(st, n, true, i);
            const double le = exphist::LowerBoundary(i + 1, scale);
            scratch = "le=\"";
            AppendNumber(&scratch, le);
            scratch += '"';
            Sample(sample, "_bucket", scratch, cum, exemplarAt(le));
          }
        }
        Sample(sample, "_bucket", "le=\"+Inf\"", count, slot);
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
      ex = opts.format == Format::OpenMetrics100 ? RecordExemplars(snap, rec) : nullptr;
      Samples(rec.id, snap.states.data() + rec.stateOffset);
      ex = nullptr;
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
    // Exemplars (OpenMetrics): a lone record's own; of records added up, each slot's
    // latest over them; none where one record's state stands for the others (gauges and
    // summaries carry none) or buckets were cut to the common bounds.
    const bool om = opts.format == Format::OpenMetrics100;
    if (se.count == 1) {
      ex = om ? RecordExemplars(snap, rec0) : nullptr;
      Samples(rec0.id, StateOf(refs[0].record));
    } else {
      switch (se.how) {
        case MergeKind::Added: {
          const AggregationKind agg = refs[0].instrument->descriptor.aggregation;
          ex = om ? MergedExemplars(snap, refs, se.count, &mergedExemplars) : nullptr;
          if (agg == AggregationKind::Sum || agg == AggregationKind::PrecomputedSum) {
            Sample(sample, "", "", MergedSum(snap, refs, se.count), ex);
          } else {
            MergedStates(snap, refs, se.count, n, &merged);
            Samples(rec0.id, merged.data());
          }
          break;
        }
        case MergeKind::KeptLatest: {
          const uint32_t best = LatestRef(snap, refs, se.count);
          Setup(*refs[best].instrument);
          Samples(snap.records[refs[best].record].id, StateOf(refs[best].record));
          break;
        }
        case MergeKind::KeptQuantiles: {
          double count = 0, sum = 0;
          const uint32_t best = MostCountedRef(snap, refs, se.count, &count, &sum);
          Setup(*refs[best].instrument);
          Quantiles(cur->descriptor.aggregation, snap.records[refs[best].record].id, StateOf(refs[best].record));
          Sample(sample, "_sum", "", sum);
          Sample(sample, "_count", "", count);
          break;
        }
        case MergeKind::CommonBuckets: {
          double count = 0, sum = 0;
          CommonBuckets(snap, refs, se.count, &count, &sum, &buckets, &otherBuckets);
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
    ex = nullptr;
    Created(start);
    out->MaybeCut();
  }
};

}  // namespace

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
  if (opts_.format == Format::Protobuf) {
    WriteRangeProtobuf(lo, hi, first, out);
    return;
  }
  const bool om = opts_.format == Format::OpenMetrics100;
  Writer w(opts_, exact_, snap_, out);
  Chunk& o = out->cur();
  if (first) o.append(opts_.prefix);
  WalkRange(
      lo, hi, last,
      [&](const auto& u, size_t seen) {
        // This range writes the headers of the families whose first record is in it, and the
        // last range those of the families after the last record (empty ones).
        if (!((seen >= lo && seen < hi) || (last && seen == total_))) return;
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
      },
      [&](const auto& u, size_t from, size_t to) { WriteUnitRecords(w, u, from, to); });
  if (om && last) o.append("# EOF\n");
}

void Serialize(const Snapshot& snap, const Options& opts, const ExactQuantiles& exact, ChunkedOutput* out,
               std::vector<uint32_t>* dropped, std::vector<Collision>* collisions) {
  SerializationPlan plan(snap, opts, exact, dropped);
  if (collisions != nullptr) *collisions = plan.collisions();
  plan.Write(0, plan.records(), true, true, out);
}

}  // namespace hotmeter::prometheus
