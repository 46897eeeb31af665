// RecordMap: the process-wide registry of instruments, records and per-thread arenas.
// Every JS thread (main and workers) registers an arena and shares the same records,
// so one collection exports what all threads recorded.
//
// Locking: one mutex guards the maps, refcounts, record vectors and arenas. The hot
// path (JS writing cells) never takes it; cold paths (new record, bind/unbind,
// collect, thread exit) do.
#pragma once
// See docs/design.md, "The record map and its lock".
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "aggregator.h"
#include "descriptor.h"
#include "label_set.h"
#include "probe_table.h"
#include "push_lease.h"
#include "record.h"
#include "shared_segment.h"
#include "slab_arena.h"

namespace hotmeter {

// An instrument's records by their (interned) label set: slots in the RecordPool,
// hashed by the record's label set pointer.
struct SlotByLabels {
  const RecordPool* pool = nullptr;
  uint64_t operator()(uint32_t slot) const { return HashOf(pool->At(slot).labels); }
  static uint64_t HashOf(const LabelSet* labels) { return MixHash(reinterpret_cast<uintptr_t>(labels)); }
};

struct Instrument {
  explicit Instrument(const RecordPool* pool) : records(SlotByLabels{pool}) {}
  uint32_t id = 0;
  uint32_t domain = 0;  // the MeterProvider (or shared name) that owns it
  Descriptor descriptor;
  size_t cellSize = 0;
  // Process-shared instruments (RegisterSharedDomain): the segment and the instrument's
  // index there (1-based). Their cells live in the segment; each record shows the sum of
  // every process's cells. Removing one (any process) removes its series from the
  // segment; every process drops its record. Expiry removes it so too, fleet-wide
  // (ExpireSharedLocked).
  SharedSegment* shared = nullptr;
  uint32_t sharedInst = 0;
  // By label set (pointer identity: label sets are interned). An entry is erased before
  // its record is freed.
  SlotTable<SlotByLabels> records;
  // The same slots in creation order (Record::listIndex; reclaiming moves the last one
  // into the hole): passes walk the pool in allocation order instead of hash order.
  std::vector<uint32_t> list;
};

struct Acquired {
  uint64_t recordId = 0;
  uint32_t slab = 0;
  uint32_t offset = 0;
  bool newCell = false;  // the calling thread's cell was created by this call
  bool overflow = false; // the cardinality limit redirected this label set to the overflow record
  bool stalePending = false;  // the calling arena's stale queue is not empty (DrainStale)
};

// The label key of the series that takes measurements past the cardinality limit:
// {otel.metric.overflow=true}.
const std::string& OverflowLabelKey();

struct CollectOptions {
  double nowMs = 0;
  // Only instruments of this domain; 0 means every domain.
  uint32_t domain = 0;
  // (Shared records: fleet-wide, see RecordMap::ExpireSharedLocked and docs/design.md.)
  // Reclaim (expire) records with no references that were not updated in this pass and
  // whose last update was first seen by a collection before epoch `reclaimBefore` (the
  // provider passes one past the oldest epoch every reader has delivered, bounded by its
  // idle time: every reader has exported the record's final state). reclaimBefore 0
  // reclaims nothing (records persist; only the stale queues below are filled). Records
  // of non-monotonic sums (UpDownCounter, ObservableUpDownCounter) are never reclaimed:
  // their value is a level, which a new record starting from 0 would lose.
  // A reclaiming pass also queues every record it saw not updated that some thread
  // still references into the stale queue of each such thread's arena (once per cell
  // until drained): threads that do not collect learn from it which cached references
  // to give back (DrainStale), so idle records become reclaimable.
  bool reclaim = false;
  uint64_t reclaimBefore = UINT64_MAX;
  // Of those idle records, only the ones whose last update was first seen by a collection
  // before epoch `staleBefore` are queued (the provider passes one past its latest pass
  // at least its cache idle time ago): a series written now and then keeps its cached
  // references. UINT64_MAX: every idle record.
  uint64_t staleBefore = UINT64_MAX;
  // The pass ends by taking a label pin (RecordMap::LabelPin): every LabelSet its visit
  // saw stays in memory, bytes unchanged, until the pin goes, whatever is reclaimed. The
  // pin's id is written to *pinId (required with pinLabels).
  bool pinLabels = false;
  uint64_t* pinId = nullptr;
  // The epoch of the previous pass of the reader this pass is for (0: it has none):
  // CheckpointView::fresh tells whether the record's last update was first seen by a pass
  // after it. Every reader then sees each update once, whichever reader's pass (or
  // concurrent collection) saw it first. UINT64_MAX: fresh is `updated`.
  uint64_t readerEpoch = UINT64_MAX;
  // Collect only: a record that is not `fresh` is written as [recordId, -1] (idleIds) or
  // not at all, so the caller's cost follows the records changed since readerEpoch.
  bool changedOnly = false;
  // Collect only: called (under the map's lock, on the pass's thread) with the output so
  // far and its end after every `progressEvery` records, so a caller can hand finished
  // records on while the pass goes on; with it, changedOnly output keeps the reclaimed
  // ids at the end (after the records) instead of moving them before the records.
  std::function<void(const std::vector<double>& out, size_t end)> progress;
  size_t progressEvery = 0;
  bool idleIds = false;
  // A changedOnly pass without idle ids or expiry visits only the records that may have
  // changed since a pass last read them (held by some thread since, or new: see
  // RecordMap::mayChange_), those updated after readerEpoch, and every record of an
  // observable or process-shared instrument; the others would be neither fresh nor
  // reclaimed nor queued stale, so skipping them changes no output. Its cost then follows
  // the records written recently, not the registry's size.
  bool Sparse() const { return changedOnly && !idleIds && !(reclaim && reclaimBefore > 0); }
};

// What a collection pass shows for each record it keeps (does not reclaim). Pointers are
// valid during the visit only (the RecordMap lock is held).
struct CheckpointView {
  const Instrument* instrument = nullptr;
  uint64_t id = 0;  // the record's
  const Record* record = nullptr;
  const double* state = nullptr;  // the checkpoint: instrument->cellSize doubles
  bool updated = false;           // changed since the previous pass (of any reader)
  // Changed since the reader's previous pass (readerEpoch). Always true for a series of a
  // process-shared observable instrument: its state (every process's last observation,
  // dead ones' folded) is a level that every pass of every process exports, as if
  // observed in each, whichever process's callbacks ran since (docs/design.md).
  bool fresh = false;
  // The epoch of the pass that first saw the record's last update (this pass's if
  // `updated`; saturates at Record::kMaxEpoch).
  uint32_t lastUpdateEpoch = 0;
  // The record's exemplars (exemplar.h: exemplarSlots slots, the latest of every thread
  // per slot), or null when no thread offered one.
  const double* exemplars = nullptr;
  size_t exemplarSlots = 0;
};
using CheckpointVisitor = std::function<void(const CheckpointView&)>;

class RecordMap {
 public:
  // Holds a pass's label pin (CollectOptions::pinLabels): a label set whose last record is
  // reclaimed while pins are held is retired, not freed, stamped with the newest pin's id;
  // it is freed once no pin with an id up to its stamp is held (a pin taken after a set
  // was retired cannot point at it). So a pin held long (a slow client's streamed scrape)
  // keeps only the sets reclaimed while it is held, and overlapping pins do not keep them
  // after the older ones go (stats().retiredLabelSets). Move-only; the owner must not hold
  // the map's lock when it goes.
  class LabelPin {
   public:
    LabelPin() = default;
    LabelPin(RecordMap* map, uint64_t id) : map_(map), id_(id) {}
    LabelPin(LabelPin&& o) noexcept : map_(o.map_), id_(o.id_) { o.map_ = nullptr; }
    LabelPin& operator=(LabelPin&& o) noexcept {
      if (this != &o) {
        reset();
        map_ = o.map_;
        id_ = o.id_;
        o.map_ = nullptr;
      }
      return *this;
    }
    LabelPin(const LabelPin&) = delete;
    LabelPin& operator=(const LabelPin&) = delete;
    ~LabelPin() { reset(); }
    void reset() {
      if (map_ != nullptr) map_->UnpinLabels(id_);
      map_ = nullptr;
    }
    bool held() const { return map_ != nullptr; }

