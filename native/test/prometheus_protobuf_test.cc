// Tests of the Prometheus protobuf writer: varints, zigzag, native histogram spans and
// deltas (downscaling, negative indices, gaps), and the delimited framing of whole scrapes
// (decoded here by a minimal protobuf reader).
//
// Usage: prometheus_protobuf_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "../core/prometheus_internal.h"
#include "prometheus_helpers.h"

namespace {

using prom::pb::NativeHistogram;
using prom::pb::Span;

std::string Hex(const std::string& s) {
  std::string r;
  char b[4];
  for (unsigned char c : s) {
    std::snprintf(b, sizeof b, "%02x", c);
    r += b;
  }
  return r;
}

std::string Varint(uint64_t v) {
  std::string s;
  prom::pb::AppendVarint(&s, v);
  return s;
}

TEST(varint_edges) {
  CHECK_STR(Hex(Varint(0)), "00");
  CHECK_STR(Hex(Varint(1)), "01");
  CHECK_STR(Hex(Varint(127)), "7f");
  CHECK_STR(Hex(Varint(128)), "8001");
  CHECK_STR(Hex(Varint(300)), "ac02");
  CHECK_STR(Hex(Varint(16383)), "ff7f");
  CHECK_STR(Hex(Varint(16384)), "808001");
  CHECK_STR(Hex(Varint(0xffffffffu)), "ffffffff0f");
  CHECK_STR(Hex(Varint(uint64_t{1} << 63)), "80808080808080808001");
  CHECK_STR(Hex(Varint(std::numeric_limits<uint64_t>::max())), "ffffffffffffffffff01");
}

TEST(zigzag) {
  CHECK_EQ(prom::pb::ZigZag(0), 0u);
  CHECK_EQ(prom::pb::ZigZag(-1), 1u);
  CHECK_EQ(prom::pb::ZigZag(1), 2u);
  CHECK_EQ(prom::pb::ZigZag(-2), 3u);
  CHECK_EQ(prom::pb::ZigZag(2147483647), 4294967294u);
  CHECK_EQ(prom::pb::ZigZag(-2147483648LL), 4294967295u);
  CHECK_EQ(prom::pb::ZigZag(std::numeric_limits<int64_t>::max()), std::numeric_limits<uint64_t>::max() - 1);
  CHECK_EQ(prom::pb::ZigZag(std::numeric_limits<int64_t>::min()), std::numeric_limits<uint64_t>::max());
}

// An exponential histogram state of M buckets per sign.
struct State {
  static constexpr uint32_t M = 16;
  std::vector<double> s = std::vector<double>(exphist::CellSize(M));
  State() { exphist::Init(s.data(), s.size()); }
  // Sets the state directly: `scale`, positive buckets from OpenTelemetry index `base`.
  void Positive(int32_t scale, int64_t base, const std::vector<double>& counts) {
    s[exphist::kScale] = scale;
    s[exphist::kPosBase] = static_cast<double>(base);
    for (size_t i = 0; i < counts.size(); i++) {
      s[exphist::kHeader + i] = counts[i];
      s[exphist::kCount] += counts[i];
    }
  }
  NativeHistogram Native() {
    NativeHistogram h;
    CHECK(prom::pb::ToNativeHistogram(s.data(), s.size(), &h));
    return h;
  }
};

bool SameSpans(const std::vector<Span>& a, const std::vector<Span>& b) { return a == b; }

TEST(native_index_is_otel_index_plus_one) {
  // OpenTelemetry index i holds (b^i, b^(i+1)]; Prometheus index i + 1 the same range.
  State st;
  st.Positive(2, -5, {2, 0, 1, 0, 0, 0, 4});  // OTel -5, -3, 1 -> Prometheus -4, -2, 2
  NativeHistogram h = st.Native();
  CHECK_EQ(h.schema, 2);
  // -4 and -2 share a span (one empty bucket filled with a zero delta); 2 is 3 empty
  // buckets away: a new span, its offset counted from the previous span's end.
  CHECK(SameSpans(h.positiveSpans, {{-4, 3}, {3, 1}}));
  CHECK(h.positiveDeltas == std::vector<int64_t>({2, -2, 1, 3}));
  CHECK(h.negativeSpans.empty() && h.negativeDeltas.empty());
  CHECK_EQ(h.count, 7u);
}

TEST(native_gap_of_two_stays_in_span) {
  State st;
  st.Positive(0, 10, {5, 0, 0, 5});  // Prometheus 11 and 14: two empty buckets between
  NativeHistogram h = st.Native();
  CHECK(SameSpans(h.positiveSpans, {{11, 4}}));
  CHECK(h.positiveDeltas == std::vector<int64_t>({5, -5, 0, 5}));
}

TEST(native_downscale_merges_buckets_and_floors_negative_indices) {
  // Scale 10 -> schema 8: OpenTelemetry index i -> i >> 2 (a floor: -4..-1 -> -1, 0..3 -> 0,
  // 4..7 -> 1), then + 1.
  State st;
  st.Positive(10, -4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});  // indices -4 .. 7
  NativeHistogram h = st.Native();
  CHECK_EQ(h.schema, 8);
  CHECK(SameSpans(h.positiveSpans, {{0, 3}}));
  // Prometheus 0: 1+2+3+4 = 10, 1: 5+6+7+8 = 26, 2: 9+10+11+12 = 42.
  CHECK(h.positiveDeltas == std::vector<int64_t>({10, 16, 16}));
}

