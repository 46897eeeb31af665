// Tests of the streamed Prometheus scrape (native/core/prometheus_stream.*), without Node:
// its parts written in order are the one-shot text; parts written on other threads while
// the reader's thread records, removes series and closes the stream (run under TSan and
// ASan by scripts/native-test.sh); a stream closed before its last part lets its snapshot
// (and the label sets it pinned) go.
//
// Usage: prometheus_stream_test [--scale=F] [--list] [name-substring ...]
// The last line printed is always "N passed, M failed"; the exit status is 1 if M > 0.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../core/descriptor.h"
#include "../core/prometheus_serializer.h"
#include "../core/prometheus_stream.h"
#include "../core/record.h"
#include "../core/record_map.h"
#include "check.h"

using namespace hotmeter;
namespace prom = hotmeter::prometheus;
using prom::PrometheusStream;

namespace {

inline void StoreRelaxed(double& x, double v) { std::atomic_ref<double>(x).store(v, std::memory_order_relaxed); }

Descriptor Desc(const std::string& name, AggregationKind agg, InstrumentKind kind, std::vector<double> bounds = {}) {
  Descriptor d;
  d.name = name;
  d.description = "what " + name + " counts";
  d.kind = kind;
  d.aggregation = agg;
  d.monotonic = kind == InstrumentKind::Counter;
  d.bounds = std::move(bounds);
  return d;
}

// A map with one arena, a domain, a counter and a histogram of `series` series each, all
// written deterministically (two fixtures of the same size hold the same text). A label
// value's first byte is its type tag ('s': string), as the binding receives it.
struct Fixture {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t domain = m.RegisterDomain("");
  uint32_t counter = 0, histogram = 0, extra = 0;
  std::vector<double*> cells;

  explicit Fixture(int series) {
    counter = m.RegisterInstrument("c", Desc("requests", AggregationKind::Sum, InstrumentKind::Counter), nullptr,
                                   domain);
    histogram = m.RegisterInstrument(
        "h", Desc("latency", AggregationKind::Histogram, InstrumentKind::Histogram, {1, 10, 100}), nullptr, domain);
    extra = m.RegisterInstrument("x", Desc("extra", AggregationKind::Sum, InstrumentKind::Counter), nullptr, domain);
    for (int i = 0; i < series; i++) {
      const std::string v = std::to_string(i);
      double* c = Acquire(counter, {"route", "s/r" + v, "code", i % 3 ? "s200" : "s500"});
      double* h = Acquire(histogram, {"route", "s/r" + v});
      if (c == nullptr || h == nullptr) continue;
      c[0] = i + 1;
      h[0] = i;  // sum, count, buckets: whatever the layout, the same in every fixture
      h[1] = 1;
      h[2] = 1;
      cells.push_back(c);
    }
  }
  double* Acquire(uint32_t inst, const std::vector<std::string>& labels) {
    Acquired a;
    if (!m.Acquire(arena, inst, EncodeLabelKey(labels), 1000, &a)) return nullptr;
    double* data = nullptr;
    size_t n = 0;
    if (!m.SlabMemory(arena, a.slab, &data, &n)) return nullptr;
    return data + a.offset;
  }
  CollectOptions Co() const {
    CollectOptions co;
    co.domain = domain;
    co.nowMs = 2000;
    return co;
  }
  // The whole text in one Serialize (what serializePrometheus writes).
  std::string OneShot(const prom::Options& o) {
    prom::Snapshot snap;
    prom::TakeSnapshot(m, Co(), nullptr, &snap);
    prom::ChunkedOutput out(o.chunkBytes);
    prom::Serialize(snap, o, {}, &out, nullptr);
    return prom::Join(out.Take());
  }
  std::shared_ptr<PrometheusStream> Open(const prom::Options& o, size_t partBytes, prom::StreamPass* pass) {
    return PrometheusStream::Open(m, Co(), nullptr, o, {}, partBytes, pass);
  }
};

constexpr int kSeries = 600;
constexpr size_t kPartBytes = 4096;

prom::Options Format(bool openMetrics) {
  prom::Options o;
  o.format = openMetrics ? prom::Format::OpenMetrics100 : prom::Format::Text004;
  return o;
}

}  // namespace

// The parts, claimed and written in order on one thread, are the one-shot text; the reader
// cannot claim a part while one is claimed, and the end comes after the last part.
TEST(parts_concatenate_to_the_one_shot_text) {
  for (bool om : {false, true}) {
    Fixture streamed(kSeries), whole(kSeries);
    const std::string want = whole.OneShot(Format(om));
    prom::StreamPass pass;
    std::shared_ptr<PrometheusStream> s = streamed.Open(Format(om), kPartBytes, &pass);
    CHECK(s->parts() >= 3);
    CHECK_EQ(pass.records, size_t{2 * kSeries});
    CHECK_EQ(pass.epoch, uint64_t{1});
    CHECK(pass.dropped.empty());
    std::string text;
    size_t part = 0, expected = 0;
    while (s->Next(&part) == PrometheusStream::Claim::kPart) {
      CHECK_EQ(part, expected);
      size_t other = 99;
      CHECK(s->Next(&other) == PrometheusStream::Claim::kBusy);
      CHECK_EQ(other, size_t{99});
      CHECK_EQ(s->IsLast(part), part + 1 == s->parts());
      text += prom::Join(s->Write(part));
      s->Done();
      expected++;
    }
    CHECK_EQ(expected, s->parts());
    CHECK(s->Next(&part) == PrometheusStream::Claim::kEnd);
    CHECK(text == want);
    CHECK(text.find("requests_total{route=\"/r599\",code=\"200\"} 600\n") != std::string::npos);
  }
}

