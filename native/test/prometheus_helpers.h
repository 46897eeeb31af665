// Fixture helpers shared by the Prometheus serializer's tests (native/test/prometheus_*_test.cc):
// CHECK_STR, descriptors, a record map with one arena and domain (Fixture), format options.
// The test framework itself is check.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../core/aggregator.h"
#include "../core/descriptor.h"
#include "../core/exponential_histogram.h"
#include "../core/label_set.h"
#include "../core/output_pool.h"
#include "../core/prometheus_serializer.h"
#include "../core/record.h"
#include "../core/record_map.h"
#include "../core/sketch.h"
#include "check.h"

using namespace hotmeter;
namespace prom = hotmeter::prometheus;

// ---------------------------------------------------------------------------------------
// Text with its control characters visible, for failure messages (CHECK_STR).
inline std::string Visible(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c == '\n') r += "\\n\n";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      r += b;
    } else r += static_cast<char>(c);
  }
  return r;
}

#define CHECK_STR(a, b)                                                                        \
  do {                                                                                         \
    const std::string check_a_ = (a);                                                          \
    const std::string check_b_ = (b);                                                          \
    if (check_a_ != check_b_) {                                                                \
      Fail(__FILE__, __LINE__, std::string(#a " == " #b "\n--- got:\n") + Visible(check_a_) + \
                                   "\n--- want:\n" + Visible(check_b_));                        \
    }                                                                                          \
  } while (0)

// ---------------------------------------------------------------------------------------
// Helpers.

inline std::string Num(double v) {
  std::string s;
  prom::AppendNumber(&s, v);
  return s;
}

inline double LoadRelaxed(double& x) { return std::atomic_ref<double>(x).load(std::memory_order_relaxed); }
inline void StoreRelaxed(double& x, double v) { std::atomic_ref<double>(x).store(v, std::memory_order_relaxed); }
inline void AddRelaxed(double& x, double v) { StoreRelaxed(x, LoadRelaxed(x) + v); }

inline Descriptor Desc(const std::string& name, AggregationKind agg, InstrumentKind kind = InstrumentKind::Counter,
                       bool monotonic = true, std::vector<double> bounds = {}) {
  Descriptor d;
  d.name = name;
  d.description = "";
  d.kind = kind;
  d.aggregation = agg;
  d.monotonic = monotonic;
  d.bounds = std::move(bounds);
  return d;
}

inline double* Cell(RecordMap& m, uint32_t arena, const Acquired& a) {
  double* data = nullptr;
  size_t n = 0;
  if (!m.SlabMemory(arena, a.slab, &data, &n)) return nullptr;
  return data + a.offset;
}

// A map with one arena and a domain, and helpers to record into it.
struct Fixture {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t domain = m.RegisterDomain("");
  uint32_t Add(const std::string& identity, Descriptor d) {
    return m.RegisterInstrument(identity, std::move(d), nullptr, domain);
  }
  double* Acquire(uint32_t inst, const std::vector<std::string>& labels, uint64_t* id = nullptr) {
    Acquired a;
    if (!m.Acquire(arena, inst, EncodeLabelKey(labels), 1000, &a)) return nullptr;
    if (id) *id = a.recordId;
    return Cell(m, arena, a);
  }
  // A snapshot of every instrument of the domain.
  prom::Snapshot Snap() {
    CollectOptions co;
    co.domain = domain;
    prom::Snapshot snap;
    prom::TakeSnapshot(m, co, nullptr, &snap);
    return snap;
  }
  std::string Render(const prom::Options& o, const prom::ExactQuantiles& exact = {},
                     std::vector<uint32_t>* dropped = nullptr, prom::Snapshot* keep = nullptr) {
    prom::Snapshot snap = Snap();
    prom::ChunkedOutput out(o.chunkBytes);
    prom::Serialize(snap, o, exact, &out, dropped);
    std::string s = prom::Join(out.Take());
    if (keep) *keep = std::move(snap);
    return s;
  }
};

inline prom::Options Text(bool scope = false) {
  prom::Options o;
  o.scopeLabels = scope;
  return o;
}
inline prom::Options OM(bool scope = false) {
  prom::Options o;
  o.format = prom::Format::OpenMetrics100;
  o.scopeLabels = scope;
  return o;
}
