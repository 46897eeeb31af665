// Prometheus protobuf exposition (`application/vnd.google.protobuf;
// proto=io.prometheus.client.MetricFamily; encoding=delimited`): a plan's families as
// MetricFamily messages, each prefixed by its length as a varint, written by hand (no
// protobuf library). Same families, names, labels and series merges as the text formats
// (the plan decides them); exponential histograms become native histograms.
//
// Message layout (client_model metrics.proto, proto2; field numbers in brackets):
//   MetricFamily  name[1] help[2] type[3] metric[4]* unit[5] (client_model 0.6)
//   Metric        label[1]* gauge[2] counter[3] summary[4] histogram[7]
//   LabelPair     name[1] value[2]
//   Counter/Gauge value[1] (double); Counter exemplar[2] created_timestamp[3] (client_model 0.4)
//   Exemplar      label[1]* value[2] timestamp[3] {seconds[1] nanos[2]} (google.protobuf.Timestamp)
//   Summary       sample_count[1] sample_sum[2] quantile[3]* {quantile[1] value[2]} created_timestamp[4]
//   Histogram     sample_count[1] sample_sum[2] bucket[3]* {cumulative_count[1] upper_bound[2] exemplar[3]}
//                 schema[5] (sint32) zero_threshold[6] zero_count[7]
//                 negative_span[9]* negative_delta[10]* positive_span[12]* positive_delta[13]*
//                 BucketSpan {offset[1] (sint32) length[2]}; deltas sint64, unpacked (as
//                 client_golang writes them; parsers read packed or not); exemplars[16]*
//                 (a native histogram's exemplars: client_model 0.5) created_timestamp[15].
//   unit, created_timestamp and exemplars[16] are newer than the client_model of
//   Prometheus 2.42, which skips them (unknown fields); later servers read them. A created
//   timestamp is the record's start time, whole milliseconds, as OpenMetrics' `_created`.
//
// Framing: a range of the plan (a streamed part, or a thread's share of one) writes whole
// messages. A family whose records span ranges or chunks is written as several messages of
// the same name, help and type (Prometheus reads each message on its own). Each message's
// body is built in a buffer of the writer's and copied behind its length once complete,
// so a chunk holds only whole messages; chunks are cut between messages.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aggregator.h"
#include "exemplar.h"
#include "exponential_histogram.h"
#include "prometheus_internal.h"
#include "prometheus_serializer.h"
#include "sketch.h"

namespace hotmeter::prometheus {

namespace pb {

static_assert(std::endian::native == std::endian::little, "doubles are written in host order");

void AppendVarint(std::string* out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2 };

size_t VarintSizeOf(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

void Tag(std::string* o, uint32_t field, WireType wt) { AppendVarint(o, (static_cast<uint64_t>(field) << 3) | wt); }
void Double(std::string* o, uint32_t field, double v) {
  Tag(o, field, kFixed64);
  char b[8];
  std::memcpy(b, &v, 8);
  o->append(b, 8);
}
void Varint(std::string* o, uint32_t field, uint64_t v) {
  Tag(o, field, kVarint);
  AppendVarint(o, v);
}
void Bytes(std::string* o, uint32_t field, std::string_view v) {
  Tag(o, field, kBytes);
  AppendVarint(o, v.size());
  o->append(v);
}

// A count held as a double (integral in practice) as uint64.
uint64_t Count(double c) {
  if (!(c > 0)) return 0;
  if (c >= 18446744073709551615.0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(std::llround(c));
}

// One sign's buckets: OpenTelemetry indices downscaled by `c`, then + 1.
void Buckets(const double* st, size_t n, bool positive, int32_t c, std::vector<Span>* spans, std::vector<int64_t>* deltas) {
  int64_t lo = 0, hi = 0;
  if (!exphist::UsedRange(st, n, positive, &lo, &hi)) return;
  int64_t end = 0;        // the index after the last bucket written
  uint64_t previous = 0;  // the last bucket's count
  auto put = [&](int64_t index, uint64_t count) {
    if (count == 0) return;
    const int64_t gap = index - end;
    if (spans->empty() || gap > 2) {
      spans->push_back({static_cast<int32_t>(spans->empty() ? index : gap), 0});
    } else {
      for (int64_t g = 0; g < gap; g++) {  // empty buckets inside the span
        deltas->push_back(-static_cast<int64_t>(previous));
        previous = 0;
        spans->back().length++;
      }
    }
    spans->back().length++;
    deltas->push_back(static_cast<int64_t>(count - previous));
    previous = count;
    end = index + 1;
  };
  int64_t index = 0;
  uint64_t count = 0;
  bool open = false;
  for (int64_t i = lo; i <= hi; i++) {
    const double b = exphist::BucketCount(st, n, positive, i);
    if (b == 0) continue;
    const int64_t j = (i >> c) + 1;  // arithmetic shift: floor for negative indices
    if (open && j != index) {
      put(index, count);
      count = 0;
    }
    open = true;
    index = j;
    count += Count(b);
  }
  if (open) put(index, count);
}

}  // namespace

bool ToNativeHistogram(const double* st, size_t n, NativeHistogram* out) {
  const auto scale = static_cast<int32_t>(st[exphist::kScale]);
  if (scale < -4) return false;
  const int32_t c = scale > 8 ? scale - 8 : 0;
  out->schema = scale - c;
  out->zeroThreshold = kZeroThreshold;
  out->zeroCount = Count(st[exphist::kZero]);
  out->count = Count(exphist::Total(st, n));
  out->sum = st[exphist::kSum];
  out->positiveSpans.clear();
  out->negativeSpans.clear();
  out->positiveDeltas.clear();
  out->negativeDeltas.clear();
  Buckets(st, n, true, c, &out->positiveSpans, &out->positiveDeltas);
  Buckets(st, n, false, c, &out->negativeSpans, &out->negativeDeltas);
  return true;
}

}  // namespace pb

namespace {

using pb::Bytes;
using pb::Double;
using pb::Varint;

enum : uint64_t { kCounter = 0, kGauge = 1, kSummary = 2, kHistogram = 4 };

uint64_t TypeCode(FamilyType t) {
  switch (t) {
    case FamilyType::Counter: return kCounter;
    case FamilyType::Gauge: return kGauge;
    case FamilyType::Summary: return kSummary;
    default: return kHistogram;
  }
}

// Writes one range's messages.
struct ProtoWriter {
  const Options& opts;
  const ExactQuantiles& exact;
  const Snapshot& snap;
  ChunkedOutput* out;
  size_t chunkBytes;
  LabelText lt;

