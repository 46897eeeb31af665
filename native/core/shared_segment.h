// SharedSegment: records shared by the processes of one host and user
// (MeterProviderOptions.processShared). One POSIX shared memory file per (uid, name):
// /dev/shm/hotmeter-<uid>-<hash of name>, mode 0600, opened with O_NOFOLLOW and checked to
// belong to this user. Everything in it is addressed by index or offset, never by pointer.
//
// Contents (fixed layout, sized once; tmpfs allocates only the pages that are touched):
//   header       magic, layout version, sizes, the robust process-shared mutex
//   processes    one slot per attached process: pid, start time (liveness), state
//   instruments  by identity string, with the descriptor of the first registration (each
//                process maps them to its own instrument ids, also those it never created)
//   series       one per live (instrument, encoded label set); a hash index; each holds
//                a chain of cell nodes and a "dead" accumulator, and a chain of exemplar
//                cell nodes and a dead exemplar area; a removed series
//                (instrument.remove/clear, expiry) leaves the index and its chains, and
//                its slot, key bytes and dead areas go back for later series. A series
//                is named by a handle (slot index, slot generation): the generation
//                goes up each time the slot is reused, so a handle of a removed series
//                never names the slot's later occupant (every call checks it)
//   nodes        (slab, offset) of one process's (one thread's) cell of a series, and
//                whether that thread holds a reference to the series (a value cell's
//                node only: RecordMap sets it when the cell's refs go 0->1, clears it at
//                1->0, both under the lock; an unlinked node takes its flag with it)
//   slabs        64 KiB blocks of cells; each owned by one process slot (or permanent,
//                for dead accumulators; a removed series' dead areas go on a free list
//                by size, reused and set to the identity by later series)
//   strings      instrument identities and descriptors (never freed); series keys in
//                power-of-two blocks, a removed series' key on a free list by size class
//   journal      the fold in progress (a saved copy of the accumulator it changes), so
//                that the next locker after a holder killed mid-fold undoes or finishes it
//
// Writers: a cell is written only by the thread that owns it (plain stores from JS, the
// hot path: no lock, no syscall). Everything else is read and written under the mutex.
// A collector in any process sums, per series, the dead accumulator and every linked
// cell. A process found dead (pid gone, or its start time changed) has its cells folded
// into their series' dead accumulators and unlinked, then its slabs and slot are reused:
// counters never go back, and memory stays bounded however often processes restart.
// Except a level's cells (an observable up-down counter's: each process observes its own
// level), which are unlinked without folding: the fleet's level is the live ones' sum.
#pragma once
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "aggregator.h"
#include "descriptor.h"

namespace hotmeter {

class SharedSegment {
 public:
  static constexpr uint32_t kMaxProcs = 1024;
  static constexpr uint32_t kMaxInstruments = 4096;
  static constexpr uint32_t kMaxSeries = 1u << 19;
  static constexpr uint32_t kBuckets = 1u << 20;
  static constexpr uint32_t kMaxNodes = 1u << 21;
  static constexpr uint32_t kMaxSlabs = 8192;
  static constexpr uint32_t kSlabDoubles = 8192;  // as SlabArena::kSlabDoubles
  static constexpr uint64_t kStringBytes = 32ull << 20;
  static constexpr uint32_t kPermanent = UINT32_MAX - 1;  // slab owner of dead accumulators
  static constexpr uint32_t kNoSlab = UINT32_MAX;
  // Power-of-two size classes of key blocks: 2^kMinKeyClass .. 2^kKeyClasses-1 bytes.
  static constexpr uint32_t kMinKeyClass = 4;
  static constexpr uint32_t kKeyClasses = 26;

  ~SharedSegment();
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  // The file backing `name` for this user.
  static std::string PathFor(const std::string& name);
  // Maps (creating if absent) the segment of `name`. Null with *error on failure
  // (unsupported platform, wrong owner or mode, another layout version, mmap failure).
  static std::unique_ptr<SharedSegment> Open(const std::string& name, std::string* error);
  // Removes the segment file of `name` if no live process is attached to it. Returns 1 if
  // removed, 0 if absent, -1 if in use (or unreadable: *error).
  static int Cleanup(const std::string& name, std::string* error);

