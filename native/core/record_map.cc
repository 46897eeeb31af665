#include "record_map.h"

#include <algorithm>
#include <cstring>

// A read prefetch hint (GCC, Clang; nothing elsewhere).
#if defined(__GNUC__) || defined(__clang__)
#define HOTMETER_PREFETCH(p) __builtin_prefetch(p)
#else
#define HOTMETER_PREFETCH(p) ((void)0)
#endif

namespace hotmeter {

const std::string& OverflowLabelKey() {
  static const std::string* key = new std::string(EncodeLabelKey({"otel.metric.overflow", "btrue"}));
  return *key;
}

RecordMap::~RecordMap() {
  for (auto& inst : instruments_) {
    for (Record* r : inst->list) delete r;
  }
}

RecordMap& RecordMap::Global() {
  // Never destroyed: worker threads may still retire arenas during process exit.
  static RecordMap* map = new RecordMap();
  return *map;
}

uint32_t RecordMap::RegisterArena() {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t id = nextArena_++;
  arenas_.emplace(id, std::make_unique<SlabArena>(id));
  return id;
}

void RecordMap::RetireArena(uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = arenas_.find(arenaId);
  if (it == arenas_.end()) return;
  std::vector<double> tmp;
  for (auto& inst : instruments_) {
    const size_t n = inst->cellSize;
    tmp.resize(n);
    for (Record* r : inst->list) {
      for (size_t i = 0; i < r->cells.size(); i++) {
        if (r->cells[i].arena != arenaId) continue;
        // The thread is gone, and with it every handle and cache entry it held.
        r->refcount -= std::min(r->refcount, r->cells[i].refs);
        LoadCell(tmp.data(), r->cells[i].data, n);
        if (!r->retired) {
          r->retired = std::make_unique<double[]>(n);
          InitState(inst->descriptor.aggregation, r->retired.get(), n);
        }
        MergeState(inst->descriptor.aggregation, r->retired.get(), tmp.data(), n);
        r->cells.Erase(i);
        break;
      }
    }
  }
  arenas_.erase(it);
  staleQueues_.erase(arenaId);
}

uint32_t RecordMap::RegisterDomain(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (name.empty()) return nextDomain_++;
  auto it = domains_.find(name);
  if (it != domains_.end()) return it->second;
  uint32_t id = nextDomain_++;
  domains_.emplace(name, id);
  return id;
}

uint32_t RecordMap::RegisterInstrument(const std::string& identity, Descriptor d, bool* existed,
                                       uint32_t domain) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = std::to_string(domain);
  key.push_back('\0');
  key.append(identity);
  auto it = instrumentIds_.find(key);
  if (it != instrumentIds_.end()) {
    if (existed) *existed = true;
    return it->second;
  }
  auto inst = std::make_unique<Instrument>();
  inst->id = static_cast<uint32_t>(instruments_.size() + 1);
  inst->domain = domain;
  inst->cellSize = CellSize(d);
  inst->descriptor = std::move(d);
  uint32_t id = inst->id;
  instruments_.push_back(std::move(inst));
  instrumentIds_.emplace(std::move(key), id);
  if (existed) *existed = false;
  return id;
}

bool RecordMap::GetDescriptor(uint32_t id, Descriptor* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id == 0 || id > instruments_.size()) return false;
  *out = instruments_[id - 1]->descriptor;
  return true;
}

