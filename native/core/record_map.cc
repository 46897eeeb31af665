// RecordMap's implementation. One file on purpose (~550 lines): every function here runs
// under the one mutex (record_map.h, "Locking"), and the lock scope is easiest to audit
// when all of it is in one place.
#include "record_map.h"

#include "exemplar.h"

#include <algorithm>
#include <cstring>
#include <optional>

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

RecordMap::~RecordMap() = default;

RecordMap& RecordMap::Global() {
  // Never destroyed: worker threads may still retire arenas during process exit.
  static RecordMap* map = new RecordMap();
  return *map;
}

uint32_t RecordMap::RegisterArena() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto id = static_cast<uint32_t>(arenas_.size() + 1);
  arenas_.push_back(std::make_unique<SlabArena>(id));
  return id;
}

void RecordMap::RetireArena(uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  SlabArena* arena = ArenaLocked(arenaId);
  if (arena == nullptr) return;
  std::vector<double> tmp;
  // Shared segments whose cells of this thread could not all be folded (no room for an
  // accumulator): their slabs stay with the process until it exits.
  std::unordered_set<SharedSegment*> keep;
  for (auto& inst : instruments_) {
    if (!inst) continue;
    const size_t n = inst->cellSize;
    tmp.resize(n);
    for (uint32_t slot : inst->list) {
      Record* r = &pool_.At(slot);
      RetireExemplarsLocked(r, inst->descriptor, arena, true, &keep);
      for (size_t i = 0; i < r->CellCount(); i++) {
        if (r->Cell(i).arena != arenaId) continue;
        if (inst->shared != nullptr) {
          // Into the series' dead accumulator in the segment, where every process sees it
          // (a level's cell is dropped: SharedSegment::LevelLocked).
          uint32_t segSlab = 0;
          SharedSegment* seg = arena->SegmentOf(r->Cell(i).ref.slab, &segSlab);
          if (seg != nullptr && r->extra && r->extra->series != 0) {
            SharedSegment::Guard g(seg);
            // Its references go with the thread (even if the cell stays linked: no room).
            seg->SetReferencedLocked(r->extra->series, segSlab, r->Cell(i).ref.offset, false);
            if (!seg->RetireCellLocked(r->extra->series, segSlab, r->Cell(i).ref.offset)) keep.insert(seg);
          }
          r->EraseCell(i);
          break;
        }
        // The thread is gone, and with it every handle and cache entry it held.
        LoadCell(tmp.data(), arena->Data(r->Cell(i).ref), n);
        if (!r->extra) r->extra = std::make_unique<RecordExtra>();
        if (!r->extra->retired) {
          r->extra->retired = std::make_unique<double[]>(n);
          InitState(inst->descriptor.aggregation, r->extra->retired.get(), n);
        }
        MergeState(inst->descriptor.aggregation, r->extra->retired.get(), tmp.data(), n);
        r->EraseCell(i);
        break;
      }
    }
  }
  // Removed records: nobody exports them, so the thread's cell just goes (and the record
  // with it once no other thread references it).
  std::vector<uint32_t> removed(removed_.begin(), removed_.end());
  for (uint32_t slot : removed) {
    Record* r = &pool_.At(slot);
    const size_t n = instruments_[r->instrument - 1]->cellSize;
    RetireExemplarsLocked(r, instruments_[r->instrument - 1]->descriptor, arena, false, &keep);
    for (size_t i = 0; i < r->CellCount(); i++) {
      if (r->Cell(i).arena != arenaId) continue;
      arena->Free(r->Cell(i).ref, n);
      r->EraseCell(i);
      break;
    }
    if (r->Refcount() == 0) {
      removed_.erase(slot);
      FreeRecordLocked(slot);
    }
  }
  for (auto& [id, sd] : shared_) {
    SharedSegment::Guard g(sd.seg);
    if (keep.count(sd.seg) > 0) {
      arena->ForgetShared(sd.seg);
    } else {
      arena->ReleaseShared(sd.seg);
    }
  }
  arenas_[arenaId - 1].reset();
  staleQueues_.erase(arenaId);
  // The thread is gone, and with it every provider it had: their uses of domains end.
  std::vector<uint32_t> unused;
  for (auto& [id, d] : domainStates_) {
    if (d.uses.erase(arenaId) > 0 && d.uses.empty()) unused.push_back(id);
  }
  for (uint32_t id : unused) FreeDomainLocked(id);
}

uint32_t RecordMap::RegisterDomain(const std::string& name, uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t id = 0;
  if (!name.empty()) {
    auto it = domains_.find(name);
    if (it != domains_.end()) id = it->second;
  }
  if (id == 0) {
    id = nextDomain_++;
    if (!name.empty()) domains_.emplace(name, id);
    domainStates_[id].name = name;
  }
  domainStates_[id].uses[arenaId]++;
  return id;
}

uint32_t RecordMap::RegisterSharedDomain(const std::string& name, uint32_t arenaId, std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  // Its own namespace: a `domain` name never meets a processShared name.
  const std::string key = std::string("\x01shared\x01", 8) + name;
  auto it = domains_.find(key);
  if (it != domains_.end()) {
    domainStates_[it->second].uses[arenaId]++;
    return it->second;
  }
  std::unique_ptr<SharedSegment>& seg = segments_[name];
  if (!seg) {
    seg = SharedSegment::Open(name, error);
    if (!seg) {
      segments_.erase(name);
      return 0;
    }
  }
  if (!seg->Attach()) {
    *error = "the shared segment's process table is full";
    return 0;
  }
  const uint32_t id = nextDomain_++;
  domains_.emplace(key, id);
  domainStates_[id].name = key;
  domainStates_[id].uses[arenaId]++;
  SharedDomain& sd = shared_[id];
  sd.seg = seg.get();
  sd.name = name;
  return id;
}

bool RecordMap::SharedStats(uint32_t domain, uint32_t* processes, uint32_t* slabs, uint32_t* series, uint32_t* nodes,
                            uint32_t* liveSeries) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shared_.find(domain);
  if (it == shared_.end()) return false;
  SharedSegment::Guard g(it->second.seg);
  it->second.seg->ReapLocked();
  *processes = it->second.seg->LiveProcessesLocked();
  *slabs = it->second.seg->SlabsInUseLocked();
  *series = static_cast<uint32_t>(std::min<uint64_t>(it->second.seg->SeriesTotalLocked(), UINT32_MAX));
  if (nodes != nullptr) *nodes = it->second.seg->NodesInUseLocked();
  if (liveSeries != nullptr) *liveSeries = it->second.seg->LiveSeriesLocked();
  return true;
}

