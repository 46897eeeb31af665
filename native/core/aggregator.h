// Aggregator: the layout of a record's cells and the three operations on them.
//   Update     happens in JS (src/api/handles.ts) by plain typed-array writes into a cell.
//   Checkpoint folds every thread's cell of a record into one cumulative state.
//   Merge      combines two states of the same kind (threads, retired cells, batchers).
// A state has the same layout as a cell. Cells are cumulative and never reset.
#pragma once
// See docs/design.md, "Reading cells at collection".
#include <cstddef>
#include <cstdint>

#include "descriptor.h"

namespace hotmeter {

// Number of doubles in a cell / state for this aggregation (Sketch and
// ExponentialHistogram with their default maxSize).
size_t CellSize(AggregationKind kind, size_t boundCount);
// Number of doubles in a cell / state of the descriptor's instrument.
size_t CellSize(const Descriptor& d);
// Sketch bins / ExponentialHistogram buckets per range: d.maxSize or the kind's default.
uint32_t EffectiveMaxSize(const Descriptor& d);

// Writes the identity state (what an untouched cell holds).
void InitState(AggregationKind kind, double* state, size_t size);

// dst := Merge(dst, src). Both have CellSize doubles.
void MergeState(AggregationKind kind, double* dst, const double* src, size_t size);

// A number that changes whenever the state is updated (monotone for every kind but
// Sum, whose value itself is compared). Equal activity means "not updated".
double Activity(AggregationKind kind, const double* state, size_t size);

// Reads a cell that another thread may be writing: each double is loaded atomically
// (relaxed); the copy may mix two updates, which the next checkpoint corrects.
void LoadCell(double* out, const double* cell, size_t size);

// Bucket index for v in bounds (upper-inclusive), used by native tests and Merge checks.
size_t BucketIndex(const double* bounds, size_t boundCount, double v);

}  // namespace hotmeter