TEST(native_from_recorded_values_with_negatives_and_zeros) {
  State st;
  for (double v : {3.0, 3.0, -1.0, 0.0, -3.0}) exphist::Update(st.s.data(), st.s.size(), 20, v);
  // |v| from 1 to 3 in 16 buckets: scale 3 (OpenTelemetry indices -1 .. 12; scale 4 would
  // need -1 .. 25).
  NativeHistogram h = st.Native();
  CHECK_EQ(h.schema, 3);
  CHECK_EQ(h.zeroCount, 1u);
  CHECK_EQ(h.count, 5u);
  CHECK_EQ(h.sum, 2.0);
  CHECK(h.zeroThreshold > 0);
  // Independently: the Prometheus index of |v| (not a power of two) is ceil(log2|v| * 2^schema).
  const auto i3 = static_cast<int32_t>(std::ceil(std::log2(3.0) * 8));
  CHECK_EQ(i3, 13);
  CHECK(SameSpans(h.positiveSpans, {{i3, 1}}));
  CHECK(h.positiveDeltas == std::vector<int64_t>({2}));
  // -1: |v| = 1 is the upper bound of index 0; -3: index 13, 12 empty buckets later.
  CHECK(SameSpans(h.negativeSpans, {{0, 1}, {i3 - 1, 1}}));
  CHECK(h.negativeDeltas == std::vector<int64_t>({1, 0}));
}

TEST(native_single_value_downscaled_from_20_to_8) {
  State st;
  exphist::Update(st.s.data(), st.s.size(), 20, 3.0);
  CHECK_EQ(st.s[exphist::kScale], 20.0);
  NativeHistogram h = st.Native();
  CHECK_EQ(h.schema, 8);
  // 3 is in (2^(405/256), 2^(406/256)].
  CHECK(SameSpans(h.positiveSpans, {{406, 1}}));
  CHECK(h.positiveDeltas == std::vector<int64_t>({1}));
}

TEST(native_empty_and_low_scales) {
  State empty;
  NativeHistogram h = empty.Native();
  CHECK(h.positiveSpans.empty() && h.negativeSpans.empty());
  CHECK_EQ(h.count, 0u);
  CHECK(h.zeroThreshold > 0);  // what tells Prometheus it is a native histogram
  State low;
  low.Positive(-4, 0, {1});
  CHECK(low.Native().schema == -4);
  State lower;
  lower.Positive(-5, 0, {1});
  NativeHistogram x;
  CHECK(!prom::pb::ToNativeHistogram(lower.s.data(), lower.s.size(), &x));
}

// ---------------------------------------------------------------------------------------
// A minimal protobuf reader for the framing tests.

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;
  double fixed = 0;
  std::string_view bytes;
};

bool ReadVarint(std::string_view s, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 70 && *pos < s.size(); shift += 7) {
    const auto c = static_cast<unsigned char>(s[(*pos)++]);
    *v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) return true;
  }
  return false;
}

// The fields of a message; false if it does not parse.
bool Fields(std::string_view s, std::vector<Field>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < s.size()) {
    uint64_t tag = 0;
    if (!ReadVarint(s, &pos, &tag)) return false;
    Field f;
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire = static_cast<uint32_t>(tag & 7);
    if (f.wire == 0) {
      if (!ReadVarint(s, &pos, &f.varint)) return false;
    } else if (f.wire == 1) {
      if (pos + 8 > s.size()) return false;
      std::memcpy(&f.fixed, s.data() + pos, 8);
      pos += 8;
    } else if (f.wire == 2) {
      uint64_t n = 0;
      if (!ReadVarint(s, &pos, &n) || n > s.size() - pos) return false;
      f.bytes = s.substr(pos, n);
      pos += n;
    } else {
      return false;
    }
    out->push_back(f);
  }
  return true;
}