  // The open message: its family (null when none) and body so far.
  const void* family = nullptr;
  std::string body;
  std::string header;  // name, help and type of the current family's messages
  std::string len;     // the open message's length prefix
  bool bodyNative = false;    // the open message's metrics are native histograms
  bool metricNative = false;  // the current metric is one
  // The current record's Metric message, and its value message (histogram, summary).
  std::string metric, value, sub;

  // The current instrument's constants (Setup).
  const SnapshotInstrument* cur = nullptr;
  FamilyType type = FamilyType::Skip;
  const std::vector<double>* quantiles = nullptr;
  std::unique_ptr<sketch::Mapping> mapping;
  size_t n = 0;
  std::vector<double> merged;
  std::vector<double> mergedExemplars;  // a merged series' exemplar slots
  std::vector<std::pair<double, double>> buckets, otherBuckets;
  pb::NativeHistogram native;

  ProtoWriter(const Options& op, const ExactQuantiles& ex, const Snapshot& sn, ChunkedOutput* co)
      : opts(op), exact(ex), snap(sn), out(co), chunkBytes(op.chunkBytes), lt(op) {}

  // Starts the messages of a family (closing the open one).
  void Family(const void* id, std::string_view name, std::string_view help, FamilyType t, std::string_view unit = {}) {
    Close();
    family = id;
    header.clear();
    Bytes(&header, 1, name);
    Bytes(&header, 2, help);
    Varint(&header, 3, TypeCode(t));
    if (!unit.empty()) Bytes(&header, 5, unit);
  }

  // Ends the open message (if it has metrics) into the output; cuts the chunk when full.
  void Close() {
    if (body.empty()) return;
    Chunk& o = out->cur();
    len.clear();
    pb::AppendVarint(&len, header.size() + body.size());
    o.append(len);
    o.append(header);
    o.append(body);
    body.clear();
    out->MaybeCut();
  }

  // Appends the current record's Metric to the open message; a message about to fill the
  // chunk is closed (the family goes on in the next message). Native and classic histograms
  // of one family (members of several scopes or aggregations) go in separate messages:
  // Prometheus may tell them apart by a message's first metric.
  void EndMetric() {
    if (!body.empty() && bodyNative != metricNative) Close();
    bodyNative = metricNative;
    metricNative = false;
    Bytes(&body, 4, metric);
    if (out->cur().size() + header.size() + body.size() >= chunkBytes) Close();
  }

