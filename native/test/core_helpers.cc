// Definitions of the fixture helpers declared in core_helpers.h (out of line, compiled once per core test).
#include "core_helpers.h"

const char* KindName(AggregationKind k) {
  switch (k) {
    case AggregationKind::Drop: return "Drop";
    case AggregationKind::Sum: return "Sum";
    case AggregationKind::LastValue: return "LastValue";
    case AggregationKind::PrecomputedSum: return "PrecomputedSum";
    case AggregationKind::MinMaxSumCount: return "MinMaxSumCount";
    case AggregationKind::Histogram: return "Histogram";
    case AggregationKind::Sketch: return "Sketch";
    case AggregationKind::ExponentialHistogram: return "ExponentialHistogram";
    case AggregationKind::Exact: return "Exact";
  }
  return "?";
}

std::vector<double> Identity(AggregationKind kind, size_t size) {
  std::vector<double> s(size, std::nan(""));
  InitState(kind, s.data(), size);
  return s;
}

void Update(AggregationKind kind, double* s, const std::vector<double>& bounds, double v) {
  switch (kind) {
    case AggregationKind::Drop: return;
    case AggregationKind::Sum: s[0] += v; return;
    case AggregationKind::LastValue:
    case AggregationKind::PrecomputedSum: s[0] = v; s[1] = NextStamp(); return;
    case AggregationKind::MinMaxSumCount:
      s[0] += 1;
      s[1] += v;
      if (v < s[2]) s[2] = v;
      if (v > s[3]) s[3] = v;
      return;
    case AggregationKind::Histogram:
      s[0] += v;
      if (v < s[1]) s[1] = v;
      if (v > s[2]) s[2] = v;
      s[3 + BucketIndex(bounds.data(), bounds.size(), v)] += 1;
      return;
    case AggregationKind::Sketch:
    case AggregationKind::ExponentialHistogram:
    case AggregationKind::Exact:
      return;  // not in kAllKinds: tested by native/test/sketch_test.cc
  }
}

std::vector<double> Merged(AggregationKind kind, std::vector<double> a, const std::vector<double>& b) {
  MergeState(kind, a.data(), b.data(), a.size());
  return a;
}

Descriptor MakeDesc(const std::string& name, AggregationKind agg, std::vector<double> bounds) {
  Descriptor d;
  d.name = name;
  d.description = "test instrument " + name;
  d.unit = "1";
  d.aggregation = agg;
  d.kind = agg == AggregationKind::Histogram ? InstrumentKind::Histogram : InstrumentKind::Counter;
  d.bounds = std::move(bounds);
  return d;
}

std::string Key(const std::string& k, const std::string& v) { return EncodeLabelKey({k, v}); }

double* CellPtr(RecordMap& m, uint32_t arena, const Acquired& a, size_t cellSize) {
  double* data = nullptr;
  size_t doubles = 0;
  if (!m.SlabMemory(arena, a.slab, &data, &doubles)) {
    Fail(__FILE__, __LINE__, "SlabMemory failed for an acquired cell");
    return nullptr;
  }
  if (data == nullptr || static_cast<size_t>(a.offset) + cellSize > doubles) {
    Fail(__FILE__, __LINE__, "acquired cell is not inside its slab");
    return nullptr;
  }
  return data + a.offset;
}

bool IsUint(double d) { return d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d; }

Collected Parse(const std::vector<double>& out, size_t from, const std::map<uint32_t, size_t>& cellSizes) {
  Collected c;
  size_t i = from;
  auto fail = [&](const std::string& why) {
    Fail(__FILE__, __LINE__, "malformed Collect output at index " + std::to_string(i) + ": " + why);
    return c;
  };
  if (out.size() < from + 3) return fail("no header");
  if (!IsUint(out[i]) || !IsUint(out[i + 1]) || !IsUint(out[i + 2])) return fail("header not integral");
  c.epoch = static_cast<uint64_t>(out[i]);
  size_t recordCount = static_cast<size_t>(out[i + 1]);
  size_t reclaimedCount = static_cast<size_t>(out[i + 2]);
  i += 3;
  std::set<uint64_t> ids;
  for (size_t r = 0; r < recordCount; r++) {
    if (out.size() < i + 4) return fail("truncated record header");
    Row row;
    if (!IsUint(out[i]) || out[i] == 0) return fail("bad record id");
    if (!IsUint(out[i + 1])) return fail("bad instrument id");
    // A pass sees every record it lists: lastUpdateEpoch is that pass's or an earlier one.
    const double passEpoch = static_cast<double>(std::min<uint64_t>(c.epoch, Record::kMaxEpoch));
    if (!IsUint(out[i + 2]) || out[i + 2] == 0 || out[i + 2] > passEpoch) return fail("bad lastUpdateEpoch");
    row.id = static_cast<uint64_t>(out[i]);
    row.instrument = static_cast<uint32_t>(out[i + 1]);
    row.lastUpdateEpoch = static_cast<uint32_t>(out[i + 2]);
    row.updated = out[i + 2] == passEpoch;
    row.startTimeMs = out[i + 3];
    i += 4;
    auto cs = cellSizes.find(row.instrument);
    if (cs == cellSizes.end()) return fail("unknown instrument id " + std::to_string(row.instrument));
    if (out.size() < i + cs->second) return fail("truncated state");
    row.state.assign(out.begin() + static_cast<ptrdiff_t>(i),
                     out.begin() + static_cast<ptrdiff_t>(i + cs->second));
    i += cs->second;
    if (!ids.insert(row.id).second) return fail("duplicate record id");
    c.rows.push_back(std::move(row));
  }
  for (size_t r = 0; r < reclaimedCount; r++) {
    if (out.size() < i + 1) return fail("truncated reclaimed ids");
    if (!IsUint(out[i]) || out[i] == 0) return fail("bad reclaimed id");
    uint64_t id = static_cast<uint64_t>(out[i]);
    if (ids.count(id)) return fail("reclaimed id also listed as a record");
    c.reclaimed.push_back(id);
    i++;
  }
  if (i != out.size()) return fail("trailing data (" + std::to_string(out.size() - i) + " doubles)");
  c.ok = true;
  return c;
}

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, const CollectOptions& opts) {
  std::vector<double> out;
  m.Collect(opts, &out);
  return Parse(out, 0, cellSizes);
}

Collected DoCollect(RecordMap& m, const std::map<uint32_t, size_t>& cellSizes, bool reclaim,
                    double nowMs, uint32_t domain) {
  CollectOptions opts;
  opts.nowMs = nowMs;
  opts.reclaim = reclaim;
  opts.domain = domain;
  return DoCollect(m, cellSizes, opts);
}
