// Exemplars: a few recent measurements of a record, each with the trace and span it was
// made in (OpenTelemetry's exemplar model). Stored per record and thread in native memory
// next to the record's cells (RecordExtra::exemplarCells), written from JS through the
// thread's slab view only when a measurement is offered as an exemplar (the slow path),
// and read by collection passes and the Prometheus serializer.
//
// Slots: an explicit-bucket histogram has one per bucket (AlignedHistogramBucket
// reservoir: the last measurement in the bucket wins); a counter's sum and a histogram's
// exponential histogram have one (a fixed-size reservoir of one: the last wins). Other
// aggregations keep none: no format written carries them (OpenMetrics allows exemplars
// on counters and histogram buckets only, the Prometheus protobuf Gauge and Summary have
// no exemplar field, and @opentelemetry/otlp-transformer writes no exemplars), so up-down
// counters, gauges and summary-like histogram aggregations pay nothing for them.
// A slot is kDoubles doubles: [timeMs, value, trace0..trace3, span0, span1], the ids as
// big-endian 32-bit words (exact in a double); timeMs 0: empty. All-zero span words: an
// exemplar with no span (the always_on filter outside a span).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "descriptor.h"

namespace hotmeter::exemplar {

constexpr size_t kDoubles = 8;
constexpr size_t kTime = 0, kValue = 1, kTrace = 2, kSpan = 6;

// Slots per record for the descriptor's instrument (0: no exemplars).
inline size_t Slots(const Descriptor& d) {
  if (d.aggregation == AggregationKind::Histogram) return d.bounds.size() + 1;
  if (d.aggregation == AggregationKind::Sum && d.kind == InstrumentKind::Counter) return 1;
  if (d.aggregation == AggregationKind::ExponentialHistogram && d.kind == InstrumentKind::Histogram) return 1;
  return 0;
}

// dst := per slot, the later of dst and src (slots * kDoubles doubles each).
inline void Merge(double* dst, const double* src, size_t slots) {
  for (size_t i = 0; i < slots; i++) {
    const double* s = src + i * kDoubles;
    double* d = dst + i * kDoubles;
    if (s[kTime] > d[kTime]) {
      for (size_t k = 0; k < kDoubles; k++) d[k] = s[k];
    }
  }
}

// Whether the slot carries a span (trace and span ids).
inline bool HasSpan(const double* slot) { return slot[kSpan] != 0 || slot[kSpan + 1] != 0; }

// Appends `words` 32-bit words as lowercase hex (8 digits each).
inline void AppendHexWords(std::string* o, const double* w, size_t words) {
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < words; i++) {
    const auto v = static_cast<uint32_t>(w[i]);
    for (int s = 28; s >= 0; s -= 4) o->push_back(hex[(v >> s) & 15]);
  }
}

// Appends the words as bytes, big-endian (protobuf/OTLP ids).
inline void AppendIdBytes(std::string* o, const double* w, size_t words) {
  for (size_t i = 0; i < words; i++) {
    const auto v = static_cast<uint32_t>(w[i]);
    for (int s = 24; s >= 0; s -= 8) o->push_back(static_cast<char>((v >> s) & 255));
  }
}

}  // namespace hotmeter::exemplar
