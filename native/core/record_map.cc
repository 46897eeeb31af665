#include "record_map.h"

namespace hotmeter {

const std::string& OverflowLabelKey() {
  static const std::string* key = new std::string(EncodeLabelKey({"otel.metric.overflow", "btrue"}));
  return *key;
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
  for (auto& inst : instruments_) {
    for (auto& [key, r] : inst->records) {
      for (size_t i = 0; i < r->cells.size(); i++) {
        if (r->cells[i].arena != arenaId) continue;
        std::vector<double> tmp(inst->cellSize);
        LoadCell(tmp.data(), r->cells[i].data, inst->cellSize);
        MergeState(inst->descriptor.aggregation, r->retired.data(), tmp.data(), inst->cellSize);
        r->cells.erase(r->cells.begin() + static_cast<ptrdiff_t>(i));
        break;
      }
    }
  }
  arenas_.erase(it);
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
  const std::string* key = &labelKeyIn;
  auto rit = inst->records.find(*key);
  if (rit == inst->records.end() && cardinalityLimit > 0 && *key != OverflowLabelKey() &&
      inst->records.size() - inst->records.count(OverflowLabelKey()) + 1 >= cardinalityLimit) {
    key = &OverflowLabelKey();
    out->overflow = true;
    rit = inst->records.find(*key);
  }
  const std::string& labelKey = *key;
  Record* r;
  if (rit != inst->records.end()) {
    r = rit->second;
  } else {
    auto rec = std::make_unique<Record>();
    rec->id = nextRecord_++;
    rec->instrument = inst;
    rec->labelKey = labelKey;
    rec->startTimeMs = nowMs;
    rec->retired.resize(inst->cellSize);
    InitState(inst->descriptor.aggregation, rec->retired.data(), inst->cellSize);
    rec->checkpoint = rec->retired;
    rec->lastActivity = Activity(inst->descriptor.aggregation, rec->checkpoint.data(), inst->cellSize);
    r = rec.get();
    inst->records.emplace(labelKey, r);
    records_.emplace(r->id, std::move(rec));
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
    r->cells.push_back(c);
    cell = &r->cells.back();
    out->newCell = true;
  }
  r->refcount++;
  out->recordId = r->id;
  out->slab = cell->ref.slab;
  out->offset = cell->ref.offset;
  return true;
}

Record* RecordMap::FindRecordLocked(uint64_t id) {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : it->second.get();
}

bool RecordMap::Release(uint64_t recordId) {
  std::lock_guard<std::mutex> lock(mu_);
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr || r->refcount == 0) return false;
  r->refcount--;
  return true;
}

bool RecordMap::SlabMemory(uint32_t arenaId, uint32_t slab, double** data, size_t* doubles) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = arenas_.find(arenaId);
  if (it == arenas_.end() || slab >= it->second->SlabCount()) return false;
  *data = it->second->SlabData(slab);
  *doubles = it->second->SlabDoubles(slab);
  return true;
}

bool RecordMap::RecordInfo(uint64_t recordId, uint32_t* instrumentId, std::string* labelKey) {
  std::lock_guard<std::mutex> lock(mu_);
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr) return false;
  *instrumentId = r->instrument->id;
  *labelKey = r->labelKey;
  return true;
}

void RecordMap::ReclaimLocked(Record* r) {
  // Precondition: refcount == 0, so no JS handle or cache entry can write its cells.
  Instrument* inst = r->instrument;
  for (auto& c : r->cells) {
    auto ait = arenas_.find(c.arena);
    if (ait != arenas_.end()) ait->second->Free(c.ref, inst->cellSize);
  }
  inst->records.erase(r->labelKey);
  records_.erase(r->id);  // destroys r
}

void RecordMap::Collect(const CollectOptions& opts, std::vector<double>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t epoch = ++epoch_;
  size_t header = out->size();
  out->push_back(static_cast<double>(epoch));
  out->push_back(0);
  out->push_back(0);
  double recordCount = 0;
  std::vector<Record*> reclaim;
  std::vector<double> tmp;
  for (auto& inst : instruments_) {
    if (opts.domain != 0 && inst->domain != opts.domain) continue;
    const AggregationKind kind = inst->descriptor.aggregation;
    const size_t n = inst->cellSize;
    tmp.resize(n);
    for (auto& [key, r] : inst->records) {
      // Checkpoint: retired cells plus every live thread's cell.
      std::copy(r->retired.begin(), r->retired.end(), r->checkpoint.begin());
      for (const auto& c : r->cells) {
        LoadCell(tmp.data(), c.data, n);
        MergeState(kind, r->checkpoint.data(), tmp.data(), n);
      }
      double activity = Activity(kind, r->checkpoint.data(), n);
      bool updated = activity != r->lastActivity;
      r->lastActivity = activity;
      if (updated) r->lastUpdateEpoch = epoch;
      if (opts.reclaim && !updated && r->refcount == 0 && r->lastUpdateEpoch <= opts.reclaimBefore) {
        reclaim.push_back(r);
        continue;
      }
      out->push_back(static_cast<double>(r->id));
      out->push_back(static_cast<double>(inst->id));
      out->push_back(updated ? 1 : 0);
      out->push_back(r->startTimeMs);
      out->insert(out->end(), r->checkpoint.begin(), r->checkpoint.end());
      recordCount++;
    }
  }
  (*out)[header + 1] = recordCount;
  (*out)[header + 2] = static_cast<double>(reclaim.size());
  for (Record* r : reclaim) {
    out->push_back(static_cast<double>(r->id));
    ReclaimLocked(r);
  }
}

size_t RecordMap::RecordCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

size_t RecordMap::ArenaBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& [id, a] : arenas_) n += a->BytesReserved();
  return n;
}

}  // namespace hotmeter