bool RecordMap::PushLeader(uint32_t domain) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shared_.find(domain);
  if (it == shared_.end()) return false;
  std::unique_ptr<PushLease>& lease = pushLeases_[domain];
  if (!lease) lease = std::make_unique<PushLease>();
  return lease->TryHold(SharedSegment::PathFor(it->second.name));
}

bool RecordMap::ReleaseDomain(uint32_t domain, uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = domainStates_.find(domain);
  if (it == domainStates_.end()) return false;
  auto use = it->second.uses.find(arenaId);
  if (use == it->second.uses.end()) return false;
  if (--use->second > 0) return false;
  it->second.uses.erase(use);
  if (!it->second.uses.empty()) return false;
  FreeDomainLocked(domain);
  return true;
}

void RecordMap::FreeDomainLocked(uint32_t domain) {
  auto ds = domainStates_.find(domain);
  if (ds == domainStates_.end()) return;
  if (!ds->second.name.empty()) domains_.erase(ds->second.name);
  domainStates_.erase(ds);
  bool any = false;
  for (auto& inst : instruments_) {
    if (!inst || inst->domain != domain) continue;
    any = true;
    // Every record, referenced or not: no handle of any thread writes them any more
    // (ReleaseDomain's precondition), so their cells go back to their arenas.
    while (!inst->list.empty()) {
      const uint32_t slot = inst->list.back();
      Record* r = &pool_.At(slot);
      for (size_t i = 0, n = r->CellCount(); i < n; i++) {
        RecordCell& c = r->Cell(i);
        uint32_t segSlab = 0;
        SlabArena* arena = c.refs > 0 && inst->shared != nullptr && r->extra ? ArenaLocked(c.arena) : nullptr;
        if (arena != nullptr && arena->SegmentOf(c.ref.slab, &segSlab) == inst->shared) {
          // Its references end here: the series may expire before the reap folds the cell.
          SharedSegment::Guard g(inst->shared);
          inst->shared->SetReferencedLocked(r->extra->series, segSlab, c.ref.offset, false);
        }
        c.refs = 0;
      }
      ReclaimLocked(slot);
    }
  }
  if (!any) {
    auto sd = shared_.find(domain);
    if (sd != shared_.end()) {
      for (auto& a : arenas_) {
        if (a) a->ForgetShared(sd->second.seg);
      }
      pushLeases_.erase(domain);  // its holder leaves the fleet: another takes over
      sd->second.seg->Detach();
      shared_.erase(sd);
    }
    return;
  }
  // Removed records of the domain that a thread still referenced: in no list, but their
  // instrument is about to go, so they go now too (no handle writes them any more).
  for (auto it = removed_.begin(); it != removed_.end();) {
    Record* r = &pool_.At(*it);
    if (instruments_[r->instrument - 1]->domain != domain) {
      ++it;
      continue;
    }
    for (size_t i = 0, n = r->CellCount(); i < n; i++) r->Cell(i).refs = 0;
    FreeRecordLocked(*it);
    it = removed_.erase(it);
  }
  // Stale queue entries of freed records are skipped by DrainStale (unknown ids).
  for (auto it = instrumentIds_.begin(); it != instrumentIds_.end();) {
    const std::unique_ptr<Instrument>& inst = instruments_[it->second - 1];
    if (inst && inst->domain == domain) {
      it = instrumentIds_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& inst : instruments_) {
    if (inst && inst->domain == domain) inst.reset();
  }
  auto sd = shared_.find(domain);
  if (sd != shared_.end()) {
    // No handle writes the domain's cells any more: the process leaves the segment, and
    // the next collection of any process folds its cells (nothing it wrote is lost).
    for (auto& a : arenas_) {
      if (a) a->ForgetShared(sd->second.seg);
    }
    pushLeases_.erase(domain);
    sd->second.seg->Detach();
    shared_.erase(sd);
  }
}

std::string RecordMap::InstrumentKey(uint32_t domain, std::string_view identity) {
  std::string key = std::to_string(domain);
  key.push_back('\0');
  key.append(identity);
  return key;
}

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return s;
}

// Two instruments one Prometheus or OTLP export cannot both show under one name as one
// would in every process: same scope and name, another kind, unit or value type.
bool Conflicts(const Descriptor& a, const Descriptor& b) {
  return a.scopeName == b.scopeName && a.scopeVersion == b.scopeVersion && a.scopeSchemaUrl == b.scopeSchemaUrl &&
         Lower(a.name) == Lower(b.name) && (a.kind != b.kind || a.unit != b.unit || a.valueType != b.valueType);
}

}  // namespace

uint32_t RecordMap::RegisterInstrument(const std::string& identity, Descriptor d, bool* existed,
                                       uint32_t domain) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = InstrumentKey(domain, identity);
  auto sd = shared_.find(domain);
  std::optional<SharedSegment::Guard> guard;
  if (sd != shared_.end()) {
    // Every instrument of the segment first: one another process registered is this
    // process's too, with the descriptor it was registered with.
    guard.emplace(sd->second.seg);
    SyncSharedInstrumentsLocked(domain);
  }
  auto it = instrumentIds_.find(key);
  if (it != instrumentIds_.end()) {
    if (existed) *existed = true;
    return it->second;
  }
  auto inst = std::make_unique<Instrument>(&pool_);
  inst->id = static_cast<uint32_t>(instruments_.size() + 1);
  inst->domain = domain;
  if (existed) *existed = false;
  if (sd != shared_.end() && d.aggregation != AggregationKind::Drop) {
    SharedSegment* seg = sd->second.seg;
    for (auto& other : instruments_) {
      if (other && other->domain == domain && other->shared != nullptr && Conflicts(other->descriptor, d)) {
        // The name is taken fleet-wide by another kind, unit or value type: this one
        // records nothing (the caller sees the Drop descriptor and says why).
        d.aggregation = AggregationKind::Drop;
        if (existed) *existed = true;
        break;
      }
    }
    // Shared by identity (the segment has no instrument of it: synced above).
    if (d.aggregation != AggregationKind::Drop) {
      inst->sharedInst = seg->AddInstrumentLocked(identity, d, static_cast<uint32_t>(CellSize(d)));
      if (inst->sharedInst != 0) {
        inst->shared = seg;
        sd->second.local[inst->sharedInst] = inst->id;
        sd->second.instSynced = std::max(sd->second.instSynced, inst->sharedInst);
      } else {
        // The segment's instrument table or string space is full: records nothing (an
        // instrument only this process exported would differ from process to process).
        d.aggregation = AggregationKind::Drop;
        if (existed) *existed = true;
      }
    }
    inst->cellSize = CellSize(d);
  } else {
    inst->cellSize = CellSize(d);
  }
  inst->descriptor = std::move(d);
  uint32_t id = inst->id;
  instruments_.push_back(std::move(inst));
  instrumentIds_.emplace(std::move(key), id);
  return id;
}