  void Setup(const SnapshotInstrument& si) {
    if (cur == &si) return;
    cur = &si;
    type = TypeOf(si.descriptor);
    auto it = opts.instrumentQuantiles.find(si.id);
    quantiles = it != opts.instrumentQuantiles.end() ? &it->second
                : !si.descriptor.quantiles.empty()    ? &si.descriptor.quantiles
                                                      : &opts.quantiles;
    mapping.reset();
    if (si.descriptor.aggregation == AggregationKind::Sketch) mapping = std::make_unique<sketch::Mapping>(si.descriptor.relativeAccuracy);
    n = si.cellSize;
  }

  // metric := the record's labels (attributes as the text writes them, then scope labels).
  void Labels(std::string_view key) {
    metric.clear();
    lt.Parse(key);
    std::string& v = sub;
    for (const LabelText::Entry& e : lt.entries) {
      if (!e.head) continue;
      v.assign(e.value);
      for (int t = e.next; t >= 0; t = lt.entries[static_cast<size_t>(t)].next) {
        v.push_back(';');
        v.append(lt.entries[static_cast<size_t>(t)].value);
      }
      Pair(e.name, v);
    }
    const Descriptor& d = cur->descriptor;
    if (opts.scopeLabels && !d.scopeName.empty()) Pair("otel_scope_name", d.scopeName);
    if (opts.scopeLabels && !d.scopeVersion.empty()) Pair("otel_scope_version", d.scopeVersion);
  }

  void Pair(std::string_view name, std::string_view v) {
    pb::Tag(&metric, 1, pb::kBytes);
    pb::AppendVarint(&metric, 2 + pb::VarintSizeOf(name.size()) + name.size() + pb::VarintSizeOf(v.size()) + v.size());
    Bytes(&metric, 1, name);
    Bytes(&metric, 2, v);
  }

  // The current record's exemplar slots (exemplar.h; null: none).
  const double* ex = nullptr;
  std::string exm, exl;

  // *o += the Exemplar message of a slot at `field`, if the slot holds one.
  void Exemplar(std::string* o, uint32_t field, const double* slot) {
    if (slot == nullptr || slot[exemplar::kTime] == 0) return;
    exm.clear();
    if (exemplar::HasSpan(slot)) {
      const std::pair<const char*, std::pair<size_t, size_t>> ids[2] = {{"trace_id", {exemplar::kTrace, 4}},
                                                                         {"span_id", {exemplar::kSpan, 2}}};
      for (const auto& [name, at] : ids) {
        exl.clear();
        Bytes(&exl, 1, name);
        std::string hex;
        exemplar::AppendHexWords(&hex, slot + at.first, at.second);
        Bytes(&exl, 2, hex);
        Bytes(&exm, 1, exl);
      }
    }
    Double(&exm, 2, slot[exemplar::kValue]);
    const double ms = slot[exemplar::kTime];
    const double secs = std::floor(ms / 1000);
    exl.clear();
    Varint(&exl, 1, static_cast<uint64_t>(secs));
    Varint(&exl, 2, static_cast<uint64_t>(std::llround((ms - secs * 1000) * 1e6)) % 1000000000u);
    Bytes(&exm, 3, exl);
    Bytes(o, field, exm);
  }

  // The current series' start time (epoch ms; 0: none), written as its created timestamp.
  double createdMs = 0;
  std::string ts;

  // *o += the created timestamp at `field` (google.protobuf.Timestamp), whole milliseconds.
  void Created(std::string* o, uint32_t field) {
    if (!(createdMs > 0)) return;
    const double ms = std::floor(createdMs);
    const double secs = std::floor(ms / 1000);
    ts.clear();
    Varint(&ts, 1, static_cast<uint64_t>(secs));
    const auto nanos = static_cast<uint64_t>(std::llround((ms - secs * 1000) * 1e6));
    if (nanos != 0) Varint(&ts, 2, nanos);
    Bytes(o, field, ts);
  }

  // A counter's or gauge's value.
  void Scalar(double v) {
    value.clear();
    Double(&value, 1, v);
    if (type == FamilyType::Counter) {
      Exemplar(&value, 2, ex);  // a counter's one slot
      Created(&value, 3);
    }
    Bytes(&metric, type == FamilyType::Counter ? 3 : 2, value);
  }

  void Summary(double count, double sum, const std::vector<double>* qs, const double* qv) {
    value.clear();
    Varint(&value, 1, pb::Count(count));
    Double(&value, 2, sum);
    if (qs != nullptr) {
      for (size_t q = 0; q < qs->size(); q++) {
        sub.clear();
        Double(&sub, 1, (*qs)[q]);
        Double(&sub, 2, qv[q]);
        Bytes(&value, 3, sub);
      }
    }
    Created(&value, 4);
    Bytes(&metric, 4, value);
  }

