// Tests of the Prometheus serializer's samples: aggregations, labels, families, merged series.
//
// Usage: prometheus_series_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "prometheus_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// Samples of every aggregation.

TEST(counter_and_gauge_text_and_openmetrics) {
  Fixture f;
  Descriptor cd = Desc("http.requests", AggregationKind::Sum);
  cd.description = "Requests \"served\"\nper route";
  cd.scopeName = "my-lib";
  cd.scopeVersion = "1.2.3";
  uint32_t c = f.Add("c", cd);
  Descriptor ud = Desc("active", AggregationKind::Sum, InstrumentKind::UpDownCounter, false);
  ud.unit = "{request}";
  uint32_t u = f.Add("u", ud);
  uint32_t empty = f.Add("e", Desc("no.labels", AggregationKind::Sum));
  double* c1 = f.Acquire(c, {"route", "sa\"b\\c\nd", "status", "n200"});
  double* u1 = f.Acquire(u, {"on", "btrue", "tags", "a[\"x\",1]"});
  double* e1 = f.Acquire(empty, {});
  REQUIRE(c1 && u1 && e1);
  c1[0] = 3;
  u1[0] = -2.5;
  e1[0] = 1e21;
  CHECK_STR(f.Render(Text()),
            "# HELP active active\n"
            "# TYPE active gauge\n"
            "active{on=\"true\",tags=\"[\\\"x\\\",1]\"} -2.5\n"
            "# HELP http_requests_total Requests \"served\"\\nper route\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"200\"} 3\n"
            "# HELP no_labels_total no.labels\n"
            "# TYPE no_labels_total counter\n"
            "no_labels_total 1e+21\n");
  CHECK_STR(f.Render(OM(true)),
            "# HELP active active\n"
            "# TYPE active gauge\n"
            "active{on=\"true\",tags=\"[\\\"x\\\",1]\"} -2.5\n"
            "# HELP http_requests Requests \\\"served\\\"\\nper route\n"
            "# TYPE http_requests counter\n"
            "http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"200\",otel_scope_name=\"my-lib\","
            "otel_scope_version=\"1.2.3\"} 3\n"
            "http_requests_created{route=\"a\\\"b\\\\c\\nd\",status=\"200\",otel_scope_name=\"my-lib\","
            "otel_scope_version=\"1.2.3\"} 1\n"
            "# HELP no_labels no.labels\n"
            "# TYPE no_labels counter\n"
            "no_labels_total 1e+21\n"
            "no_labels_created 1\n"
            "# EOF\n");
}

TEST(histogram_cumulative_buckets_and_unit) {
  Fixture f;
  Descriptor d = Desc("rpc.duration", AggregationKind::Histogram, InstrumentKind::Histogram, false, {0.5, 1, 2.5});
  d.unit = "s";
  d.description = "RPC time";
  uint32_t h = f.Add("h", d);
  double* c = f.Acquire(h, {"le", "sx", "m", "sGET"});
  REQUIRE(c);
  // [sum, min, max, b0..b3]
  c[0] = 7.25; c[1] = 0.25; c[2] = 4; c[3] = 1; c[4] = 0; c[5] = 2; c[6] = 1;
  const std::string body =
      "rpc_duration_seconds_bucket{exported_le=\"x\",m=\"GET\",le=\"0.5\"} 1\n"
      "rpc_duration_seconds_bucket{exported_le=\"x\",m=\"GET\",le=\"1\"} 1\n"
      "rpc_duration_seconds_bucket{exported_le=\"x\",m=\"GET\",le=\"2.5\"} 3\n"
      "rpc_duration_seconds_bucket{exported_le=\"x\",m=\"GET\",le=\"+Inf\"} 4\n"
      "rpc_duration_seconds_sum{exported_le=\"x\",m=\"GET\"} 7.25\n"
      "rpc_duration_seconds_count{exported_le=\"x\",m=\"GET\"} 4\n";
  CHECK_STR(f.Render(Text()), "# HELP rpc_duration_seconds RPC time\n# TYPE rpc_duration_seconds histogram\n" + body);
  // OpenMetrics: `_created`, the record's start (1000 ms: Fixture::Acquire's clock) in seconds.
  CHECK_STR(f.Render(OM()), "# HELP rpc_duration_seconds RPC time\n# TYPE rpc_duration_seconds histogram\n"
                            "# UNIT rpc_duration_seconds seconds\n" + body +
                            "rpc_duration_seconds_created{exported_le=\"x\",m=\"GET\"} 1\n# EOF\n");
}