void RecordMap::SyncSharedInstrumentsLocked(uint32_t domain) {
  auto it = shared_.find(domain);
  if (it == shared_.end()) return;
  SharedDomain& sd = it->second;
  const uint32_t total = sd.seg->InstrumentCountLocked();
  for (uint32_t si = sd.instSynced + 1; si <= total; si++) {
    if (sd.local.count(si) > 0) continue;
    std::string identity;
    Descriptor d;
    uint32_t cellSize = 0;
    if (!sd.seg->InstrumentInfoLocked(si, &identity, &d, &cellSize)) continue;
    std::string key = InstrumentKey(domain, identity);
    // Registered here as Drop (a conflict, or no room then): stays so.
    if (instrumentIds_.count(key) > 0) continue;
    auto inst = std::make_unique<Instrument>(&pool_);
    inst->id = static_cast<uint32_t>(instruments_.size() + 1);
    inst->domain = domain;
    inst->cellSize = cellSize;
    inst->shared = sd.seg;
    inst->sharedInst = si;
    inst->descriptor = std::move(d);
    sd.local[si] = inst->id;
    instrumentIds_.emplace(std::move(key), inst->id);
    instruments_.push_back(std::move(inst));
    sd.synced = 0;  // its series: next series sync
  }
  sd.instSynced = std::max(sd.instSynced, total);
}

bool RecordMap::GetDescriptor(uint32_t id, Descriptor* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id == 0 || id > instruments_.size() || !instruments_[id - 1]) return false;
  *out = instruments_[id - 1]->descriptor;
  return true;
}

bool RecordMap::Acquire(uint32_t arenaId, uint32_t instrumentId, const std::string& labelKeyIn,
                        double nowMs, Acquired* out, uint32_t cardinalityLimit) {
  std::lock_guard<std::mutex> lock(mu_);
  SlabArena* arena = ArenaLocked(arenaId);
  if (arena == nullptr) return false;
  if (instrumentId == 0 || instrumentId > instruments_.size()) return false;
  Instrument* inst = instruments_[instrumentId - 1].get();
  if (inst == nullptr || inst->descriptor.aggregation == AggregationKind::Drop) return false;
  SharedSegment* seg = inst->shared;
  std::optional<SharedSegment::Guard> guard;
  if (seg != nullptr) {
    guard.emplace(seg);
    // A record of a series another process removed is not written again: a new one is made.
    SyncRemovedLocked(inst->domain);
  }

  out->overflow = false;
  std::string_view key = labelKeyIn;
  constexpr uint32_t kNone = UINT32_MAX;
  LabelSet* labels = labelSets_.Find(key);
  uint32_t slot = labels == nullptr ? kNone : FindSlotLocked(inst, labels);
  // A shared instrument's limit counts the series of every process.
  uint64_t series = seg != nullptr && slot == kNone ? seg->FindSeriesLocked(inst->sharedInst, key) : 0;
  if (slot == kNone && series == 0 && cardinalityLimit > 0 && key != OverflowLabelKey()) {
    size_t count, hasOverflow;
    if (seg != nullptr) {
      count = seg->SeriesCountOfLocked(inst->sharedInst);
      hasOverflow = seg->FindSeriesLocked(inst->sharedInst, OverflowLabelKey()) != 0 ? 1 : 0;
    } else {
      const LabelSet* overflowLabels = labelSets_.Find(OverflowLabelKey());
      count = inst->records.size();
      hasOverflow = overflowLabels != nullptr && FindSlotLocked(inst, overflowLabels) != kNone ? 1 : 0;
    }
    if (count - hasOverflow + 1 >= cardinalityLimit) {
      key = OverflowLabelKey();
      out->overflow = true;
      labels = labelSets_.Find(key);
      slot = labels == nullptr ? kNone : FindSlotLocked(inst, labels);
      if (seg != nullptr && slot == kNone) series = seg->FindSeriesLocked(inst->sharedInst, key);
    }
  }
  if (slot == kNone) {
    double start = nowMs;
    if (seg != nullptr) {
      if (series == 0) series = seg->AddSeriesLocked(inst->sharedInst, key, nowMs);
      if (series == 0) return false;  // the segment is full
      uint32_t si = 0;
      std::string_view k;
      seg->SeriesInfoLocked(series, &si, &k, &start);  // the series' first start, fleet-wide
    }
    slot = NewRecordLocked(inst, key, start);
    if (seg != nullptr) {
      Record& rec = pool_.At(slot);
      rec.extra = std::make_unique<RecordExtra>();
      rec.extra->series = series;
    }
  }
  Record* r = &pool_.At(slot);

  RecordCell* cell = r->FindCell(arenaId);
  out->newCell = false;
  if (cell == nullptr) {
    RecordCell c;
    c.arena = arenaId;
    if (seg != nullptr) {
      // In this thread's slab of the segment, linked into the series so that every
      // process's collection sums it.
      if (!r->extra || r->extra->series == 0 || !arena->AllocateShared(seg, inst->cellSize, &c.ref)) return false;
      InitState(inst->descriptor.aggregation, arena->Data(c.ref), inst->cellSize);
      uint32_t segSlab = 0;
      arena->SegmentOf(c.ref.slab, &segSlab);
      if (!seg->LinkCellLocked(r->extra->series, segSlab, c.ref.offset)) return false;
    } else {
      c.ref = arena->Allocate(inst->cellSize);
      InitState(inst->descriptor.aggregation, arena->Data(c.ref), inst->cellSize);
    }
    cell = &r->PushCell(c);
    out->newCell = true;
  }
  if (++cell->refs == 1 && seg != nullptr) {
    // 0->1, under the segment lock: this series is referenced, so no process expires it
    // (and SyncRemovedLocked above made sure it is not a removed one).
    uint32_t segSlab = 0;
    arena->SegmentOf(cell->ref.slab, &segSlab);
    seg->SetReferencedLocked(r->extra->series, segSlab, cell->ref.offset, true);
  }
  MayChangeLocked(slot);
  auto sq = staleQueues_.find(arenaId);
  out->stalePending = sq != staleQueues_.end() && !sq->second.empty();
  out->recordId = pool_.IdOf(slot);
  out->slab = cell->ref.slab;
  out->offset = cell->ref.offset;
  return true;
}