// The delimited messages of `s`; false if the framing is broken.
bool Messages(std::string_view s, std::vector<std::string_view>* out) {
  size_t pos = 0;
  while (pos < s.size()) {
    uint64_t n = 0;
    if (!ReadVarint(s, &pos, &n) || n > s.size() - pos) return false;
    out->push_back(s.substr(pos, n));
    pos += n;
  }
  return true;
}

prom::Options Protobuf() {
  prom::Options o;
  o.format = prom::Format::Protobuf;
  o.scopeLabels = false;
  return o;
}

TEST(families_as_delimited_messages) {
  Fixture f;
  Descriptor c = Desc("http.requests", AggregationKind::Sum);
  c.description = "Requests \"served\"\nraw";
  const uint32_t ci = f.Add("c", c);
  *f.Acquire(ci, {"route", "s/a\"b\\c\nd"}) = 5;  // 's': a string attribute
  const uint32_t gi = f.Add("g", Desc("temp", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  double* g = f.Acquire(gi, {});
  g[0] = -2.5;
  g[1] = 1;
  prom::Options o = Protobuf();
  o.targetInfo = {{"service_name", "svc"}};
  const std::string out = f.Render(o);
  std::vector<std::string_view> msgs;
  REQUIRE(Messages(out, &msgs));
  REQUIRE(msgs.size() == 3);
  std::vector<Field> fs;
  REQUIRE(Fields(msgs[0], &fs));
  CHECK_STR(std::string(fs[0].bytes), "target_info");
  REQUIRE(Fields(msgs[1], &fs));
  // name, help (unescaped), type COUNTER (0), one metric.
  REQUIRE(fs.size() == 4);
  CHECK_STR(std::string(fs[0].bytes), "http_requests_total");
  CHECK_STR(std::string(fs[1].bytes), "Requests \"served\"\nraw");
  CHECK(fs[2].number == 3 && fs[2].varint == 0);
  std::vector<Field> metric, label, counter;
  REQUIRE(Fields(fs[3].bytes, &metric));
  REQUIRE(metric.size() == 2);
  REQUIRE(Fields(metric[0].bytes, &label));
  CHECK_STR(std::string(label[0].bytes), "route");
  CHECK_STR(std::string(label[1].bytes), "/a\"b\\c\nd");  // label values are not escaped
  CHECK_EQ(metric[1].number, 3u);
  REQUIRE(Fields(metric[1].bytes, &counter));
  // The value, then the created timestamp (field 3: the record's start time, a Timestamp).
  REQUIRE(counter.size() == 2);
  CHECK(counter[0].number == 1 && counter[0].wire == 1 && counter[0].fixed == 5.0);
  CHECK(counter[1].number == 3 && counter[1].wire == 2 && !counter[1].bytes.empty());
  REQUIRE(Fields(msgs[2], &fs));
  CHECK_STR(std::string(fs[0].bytes), "temp");
  CHECK(fs[2].varint == 1);  // GAUGE
}

TEST(chunks_hold_whole_messages_and_families_continue) {
  Fixture f;
  const uint32_t ci = f.Add("c", Desc("bulk", AggregationKind::Sum));
  const int kSeries = 3000;
  for (int i = 0; i < kSeries; i++) *f.Acquire(ci, {"item", "item-" + std::to_string(i)}) = i;
  prom::Options o = Protobuf();
  o.chunkBytes = 4096;
  prom::Snapshot snap = f.Snap();
  prom::ChunkedOutput out(o.chunkBytes);
  prom::Serialize(snap, o, {}, &out, nullptr);
  std::vector<prom::Chunk> chunks = out.Take();
  CHECK(chunks.size() > 10);
  int metrics = 0;
  double sum = 0;
  for (const prom::Chunk& c : chunks) {
    CHECK(c.size() <= o.chunkBytes + 1024);
    std::vector<std::string_view> msgs;
    REQUIRE(Messages(c.view(), &msgs));  // each chunk decodes alone
    for (std::string_view m : msgs) {
      std::vector<Field> fs, metric, counter;
      REQUIRE(Fields(m, &fs));
      CHECK_STR(std::string(fs[0].bytes), "bulk_total");
      for (const Field& x : fs) {
        if (x.number != 4) continue;
        metrics++;
        REQUIRE(Fields(x.bytes, &metric));
        REQUIRE(Fields(metric.back().bytes, &counter));
        sum += counter[0].fixed;
      }
    }
  }
  CHECK_EQ(metrics, kSeries);
  CHECK_EQ(sum, kSeries * (kSeries - 1) / 2.0);
  // The plan split in ranges (streamed parts, threads) writes the same metrics.
  prom::SerializationPlan plan(snap, o, {}, nullptr);
  const std::vector<size_t> parts = plan.Parts(8192);
  CHECK(parts.size() > 2);
  std::string joined;
  for (size_t p = 0; p + 1 < parts.size(); p++) {
    prom::ChunkedOutput po(o.chunkBytes);
    plan.Write(parts[p], parts[p + 1], p == 0, p + 2 == parts.size(), &po);
    joined += prom::Join(po.Take());
  }
  std::vector<std::string_view> msgs;
  REQUIRE(Messages(joined, &msgs));
  int again = 0;
  for (std::string_view m : msgs) {
    std::vector<Field> fs;
    REQUIRE(Fields(m, &fs));
    for (const Field& x : fs) again += x.number == 4;
  }
  CHECK_EQ(again, kSeries);
  // Several threads write ranges of their own: the same metrics, in whole messages.
  prom::Options threaded = o;
  threaded.threads = 3;
  threaded.parallelMinRecords = 0;
  prom::SerializationPlan tplan(snap, threaded, {}, nullptr);
  prom::ChunkedOutput to(threaded.chunkBytes);
  tplan.Write(0, tplan.records(), true, true, &to);
  msgs.clear();
  const std::string all = prom::Join(to.Take());
  REQUIRE(Messages(all, &msgs));
  int threadedMetrics = 0;
  double threadedSum = 0;
  for (std::string_view m : msgs) {
    std::vector<Field> fs, metric, counter;
    REQUIRE(Fields(m, &fs));
    for (const Field& x : fs) {
      if (x.number != 4) continue;
      threadedMetrics++;
      REQUIRE(Fields(x.bytes, &metric));
      REQUIRE(Fields(metric.back().bytes, &counter));
      threadedSum += counter[0].fixed;
    }
  }
  CHECK_EQ(threadedMetrics, kSeries);
  CHECK_EQ(threadedSum, sum);
}

TEST(native_histogram_message) {
  Fixture f;
  Descriptor d = Desc("lat", AggregationKind::ExponentialHistogram, InstrumentKind::Histogram, false);
  d.maxSize = 16;
  const uint32_t hi = f.Add("h", d);
  double* st = f.Acquire(hi, {});
  const size_t n = exphist::CellSize(16);
  exphist::Init(st, n);
  for (double v : {3.0, 0.0, -1.0}) exphist::Update(st, n, 20, v);
  const std::string out = f.Render(Protobuf());
  std::vector<std::string_view> msgs;
  REQUIRE(Messages(out, &msgs));
  REQUIRE(msgs.size() == 1);
  std::vector<Field> fs, metric, h;
  REQUIRE(Fields(msgs[0], &fs));
  CHECK(fs[2].varint == 4);  // HISTOGRAM
  REQUIRE(Fields(fs[3].bytes, &metric));
  REQUIRE(metric.size() == 1 && metric[0].number == 7);
  REQUIRE(Fields(metric[0].bytes, &h));
  std::map<uint32_t, std::vector<Field>> by;
  for (const Field& x : h) by[x.number].push_back(x);
  CHECK_EQ(by[1][0].varint, 3u);                       // sample_count
  CHECK_EQ(by[2][0].fixed, 2.0);                       // sample_sum
  CHECK_EQ(by[5][0].varint, prom::pb::ZigZag(8));      // schema
  CHECK(by[6][0].fixed > 0);                           // zero_threshold
  CHECK_EQ(by[7][0].varint, 1u);                       // zero_count
  CHECK(by[3].empty());                                // no classic buckets
  REQUIRE(by[9].size() == 1 && by[12].size() == 1);    // one span each
  std::vector<Field> span;
  REQUIRE(Fields(by[12][0].bytes, &span));
  CHECK_EQ(span[0].varint, prom::pb::ZigZag(406));
  CHECK_EQ(span[1].varint, 1u);
  REQUIRE(Fields(by[9][0].bytes, &span));
  CHECK_EQ(span[0].varint, prom::pb::ZigZag(0));      // |-1| = 1: index 0
  CHECK(by[10].size() == 1 && by[10][0].varint == prom::pb::ZigZag(1));
  CHECK(by[13].size() == 1 && by[13][0].varint == prom::pb::ZigZag(1));
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