TEST(summaries_sketch_minmaxsumcount_exact) {
  Fixture f;
  uint32_t sk = f.Add("sk", Desc("lat", AggregationKind::Sketch, InstrumentKind::Histogram, false));
  uint32_t mm = f.Add("mm", Desc("mm", AggregationKind::MinMaxSumCount, InstrumentKind::Histogram, false));
  uint32_t ex = f.Add("ex", Desc("ex", AggregationKind::Exact, InstrumentKind::Histogram, false));
  uint32_t empty = f.Add("em", Desc("em", AggregationKind::Sketch, InstrumentKind::Histogram, false));
  double* s = f.Acquire(sk, {"quantile", "s1"});
  double* m = f.Acquire(mm, {});
  uint64_t exId = 0;
  double* e = f.Acquire(ex, {}, &exId);
  REQUIRE(f.Acquire(empty, {}) != nullptr);
  REQUIRE(s && m && e);
  const size_t n = sketch::CellSize(sketch::kDefaultBins);
  sketch::Mapping mp(0.01);
  std::vector<double> ref(n);
  sketch::Init(ref.data(), n);
  for (int i = 1; i <= 100; i++) sketch::Update(ref.data(), n, mp, i);
  std::copy(ref.begin(), ref.end(), s);
  m[0] = 2; m[1] = 3; m[2] = 1; m[3] = 2;
  e[0] = 3; e[1] = 6; e[2] = 1; e[3] = 3;
  prom::Options o = Text();
  o.quantiles = {0.5, 0.99};
  prom::ExactQuantiles exact;
  exact[exId] = {2, 3};
  std::string want = "# HELP em em\n# TYPE em summary\nem_sum 0\nem_count 0\n";
  want += "# HELP ex ex\n# TYPE ex summary\nex{quantile=\"0.5\"} 2\nex{quantile=\"0.99\"} 3\nex_sum 6\nex_count 3\n";
  want += "# HELP lat lat\n# TYPE lat summary\n";
  want += "lat{exported_quantile=\"1\",quantile=\"0.5\"} " + Num(sketch::Quantile(ref.data(), n, mp, 0.5)) + "\n";
  want += "lat{exported_quantile=\"1\",quantile=\"0.99\"} " + Num(sketch::Quantile(ref.data(), n, mp, 0.99)) + "\n";
  want += "lat_sum{exported_quantile=\"1\"} 5050\nlat_count{exported_quantile=\"1\"} 100\n";
  want += "# HELP mm mm\n# TYPE mm summary\nmm{quantile=\"0\"} 1\nmm{quantile=\"1\"} 2\nmm_sum 3\nmm_count 2\n";
  CHECK_STR(f.Render(o, exact), want);
  CHECK(std::fabs(sketch::Quantile(ref.data(), n, mp, 0.5) - 50) <= 0.5 + 1e-9);
}

TEST(exponential_histogram_as_classic_buckets) {
  Fixture f;
  Descriptor d = Desc("eh", AggregationKind::ExponentialHistogram, InstrumentKind::Histogram, false);
  d.maxScale = 0;  // base 2: bucket i holds (2^i, 2^(i+1)]
  uint32_t id = f.Add("eh", d);
  double* c = f.Acquire(id, {});
  REQUIRE(c);
  const size_t n = CellSize(d);
  std::vector<double> st(n);
  InitState(AggregationKind::ExponentialHistogram, st.data(), n);
  for (double v : {0.0, 1.5, 3.0, 3.5, 8.0}) exphist::Update(st.data(), n, 0, v);
  std::copy(st.begin(), st.end(), c);
  // 1.5 in (1, 2], 3 and 3.5 in (2, 4], 8 in (4, 8].
  CHECK_STR(f.Render(Text()),
            "# HELP eh eh\n# TYPE eh histogram\n"
            "eh_bucket{le=\"0\"} 1\n"
            "eh_bucket{le=\"2\"} 2\n"
            "eh_bucket{le=\"4\"} 4\n"
            "eh_bucket{le=\"8\"} 5\n"
            "eh_bucket{le=\"+Inf\"} 5\n"
            "eh_sum 16\n"
            "eh_count 5\n");
}