// As the binding runs it: each part claimed on the reader's thread and written on its own
// thread, which holds a reference, while the reader's thread records new series, writes
// every cell, removes the histogram's series and runs collections; it closes the stream
// (drops its reference) while the last part is being written, so the stream ends on the
// writer's thread. The text is the one of the moment the stream opened.
TEST(parts_written_on_other_threads_while_the_map_changes_and_the_stream_closes) {
  const int rounds = std::max(1, static_cast<int>(3 * g_scale));
  for (int round = 0; round < rounds; round++) {
    Fixture f(kSeries), whole(kSeries);
    const std::string want = whole.OneShot(Format(false));
    prom::StreamPass pass;
    std::shared_ptr<PrometheusStream> s = f.Open(Format(false), kPartBytes, &pass);
    REQUIRE(s->parts() >= 3);
    const size_t parts = s->parts();
    std::vector<std::string> texts(parts);
    int added = 0;
    size_t part = 0;
    while (s && s->Next(&part) == PrometheusStream::Claim::kPart) {
      std::thread writer([stream = s, part, &texts] { texts[part] = prom::Join(stream->Write(part)); });
      // The reader's thread goes on recording while the part is written.
      for (int i = 0; i < 50; i++, added++) {
        double* c = f.Acquire(f.extra, {"n", "s" + std::to_string(added)});
        if (c != nullptr) StoreRelaxed(c[0], added);
      }
      for (double* c : f.cells) StoreRelaxed(c[0], -1);
      if (part == 1) {
        std::vector<uint64_t> removed;
        f.m.RemoveAll(f.histogram, &removed);
        CHECK_EQ(removed.size(), size_t{kSeries});
        for (uint64_t id : removed) f.m.Release(id, f.arena);  // freed now, but pinned
        CHECK(f.m.RetiredLabelSets() > 0);
      }
      std::vector<double> collected;
      f.m.Collect(f.Co(), &collected);
      if (s->IsLast(part)) s.reset();  // closed with the last part in flight
      writer.join();
      if (s) s->Done();
    }
    CHECK(!s);
    std::string text;
    for (const std::string& t : texts) text += t;
    CHECK(text == want);
    // Nothing of the stream is held now: the removed series' label sets are freed, and the
    // next scrape sees the map as it is.
    CHECK_EQ(f.m.RetiredLabelSets(), size_t{0});
    const std::string now = f.OneShot(Format(false));
    CHECK(now.find("latency_bucket") == std::string::npos);
    CHECK(now.find("extra_total{n=\"0\"}") != std::string::npos);
    CHECK(now.find("requests_total{route=\"/r1\",code=\"200\"} -1\n") != std::string::npos);
  }
}

// A stream closed before its last part (the client went away): the last reference goes,
// with or without a part in flight, and so does its snapshot's label pin; its snapshot's
// memory is kept for the next scrape (StashSnapshot); a new stream over the same map is
// whole.
TEST(abandoned_stream_lets_its_snapshot_go) {
  for (bool inFlight : {false, true}) {
    prom::ReuseSnapshot();  // empties the stash
    Fixture f(kSeries), whole(kSeries);
    prom::StreamPass pass;
    std::shared_ptr<PrometheusStream> s = f.Open(Format(false), kPartBytes, &pass);
    REQUIRE(s->parts() >= 3);
    size_t part = 0;
    REQUIRE(s->Next(&part) == PrometheusStream::Claim::kPart);
    std::string first = prom::Join(s->Write(part));
    CHECK(!first.empty());
    s->Done();
    // The snapshot pins the label sets of the series it saw: removed now, they are retired,
    // not freed, while the stream lives.
    std::vector<uint64_t> removed;
    f.m.RemoveAll(f.histogram, &removed);
    for (uint64_t id : removed) f.m.Release(id, f.arena);  // freed now, but pinned
    whole.m.RemoveAll(whole.histogram, &removed);
    std::vector<double> collected;
    f.m.Collect(f.Co(), &collected);
    CHECK(f.m.RetiredLabelSets() > 0);
    std::thread writer;
    if (inFlight) {
      REQUIRE(s->Next(&part) == PrometheusStream::Claim::kPart);
      CHECK(!s->IsLast(part));
      writer = std::thread([stream = s, part] { prom::Join(stream->Write(part)); });
    }
    s.reset();  // closed
    if (writer.joinable()) writer.join();
    CHECK_EQ(f.m.RetiredLabelSets(), size_t{0});
    prom::Snapshot kept = prom::ReuseSnapshot();
    CHECK(kept.records.empty());
    CHECK(kept.records.capacity() >= size_t{2 * kSeries});
    // The next stream over the same map is whole.
    std::shared_ptr<PrometheusStream> again = f.Open(Format(false), kPartBytes, &pass);
    std::string text;
    while (again->Next(&part) == PrometheusStream::Claim::kPart) {
      text += prom::Join(again->Write(part));
      again->Done();
    }
    CHECK(text == whole.OneShot(Format(false)));
    CHECK(text.find("latency") == std::string::npos);
  }
}

int main(int argc, char** argv) { return RunTests(argc, argv); }