   private:
    RecordMap* map_ = nullptr;
    uint64_t id_ = 0;
  };

  RecordMap() = default;
  ~RecordMap();
  RecordMap(const RecordMap&) = delete;
  RecordMap& operator=(const RecordMap&) = delete;

  // The process-wide map shared by every Node environment (thread).
  static RecordMap& Global();

  uint32_t RegisterArena();
  // Folds every cell of the arena into its record's retired state, drops the references
  // the arena held (so its records become reclaimable), then frees the arena.
  // Called when the owning thread is gone: no JS can write its slabs any more.
  void RetireArena(uint32_t arenaId);

  // A domain groups the instruments one collection covers. An empty name always makes
  // a new domain; a non-empty name returns the same id in every thread (while the domain
  // lives). Each call counts one user of the domain (a MeterProvider) for `arenaId`, the
  // thread registering it (0: a user no thread's exit ends).
  uint32_t RegisterDomain(const std::string& name, uint32_t arenaId = 0);
  // RegisterDomain for a process-shared domain: every process of this user on the host
  // that registers `name` records into the same records (SharedSegment). Returns 0 with
  // *error if the segment cannot be opened or joined (e.g. not Linux).
  uint32_t RegisterSharedDomain(const std::string& name, uint32_t arenaId, std::string* error);
  // Stats of a shared domain's segment: live processes, slabs in use, series ever, cell
  // nodes in use, live series (after reaping the dead). False if the domain is not shared.
  bool SharedStats(uint32_t domain, uint32_t* processes, uint32_t* slabs, uint32_t* series,
                   uint32_t* nodes = nullptr, uint32_t* liveSeries = nullptr);
  // For a processShared domain: whether this process pushes the fleet's series now
  // (PushLease: taken if no process holds it; kept until the domain is freed or the
  // process exits). False for any other domain.
  bool PushLeader(uint32_t domain);
  // Ends one use of the domain by a user of `arenaId`. When the domain has no user left
  // (each one released it or its thread exited: RetireArena ends the uses of its arena),
  // the domain is freed: its instruments, their records and cells, the label sets only
  // they used, and its name (registering the name again makes a new domain).
  // Precondition for freeing: no JS handle of any thread can write a cell of the domain
  // any more (every user's handles were retired before it released the domain).
  // Returns whether the domain was freed; false also for an unknown domain or a user that
  // holds no use of it.
  bool ReleaseDomain(uint32_t domain, uint32_t arenaId = 0);