TEST(label_collisions_merge_in_key_order) {
  Fixture f;
  uint32_t g = f.Add("g", Desc("g", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  double* c = f.Acquire(g, {"a.b", "s1", "a_b", "s2", "a-b", "s3", "le", "s0", "otel.scope.name", "sx", "z", "n1.5"});
  REQUIRE(c);
  c[0] = 1; c[1] = 1;
  // The values of colliding names join in the order of the canonical key (JS sorts the
  // keys; this test passes them as given).
  CHECK_STR(f.Render(Text(true)),
            "# HELP g g\n# TYPE g gauge\ng{a_b=\"1;2;3\",exported_le=\"0\",exported_otel_scope_name=\"x\",z=\"1.5\"} 1\n");
  CHECK_STR(f.Render(Text(false)),
            "# HELP g g\n# TYPE g gauge\ng{a_b=\"1;2;3\",exported_le=\"0\",otel_scope_name=\"x\",z=\"1.5\"} 1\n");
}

// The serializer reuses a record's sanitized and merged label names for the next record
// when its raw names are the same: records whose names change from one to the next (merging
// collisions, renamed `le`, none at all, back again) must each read as when written alone.
TEST(label_names_changing_between_records_read_as_when_written_alone) {
  const std::vector<std::vector<std::string>> shapes = {
      {"a", "s1", "b", "s2"},
      {"a", "s1", "c", "s3"},
      {"a.b", "s1", "a_b", "s2"},
      {},
      {"le", "sx", "z", "n4"},
      {"a", "s\"q\\\nv", "b", "s2"},
      {"a", "s9", "b", "s8"},
      {"a.b", "sA", "a_b", "sB", "a-b", "sC"},
      {"a", "s1", "b", "s2", "c", "b1"},
      {"a", "s7", "b", "s6"},
  };
  auto build = [](Fixture& f) {
    uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
    uint32_t h = f.Add("h", Desc("h", AggregationKind::Histogram, InstrumentKind::Histogram, false, {1, 2}));
    return std::pair<uint32_t, uint32_t>(c, h);
  };
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      std::string line = text.substr(at, nl - at);
      if (line.rfind("# ", 0) != 0) out.push_back(line);
      at = nl + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  Fixture all;
  auto [ac, ah] = build(all);
  std::vector<std::string> want;
  for (size_t k = 0; k < shapes.size(); k++) {
    // Counter cell: [value]; histogram cell: [sum, min, max, b0, b1, b2].
    double* c = all.Acquire(ac, shapes[k]);
    double* hc = all.Acquire(ah, shapes[k]);
    REQUIRE(c && hc);
    c[0] = static_cast<double>(k + 1);
    hc[0] = static_cast<double>(k) + 0.5;
    hc[3] = 1;
    hc[4] = static_cast<double>(k);
    hc[5] = 2;
    Fixture alone;
    auto [oc, oh] = build(alone);
    double* c1 = alone.Acquire(oc, shapes[k]);
    double* h1 = alone.Acquire(oh, shapes[k]);
    REQUIRE(c1 && h1);
    c1[0] = c[0];
    std::copy(hc, hc + 6, h1);
    for (const std::string& l : lines(alone.Render(Text(true)))) want.push_back(l);
  }
  std::sort(want.begin(), want.end());
  const std::vector<std::string> got = lines(all.Render(Text(true)));
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); i++) CHECK_STR(got[i], want[i]);
  // The merged collisions and the renamed `le` are there (not one shape's names reused).
  const std::string text = all.Render(Text(true));
  CHECK(text.find("c_total{a_b=\"A;B;C\"} 8\n") != std::string::npos);
  CHECK(text.find("c_total{exported_le=\"x\",z=\"4\"} 5\n") != std::string::npos);
  CHECK(text.find("h_bucket{a=\"\\\"q\\\\\\nv\",b=\"2\",le=\"+Inf\"} 8\n") != std::string::npos);
  CHECK(text.find("c_total 4\n") != std::string::npos);
}