uint32_t RecordMap::NewRecordLocked(Instrument* inst, std::string_view key, double startMs) {
  const uint32_t slot = pool_.Allocate();
  Record& rec = pool_.At(slot);
  rec.instrument = inst->id;
  rec.startTimeMs = startMs;
  rec.labels = labelSets_.Acquire(key);
  inst->records.Insert(slot);
  rec.listIndex = static_cast<uint32_t>(inst->list.size());
  inst->list.push_back(slot);
  MayChangeLocked(slot);
  lastUpdate_[slot] = Record::kUnseen;
  return slot;
}

void RecordMap::MayChangeLocked(uint32_t slot) {
  if (slot >= mayChange_.size()) {
    const size_t n = std::max<size_t>(size_t{slot} + 1, mayChange_.size() * 2);
    mayChange_.resize(n, 0);
    lastUpdate_.resize(n, Record::kUnseen);
  }
  mayChange_[slot] = 1;
}

void RecordMap::SyncSharedLocked(uint32_t domain) {
  auto it = shared_.find(domain);
  if (it == shared_.end()) return;
  SharedDomain& sd = it->second;
  // New series since the last sync: those with a higher sequence number. They are in
  // slots above the ones seen, unless a removed series' slot was reused meanwhile (or
  // an instrument was synced: synced 0), then in any slot.
  const uint64_t total = sd.seg->SeriesTotalLocked();
  if (total == sd.synced) return;
  const uint32_t slots = sd.seg->SeriesSlotsLocked();
  const uint64_t reuses = sd.seg->SeriesReusesLocked();
  const uint32_t from = sd.synced == 0 || reuses != sd.reusesSeen ? 1 : sd.slotsSeen + 1;
  for (uint32_t index = from; index <= slots; index++) {
    const uint64_t s = sd.seg->SeriesAtLocked(index);
    if (s == 0 || sd.seg->SeriesSequenceLocked(s) <= sd.synced) continue;
    uint32_t si = 0;
    std::string_view key;
    double start = 0;
    sd.seg->SeriesInfoLocked(s, &si, &key, &start);
    auto local = sd.local.find(si);
    if (local == sd.local.end()) continue;  // an instrument this process has not made
    Instrument* inst = instruments_[local->second - 1].get();
    if (inst == nullptr) continue;
    const LabelSet* labels = labelSets_.Find(key);
    if (labels != nullptr && FindSlotLocked(inst, labels) != UINT32_MAX) continue;
    const uint32_t slot = NewRecordLocked(inst, key, start);
    Record& rec = pool_.At(slot);
    rec.extra = std::make_unique<RecordExtra>();
    rec.extra->series = s;
  }
  sd.synced = total;
  sd.slotsSeen = slots;
  sd.reusesSeen = reuses;
}

uint32_t RecordMap::FindSlotLocked(const Instrument* inst, const LabelSet* labels) const {
  return inst->records.Find(SlotByLabels::HashOf(labels),
                            [this, labels](uint32_t slot) { return pool_.At(slot).labels == labels; });
}

bool RecordMap::Release(uint64_t recordId, uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  return ReleaseLocked(recordId, arenaId);
}

size_t RecordMap::ReleaseMany(const std::vector<uint64_t>& recordIds, uint32_t arenaId) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (uint64_t id : recordIds) n += ReleaseLocked(id, arenaId) ? 1 : 0;
  return n;
}

bool RecordMap::ReleaseLocked(uint64_t recordId, uint32_t arenaId) {
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr) return false;
  for (size_t i = 0, n = r->CellCount(); i < n; i++) {
    RecordCell& c = r->Cell(i);
    if (c.refs == 0 || (arenaId != 0 && c.arena != arenaId)) continue;
    c.refs = c.refs - 1;
    SharedSegment* seg = instruments_[r->instrument - 1]->shared;
    if (c.refs == 0 && seg != nullptr && r->extra && r->extra->series != 0) {
      // 1->0: this thread no longer keeps the series from expiring.
      uint32_t segSlab = 0;
      if (SlabArena* arena = ArenaLocked(c.arena); arena != nullptr && arena->SegmentOf(c.ref.slab, &segSlab) == seg) {
        SharedSegment::Guard g(seg);
        seg->SetReferencedLocked(r->extra->series, segSlab, c.ref.offset, false);
      }
    }
    if (r->Removed() && r->Refcount() == 0) {
      const auto slot = static_cast<uint32_t>(recordId & 0xffffffffu);
      removed_.erase(slot);
      FreeRecordLocked(slot);
    }
    return true;
  }
  return false;
}

void RecordMap::SyncRemovedLocked(uint32_t domain) {
  auto it = shared_.find(domain);
  if (it == shared_.end()) return;
  SharedDomain& sd = it->second;
  const uint64_t removals = sd.seg->RemovalsLocked();
  if (removals == sd.removals) return;
  sd.removals = removals;
  std::vector<uint32_t> gone;
  for (auto& inst : instruments_) {
    if (!inst || inst->domain != domain || inst->shared != sd.seg) continue;
    gone.clear();
    for (uint32_t slot : inst->list) {
      const Record& r = pool_.At(slot);
      if (r.extra && r.extra->series != 0 && sd.seg->SeriesRemovedLocked(r.extra->series)) gone.push_back(slot);
    }
    for (uint32_t slot : gone) RemoveLocked(inst.get(), slot);
  }
}

uint64_t RecordMap::Remove(uint32_t instrumentId, const std::string& labelKey) {
  std::lock_guard<std::mutex> lock(mu_);
  if (instrumentId == 0 || instrumentId > instruments_.size()) return 0;
  Instrument* inst = instruments_[instrumentId - 1].get();
  if (inst == nullptr) return 0;
  const LabelSet* labels = labelSets_.Find(labelKey);
  std::optional<SharedSegment::Guard> guard;
  if (inst->shared != nullptr) {
    // The fleet's series: removed from the segment, whichever process made it; the other
    // processes drop their records at their next collection, acquisition or drain.
    guard.emplace(inst->shared);
    SyncRemovedLocked(inst->domain);
    if (inst->shared->RemoveSeriesLocked(inst->shared->FindSeriesLocked(inst->sharedInst, labelKey))) {
      shared_[inst->domain].removals++;  // this one: its record goes below
    }
  }
  if (labels == nullptr) return 0;
  const uint32_t slot = FindSlotLocked(inst, labels);
  if (slot == UINT32_MAX) return 0;
  const uint64_t id = pool_.IdOf(slot);
  RemoveLocked(inst, slot);
  return id;
}