bool RecordMap::Acquire(uint32_t arenaId, uint32_t instrumentId, const std::string& labelKeyIn,
                        double nowMs, Acquired* out, uint32_t cardinalityLimit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto ait = arenas_.find(arenaId);
  if (ait == arenas_.end()) return false;
  if (instrumentId == 0 || instrumentId > instruments_.size()) return false;
  Instrument* inst = instruments_[instrumentId - 1].get();
  if (inst->descriptor.aggregation == AggregationKind::Drop) return false;
  SlabArena* arena = ait->second.get();

  out->overflow = false;
  std::string_view key = labelKeyIn;
  LabelSet* labels = labelSets_.Find(key);
  Record* r = labels == nullptr ? nullptr : FindRecordLocked(inst, labels);
  if (r == nullptr && cardinalityLimit > 0 && key != OverflowLabelKey()) {
    const LabelSet* overflowLabels = labelSets_.Find(OverflowLabelKey());
    const size_t hasOverflow = overflowLabels != nullptr && FindRecordLocked(inst, overflowLabels) != nullptr ? 1 : 0;
    if (inst->records.size() - hasOverflow + 1 >= cardinalityLimit) {
      key = OverflowLabelKey();
      out->overflow = true;
      labels = labelSets_.Find(key);
      r = labels == nullptr ? nullptr : FindRecordLocked(inst, labels);
    }
  }
  if (r == nullptr) {
    auto rec = std::make_unique<Record>();
    rec->id = nextRecord_++;
    rec->instrument = inst;
    rec->startTimeMs = nowMs;
    rec->labels = labelSets_.Acquire(key);
    r = rec.release();  // owned by records_ from here on
    inst->records.Insert(r);
    r->listIndex = static_cast<uint32_t>(inst->list.size());
    inst->list.push_back(r);
    records_.Insert(r);
  }

  RecordCell* cell = nullptr;
  for (auto& c : r->cells) {
    if (c.arena == arenaId) { cell = &c; break; }
  }
  out->newCell = false;
  if (cell == nullptr) {
    RecordCell c;
    c.arena = arenaId;
    c.ref = arena->Allocate(inst->cellSize);
    c.data = arena->Data(c.ref);
    InitState(inst->descriptor.aggregation, c.data, inst->cellSize);
    r->cells.PushBack(c);
    cell = &r->cells.back();
    out->newCell = true;
  }
  r->refcount++;
  cell->refs++;
  auto sq = staleQueues_.find(arenaId);
  out->stalePending = sq != staleQueues_.end() && !sq->second.empty();
  out->recordId = r->id;
  out->slab = cell->ref.slab;
  out->offset = cell->ref.offset;
  return true;
}

Record* RecordMap::FindRecordLocked(uint64_t id) {
  return records_.Find(MixHash(id), [id](const Record* r) { return r->id == id; });
}

Record* RecordMap::FindRecordLocked(const Instrument* inst, const LabelSet* labels) const {
  return inst->records.Find(MixHash(reinterpret_cast<uintptr_t>(labels)),
                            [labels](const Record* r) { return r->labels == labels; });
}

bool RecordMap::Release(uint64_t recordId, uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr || r->refcount == 0) return false;
  for (auto& c : r->cells) {
    if (c.refs == 0 || (arenaId != 0 && c.arena != arenaId)) continue;
    c.refs--;
    r->refcount--;
    return true;
  }
  return false;
}

void RecordMap::DrainStale(uint32_t arenaId, std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = staleQueues_.find(arenaId);
  if (it == staleQueues_.end()) return;
  std::vector<uint64_t> ids;
  ids.swap(it->second);
  std::vector<double> tmp;
  for (uint64_t id : ids) {
    Record* r = FindRecordLocked(id);
    if (r == nullptr) continue;  // reclaimed since it was queued
    const size_t n = r->instrument->cellSize;
    for (auto& c : r->cells) {
      if (c.arena != arenaId) continue;
      c.staleQueued = false;
      // Written by this thread since it was queued: in use again, keep it cached.
      tmp.resize(n);
      LoadCell(tmp.data(), c.data, n);
      if (Activity(r->instrument->descriptor.aggregation, tmp.data(), n) == c.staleActivity) out->push_back(id);
      break;
    }
  }
}

bool RecordMap::SlabMemory(uint32_t arenaId, uint32_t slab, double** data, size_t* doubles) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = arenas_.find(arenaId);
  if (it == arenas_.end() || slab >= it->second->SlabCount()) return false;
  *data = it->second->SlabData(slab);
  *doubles = it->second->SlabDoubles(slab);
  return true;
}

void RecordMap::RecordKeys(const std::vector<uint64_t>& ids, std::vector<std::string>* keys,
                           std::vector<bool>* found) {
  std::lock_guard<std::mutex> lock(mu_);
  keys->assign(ids.size(), std::string());
  found->assign(ids.size(), false);
  for (size_t i = 0; i < ids.size(); i++) {
    Record* r = FindRecordLocked(ids[i]);
    if (r == nullptr) continue;
    (*keys)[i] = std::string(r->labels->view());
    (*found)[i] = true;
  }
}

bool RecordMap::RecordInfo(uint64_t recordId, uint32_t* instrumentId, std::string* labelKey) {
  std::lock_guard<std::mutex> lock(mu_);
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr) return false;
  *instrumentId = r->instrument->id;
  *labelKey = std::string(r->labels->view());
  return true;
}

void RecordMap::ReclaimLocked(Record* r) {
  // Precondition: refcount == 0, so no JS handle or cache entry can write its cells.
  Instrument* inst = r->instrument;
  for (auto& c : r->cells) {
    auto ait = arenas_.find(c.arena);
    if (ait != arenas_.end()) ait->second->Free(c.ref, inst->cellSize);
  }
  inst->records.Erase(r);
  Record* moved = inst->list.back();
  inst->list[r->listIndex] = moved;
  moved->listIndex = r->listIndex;
  inst->list.pop_back();
  records_.Erase(r);
  labelSets_.Release(r->labels);
  delete r;
}