  // Returns the id of the instrument with this identity in this domain, registering it
  // if new. `existed` tells whether it was already registered (possibly by another thread,
  // or, in a process-shared domain, by another process): then its registered descriptor
  // holds, not `d` (GetDescriptor). In a process-shared domain, an identity whose scope and
  // name (case-insensitive) another process registered with another kind, unit or value
  // type is registered with AggregationKind::Drop (records nothing; existed is true), so
  // that every process exports the same one; so is an identity the segment has no room
  // for (its instrument table or string space is full).
  uint32_t RegisterInstrument(const std::string& identity, Descriptor d, bool* existed,
                              uint32_t domain = 0);
  // Copies the descriptor; false if no such instrument.
  bool GetDescriptor(uint32_t id, Descriptor* out);

  // Finds or creates the record and the calling arena's cell, and adds one reference.
  // With a cardinality limit N > 0, an instrument holds at most N records: past N-1
  // label sets, new ones go to the overflow record (out->overflow).
  // False if the arena or instrument is unknown or the instrument is disabled (Drop).
  bool Acquire(uint32_t arenaId, uint32_t instrumentId, const std::string& labelKey,
               double nowMs, Acquired* out, uint32_t cardinalityLimit = 0);
  // Drops one reference held by the arena (0: by any arena that holds one; for callers
  // that do not track arenas). False if the record is unknown or the arena holds none.
  bool Release(uint64_t recordId, uint32_t arenaId = 0);
  // Release of each id under one lock (a thread giving back many cached references at
  // once): how many were released.
  size_t ReleaseMany(const std::vector<uint64_t>& recordIds, uint32_t arenaId);

