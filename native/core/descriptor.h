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
  LastValue = 2,       // cell: [value, seq]
  PrecomputedSum = 3,  // cell: [value, seq]; observed cumulative totals
  MinMaxSumCount = 4,  // cell: [count, sum, min, max]
  Histogram = 5,       // cell: [sum, min, max, bucket0 .. bucketN]
};
constexpr uint8_t kAggregationKindCount = 6;

struct Descriptor {
  std::string name;
  std::string description;
  std::string unit;
  InstrumentKind kind = InstrumentKind::Counter;
  ValueType valueType = ValueType::Double;
  AggregationKind aggregation = AggregationKind::Sum;
  bool monotonic = false;
  // Explicit histogram upper bounds, strictly increasing and finite. Bucket i holds
  // values v with bounds[i-1] < v <= bounds[i]; the last bucket is (bounds.back(), +Inf).
  std::vector<double> bounds;
};

}  // namespace hotmeter