  // A classic histogram: count, sum and cumulative counts at finite bounds. `slots`: the
  // exemplar slots of an explicit-bucket state (one per bound in order, then +Inf), or null.
  // `one`: a single exemplar slot (an exponential histogram's), put on the first bucket
  // whose bound holds its value, or null.
  void Classic(double count, double sum, const std::vector<std::pair<double, double>>& cum, const double* slots = nullptr,
               const double* one = nullptr) {
    value.clear();
    Varint(&value, 1, pb::Count(count));
    Double(&value, 2, sum);
    if (one != nullptr && one[exemplar::kTime] == 0) one = nullptr;
    for (size_t i = 0; i < cum.size(); i++) {
      const auto& [le, c] = cum[i];
      sub.clear();
      Varint(&sub, 1, pb::Count(c));
      Double(&sub, 2, le);
      if (slots != nullptr) Exemplar(&sub, 3, slots + i * exemplar::kDoubles);
      if (one != nullptr && one[exemplar::kValue] <= le) {
        Exemplar(&sub, 3, one);
        one = nullptr;
      }
      Bytes(&value, 3, sub);
    }
    // The +Inf bucket's exemplar: in an explicit +Inf bucket (as client_golang writes it).
    const double* inf = slots != nullptr ? slots + cum.size() * exemplar::kDoubles : one;
    if (inf != nullptr && inf[exemplar::kTime] != 0) {
      sub.clear();
      Varint(&sub, 1, pb::Count(count));
      Double(&sub, 2, std::numeric_limits<double>::infinity());
      Exemplar(&sub, 3, inf);
      Bytes(&value, 3, sub);
    }
    Created(&value, 15);
    Bytes(&metric, 7, value);
  }

  void Spans(uint32_t field, const std::vector<pb::Span>& spans) {
    for (const pb::Span& s : spans) {
      sub.clear();
      Varint(&sub, 1, pb::ZigZag(s.offset));
      Varint(&sub, 2, s.length);
      Bytes(&value, field, sub);
    }
  }

  void Native(const pb::NativeHistogram& h) {
    metricNative = true;
    value.clear();
    Varint(&value, 1, h.count);
    Double(&value, 2, h.sum);
    Varint(&value, 5, pb::ZigZag(h.schema));
    Double(&value, 6, h.zeroThreshold);
    Varint(&value, 7, h.zeroCount);
    Spans(9, h.negativeSpans);
    for (int64_t d : h.negativeDeltas) Varint(&value, 10, pb::ZigZag(d));
    Spans(12, h.positiveSpans);
    for (int64_t d : h.positiveDeltas) Varint(&value, 13, pb::ZigZag(d));
    Created(&value, 15);
    Exemplar(&value, 16, ex);  // the exponential histogram's one slot
    Bytes(&metric, 7, value);
  }

  // The quantile values of a summary state (empty when it has none).
  std::vector<double> qvalues;
  const std::vector<double>* Quantiles(AggregationKind agg, uint64_t recordId, const double* st) {
    static const std::vector<double> kMinMax = {0, 1};
    qvalues.clear();
    switch (agg) {
      case AggregationKind::Sketch:
        if (sketch::Total(st, n) > 0) {
          for (double q : *quantiles) qvalues.push_back(sketch::Quantile(st, n, *mapping, q));
          return quantiles;
        }
        return nullptr;
      case AggregationKind::Exact: {
        auto it = exact.find(recordId);
        if (it == exact.end()) return nullptr;
        const size_t k = std::min(quantiles->size(), it->second.size());
        qvalues.assign(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(k));
        if (k < quantiles->size()) {
          qsub.assign(quantiles->begin(), quantiles->begin() + static_cast<std::ptrdiff_t>(k));
          return &qsub;
        }
        return quantiles;
      }
      case AggregationKind::MinMaxSumCount:
        if (st[0] > 0) {
          qvalues = {st[2], st[3]};
          return &kMinMax;
        }
        return nullptr;
      default:
        return nullptr;
    }
  }
  std::vector<double> qsub;