void RecordMap::RemoveAll(uint32_t instrumentId, std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (instrumentId == 0 || instrumentId > instruments_.size()) return;
  Instrument* inst = instruments_[instrumentId - 1].get();
  if (inst == nullptr) return;
  std::optional<SharedSegment::Guard> guard;
  if (inst->shared != nullptr) {
    // Every live series of the instrument in the segment, also those this process has
    // no record of yet.
    guard.emplace(inst->shared);
    SyncRemovedLocked(inst->domain);
    const uint32_t slots = inst->shared->SeriesSlotsLocked();
    uint64_t removed = 0;
    for (uint32_t index = 1; index <= slots; index++) {
      const uint64_t s = inst->shared->SeriesAtLocked(index);
      uint32_t si = 0;
      std::string_view key;
      double start = 0;
      if (!inst->shared->SeriesInfoLocked(s, &si, &key, &start)) continue;
      if (si == inst->sharedInst && inst->shared->RemoveSeriesLocked(s)) removed++;
    }
    shared_[inst->domain].removals += removed;  // this process's records go below
  }
  while (!inst->list.empty()) {
    const uint32_t slot = inst->list.back();
    out->push_back(pool_.IdOf(slot));
    RemoveLocked(inst, slot);
  }
}

void RecordMap::RemoveLocked(Instrument* inst, uint32_t slot) {
  Record* r = &pool_.At(slot);
  if (r->Refcount() == 0) {
    ReclaimLocked(slot);
    return;
  }
  inst->records.Erase(slot);
  const uint32_t moved = inst->list.back();
  inst->list[r->listIndex] = moved;
  pool_.At(moved).listIndex = r->listIndex;
  inst->list.pop_back();
  r->listIndex = Record::kRemoved;
  removed_.insert(slot);
  // Threads that cache a reference to it learn to let go (DrainStale hands a removed
  // record's id back whatever its cell's activity).
  const uint64_t id = pool_.IdOf(slot);
  for (size_t c = 0, n = r->CellCount(); c < n; c++) {
    RecordCell& cell = r->Cell(c);
    if (cell.refs == 0 || cell.staleQueued) continue;
    cell.staleQueued = 1;
    staleQueues_[cell.arena].push_back(StaleEntry{id, 0});
  }
}

void RecordMap::DrainStale(uint32_t arenaId, std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  // Series other processes removed: their records' cached references are drained now too.
  for (auto& [id, sd] : shared_) {
    SharedSegment::Guard g(sd.seg);
    SyncRemovedLocked(id);
  }
  auto it = staleQueues_.find(arenaId);
  if (it == staleQueues_.end()) return;
  std::vector<StaleEntry> entries;
  entries.swap(it->second);
  std::vector<double> tmp;
  for (const StaleEntry& e : entries) {
    Record* r = FindRecordLocked(e.id);
    if (r == nullptr) continue;  // reclaimed since it was queued
    const Instrument* inst = instruments_[r->instrument - 1].get();
    const size_t n = inst->cellSize;
    RecordCell* c = r->FindCell(arenaId);
    if (c == nullptr) continue;
    c->staleQueued = 0;
    if (r->Removed()) {
      out->push_back(e.id);
      continue;
    }
    // Written by this thread since it was queued: in use again, keep it cached.
    tmp.resize(n);
    LoadCell(tmp.data(), CellData(*c), n);
    if (Activity(inst->descriptor.aggregation, tmp.data(), n) == e.activity) out->push_back(e.id);
  }
}

bool RecordMap::SlabMemory(uint32_t arenaId, uint32_t slab, double** data, size_t* doubles) {
  std::lock_guard<std::mutex> lock(mu_);
  SlabArena* arena = ArenaLocked(arenaId);
  if (arena == nullptr || slab >= arena->SlabCount()) return false;
  *data = arena->SlabData(slab);
  *doubles = arena->SlabDoubles(slab);
  return true;
}

void RecordMap::RecordKeys(const std::vector<uint64_t>& ids, std::vector<std::string>* keys,
                           std::vector<bool>* found, std::vector<int64_t>* same) {
  std::lock_guard<std::mutex> lock(mu_);
  keys->assign(ids.size(), std::string());
  found->assign(ids.size(), false);
  if (same != nullptr) same->assign(ids.size(), -1);
  // Label set -> first index with it. Pointers compare label sets: under the lock none
  // is freed, so equal pointers are the same set.
  std::unordered_map<const LabelSet*, int64_t> first;
  for (size_t i = 0; i < ids.size(); i++) {
    Record* r = FindRecordLocked(ids[i]);
    if (r == nullptr) continue;
    (*found)[i] = true;
    if (same != nullptr) {
      auto [it, added] = first.emplace(r->labels, static_cast<int64_t>(i));
      if (!added) {
        (*same)[i] = it->second;
        continue;
      }
    }
    (*keys)[i] = std::string(r->labels->view());
  }
}

bool RecordMap::RecordInfo(uint64_t recordId, uint32_t* instrumentId, std::string* labelKey) {
  std::lock_guard<std::mutex> lock(mu_);
  Record* r = FindRecordLocked(recordId);
  if (r == nullptr) return false;
  *instrumentId = r->instrument;
  *labelKey = std::string(r->labels->view());
  return true;
}

void RecordMap::ReclaimLocked(uint32_t slot) {
  // Precondition: refcount 0, so no JS handle or cache entry can write its cells.
  Record* r = &pool_.At(slot);
  Instrument* inst = instruments_[r->instrument - 1].get();
  inst->records.Erase(slot);
  const uint32_t moved = inst->list.back();
  inst->list[r->listIndex] = moved;
  pool_.At(moved).listIndex = r->listIndex;
  inst->list.pop_back();
  FreeRecordLocked(slot);
}

void RecordMap::FreeRecordLocked(uint32_t slot) {
  // Precondition: refcount 0 and in no instrument's list or table.
  Record* r = &pool_.At(slot);
  const size_t n = instruments_[r->instrument - 1]->cellSize;
  for (size_t i = 0, cells = r->CellCount(); i < cells; i++) {
    const RecordCell& c = r->Cell(i);
    if (SlabArena* arena = ArenaLocked(c.arena)) arena->Free(c.ref, n);
  }
  if (r->extra) {
    const size_t en = exemplar::Slots(instruments_[r->instrument - 1]->descriptor) * exemplar::kDoubles;
    for (const RecordCell& c : r->extra->exemplarCells) {
      if (SlabArena* arena = ArenaLocked(c.arena)) arena->Free(c.ref, en);
    }
  }
  labelSets_.Release(r->labels, !labelPins_.empty(), lastPinId_);
  pool_.Free(slot);
}

