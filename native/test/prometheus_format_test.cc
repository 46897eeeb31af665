// Tests of the Prometheus serializer's text pieces: numbers, escaping, names and units.
//
// Usage: prometheus_format_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "prometheus_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// Formatting.

TEST(number_format_matches_javascript) {
  // Expected strings are what JavaScript's String(v) prints (Inf/NaN in Prometheus form).
  const std::pair<double, const char*> cases[] = {
      {0.0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {-1, "-1"},
      {0.5, "0.5"},
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {123.456, "123.456"},
      {-2.5e-3, "-0.0025"},
      {1e-6, "0.000001"},
      {1e-7, "1e-7"},
      {1.5e-7, "1.5e-7"},
      {1e20, "100000000000000000000"},
      {1e21, "1e+21"},
      {1.25e21, "1.25e+21"},
      {9007199254740992.0, "9007199254740992"},
      {1152921504606846976.0, "1152921504606847000"},
      {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {-1.5e300, "-1.5e+300"},
      {2.5, "2.5"},
      {1234567.125, "1234567.125"},
      {0.001, "0.001"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
      {std::nan(""), "NaN"},
  };
  for (const auto& [v, want] : cases) CHECK_STR(Num(v), want);
}

TEST(number_format_round_trips) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; i++) {
    uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    std::string s = Num(v);
    double back = std::strtod(s.c_str(), nullptr);
    if (back != v && !(v == 0 && back == 0)) {
      Fail(__FILE__, __LINE__, "round trip of " + s);
      break;
    }
  }
}

TEST(escaping) {
  std::string s;
  prom::AppendLabelValue(&s, "a\\b\"c\nd\te\r\xc3\xa9");
  CHECK_STR(s, "a\\\\b\\\"c\\nd\te\r\xc3\xa9");
  s.clear();
  prom::AppendHelp(&s, "x\\y\n\"z\"", prom::Format::Text004);
  CHECK_STR(s, "x\\\\y\\n\"z\"");
  s.clear();
  prom::AppendHelp(&s, "x\\y\n\"z\"", prom::Format::OpenMetrics100);
  CHECK_STR(s, "x\\\\y\\n\\\"z\\\"");
}

// AppendLabelValue against a byte-by-byte reference: values of every length up to 40,
// the escaped bytes at every offset among their neighbours in value (0x00, 0x09, 0x0b,
// '!', '#', '[', ']') and bytes of invalid UTF-8 (0x80, 0xff), which pass through as they are.
TEST(label_value_escaping_matches_a_byte_by_byte_reference) {
  const char alphabet[] = {'a', '\\', '"', '\n', '\0', '\x0b', '\x09', '!', '#', '[', ']', '\x80', '\xff', '\x5c' + 1};
  std::mt19937 rng(42);
  for (int iter = 0; iter < 20000; iter++) {
    const size_t len = rng() % 41;
    std::string v(len, 'x');
    for (char& c : v) c = rng() % 3 == 0 ? alphabet[rng() % sizeof alphabet] : static_cast<char>(rng() % 256);
    std::string want;
    for (char c : v) {
      if (c == '\\') want += "\\\\";
      else if (c == '"') want += "\\\"";
      else if (c == '\n') want += "\\n";
      else want += c;
    }
    std::string got = "prefix";
    prom::AppendLabelValue(&got, v);
    REQUIRE(got == "prefix" + want);
  }
}

TEST(names_and_units) {
  CHECK_STR(prom::SanitizeMetricName("http.server.duration"), "http_server_duration");
  CHECK_STR(prom::SanitizeMetricName("a..b--c/d"), "a_b_c_d");
  CHECK_STR(prom::SanitizeMetricName("a:b"), "a:b");
  CHECK_STR(prom::SanitizeMetricName("9lives"), "_9lives");
  CHECK_STR(prom::SanitizeLabelName("a:b"), "a_b");
  CHECK_STR(prom::SanitizeLabelName("__meta"), "_meta");
  CHECK_STR(prom::SanitizeLabelName("gr\xc3\xb6\xc3\x9f" "e"), "gr_e");
  CHECK_STR(prom::SanitizeLabelName("1st"), "_1st");
  CHECK_STR(prom::SanitizeLabelName("."), "_");
  CHECK_STR(prom::UnitWord("s", false), "seconds");
  CHECK_STR(prom::UnitWord("ms", false), "milliseconds");
  CHECK_STR(prom::UnitWord("By/s", false), "bytes_per_second");
  CHECK_STR(prom::UnitWord("m/s", false), "meters_per_second");
  CHECK_STR(prom::UnitWord("{request}", false), "");
  CHECK_STR(prom::UnitWord("{packet}/s", false), "per_second");
  CHECK_STR(prom::UnitWord("1", true), "ratio");
  CHECK_STR(prom::UnitWord("1", false), "");
  CHECK_STR(prom::UnitWord("%", true), "percent");
  CHECK_STR(prom::UnitWord("widgets", false), "widgets");
  CHECK_STR(prom::UnitWord("{a}By{b}", false), "bytes");

  Descriptor c = Desc("http.server.request.duration", AggregationKind::Sum);
  c.unit = "s";
  CHECK_STR(prom::NameFor(c, prom::Format::Text004).family, "http_server_request_duration_seconds_total");
  CHECK_STR(prom::NameFor(c, prom::Format::OpenMetrics100).family, "http_server_request_duration_seconds");
  CHECK_STR(prom::NameFor(c, prom::Format::OpenMetrics100).sample, "http_server_request_duration_seconds_total");
  CHECK_STR(prom::NameFor(c, prom::Format::OpenMetrics100).unit, "seconds");
  Descriptor t = Desc("requests_total", AggregationKind::Sum);
  CHECK_STR(prom::NameFor(t, prom::Format::Text004).family, "requests_total");
  CHECK_STR(prom::NameFor(t, prom::Format::OpenMetrics100).family, "requests");
  Descriptor g = Desc("queue.size_bytes", AggregationKind::LastValue, InstrumentKind::Gauge, false);
  g.unit = "By";
  CHECK_STR(prom::NameFor(g, prom::Format::Text004).family, "queue_size_bytes");
  Descriptor u = Desc("cpu.utilization", AggregationKind::LastValue, InstrumentKind::Gauge, false);
  u.unit = "1";
  CHECK_STR(prom::NameFor(u, prom::Format::Text004).family, "cpu_utilization_ratio");
  // exporter-prometheus' names: a prefix, no unit word (its counters keep _total).
  prom::Options plain;
  plain.withoutUnits = true;
  plain.namePrefix = "app_";
  CHECK_STR(prom::NameFor(c, prom::Format::Text004, plain).family, "app_http_server_request_duration_total");
  CHECK_STR(prom::NameFor(c, prom::Format::OpenMetrics100, plain).unit, "");
  CHECK_STR(prom::NameFor(u, prom::Format::Text004, plain).family, "app_cpu_utilization");
  // The Go exporter's WithoutCounterSuffixes: no _total in the text format; OpenMetrics keeps it.
  plain.withoutCounterSuffixes = true;
  CHECK_STR(prom::NameFor(c, prom::Format::Text004, plain).sample, "app_http_server_request_duration");
  CHECK_STR(prom::NameFor(t, prom::Format::Text004, plain).family, "app_requests_total");
  CHECK_STR(prom::NameFor(c, prom::Format::OpenMetrics100, plain).sample, "app_http_server_request_duration_total");
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
