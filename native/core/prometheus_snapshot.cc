// Prometheus snapshots: TakeSnapshot copies what serialization needs under the record map's lock.
#include "prometheus_serializer.h"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "aggregator.h"
#include "exemplar.h"

namespace hotmeter::prometheus {

namespace {

bool IsObservable(InstrumentKind k) {
  return k == InstrumentKind::ObservableCounter || k == InstrumentKind::ObservableUpDownCounter ||
         k == InstrumentKind::ObservableGauge;
}

}  // namespace

void TakeSnapshot(RecordMap& map, const CollectOptions& opts, const std::vector<uint32_t>* include,
                  Snapshot* out) {
  // Room for every record now (records made before the pass takes the lock grow the
  // vectors): growing while the lock is held would fault in and copy about twice the
  // memory, and fresh pages are most of a first scrape's snapshot.
  size_t records = 0, doubles = 0;
  map.PassSize(opts.domain, include, &records, &doubles);
  out->records.reserve(out->records.size() + records);
  out->states.reserve(out->states.size() + doubles);
  CollectOptions pinned = opts;
  uint64_t pinId = 0;
  pinned.pinLabels = true;
  pinned.pinId = &pinId;
  const Instrument* last = nullptr;
  bool included = false;
  bool observable = false;
  bool copied = false;  // `last` has its SnapshotInstrument
  out->epoch = map.CollectPass(
      pinned,
      [&](const CheckpointView& v) {
        if (v.instrument != last) {
          last = v.instrument;
          included = include == nullptr || std::binary_search(include->begin(), include->end(), v.instrument->id);
          observable = IsObservable(v.instrument->descriptor.kind);
          copied = false;
        }
        if (!included) return;
        if (!v.updated && opts.reclaim && v.lastUpdateEpoch < opts.staleBefore) out->stale.push_back(v.id);
        // Not observed since this reader's previous collection.
        if (observable && !v.fresh) return;
        if (!copied) {
          SnapshotInstrument si;
          si.id = v.instrument->id;
          si.descriptor = v.instrument->descriptor;
          si.cellSize = v.instrument->cellSize;
          si.firstRecord = out->records.size();
          out->instruments.push_back(std::move(si));
          copied = true;
        }
        SnapshotRecord sr;
        sr.id = v.id;
        sr.labels = v.record->labels;
        sr.labelSize = static_cast<uint32_t>(sr.labels->view().size()) & 0x7fffffffu;
        sr.plain = sr.labels->plain() ? 1 : 0;
        sr.lastUpdateEpoch = v.record->lastUpdateEpoch;
        sr.shape = sr.labels->shape();
        sr.startTimeMs = v.record->startTimeMs;
        sr.stateOffset = out->states.size();
        out->states.insert(out->states.end(), v.state, v.state + v.instrument->cellSize);
        if (v.exemplars != nullptr) {
          sr.exemplarOffset = out->exemplars.size();
          out->exemplars.insert(out->exemplars.end(), v.exemplars, v.exemplars + v.exemplarSlots * exemplar::kDoubles);
        }
        out->records.push_back(sr);
        out->instruments.back().recordCount++;
      },
      &out->reclaimed);
  out->pin = RecordMap::LabelPin(&map, pinId);  // the pass took it
}

namespace {
std::mutex stashMu;
Snapshot* stashed = nullptr;  // owned; guarded by stashMu
}  // namespace

Snapshot ReuseSnapshot() {
  Snapshot* s;
  {
    std::lock_guard<std::mutex> lock(stashMu);
    s = stashed;
    stashed = nullptr;
  }
  if (s == nullptr) return Snapshot();
  Snapshot out = std::move(*s);
  delete s;
  return out;
}

void StashSnapshot(Snapshot&& s) {
  s.epoch = 0;
  s.instruments.clear();
  s.pin.reset();
  s.records.clear();
  s.states.clear();
  s.exemplars.clear();
  s.stale.clear();
  s.reclaimed.clear();
  auto* kept = new Snapshot(std::move(s));
  Snapshot* drop = nullptr;
  {
    std::lock_guard<std::mutex> lock(stashMu);
    if (stashed == nullptr || stashed->states.capacity() < kept->states.capacity()) {
      drop = stashed;
      stashed = kept;
    } else {
      drop = kept;
    }
  }
  delete drop;  // outside the lock: frees up to tens of MB
}

}  // namespace hotmeter::prometheus