  // Removes the instrument's record of this label set from every later pass (an explicit
  // removal of one series): the next Acquire of the label set creates a new record (new
  // start time). The removed record is freed at once if no thread references it, else
  // when its last reference goes (Release, RetireArena); meanwhile bound handles may
  // still write into it, unexported. Every thread holding references gets its id in its
  // stale queue. Returns the removed record's id, 0 if there was none.
  uint64_t Remove(uint32_t instrumentId, const std::string& labelKey);
  // Remove() for every record of the instrument; appends the removed ids to `out`.
  void RemoveAll(uint32_t instrumentId, std::vector<uint64_t>* out);

  // Takes the arena's stale queue: ids of records a reclaiming collection saw idle while
  // this arena held references to them (reclaimed records are left out). The thread
  // releases the cached references among them; its bound handles keep theirs.
  void DrainStale(uint32_t arenaId, std::vector<uint64_t>* out);

  // The calling arena's exemplar cell of the record (exemplar.h), made (zeroed) on first
  // use: *slab and *offset locate it in the arena's slabs, *slots is its slot count.
  // False if the record or arena is unknown or the instrument keeps no exemplars, or (then
  // *noRoom, if given, is set) if its shared segment has no room for the cell.
  bool ExemplarCell(uint32_t arenaId, uint64_t recordId, uint32_t* slab, uint32_t* offset, uint32_t* slots,
                    bool* noRoom = nullptr);

  // The slab's memory for an arena: JS wraps it in an external ArrayBuffer.
  bool SlabMemory(uint32_t arenaId, uint32_t slab, double** data, size_t* doubles);

  bool RecordInfo(uint64_t recordId, uint32_t* instrumentId, std::string* labelKey);
  // The label keys of many records under one lock: keys[i] is that of ids[i], or empty
  // with found[i] false for an unknown record. With `same`: same[i] is the index j < i of
  // the first record of `ids` with the same label set (records of different instruments
  // written with the same attributes share it), keys[i] then left empty; -1 otherwise.
  void RecordKeys(const std::vector<uint64_t>& ids, std::vector<std::string>* keys, std::vector<bool>* found,
                  std::vector<int64_t>* same = nullptr);

  // One pass over every record: checkpoint (merge all cells into a cumulative state),
  // mark updated ones, optionally reclaim. Appends to `out`:
  //   header [epoch, recordCount, reclaimedCount]
  //   recordCount x [recordId, instrumentId, lastUpdateEpoch, startTimeMs, state...]
  // lastUpdateEpoch: CheckpointView::lastUpdateEpoch; the record was updated in this pass
  // when it equals min(epoch, Record::kMaxEpoch), and since a reader's previous pass at
  // epoch e when it is greater than e.
  //   reclaimedCount x [recordId]
  // With opts.changedOnly, a record that is not fresh (CheckpointView::fresh) is written
  // as [recordId, -1] when opts.idleIds (and counted in recordCount), else left out, and
  // the reclaimed ids come right after the header (before the records).
  void Collect(const CollectOptions& opts, std::vector<double>* out);

