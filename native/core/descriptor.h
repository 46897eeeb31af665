// Descriptor: what an instrument is. Immutable once registered; shared by every thread.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hotmeter {

enum class InstrumentKind : uint8_t {
  Counter = 0,
  UpDownCounter = 1,
  Histogram = 2,
  Gauge = 3,
  ObservableCounter = 4,
  ObservableUpDownCounter = 5,
  ObservableGauge = 6,
};
constexpr uint8_t kInstrumentKindCount = 7;

enum class ValueType : uint8_t { Int = 0, Double = 1 };

// Must match src/sdk/aggregation.ts.
enum class AggregationKind : uint8_t {
  Drop = 0,
  Sum = 1,             // cell: [sum]
  // cell: [value, stamp]; stamp: the clock reading of the write (src/api/handles.ts
  // BoundGauge), > 0 once written, 0 never. Merge keeps the greatest stamp's value.
  LastValue = 2,
  PrecomputedSum = 3,  // cell: [value, stamp]; observed cumulative totals (they add up)
  MinMaxSumCount = 4,  // cell: [count, sum, min, max]
  Histogram = 5,       // cell: [sum, min, max, bucket0 .. bucketN]
  // cell: [count, sum, min, max, zeroCount, base, bin0 .. bin(M-1)], M = maxSize
  // (default 512); bin i counts DDSketch key base + i (see sketch.h).
  Sketch = 6,
  // cell: [count, sum, min, max, zeroCount, scale, posBase, negBase,
  //        pos0 .. pos(M-1), neg0 .. neg(M-1)], M = maxSize (default 160); pos i counts
  // base-2 exponential bucket index posBase + i (see exponential_histogram.h).
  ExponentialHistogram = 7,
  // cell: [count, sum, min, max] (as MinMaxSumCount); the values themselves are kept
  // by the JS handles until a collection takes them (src/api/handles-sketch.ts).
  Exact = 8,
};
constexpr uint8_t kAggregationKindCount = 9;

struct Descriptor {
  std::string name;
  std::string description;
  std::string unit;
  // The instrumentation scope (Meter) that registered the instrument.
  std::string scopeName;
  std::string scopeVersion;
  std::string scopeSchemaUrl;
  InstrumentKind kind = InstrumentKind::Counter;
  ValueType valueType = ValueType::Double;
  AggregationKind aggregation = AggregationKind::Sum;
  bool monotonic = false;
  // Explicit histogram upper bounds, strictly increasing and finite. Bucket i holds
  // values v with bounds[i-1] < v <= bounds[i]; the last bucket is (bounds.back(), +Inf).
  std::vector<double> bounds;
  // Sketch: the relative accuracy alpha, 0 < alpha < 1 (quantile estimates are within
  // alpha * exact).
  double relativeAccuracy = 0.01;
  // Sketch: bins per cell; ExponentialHistogram: buckets per range. 0 means the kind's
  // default (see EffectiveMaxSize in aggregator.h).
  uint32_t maxSize = 0;
  // ExponentialHistogram: the highest (starting) scale, -10 .. 20.
  int32_t maxScale = 20;
  // How exporters render it (kept here so that a process that did not create the
  // instrument, e.g. of a processShared segment, renders it as its creator does):
  // summary quantiles of the instrument's own (empty: the exporter's), and whether
  // histogram points carry min and max (a view's recordMinMax).
  std::vector<double> quantiles;
  bool recordMinMax = true;
};

}  // namespace hotmeter