void RecordMap::Collect(const CollectOptions& opts, std::vector<double>* out) {
  size_t header = out->size();
  out->push_back(0);
  out->push_back(0);
  out->push_back(0);
  double recordCount = 0;
  std::vector<uint64_t> reclaimed;
  uint64_t epoch = CollectPass(
      opts,
      [&](const CheckpointView& v) {
        out->push_back(static_cast<double>(v.record->id));
        out->push_back(static_cast<double>(v.instrument->id));
        out->push_back(v.updated ? 1 : 0);
        out->push_back(v.record->startTimeMs);
        out->insert(out->end(), v.state, v.state + v.instrument->cellSize);
        recordCount++;
      },
      &reclaimed);
  (*out)[header] = static_cast<double>(epoch);
  (*out)[header + 1] = recordCount;
  (*out)[header + 2] = static_cast<double>(reclaimed.size());
  for (uint64_t id : reclaimed) out->push_back(static_cast<double>(id));
}

uint64_t RecordMap::CollectPass(const CollectOptions& opts, const CheckpointVisitor& visit,
                                std::vector<uint64_t>* reclaimed) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t epoch = ++epoch_;
  std::vector<Record*> reclaim;
  std::vector<double> tmp, state, identity;
  for (auto& inst : instruments_) {
    if (opts.domain != 0 && inst->domain != opts.domain) continue;
    const AggregationKind kind = inst->descriptor.aggregation;
    const size_t n = inst->cellSize;
    tmp.resize(n);
    state.resize(n);
    identity.resize(n);
    InitState(kind, identity.data(), n);
    const size_t count = inst->list.size();
    for (size_t i = 0; i < count; i++) {
      Record* r = inst->list[i];
      // Records, their cell lists and cells are separate blocks: fetch ahead.
      if (i + 8 < count) HOTMETER_PREFETCH(inst->list[i + 8]);
      if (i + 4 < count && !inst->list[i + 4]->cells.empty()) HOTMETER_PREFETCH(inst->list[i + 4]->cells.begin());
      if (i + 2 < count && !inst->list[i + 2]->cells.empty()) HOTMETER_PREFETCH(inst->list[i + 2]->cells[0].data);
      // Checkpoint: retired cells (the identity until a thread retires) plus every live
      // thread's cell.
      const double* base = r->retired ? r->retired.get() : identity.data();
      std::copy(base, base + n, state.begin());
      for (const auto& c : r->cells) {
        LoadCell(tmp.data(), c.data, n);
        MergeState(kind, state.data(), tmp.data(), n);
      }
      // Updated: any bit of the state changed since the previous pass (which may have
      // read another thread's cell in the middle of an update: the rest of that update
      // then shows here, and is exported before the record can go), or no pass has seen
      // the record yet (exported once whatever it holds: add(0) is a series too).
      const uint64_t fingerprint = StateFingerprint(state.data(), n);
      const bool updated = fingerprint != r->fingerprint || r->lastUpdateEpoch == Record::kUnseen;
      r->fingerprint = fingerprint;
      if (updated) r->lastUpdateEpoch = epoch;
      if (opts.reclaim && !updated && r->refcount == 0 && r->lastUpdateEpoch < opts.reclaimBefore) {
        reclaim.push_back(r);
        continue;
      }
      if (opts.reclaim && !updated && r->refcount > 0) {
        // Idle but referenced: ask each referencing thread to drop its cached references.
        for (auto& c : r->cells) {
          if (c.refs == 0 || c.staleQueued) continue;
          c.staleQueued = true;
          LoadCell(tmp.data(), c.data, n);
          c.staleActivity = Activity(kind, tmp.data(), n);
          staleQueues_[c.arena].push_back(r->id);
        }
      }
      CheckpointView v;
      v.instrument = inst.get();
      v.record = r;
      v.state = state.data();
      v.updated = updated;
      visit(v);
    }
  }
  for (Record* r : reclaim) {
    reclaimed->push_back(r->id);
    ReclaimLocked(r);
  }
  return epoch;
}

size_t RecordMap::RecordCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

size_t RecordMap::LabelSetCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return labelSets_.size();
}

size_t RecordMap::ArenaBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& [id, a] : arenas_) n += a->BytesReserved();
  return n;
}

}  // namespace hotmeter