  // The pass behind Collect, for other consumers of checkpoints (the Prometheus
  // serializer): under the lock, checkpoints every record of the domain exactly as
  // Collect does (same epoch, update detection, stale queues and reclamation), calls
  // `visit` for each record kept, in instrument order, then reclaims. Appends the ids of
  // reclaimed records to `reclaimed`; returns the pass's epoch. `visit` runs with the
  // lock held: it must not call back into the RecordMap.
  uint64_t CollectPass(const CollectOptions& opts, const CheckpointVisitor& visit,
                       std::vector<uint64_t>* reclaimed);

  // What a pass of `domain` (0: all) over the instruments in `include` (sorted ids;
  // nullptr: all) would visit at most, now: records, and their states' doubles.
  void PassSize(uint32_t domain, const std::vector<uint32_t>* include, size_t* records, size_t* doubles);

  size_t RecordCount();
  // Instruments registered and not freed (ReleaseDomain).
  size_t InstrumentCount();
  size_t ArenaBytes();
  size_t LabelSetCount();
  // Label sets retired while pinned and not yet freed (stats()).
  size_t RetiredLabelSets();
  // Records whose state collection passes have read since the process started (a sparse
  // pass reads only those that may have changed).
  uint64_t StateReads();

 private:
  Record* FindRecordLocked(uint64_t id) { return pool_.Find(id); }
  // The slot of the instrument's record with these labels, or UINT32_MAX.
  uint32_t FindSlotLocked(const Instrument* inst, const LabelSet* labels) const;
  SlabArena* ArenaLocked(uint32_t id) { return id == 0 || id > arenas_.size() ? nullptr : arenas_[id - 1].get(); }
  const double* CellData(const RecordCell& c) { return ArenaLocked(c.arena)->Data(c.ref); }
  void ReclaimLocked(uint32_t slot);
  // A pass's expiry of a shared record that is idle by this process's rule (not updated,
  // refcount 0, old enough): under the segment lock, removes its series fleet-wide
  // (RemoveSeriesLocked) if it is not removed, no thread of any process references it,
  // and its state's fingerprint is still `fingerprint` (the pass's). True: removed; the
  // caller reclaims the record. Caller holds mu_, not the segment lock.
  bool ExpireSharedLocked(const Instrument* inst, const Record* r, uint64_t fingerprint);
  // Frees a record's cells, label set reference and slot (no list or table touched).
  void FreeRecordLocked(uint32_t slot);
  // Drops the arena's exemplar cell of the record; `keep`: merged into retiredExemplars
  // first. A cell in a shared segment is folded into the series' dead exemplar area
  // instead; its segment goes in *keepShared if it stays linked (no room to fold).
  void RetireExemplarsLocked(Record* r, const Descriptor& d, SlabArena* arena, bool keep,
                             std::unordered_set<SharedSegment*>* keepShared);
  // Unlinks the record from its instrument, queues its referencing threads' stale
  // entries, and frees it or keeps it in removed_ until its last reference goes.
  void RemoveLocked(Instrument* inst, uint32_t slot);
  // Frees the domain's instruments and records (ReleaseDomain's precondition holds).
  void FreeDomainLocked(uint32_t domain);
  void UnpinLabels(uint64_t id);
  // Removes (RemoveLocked) every local record of the shared domain whose series some
  // process removed since the last call: it leaves this process's exports, and the
  // threads that cache it let go at their next drain. Before SyncSharedLocked (which
  // skips a label set that still has a record). Caller holds both locks.
  void SyncRemovedLocked(uint32_t domain);
  // Makes a local record (no cell) for every series of the shared domain that another
  // process made, of an instrument registered here.
  void SyncSharedLocked(uint32_t domain);
  // Makes a local instrument (with the descriptor stored there) for every instrument
  // of the shared domain's segment that this process has not registered: a collection
  // exports every process's instruments. Caller holds both locks.
  void SyncSharedInstrumentsLocked(uint32_t domain);
  // The instrument map's key of (domain, identity).
  static std::string InstrumentKey(uint32_t domain, std::string_view identity);
  // A new record in `inst` for `labels` (acquired reference): slot.
  uint32_t NewRecordLocked(Instrument* inst, std::string_view key, double startMs);
  bool ReleaseLocked(uint64_t recordId, uint32_t arenaId);