void RecordMap::RetireExemplarsLocked(Record* r, const Descriptor& d, SlabArena* arena, bool keep,
                                      std::unordered_set<SharedSegment*>* keepShared) {
  if (!r->extra) return;
  std::vector<RecordCell>& cells = r->extra->exemplarCells;
  const size_t slots = exemplar::Slots(d);
  const size_t en = slots * exemplar::kDoubles;
  for (size_t i = 0; i < cells.size(); i++) {
    if (cells[i].arena != arena->id()) continue;
    uint32_t segSlab = 0;
    if (SharedSegment* seg = arena->SegmentOf(cells[i].ref.slab, &segSlab)) {
      // A cell in a shared segment: into the series' dead exemplar area there, where every
      // process sees it (a removed series has no chain left: nothing to fold). Its slab
      // goes with the arena's shared slabs, kept if the cell stays linked (no room).
      if (r->extra->series != 0) {
        SharedSegment::Guard g(seg);
        if (!seg->RetireExemplarCellLocked(r->extra->series, segSlab, cells[i].ref.offset) && keepShared != nullptr) {
          keepShared->insert(seg);
        }
      }
    } else if (keep) {
      std::vector<double> tmp(en);
      LoadCell(tmp.data(), arena->Data(cells[i].ref), en);
      if (!r->extra->retiredExemplars) {
        r->extra->retiredExemplars = std::make_unique<double[]>(en);
        std::fill(r->extra->retiredExemplars.get(), r->extra->retiredExemplars.get() + en, 0.0);
      }
      exemplar::Merge(r->extra->retiredExemplars.get(), tmp.data(), slots);
    }
    arena->Free(cells[i].ref, en);
    cells.erase(cells.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

bool RecordMap::ExemplarCell(uint32_t arenaId, uint64_t recordId, uint32_t* slab, uint32_t* offset,
                             uint32_t* slots, bool* noRoom) {
  std::lock_guard<std::mutex> lock(mu_);
  if (noRoom != nullptr) *noRoom = false;
  SlabArena* arena = ArenaLocked(arenaId);
  Record* r = FindRecordLocked(recordId);
  if (arena == nullptr || r == nullptr || r->labels == nullptr) return false;
  const Instrument* inst = instruments_[r->instrument - 1].get();
  if (inst == nullptr) return false;
  const size_t n = exemplar::Slots(inst->descriptor);
  if (n == 0) return false;
  if (!r->extra) r->extra = std::make_unique<RecordExtra>();
  for (const RecordCell& c : r->extra->exemplarCells) {
    if (c.arena == arenaId) {
      *slab = c.ref.slab;
      *offset = c.ref.offset;
      *slots = static_cast<uint32_t>(n);
      return true;
    }
  }
  RecordCell c;
  c.arena = arenaId;
  SharedSegment* seg = inst->shared;
  if (seg != nullptr) {
    // A shared series' exemplars are the fleet's: the cell goes in this thread's slab of
    // the segment, linked into the series' exemplar chain, so every process's collection
    // merges it (and a reap folds it if this process dies).
    // No room (no slab or node left): *noRoom, the caller drops the exemplar (diagnosed).
    if (r->extra->series == 0) return false;
    SharedSegment::Guard g(seg);
    if (seg->SeriesRemovedLocked(r->extra->series)) return false;
    if (!arena->AllocateShared(seg, n * exemplar::kDoubles, &c.ref)) {
      if (noRoom != nullptr) *noRoom = true;
      return false;
    }
    double* data = arena->Data(c.ref);
    std::fill(data, data + n * exemplar::kDoubles, 0.0);
    uint32_t segSlab = 0;
    arena->SegmentOf(c.ref.slab, &segSlab);
    if (!seg->LinkExemplarCellLocked(r->extra->series, segSlab, c.ref.offset)) {
      if (noRoom != nullptr) *noRoom = true;  // out of nodes (not removed: checked above)
      return false;
    }
  } else {
    c.ref = arena->Allocate(n * exemplar::kDoubles);
    double* data = arena->Data(c.ref);
    std::fill(data, data + n * exemplar::kDoubles, 0.0);
  }
  r->extra->exemplarCells.push_back(c);
  *slab = c.ref.slab;
  *offset = c.ref.offset;
  *slots = static_cast<uint32_t>(n);
  return true;
}

void RecordMap::Collect(const CollectOptions& opts, std::vector<double>* out) {
  size_t header = out->size();
  out->push_back(0);
  out->push_back(0);
  out->push_back(0);
  size_t recordCount = 0;
  std::vector<uint64_t> reclaimed;
  const size_t every = opts.progress ? std::max<size_t>(opts.progressEvery, 1) : 0;
  uint64_t epoch = CollectPass(
      opts,
      [&](const CheckpointView& v) {
        if (opts.changedOnly && !v.fresh) {
          if (!opts.idleIds) return;
          out->push_back(static_cast<double>(v.id));
          out->push_back(-1);
        } else {
          out->push_back(static_cast<double>(v.id));
          out->push_back(static_cast<double>(v.instrument->id));
          out->push_back(static_cast<double>(v.lastUpdateEpoch));
          out->push_back(v.record->startTimeMs);
          out->insert(out->end(), v.state, v.state + v.instrument->cellSize);
        }
        recordCount++;
        if (every != 0 && recordCount % every == 0) opts.progress(*out, out->size());
      },
      &reclaimed);
  (*out)[header] = static_cast<double>(epoch);
  (*out)[header + 1] = static_cast<double>(recordCount);
  (*out)[header + 2] = static_cast<double>(reclaimed.size());
  const size_t records = out->size();
  for (uint64_t id : reclaimed) out->push_back(static_cast<double>(id));
  // changedOnly: the reclaimed ids come first, so a reader finds them without walking
  // the records (whose sizes it would need to look up); a progress caller has handed the
  // records on already, and finds them at the end.
  if (opts.changedOnly && !opts.progress) std::rotate(out->begin() + header + 3, out->begin() + records, out->end());
}

uint64_t RecordMap::CollectPass(const CollectOptions& opts, const CheckpointVisitor& visit,
                                std::vector<uint64_t>* reclaimed) {
  std::lock_guard<std::mutex> lock(mu_);
  // Shared domains of the pass: locked for all of it (in name order, the same in every
  // process), their dead processes folded, other processes' new series made local.
  std::vector<std::pair<std::string, uint32_t>> sharedDomains;
  for (auto& [id, sd] : shared_) {
    if (opts.domain == 0 || opts.domain == id) sharedDomains.emplace_back(sd.name, id);
  }
  std::sort(sharedDomains.begin(), sharedDomains.end());
  std::vector<SharedSegment*> locked;
  for (auto& [name, id] : sharedDomains) {
    SharedSegment* seg = shared_[id].seg;
    seg->Lock();
    locked.push_back(seg);
    seg->ReapLocked();
    SyncSharedInstrumentsLocked(id);
    SyncRemovedLocked(id);
    SyncSharedLocked(id);
  }
  struct Unlocker {
    std::vector<SharedSegment*>* segs;
    void Release() {
      for (auto it = segs->rbegin(); it != segs->rend(); ++it) (*it)->Unlock();
      segs->clear();
    }
    ~Unlocker() { Release(); }
  } unlocker{&locked};
  // The shared records' states (dead accumulator + every process's cells), in list order
  // per instrument, summed now and nothing else under the segment locks: other processes'
  // record creation and folds wait for this loop only, not for the pass and its visitor.
  // (Local records, and so the lists, change only under mu_, held throughout.)
  std::unordered_map<const Instrument*, std::vector<double>> sharedStates;
  // Their exemplars (every process's cells and the dead area, latest per slot), only for
  // series that have one: `at` (by list index) is the offset in `data`, SIZE_MAX for none.
  struct SharedExemplars {
    std::vector<size_t> at;
    std::vector<double> data;
  };
  std::unordered_map<const Instrument*, SharedExemplars> sharedExemplars;
  if (!locked.empty()) {
    std::vector<double> scratch, exScratch;
    for (auto& inst : instruments_) {
      if (!inst || inst->shared == nullptr || (opts.domain != 0 && inst->domain != opts.domain)) continue;
      const size_t n = inst->cellSize;
      scratch.resize(n);
      std::vector<double>& states = sharedStates[inst.get()];
      states.resize(inst->list.size() * n);
      for (size_t i = 0; i < inst->list.size(); i++) {
        const Record& r = pool_.At(inst->list[i]);
        // A removed series' record (cannot be here: SyncRemovedLocked above) sums to the identity.
        if (!r.extra || r.extra->series == 0 ||
            !inst->shared->SumLocked(r.extra->series, states.data() + i * n, scratch.data())) {
          InitState(inst->descriptor.aggregation, states.data() + i * n, n);
        }
      }
      const size_t en = exemplar::Slots(inst->descriptor) * exemplar::kDoubles;
      if (en == 0) continue;
      exScratch.resize(2 * en);
      SharedExemplars& ex = sharedExemplars[inst.get()];
      ex.at.assign(inst->list.size(), SIZE_MAX);
      for (size_t i = 0; i < inst->list.size(); i++) {
        const Record& r = pool_.At(inst->list[i]);
        if (r.extra && r.extra->series != 0 && inst->shared->ExemplarDoublesLocked(r.extra->series) == en &&
            inst->shared->ExemplarsLocked(r.extra->series, exScratch.data(), exScratch.data() + en) != 0) {
          ex.at[i] = ex.data.size();
          ex.data.insert(ex.data.end(), exScratch.begin(), exScratch.begin() + static_cast<std::ptrdiff_t>(en));
        }
      }
    }
    unlocker.Release();
  }
  const uint64_t epoch = ++epoch_;
  const uint32_t recordEpoch = static_cast<uint32_t>(std::min<uint64_t>(epoch, Record::kMaxEpoch));
  std::vector<uint32_t> reclaim;
  std::vector<double> tmp, state, identity, exemplars;
  const bool sparse = opts.Sparse();
  std::vector<uint32_t> visits;
  for (auto& inst : instruments_) {
    if (!inst || (opts.domain != 0 && inst->domain != opts.domain)) continue;
    const AggregationKind kind = inst->descriptor.aggregation;
    // A non-monotonic sum's value is a level: it never expires (a new record would
    // restart it from 0).
    const InstrumentKind ik = inst->descriptor.kind;
    // A shared observable's series: exported by every pass (CheckpointView::fresh), not
    // only after this process's own callbacks observed it.
    const bool observable = ik == InstrumentKind::ObservableCounter || ik == InstrumentKind::ObservableUpDownCounter ||
                            ik == InstrumentKind::ObservableGauge;
    const bool level = inst->shared != nullptr && observable;
    // A shared series expires fleet-wide (ExpireSharedLocked); a shared observable's never
    // does (a level of the fleet, exported by every pass).
    const bool expirable = ik != InstrumentKind::UpDownCounter && ik != InstrumentKind::ObservableUpDownCounter &&
                           !level;
    SharedSegment* const seg = inst->shared;
    const double* const shared = seg != nullptr ? sharedStates[inst.get()].data() : nullptr;
    const auto sharedEx = seg != nullptr ? sharedExemplars.find(inst.get()) : sharedExemplars.end();
    const size_t n = inst->cellSize;
    tmp.resize(n);
    state.resize(n);
    identity.resize(n);
    InitState(kind, identity.data(), n);
    const std::vector<uint32_t>& list = inst->list;
    const size_t count = list.size();
    // Observations and other processes' writes take no reference here: always read.
    const bool skipIdle = sparse && !observable && seg == nullptr;
    // The list positions to visit: all, or (sparse) those that may have changed.
    visits.clear();
    if (skipIdle) {
      for (size_t i = 0; i < count; i++) {
        const uint32_t slot = list[i];
        if (mayChange_[slot] != 0 || lastUpdate_[slot] > opts.readerEpoch) visits.push_back(static_cast<uint32_t>(i));
      }
    }
    const size_t nvisits = skipIdle ? visits.size() : count;
    for (size_t k = 0; k < nvisits; k++) {
      const size_t i = skipIdle ? visits[k] : k;
      const uint32_t slot = list[i];
      Record* r = &pool_.At(slot);
      // Records and their cells are in different blocks: fetch ahead.
      if (k + 8 < nvisits) HOTMETER_PREFETCH(&pool_.At(list[skipIdle ? visits[k + 8] : k + 8]));
      if (k + 3 < nvisits) {
        const Record& ahead = pool_.At(list[skipIdle ? visits[k + 3] : k + 3]);
        if (ahead.cell.arena != 0) HOTMETER_PREFETCH(CellData(ahead.cell));
      }
      // Checkpoint: retired cells (the identity until a thread retires) plus every live
      // thread's cell.
      const size_t cells = r->CellCount();
      stateReads_++;
      if (shared != nullptr && r->extra && r->extra->series != 0) {
        // Every process's cells (this one's included) and the folded dead ones, summed above.
        std::copy(shared + i * n, shared + (i + 1) * n, state.begin());
      } else {
        const double* base = r->Retired() != nullptr ? r->Retired() : identity.data();
        std::copy(base, base + n, state.begin());
        for (size_t c = 0; c < cells; c++) {
          LoadCell(tmp.data(), CellData(r->Cell(c)), n);
          MergeState(kind, state.data(), tmp.data(), n);
        }
      }
      // Updated: any bit of the state changed since the previous pass (which may have
      // read another thread's cell in the middle of an update: the rest of that update
      // then shows here, and is exported before the record can go), or no pass has seen
      // the record yet (exported once whatever it holds: add(0) is a series too).
      const uint64_t fingerprint = StateFingerprint(state.data(), n);
      const bool updated = fingerprint != r->fingerprint || r->lastUpdateEpoch == Record::kUnseen;
      r->fingerprint = fingerprint;
      if (updated) r->lastUpdateEpoch = lastUpdate_[slot] = recordEpoch;
      const uint32_t refcount = r->Refcount();
      // Read with no reference held: unchanged until the next Acquire (mayChange_).
      if (refcount == 0) mayChange_[slot] = 0;
      if (opts.reclaim && expirable && !updated && refcount == 0 && r->lastUpdateEpoch < opts.reclaimBefore &&
          (seg == nullptr || ExpireSharedLocked(inst.get(), r, fingerprint))) {
        reclaim.push_back(slot);
        continue;
      }
      const uint64_t id = pool_.IdOf(slot);
      if (opts.reclaim && !updated && refcount > 0 && r->lastUpdateEpoch < opts.staleBefore) {
        // Idle but referenced: ask each referencing thread to drop its cached references.
        for (size_t c = 0; c < cells; c++) {
          RecordCell& cell = r->Cell(c);
          if (cell.refs == 0 || cell.staleQueued) continue;
          cell.staleQueued = 1;
          LoadCell(tmp.data(), CellData(cell), n);
          staleQueues_[cell.arena].push_back(StaleEntry{id, Activity(kind, tmp.data(), n)});
        }
      }
      CheckpointView v;
      if (sharedEx != sharedExemplars.end() && r->extra && r->extra->series != 0) {
        // The fleet's exemplars of the series (this process's cells are linked there too).
        if (sharedEx->second.at[i] != SIZE_MAX) {
          v.exemplars = sharedEx->second.data.data() + sharedEx->second.at[i];
          v.exemplarSlots = exemplar::Slots(inst->descriptor);
        }
      } else if (r->extra && (r->extra->retiredExemplars || !r->extra->exemplarCells.empty())) {
        // The latest exemplar of each slot over the exited threads' and every live cell.
        const size_t slots = exemplar::Slots(inst->descriptor), en = slots * exemplar::kDoubles;
        exemplars.assign(en, 0.0);
        if (r->extra->retiredExemplars) exemplar::Merge(exemplars.data(), r->extra->retiredExemplars.get(), slots);
        tmp.resize(std::max(n, en));
        for (const RecordCell& c : r->extra->exemplarCells) {
          LoadCell(tmp.data(), CellData(c), en);
          exemplar::Merge(exemplars.data(), tmp.data(), slots);
        }
        v.exemplars = exemplars.data();
        v.exemplarSlots = slots;
      }
      v.instrument = inst.get();
      v.id = id;
      v.record = r;
      v.state = state.data();
      v.updated = updated;
      v.lastUpdateEpoch = r->lastUpdateEpoch;
      v.fresh = level || updated || r->lastUpdateEpoch > opts.readerEpoch;
      visit(v);
    }
  }
  // Sets freed here belong to no kept record, so none is one this pass visited: the
  // pass's own pin is taken after.
  for (uint32_t slot : reclaim) {
    reclaimed->push_back(pool_.IdOf(slot));
    ReclaimLocked(slot);
  }
  if (opts.pinLabels) {
    labelPins_.insert(++lastPinId_);
    *opts.pinId = lastPinId_;
  }
  return epoch;
}

bool RecordMap::ExpireSharedLocked(const Instrument* inst, const Record* r, uint64_t fingerprint) {
  if (!r->extra || r->extra->series == 0) return false;
  SharedSegment* seg = inst->shared;
  // The pass summed the series' state and released the segment lock: re-checked now,
  // under it. Removed meanwhile (by another process): this record goes at the next sync.
  SharedSegment::Guard g(seg);
  const uint64_t series = r->extra->series;
  if (seg->SeriesRemovedLocked(series) || seg->ReferencedLocked(series)) return false;
  // The fleet's state is still the one this pass saw idle (and this process's readers
  // delivered): no write since, through a reference held or taken and given back.
  std::vector<double> state(inst->cellSize), tmp(inst->cellSize);
  if (!seg->SumLocked(series, state.data(), tmp.data())) return false;
  if (StateFingerprint(state.data(), inst->cellSize) != fingerprint) return false;
  // Removed as remove() removes it: every process drops its record at its next sync, and
  // an acquire after this (any process, under this lock) makes a new series.
  if (!seg->RemoveSeriesLocked(series)) return false;
  shared_[inst->domain].removals++;  // this process's record: reclaimed by the caller
  return true;
}

void RecordMap::UnpinLabels(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  labelPins_.erase(id);
  // Sets retired under a stamp below the oldest pin held: no pin held can point at them.
  labelSets_.FreeRetired(labelPins_.empty() ? UINT64_MAX : *labelPins_.begin());
}

void RecordMap::PassSize(uint32_t domain, const std::vector<uint32_t>* include, size_t* records,
                         size_t* doubles) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, sd] : shared_) {
    if (domain != 0 && domain != id) continue;
    SharedSegment::Guard g(sd.seg);
    SyncSharedInstrumentsLocked(id);
    SyncRemovedLocked(id);
    SyncSharedLocked(id);
  }
  *records = 0;
  *doubles = 0;
  for (auto& inst : instruments_) {
    if (!inst || (domain != 0 && inst->domain != domain)) continue;
    if (include != nullptr && !std::binary_search(include->begin(), include->end(), inst->id)) continue;
    *records += inst->list.size();
    *doubles += inst->list.size() * inst->cellSize;
  }
}

uint64_t RecordMap::StateReads() {
  std::lock_guard<std::mutex> lock(mu_);
  return stateReads_;
}

size_t RecordMap::RetiredLabelSets() {
  std::lock_guard<std::mutex> lock(mu_);
  return labelSets_.Retired();
}

size_t RecordMap::RecordCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return pool_.size();
}

size_t RecordMap::InstrumentCount() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& inst : instruments_) n += inst ? 1 : 0;
  return n;
}

size_t RecordMap::LabelSetCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return labelSets_.size();
}

size_t RecordMap::ArenaBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& a : arenas_) {
    if (a) n += a->BytesReserved();
  }
  return n;
}

}  // namespace hotmeter