  // Takes a process slot for this process (pid, start time). False if the table is full.
  bool Attach();
  // Marks this process's slot exited: the next Reap (by any process) folds its cells.
  // Precondition: no thread of this process writes a cell of the segment any more.
  void Detach();
  bool attached() const { return slot_ != UINT32_MAX; }

  // The mutex (robust: a holder killed mid-way leaves it to the next locker, which first
  // undoes or finishes a fold the holder left half done: see the journal).
  void Lock();
  void Unlock();
  // Lock() if the mutex is free now; false (not locked) if another holder has it.
  bool TryLock();
  class Guard {
   public:
    explicit Guard(SharedSegment* s) : s_(s) { s_->Lock(); }
    ~Guard() { s_->Unlock(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    SharedSegment* s_;
  };

  // Everything below: the caller holds the lock.

  // The shared instrument of this identity (index + 1); 0 if none.
  uint32_t FindInstrumentLocked(std::string_view identity) const;
  // Registers the identity with its descriptor (precondition: FindInstrumentLocked gave
  // 0): index + 1; 0 if the table or string space is full. The first registration
  // decides the descriptor (and cell layout) for every process.
  uint32_t AddInstrumentLocked(std::string_view identity, const Descriptor& d, uint32_t cellSize);
  uint32_t InstrumentCountLocked() const;
  // The instrument's identity and descriptor as registered; false if it cannot be
  // decoded (a damaged entry: the caller skips it).
  bool InstrumentInfoLocked(uint32_t inst, std::string* identity, Descriptor* d, uint32_t* cellSize) const;
  // Series are named by handles: (generation << 32) | (slot index + 1); 0 is none. A
  // handle names one series for ever: once it is removed, every call below treats the
  // handle as removed (SeriesRemovedLocked), also after its slot holds another series.
  // (A slot's first series has generation 0: its handle is its index + 1.)
  //
  // The series of (instrument, key); 0 if none.
  uint64_t FindSeriesLocked(uint32_t inst, std::string_view key) const;
  // Adds the series (precondition: FindSeriesLocked gave 0), in a removed series' slot
  // and key block if there is one; 0 if full.
  uint64_t AddSeriesLocked(uint32_t inst, std::string_view key, double startMs);
  // Removes the series (instrument.remove / clear, from any process): no lookup finds it
  // again (a later write adds a new series, from the identity, with a new start time),
  // its nodes are unlinked and freed, and it counts no more against its instrument's
  // series. Its slot, key block and dead areas go back for later series; its handle
  // stays removed, so a process's record of it (and a cell of it a handle still writes)
  // is never summed into, linked into or folded into a later series. False if already
  // removed.
  bool RemoveSeriesLocked(uint64_t series);
  bool SeriesRemovedLocked(uint64_t series) const;
  // Series removed ever: a process that saw another count drops its records of removed series.
  uint64_t RemovalsLocked() const;
  // Live series of the instrument (removed ones not counted).
  uint32_t SeriesCountOfLocked(uint32_t inst) const;
  // Series the segment ever had (removed ones too); the latest one's sequence number.
  uint64_t SeriesTotalLocked() const;
  // Live series (what counts against kMaxSeries).
  uint32_t LiveSeriesLocked() const;
  // Slots ever used (series slots are indexed 1..SeriesSlotsLocked()).
  uint32_t SeriesSlotsLocked() const;
  // Slots of removed series taken by new series, ever: unchanged since a process last
  // looked, its new series are all in slots above the ones it saw (SyncSharedLocked).
  uint64_t SeriesReusesLocked() const;
  // The handle of the live series in slot `index` (1-based); 0 if none.
  uint64_t SeriesAtLocked(uint32_t index) const;
  // The series' sequence number: n for the segment's n-th series ever (0 if removed).
  uint64_t SeriesSequenceLocked(uint64_t series) const;
  // Its instrument, key and start; false (*inst 0, empty key) if the series is removed.
  bool SeriesInfoLocked(uint64_t series, uint32_t* inst, std::string_view* key, double* startMs) const;

  // A free slab for this process (kNoSlab if none is left).
  uint32_t AcquireSlabLocked();
  // Gives back a slab of this process whose cells were all retired.
  void ReleaseSlabLocked(uint32_t slab);
  double* SlabData(uint32_t slab) const;
  // Links the cell at (slab, offset) into the series' chain, not referenced. False if out
  // of nodes.
  bool LinkCellLocked(uint64_t series, uint32_t slab, uint32_t offset);
  // Sets whether the thread owning the linked cell at (slab, offset) holds a reference to
  // the series (RecordMap: its cell's refs went 0->1, or 1->0). No-op if not linked.
  void SetReferencedLocked(uint64_t series, uint32_t slab, uint32_t offset, bool referenced);
  // Some thread of some process holds a reference to the series (a linked cell's node is
  // flagged): it must not expire (RecordMap's expiry, docs/design.md "Removal").
  bool ReferencedLocked(uint64_t series) const;
  // Folds the cell into the series' dead accumulator and unlinks it (its thread exited);
  // a level's cell (LevelLocked) is unlinked without folding. False (cell left linked) if
  // no room for the accumulator. True (nothing done) for a removed series.
  bool RetireCellLocked(uint64_t series, uint32_t slab, uint32_t offset);
  // Finds processes that died (or detached) and folds their cells (a level's: unlinked
  // without folding); frees their slabs and slots. Returns how many processes it reaped.
  uint32_t ReapLocked();
  // The series' state: dead accumulator merged with every linked cell. `out` and `tmp`
  // hold the series' cell size. False (out not written) if the series is removed.
  bool SumLocked(uint64_t series, double* out, double* tmp) const;

  // Exemplars (exemplar.h) of a series, fleet-wide: each process thread that offers one
  // has an exemplar cell (ExemplarDoublesLocked doubles) in its slab, linked into the
  // series' exemplar chain; only that thread writes it (JS, plain stores, time last).
  // A reap or the thread's exit folds it (latest per slot) into the series' dead
  // exemplar area (permanent slab) and unlinks it. Removal frees the chain.
  uint32_t ExemplarDoublesLocked(uint64_t series) const;  // 0 if removed
  // Links the exemplar cell at (slab, offset). False if out of nodes, removed, or the
  // series keeps no exemplars.
  bool LinkExemplarCellLocked(uint64_t series, uint32_t slab, uint32_t offset);
  // Folds the exemplar cell into the dead area and unlinks it (its thread exited). False
  // (left linked) if no room for the area. True (nothing done) for a removed series.
  bool RetireExemplarCellLocked(uint64_t series, uint32_t slab, uint32_t offset);
  // out := per slot, the latest of the dead area and every linked cell; `out` and `tmp`
  // hold ExemplarDoublesLocked doubles. Returns the slot count, or 0 (out not all
  // written) if the series has no exemplar (none kept, every slot empty, or removed).
  uint32_t ExemplarsLocked(uint64_t series, double* out, double* tmp) const;

  // Tests only: called at each step of a fold (1: journal written, 2: cell merged,
  // 3: journal says merged, 4: node unlinked, 5: node freed) and of a removal
  // (RemoveSeriesLocked: 11 counted, 12 flagged, 13 out of the index, 14 each node
  // unlinked, 15 nodes freed, 16 key block freed, 17 dead areas freed, 18 slot on the
  // free list) and of an exemplar fold (21 a slot merged but its time, 22 merged,
  // 23 node unlinked) and of a level's drop (31 before the unlink, 32 node unlinked,
  // 33 node freed) and of adding a series (AddSeriesLocked: 41 key block taken, 42 slot
  // taken, 43 slot written, 44 in the index, 45 published), to kill the process there.
  static void (*foldStepHook)(int step);

  // Live processes attached (after ReapLocked: exact as of now).
  uint32_t LiveProcessesLocked() const;
  uint32_t SlabsInUseLocked() const;
  // Cell nodes (value and exemplar chains) linked or leaked, i.e. not on the free list.
  uint32_t NodesInUseLocked() const;
  // Bytes of the string area ever handed out (identities, descriptors, key blocks); key
  // blocks on the free lists are reused before it grows.
  uint64_t StringBytesUsedLocked() const;
  // Doubles of permanent slabs handed out for dead areas and not on a free list.
  uint64_t DeadDoublesInUseLocked() const;

 private:
  struct Header;
  struct Proc;
  struct Inst;
  struct Series;
  struct Node;
  struct SlabInfo;
  struct Journal;

  SharedSegment() = default;
  Header* header() const;
  Proc* procs() const;
  Inst* insts() const;
  Series* series() const;
  uint32_t* buckets() const;
  Node* nodes() const;
  SlabInfo* slabInfo() const;
  char* strings() const;
  Journal* journal() const;
  uint64_t* areaFree() const;  // free list heads of dead areas, by size in doubles
  // The slot index of a live series' handle; 0 if removed (or never made).
  uint32_t LiveIndexLocked(uint64_t series) const;
  // A key block for `len` bytes (a free one of its class, or a new one); UINT64_MAX if
  // no room. Empty keys take none.
  uint64_t AllocKeyLocked(uint32_t len);
  void FreeKeyLocked(uint64_t off, uint32_t len);
  // Gives a dead area back (on the free list of its size).
  void FreePermanentLocked(uint32_t slab, uint32_t off, uint32_t size);
  // Undoes (cell not yet merged in full) or finishes (merged, not yet unlinked) the fold
  // the journal shows in progress: its cell ends up counted exactly once.
  void RecoverLocked();
  std::string_view StringAt(uint64_t off, uint32_t len) const;
  uint64_t AddStringLocked(std::string_view s);  // UINT64_MAX if full
  uint32_t AllocNodeLocked();
  void FreeNodeLocked(uint32_t node);
  // `size` doubles for a series' dead area: a freed area of that size, else in the
  // permanent slab (a new one when the current is full): its slab and offset. False if
  // no room.
  bool PermanentLocked(uint32_t size, uint32_t* slab, uint32_t* off);
  // The series' dead accumulator, allocated (initialised to the identity) on first use;
  // null if no room.
  double* DeadLocked(uint32_t series);
  // Folds node `n` of the series (*link == n) into its dead accumulator, unlinks and frees
  // it, journaled. False (nothing changed) if no room for the accumulator.
  bool FoldUnlinkLocked(uint32_t series, uint32_t* link, uint32_t n);
  // A level: an observable up-down counter, summed. Each process (thread) observes its own
  // current level (a worker's open connections), gone when it is: a gone cell of it is
  // dropped (DropUnlinkLocked), not folded. Gauges (latest wins), observable counters
  // (monotonic) and up-down counters (their adds are the fleet's level) are folded.
  bool LevelLocked(uint32_t inst) const;
  // Unlinks and frees node `n` (*link == n) without folding it.
  void DropUnlinkLocked(uint32_t* link, uint32_t n);
  // The series' dead exemplar area (all slots empty at first); null if no room.
  double* ExDeadLocked(uint32_t series);
  // Merges exemplar node `n` (*link == n) into the dead exemplar area, unlinks and frees it.
  bool FoldExemplarUnlinkLocked(uint32_t series, uint32_t* link, uint32_t n);

  char* base_ = nullptr;
  size_t size_ = 0;
  uint32_t slot_ = UINT32_MAX;  // this process's slot
  uint32_t generation_ = 0;     // of the slot when taken
};

// A descriptor as bytes (for the segment's instrument table) and back; Decode is false
// for bytes Encode did not make.
std::string EncodeDescriptor(const Descriptor& d);
bool DecodeDescriptor(std::string_view bytes, Descriptor* d);

// The start time of a process (/proc/<pid>/stat field 22), 0 if it does not exist;
// *state (if given) its state letter (field 3: Z a zombie).
uint64_t ProcessStartTime(int pid, char* state = nullptr);

}  // namespace hotmeter