TEST(families_group_scopes_and_drop_clashes) {
  Fixture f;
  Descriptor a = Desc("jobs", AggregationKind::Sum);
  a.scopeName = "a";
  a.description = "from a";
  Descriptor b = Desc("jobs", AggregationKind::Sum);
  b.scopeName = "b";
  b.description = "from b";
  uint32_t ia = f.Add("a", a), ib = f.Add("b", b);
  uint32_t clash1 = f.Add("c1", Desc("jobs_total", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  uint32_t hist = f.Add("h", Desc("t", AggregationKind::Histogram, InstrumentKind::Histogram, false, {1}));
  uint32_t clash2 = f.Add("c2", Desc("t_count", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  uint32_t reserved = f.Add("r", Desc("target_info", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  for (uint32_t id : {ia, ib, clash1, hist, clash2, reserved}) {
    double* c = f.Acquire(id, {});
    REQUIRE(c);
    c[0] = 1;
    if (id == clash1 || id == clash2 || id == reserved) c[1] = 1;
    if (id == hist) c[4] = 1;
  }
  prom::Options o = Text(true);
  o.reservedNames = {"target_info", "target"};
  o.prefix = "# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{a=\"b\"} 1\n";
  std::vector<uint32_t> dropped;
  CHECK_STR(f.Render(o, {}, &dropped),
            o.prefix +
            "# HELP jobs_total from a\n# TYPE jobs_total counter\n"
            "jobs_total{otel_scope_name=\"a\"} 1\njobs_total{otel_scope_name=\"b\"} 1\n"
            "# HELP t t\n# TYPE t histogram\nt_bucket{le=\"1\"} 0\nt_bucket{le=\"+Inf\"} 1\nt_sum 1\nt_count 1\n");
  std::sort(dropped.begin(), dropped.end());
  CHECK((dropped == std::vector<uint32_t>{clash1, clash2, reserved}));
}

// Plain label keys render differently from each other; keys that are not plain are the
// only ones that can render like another.
TEST(plain_label_keys) {
  CHECK(LabelSet::IsPlainKey(EncodeLabelKey({})));
  CHECK(LabelSet::IsPlainKey(EncodeLabelKey({"status", "s200", "route", "s/x"})));
  CHECK(LabelSet::IsPlainKey(EncodeLabelKey({"_a1", "s", "exported_le", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"status", "n200"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"ok", "btrue"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"arr", "a[1,2]"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"a.b", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"a__b", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"1a", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"le", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"quantile", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"otel_scope_name", "sx"})));
  CHECK(!LabelSet::IsPlainKey(EncodeLabelKey({"", "sx"})));
  CHECK(!LabelSet::IsPlainKey(std::string("\x05") + "ab"));  // malformed
  // Shapes: names and type tags, and whether names merge.
  auto shape = [](const std::vector<std::string>& parts) { return LabelSet::ShapeOf(EncodeLabelKey(parts)); };
  const uint32_t merges = LabelSet::kShapeMerges;
  CHECK_EQ(shape({"status", "n200", "m", "sGET"}), shape({"status", "n404", "m", "sPUT"}));
  CHECK(shape({"status", "n200"}) != shape({"status", "s200"}));
  CHECK(shape({"on", "btrue"}) != shape({"on", "strue"}));
  CHECK(shape({"a", "s1"}) != shape({"b", "s1"}));
  CHECK_EQ(shape({"status", "n200", "m", "sGET"}) & merges, 0u);
  CHECK_EQ(shape({"a.b", "s1", "a_b", "s2"}) & merges, merges);
  CHECK_EQ(shape({"a.b", "s1", "c", "s2"}) & merges, 0u);
  CHECK_EQ(shape({"le", "s1", "exported_le", "s2"}) & merges, merges);
  CHECK_EQ(shape({"otel.scope.name", "s1", "otel_scope_name", "s2"}) & merges, merges);
  CHECK_EQ(shape({"1a", "s1", "_1a", "s2"}) & merges, merges);
}

// A member whose label sets are all of one shape that merges no names renders as before
// (no identity pass); mixed shapes that render alike are merged.
TEST(one_shape_members_skip_the_identity_pass) {
  Fixture f;
  const uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  for (int i = 0; i < 3; i++) {
    double* p = f.Acquire(c, {"n", "n" + std::to_string(i), "s", "sx"});
    REQUIRE(p);
    p[0] = i + 1;
  }
  std::vector<prom::Collision> collisions;
  prom::Snapshot snap = f.Snap();
  prom::ChunkedOutput out;
  prom::Serialize(snap, Text(), {}, &out, nullptr, &collisions);
  CHECK_STR(prom::Join(out.Take()), "# HELP c_total c\n# TYPE c_total counter\n"
                                    "c_total{n=\"0\",s=\"x\"} 1\nc_total{n=\"1\",s=\"x\"} 2\nc_total{n=\"2\",s=\"x\"} 3\n");
  CHECK(collisions.empty());
  double* q = f.Acquire(c, {"n", "s1", "s", "sx"});
  REQUIRE(q);
  q[0] = 10;
  CHECK_STR(f.Render(Text()), "# HELP c_total c\n# TYPE c_total counter\n"
                              "c_total{n=\"0\",s=\"x\"} 1\nc_total{n=\"1\",s=\"x\"} 12\nc_total{n=\"2\",s=\"x\"} 3\n");
}

// The cardinality limit's overflow set renders `otel_metric_overflow="true"`: a member
// at its limit is merged only where a record renders that too.
TEST(overflow_series_merge_only_with_their_text) {
  Fixture f;
  const uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  Acquired a;
  for (int i = 0; i < 4; i++) {
    REQUIRE(f.m.Acquire(f.arena, c, EncodeLabelKey({"n", "n" + std::to_string(i)}), 1000, &a, 3));
    Cell(f.m, f.arena, a)[0] += 1;
  }
  std::vector<prom::Collision> collisions;
  prom::Snapshot snap = f.Snap();
  prom::ChunkedOutput out;
  prom::Serialize(snap, Text(), {}, &out, nullptr, &collisions);
  CHECK_STR(prom::Join(out.Take()), "# HELP c_total c\n# TYPE c_total counter\n"
                                    "c_total{n=\"0\"} 1\nc_total{n=\"1\"} 1\nc_total{otel_metric_overflow=\"true\"} 2\n");
  CHECK(collisions.empty());
  Fixture g;
  const uint32_t d = g.Add("d", Desc("d", AggregationKind::Sum));
  for (const char* v : {"strue", "sfalse", "sx"}) {
    REQUIRE(g.m.Acquire(g.arena, d, EncodeLabelKey({"otel_metric_overflow", v}), 1000, &a, 3));
    Cell(g.m, g.arena, a)[0] += 1;
  }
  CHECK_STR(g.Render(Text()), "# HELP d_total d\n# TYPE d_total counter\n"
                              "d_total{otel_metric_overflow=\"true\"} 2\nd_total{otel_metric_overflow=\"false\"} 1\n");
}

// Every sample line's identity (name and labels) of a text; false if one is there twice.
bool UniqueIdentities(const std::string& text) {
  std::vector<std::string> ids;
  size_t i = 0;
  while (i < text.size()) {
    const size_t nl = text.find('\n', i);
    const std::string line = text.substr(i, nl - i);
    i = nl + 1;
    if (line.rfind("# ", 0) == 0) continue;
    ids.push_back(line.substr(0, line.rfind(' ')));
  }
  std::sort(ids.begin(), ids.end());
  return std::adjacent_find(ids.begin(), ids.end()) == ids.end();
}

// Records whose name and label text are the same are one series: sums added, histograms
// bucket-wise, gauges the value updated last, summaries count/sum with one's quantiles.
TEST(one_series_per_identity_merged) {
  Fixture f;
  // Attributes that differ only in type, names that sanitize alike, a second registration
  // with another description and an observable counter of the same name.
  const uint32_t dotted = f.Add("a", Desc("orders.placed", AggregationKind::Sum));
  const uint32_t under = f.Add("b", Desc("orders_placed", AggregationKind::Sum));
  Descriptor again = Desc("orders.placed", AggregationKind::Sum);
  again.description = "another description";
  const uint32_t redesc = f.Add("c", again);
  const uint32_t observed = f.Add("d", Desc("orders.placed", AggregationKind::PrecomputedSum, InstrumentKind::ObservableCounter));
  double* a200 = f.Acquire(dotted, {"status", "n200"});
  double* as200 = f.Acquire(dotted, {"status", "s200"});
  double* b200 = f.Acquire(under, {"status", "s200"});
  double* b404 = f.Acquire(under, {"status", "s404"});
  double* c200 = f.Acquire(redesc, {"status", "n200"});
  double* d200 = f.Acquire(observed, {"status", "s200"});
  REQUIRE(a200 && as200 && b200 && b404 && c200 && d200);
  a200[0] = 5;
  as200[0] = 7;
  b200[0] = 30;
  b404[0] = 1;
  c200[0] = 100;
  d200[0] = 1000;
  d200[1] = 1;
  // true and "true", [1,2] and "[1,2]" in a histogram with equal bounds (bucket-wise).
  const uint32_t h = f.Add("h", Desc("lat", AggregationKind::Histogram, InstrumentKind::Histogram, false, {1, 2}));
  double* hb = f.Acquire(h, {"ok", "btrue", "v", "a[1,2]"});
  double* hs = f.Acquire(h, {"ok", "strue", "v", "s[1,2]"});
  REQUIRE(hb && hs);
  const double hbv[] = {3, 0.5, 2, 1, 1, 0};  // [sum, min, max, b0, b1, b2]
  const double hsv[] = {10, 3, 7, 0, 0, 2};
  std::copy(hbv, hbv + 6, hb);
  std::copy(hsv, hsv + 6, hs);
  // Histograms of other bounds: the bounds both have.
  const uint32_t h2a = f.Add("h2a", Desc("lat2", AggregationKind::Histogram, InstrumentKind::Histogram, false, {1, 2}));
  Descriptor h2d = Desc("lat2", AggregationKind::Histogram, InstrumentKind::Histogram, false, {2, 5});
  h2d.description = "other bounds";
  const uint32_t h2b = f.Add("h2b", h2d);
  double* x = f.Acquire(h2a, {});
  double* y = f.Acquire(h2b, {});
  REQUIRE(x && y);
  const double xv[] = {4, 0.5, 3, 1, 1, 1};  // 1 <= 1, 1 in (1, 2], 1 above 2
  const double yv[] = {9, 2, 6, 1, 1, 1};    // 1 <= 2, 1 in (2, 5], 1 above 5
  std::copy(xv, xv + 6, x);
  std::copy(yv, yv + 6, y);
  // Min/max/sum/count: merged exactly; exact values: count and sum added, the quantiles
  // of the larger count.
  const uint32_t mm = f.Add("mm", Desc("mm", AggregationKind::MinMaxSumCount, InstrumentKind::Histogram, false));
  double* m1 = f.Acquire(mm, {"n", "n1"});
  double* m2 = f.Acquire(mm, {"n", "s1"});
  REQUIRE(m1 && m2);
  m1[0] = 2; m1[1] = 3; m1[2] = 1; m1[3] = 2;
  m2[0] = 1; m2[1] = 9; m2[2] = 9; m2[3] = 9;
  const uint32_t ex = f.Add("ex", Desc("ex", AggregationKind::Exact, InstrumentKind::Histogram, false));
  uint64_t e1id = 0, e2id = 0;
  double* e1 = f.Acquire(ex, {"n", "n1"}, &e1id);
  double* e2 = f.Acquire(ex, {"n", "s1"}, &e2id);
  REQUIRE(e1 && e2);
  e1[0] = 2; e1[1] = 3; e1[2] = 1; e1[3] = 2;
  e2[0] = 3; e2[1] = 30; e2[2] = 9; e2[3] = 11;
  prom::Options o = Text();
  o.quantiles = {0.5};
  prom::ExactQuantiles exact;
  exact[e1id] = {1.5};
  exact[e2id] = {10};

  prom::Snapshot snap = f.Snap();
  std::vector<prom::Collision> collisions;
  prom::ChunkedOutput out;
  prom::Serialize(snap, o, exact, &out, nullptr, &collisions);
  const std::string text = prom::Join(out.Take());
  CHECK(UniqueIdentities(text));
  CHECK_STR(text,
            "# HELP ex ex\n# TYPE ex summary\n"
            "ex{n=\"1\",quantile=\"0.5\"} 10\nex_sum{n=\"1\"} 33\nex_count{n=\"1\"} 5\n"
            "# HELP lat lat\n# TYPE lat histogram\n"
            "lat_bucket{ok=\"true\",v=\"[1,2]\",le=\"1\"} 1\n"
            "lat_bucket{ok=\"true\",v=\"[1,2]\",le=\"2\"} 2\n"
            "lat_bucket{ok=\"true\",v=\"[1,2]\",le=\"+Inf\"} 4\n"
            "lat_sum{ok=\"true\",v=\"[1,2]\"} 13\nlat_count{ok=\"true\",v=\"[1,2]\"} 4\n"
            "# HELP lat2 lat2\n# TYPE lat2 histogram\n"
            "lat2_bucket{le=\"2\"} 3\nlat2_bucket{le=\"+Inf\"} 6\nlat2_sum 13\nlat2_count 6\n"
            "# HELP mm mm\n# TYPE mm summary\n"
            "mm{n=\"1\",quantile=\"0\"} 1\nmm{n=\"1\",quantile=\"1\"} 9\nmm_sum{n=\"1\"} 12\nmm_count{n=\"1\"} 3\n"
            "# HELP orders_placed_total orders.placed\n# TYPE orders_placed_total counter\n"
            "orders_placed_total{status=\"200\"} 1142\n"
            "orders_placed_total{status=\"404\"} 1\n");
  using MK = prom::MergeKind;
  std::vector<prom::Collision> want = {
      {dotted, dotted, MK::Added}, {dotted, under, MK::Added}, {dotted, redesc, MK::Added}, {dotted, observed, MK::Added},
      {h, h, MK::Added},           {h2a, h2b, MK::CommonBuckets}, {mm, mm, MK::Added},       {ex, ex, MK::KeptQuantiles},
  };
  std::sort(want.begin(), want.end());
  CHECK(collisions == want);

  // OpenMetrics: one `_created` per series, the earliest start of its records.
  {
    Fixture g;
    const uint32_t c1 = g.Add("c1", Desc("jobs", AggregationKind::Sum));
    Descriptor d2 = Desc("jobs", AggregationKind::Sum);
    d2.description = "second";
    const uint32_t c2 = g.Add("c2", d2);
    Acquired a1, a2;
    REQUIRE(g.m.Acquire(g.arena, c1, EncodeLabelKey({"k", "n1"}), 1700000000250.0, &a1));
    REQUIRE(g.m.Acquire(g.arena, c2, EncodeLabelKey({"k", "s1"}), 1700000000125.75, &a2));
    Cell(g.m, g.arena, a1)[0] = 2;
    Cell(g.m, g.arena, a2)[0] = 3;
    CHECK_STR(g.Render(OM()),
              "# HELP jobs jobs\n# TYPE jobs counter\njobs_total{k=\"1\"} 5\njobs_created{k=\"1\"} 1700000000.125\n# EOF\n");
  }
}

// A gauge's colliding records: the one a later pass saw updated; the first on a tie.
TEST(colliding_gauges_keep_the_value_updated_last) {
  Fixture f;
  const uint32_t g = f.Add("g", Desc("temp", AggregationKind::LastValue, InstrumentKind::Gauge, false));
  const uint32_t u = f.Add("u", Desc("temp", AggregationKind::Sum, InstrumentKind::UpDownCounter, false));
  double* a = f.Acquire(g, {"room", "n1"});
  double* b = f.Acquire(g, {"room", "s1"});
  double* c = f.Acquire(u, {"room", "s1"});
  REQUIRE(a && b && c);
  a[0] = 10; a[1] = 1;
  b[0] = 20; b[1] = 1;
  c[0] = 30;
  const std::string head = "# HELP temp temp\n# TYPE temp gauge\n";
  std::vector<prom::Collision> collisions;
  prom::Snapshot snap = f.Snap();
  prom::ChunkedOutput out;
  prom::Serialize(snap, Text(), {}, &out, nullptr, &collisions);
  CHECK_STR(prom::Join(out.Take()), head + "temp{room=\"1\"} 10\n");  // one pass saw all: the first
  CHECK(collisions == (std::vector<prom::Collision>{{g, g, prom::MergeKind::KeptLatest}, {g, u, prom::MergeKind::KeptLatest}}));
  b[0] = 21; b[1] = 2;
  CHECK_STR(f.Render(Text()), head + "temp{room=\"1\"} 21\n");
  c[0] = 31;
  CHECK_STR(f.Render(Text()), head + "temp{room=\"1\"} 31\n");
  // Only sums: added.
  Fixture s;
  const uint32_t s1 = s.Add("s1", Desc("depth", AggregationKind::Sum, InstrumentKind::UpDownCounter, false));
  double* p = s.Acquire(s1, {"q", "n1"});
  double* q = s.Acquire(s1, {"q", "s1"});
  REQUIRE(p && q);
  p[0] = -2;
  q[0] = 5;
  CHECK_STR(s.Render(Text()), "# HELP depth depth\n# TYPE depth gauge\ndepth{q=\"1\"} 3\n");
}

// Merged series written a part at a time, by several threads, are the whole text.
TEST(merged_series_written_in_parts_are_the_whole_text) {
  Fixture f;
  const uint32_t a = f.Add("a", Desc("c.x", AggregationKind::Sum));
  const uint32_t b = f.Add("b", Desc("c_x", AggregationKind::Sum));
  const uint32_t h = f.Add("h", Desc("h", AggregationKind::Histogram, InstrumentKind::Histogram, false, {1, 2}));
  for (int i = 0; i < 400; i++) {
    const std::string v = std::to_string(i);
    double* p = f.Acquire(a, {"i", (i % 2 ? "n" : "s") + v});
    double* q = f.Acquire(b, {"i", "s" + v});
    double* r = f.Acquire(h, {"i", (i % 3 ? "n" : "s") + v});
    double* r2 = f.Acquire(h, {"i", "s" + v});
    REQUIRE(p && q && r && r2);
    p[0] = i;
    q[0] = 1;
    r[0] = 1; r[3] = 1;
    r2[0] = 2; r2[4] = 1;
  }
  prom::Snapshot snap = f.Snap();
  for (prom::Options o : {Text(), OM()}) {
    prom::ChunkedOutput all;
    prom::Serialize(snap, o, {}, &all, nullptr);
    const std::string want = prom::Join(all.Take());
    CHECK(UniqueIdentities(want));
    CHECK(want.find("c_x_total{i=\"7\"} 8\n") != std::string::npos);
    CHECK(want.find("c_x_total{i=\"8\"} 9\n") != std::string::npos);
    CHECK(want.find("h_bucket{i=\"5\",le=\"2\"} 2\n") != std::string::npos);
    for (unsigned threads : {1u, 2u}) {
      prom::Options po = o;
      po.threads = threads;
      po.parallelMinRecords = 1;
      prom::SerializationPlan plan(snap, po, {}, nullptr);
      CHECK_EQ(plan.records(), size_t{800});  // 400 counter series, 400 histogram series
      for (size_t bytes : {size_t{1}, size_t{3000}, size_t{1} << 30}) {
        const std::vector<size_t> parts = plan.Parts(bytes);
        std::string text;
        for (size_t p = 0; p + 1 < parts.size(); p++) {
          prom::ChunkedOutput out(po.chunkBytes);
          plan.Write(parts[p], parts[p + 1], p == 0, p + 2 == parts.size(), &out);
          text += prom::Join(out.Take());
        }
        CHECK(text == want);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