  // One state's value (labels written, Setup done).
  void Value(uint64_t recordId, const double* st) {
    const Descriptor& d = cur->descriptor;
    switch (d.aggregation) {
      case AggregationKind::Sum:
      case AggregationKind::PrecomputedSum:
      case AggregationKind::LastValue:
        Scalar(st[0]);
        break;
      case AggregationKind::Histogram: {
        double count = 0, sum = 0;
        CountAndSum(d, st, n, &count, &sum);
        CumulativeBuckets(d, st, n, &buckets);
        Classic(count, sum, buckets, buckets.size() == d.bounds.size() ? ex : nullptr);
        break;
      }
      case AggregationKind::ExponentialHistogram:
        if (pb::ToNativeHistogram(st, n, &native)) {
          Native(native);
        } else {
          CumulativeBuckets(d, st, n, &buckets);
          Classic(exphist::Total(st, n), st[exphist::kSum], buckets, nullptr, ex);
        }
        break;
      case AggregationKind::Sketch:
      case AggregationKind::Exact:
      case AggregationKind::MinMaxSumCount: {
        double count = 0, sum = 0;
        CountAndSum(d, st, n, &count, &sum);
        const std::vector<double>* qs = Quantiles(d.aggregation, recordId, st);
        Summary(count, sum, qs, qvalues.data());
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
      Labels(rec.labelKey());
      ex = RecordExemplars(snap, rec);
      createdMs = rec.startTimeMs;
      Value(rec.id, snap.states.data() + rec.stateOffset);
      ex = nullptr;
      EndMetric();
    }
  }

  // Series s of a merged family: its records as one series (MergeKind, as the text writer).
  void Series(const MergedFamily& mf, size_t s) {
    const MergedFamily::Series& se = mf.series[s];
    const MergedFamily::Ref* refs = mf.refs.data() + se.first;
    const SnapshotRecord& rec0 = snap.records[refs[0].record];
    Setup(*refs[0].instrument);
    Labels(rec0.labelKey());  // every record of the series renders these labels
    createdMs = rec0.startTimeMs;  // the earliest of the records, as OpenMetrics' `_created`
    for (uint32_t k = 1; k < se.count; k++) createdMs = std::min(createdMs, snap.records[refs[k].record].startTimeMs);
    // Exemplars as the text writer's (prometheus_writer.cc, Series).
    if (se.count == 1) {
      ex = RecordExemplars(snap, rec0);
      Value(rec0.id, StateOf(refs[0].record));
      ex = nullptr;
      EndMetric();
      return;
    }
    switch (se.how) {
      case MergeKind::Added: {
        const AggregationKind agg = refs[0].instrument->descriptor.aggregation;
        ex = MergedExemplars(snap, refs, se.count, &mergedExemplars);
        if (agg == AggregationKind::Sum || agg == AggregationKind::PrecomputedSum) {
          Scalar(MergedSum(snap, refs, se.count));
        } else {
          MergedStates(snap, refs, se.count, n, &merged);
          Value(rec0.id, merged.data());
        }
        break;
      }
      case MergeKind::KeptLatest: {
        const uint32_t best = LatestRef(snap, refs, se.count);
        Setup(*refs[best].instrument);
        Value(snap.records[refs[best].record].id, StateOf(refs[best].record));
        break;
      }
      case MergeKind::KeptQuantiles: {
        double count = 0, sum = 0;
        const uint32_t best = MostCountedRef(snap, refs, se.count, &count, &sum);
        Setup(*refs[best].instrument);
        const std::vector<double>* qs = Quantiles(cur->descriptor.aggregation, snap.records[refs[best].record].id, StateOf(refs[best].record));
        Summary(count, sum, qs, qvalues.data());
        break;
      }
      case MergeKind::CommonBuckets: {
        double count = 0, sum = 0;
        CommonBuckets(snap, refs, se.count, &count, &sum, &buckets, &otherBuckets);
        Classic(count, sum, buckets);
        break;
      }
    }
    ex = nullptr;
    EndMetric();
  }

  // target_info: a gauge of value 1 with the resource's labels.
  void TargetInfo() {
    if (opts.targetInfo.empty()) return;
    Family(&opts.targetInfo, "target_info", "Target metadata", FamilyType::Gauge);
    metric.clear();
    for (const auto& [k, v] : opts.targetInfo) Pair(k, v);
    value.clear();
    Double(&value, 1, 1);
    Bytes(&metric, 2, value);
    EndMetric();
    Close();
    family = nullptr;
  }
};

}  // namespace

// Records [lo, hi) as MetricFamily messages; a family's header goes with its records, so a
// family without records in the range (or at all) writes nothing.
void SerializationPlan::WriteRangeProtobuf(size_t lo, size_t hi, bool first, ChunkedOutput* out) const {
  ProtoWriter w(opts_, exact_, snap_, out);
  if (first) w.TargetInfo();
  WalkRange(
      lo, hi, false, [](const auto&, size_t) {},
      [&](const auto& u, size_t from, size_t to) {
        const PlanFamily& f = *u.family;
        if (w.family != &f) w.Family(&f, f.name, f.help, f.type, f.unit);
        WriteUnitRecords(w, u, from, to);
      });
  w.Close();
}

}  // namespace hotmeter::prometheus