  std::mutex mu_;
  // Shared domains: their segment, series synced so far, and local instrument ids by
  // shared instrument index. Segments stay mapped for the life of the process (JS views
  // of their slabs may outlive a domain), by name.
  struct SharedDomain {
    SharedSegment* seg = nullptr;
    std::string name;
    // Series synced (SyncSharedLocked): every series with a sequence number up to
    // `synced` was looked at; slots up to `slotsSeen` while the segment's slot reuses
    // were `reusesSeen` (unchanged: new series are only in slots above).
    uint64_t synced = 0;
    uint32_t slotsSeen = 0;
    uint64_t reusesSeen = 0;
    uint32_t instSynced = 0;  // segment instruments looked at so far
    uint64_t removals = 0;    // the segment's RemovalsLocked() when last synced (SyncRemovedLocked)
    std::unordered_map<uint32_t, uint32_t> local;
  };
  std::unordered_map<uint32_t, SharedDomain> shared_;
  std::unordered_map<std::string, std::unique_ptr<SharedSegment>> segments_;
  // Push leases of shared domains, taken on a push reader's first collection (PushLeader).
  std::unordered_map<uint32_t, std::unique_ptr<PushLease>> pushLeases_;
  // Ids of the LabelPins held (ascending), and the last id given (ids start at 1).
  std::set<uint64_t> labelPins_;
  uint64_t lastPinId_ = 0;
  uint64_t epoch_ = 0;
  uint32_t nextDomain_ = 1;
  std::unordered_map<std::string, uint32_t> domains_;
  // Live domains: their name ('' for an unnamed one) and their uses by arena id
  // (RegisterDomain, ReleaseDomain, RetireArena).
  struct DomainState {
    std::string name;
    std::unordered_map<uint32_t, uint32_t> uses;
  };
  std::unordered_map<uint32_t, DomainState> domainStates_;
  // By id - 1; null once retired (ids are never reused).
  std::vector<std::unique_ptr<SlabArena>> arenas_;
  // A stale queue entry: the record, and the Activity() of the arena's cell when queued.
  struct StaleEntry {
    uint64_t id;
    double activity;
  };
  std::unordered_map<uint32_t, std::vector<StaleEntry>> staleQueues_;  // by arena id
  std::unordered_map<std::string, uint32_t> instrumentIds_;
  // Index = id - 1 (ids are never reused); null once its domain was freed.
  std::vector<std::unique_ptr<Instrument>> instruments_;
  LabelSetTable labelSets_;
  // Owns every record (allocated in Acquire, freed by ReclaimLocked / FreeRecordLocked).
  RecordPool pool_;
  // Slots of removed records that some thread still references.
  std::unordered_set<uint32_t> removed_;
  // By slot, so that a sparse pass (CollectOptions::Sparse) decides which records to read
  // without touching them. Written under mu_ only.
  //  mayChange_: 1 from when a thread takes a reference (Acquire) or the record is made
  //   until a pass reads it while no thread holds one. A record's cells are written only
  //   through references (Refcount 0: no thread can write it), and every writer's last
  //   write happened before its Release (under mu_), so a record read with none held
  //   keeps the state that pass read until the next Acquire.
  //  lastUpdate_: Record::lastUpdateEpoch (kUnseen for a new record).
  std::vector<uint8_t> mayChange_;
  uint64_t stateReads_ = 0;
  std::vector<uint32_t> lastUpdate_;
  // A new or newly referenced record: read by the next sparse pass.
  void MayChangeLocked(uint32_t slot);
};

}  // namespace hotmeter
