#include "shared_segment.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define HOTMETER_SHARED_SUPPORTED 1
#endif

#include "exemplar.h"
#include "push_lease.h"

namespace hotmeter {

namespace {

constexpr uint64_t kMagic = 0x31524853544f48ull;  // "HOTSHR1"
constexpr uint32_t kVersion = 6;  // 2: descriptors in the instrument table; 3: the fold journal; 4: removal;
                                  // 5: exemplar chains and dead exemplar areas;
                                  // 6: a node's referenced flag (fleet-wide expiry);
                                  // 7: series slots, key blocks and dead areas reused
                                  //    (generations, free lists)
constexpr uint32_t kNone = 0;  // null node / series / bucket entry (indices are 1-based)

uint64_t Fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr size_t Align(size_t n) { return (n + 63) & ~size_t{63}; }

}  // namespace

struct SharedSegment::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t uid;
  uint64_t size;
  pthread_mutex_t mu;
  uint32_t instCount;
  uint32_t seriesCount;   // series slots ever used: 1..seriesCount (live, free or leaked)
  uint32_t nodeFree;      // free list head (1-based, kNone: empty)
  uint32_t nodeUsed;      // nodes ever handed out
  uint32_t slabFree;      // free list head of slabs (kNoSlab: empty)
  uint32_t slabUsed;      // slabs ever handed out
  uint32_t permSlab;      // current slab of dead accumulators (kNoSlab: none)
  uint32_t permUsed;      // doubles used in it
  uint64_t stringUsed;
  uint64_t reaped;        // processes reaped, ever
  uint64_t removals;      // series removed, ever (RemoveSeriesLocked)
  uint32_t seriesFree;    // free list of series slots (Series::freeNext; kNone: empty)
  uint32_t liveSeries;    // series not removed
  uint64_t created;       // series made, ever: the latest one's sequence number
  uint64_t reuses;        // series slots taken from the free list, ever
  uint64_t deadInUse;     // doubles of dead areas handed out and not freed
  // Free key blocks by size class (offset + 1 of the first; 0: empty). A free block's
  // first 8 bytes hold the next one's offset + 1.
  uint64_t keyFree[SharedSegment::kKeyClasses];
};

struct SharedSegment::Proc {
  int32_t pid;
  uint32_t state;  // 0 free, 1 live, 2 gone (awaiting reap)
  uint64_t startTime;
  uint32_t generation;
  uint32_t pad;
};

struct SharedSegment::Inst {
  uint64_t identOff;
  uint32_t identLen;
  uint32_t cellSize;
  uint32_t kind;
  uint32_t seriesCount;
  uint64_t descOff;  // EncodeDescriptor of the first registration
  uint32_t descLen;
  uint32_t exDoubles;  // exemplar cell size: exemplar::Slots(descriptor) * kDoubles (0: none)
};

struct SharedSegment::Series {
  uint32_t hashNext;  // next series in its bucket
  uint32_t inst;      // 1-based
  uint64_t keyOff;    // a key block (AllocKeyLocked) of keyLen's class
  uint32_t keyLen;
  uint32_t head;      // first node
  uint32_t deadSlab;  // kNoSlab: no dead accumulator yet
  uint32_t deadOff;
  double startMs;
  // 0: live. Else the slot holds no series (no lookup, sync or handle finds it): 1
  // removed (RemoveSeriesLocked) or being made (AddSeriesLocked), or left so by a holder
  // killed meanwhile (then never reused: a leaked slot); 2 on the free list (or being
  // taken off it). Only a live slot's fields are read by anyone but its writer.
  uint32_t removed;
  uint32_t exHead;    // first node of the exemplar cells' chain (one per process thread)
  uint32_t exDeadSlab;  // kNoSlab: no dead exemplar area yet (dead processes' exemplars)
  uint32_t exDeadOff;
  uint32_t generation;  // times the slot was reused: the high half of the series' handle
  uint32_t freeNext;    // next free slot (while on the free list)
  uint64_t seq;         // the series' sequence number (Header::created when it was made)
};

struct SharedSegment::Node {
  uint32_t next;
  uint32_t slab;
  uint32_t offset;
  // Value chain: 1 while the cell's thread holds a reference (RecordMap refs > 0), set and
  // cleared under the mutex by that thread's process (SetReferencedLocked). Goes with the
  // node when it is unlinked (fold, reap, removal). Exemplar chain: always 0.
  uint32_t referenced;
};

// Written only under the mutex, by FoldUnlinkLocked; read by RecoverLocked.
struct SharedSegment::Journal {
  uint32_t stage;  // 0 none, 1 folding (undo holds the accumulator before), 2 merged
  uint32_t series;
  uint32_t node;
  uint32_t cellSize;
  double undo[SharedSegment::kSlabDoubles];
};

struct SharedSegment::SlabInfo {
  uint32_t owner;  // process slot, kPermanent, or kNoSlab when free
  uint32_t nextFree;
};

namespace {

struct Layout {
  size_t journal, procs, insts, series, buckets, nodes, slabInfo, areaFree, strings, slabs, total;
};

template <typename H, typename P, typename I, typename S, typename N, typename B, typename J>
Layout MakeLayout() {
  Layout l{};
  size_t at = Align(sizeof(H));
  l.journal = at;
  at = Align(at + sizeof(J));
  l.procs = at;
  at = Align(at + sizeof(P) * SharedSegment::kMaxProcs);
  l.insts = at;
  at = Align(at + sizeof(I) * SharedSegment::kMaxInstruments);
  l.series = at;
  at = Align(at + sizeof(S) * SharedSegment::kMaxSeries);
  l.buckets = at;
  at = Align(at + sizeof(uint32_t) * SharedSegment::kBuckets);
  l.nodes = at;
  at = Align(at + sizeof(N) * SharedSegment::kMaxNodes);
  l.slabInfo = at;
  at = Align(at + sizeof(B) * SharedSegment::kMaxSlabs);
  l.areaFree = at;
  at = Align(at + sizeof(uint64_t) * (SharedSegment::kSlabDoubles + 1));
  l.strings = at;
  at = Align(at + SharedSegment::kStringBytes);
  at = (at + 4095) & ~size_t{4095};
  l.slabs = at;
  at += size_t{SharedSegment::kMaxSlabs} * SharedSegment::kSlabDoubles * sizeof(double);
  l.total = at;
  return l;
}

}  // namespace

#define HOTMETER_LAYOUT MakeLayout<Header, Proc, Inst, Series, Node, SlabInfo, Journal>()

SharedSegment::Header* SharedSegment::header() const { return reinterpret_cast<Header*>(base_); }
SharedSegment::Proc* SharedSegment::procs() const { return reinterpret_cast<Proc*>(base_ + HOTMETER_LAYOUT.procs); }
SharedSegment::Inst* SharedSegment::insts() const { return reinterpret_cast<Inst*>(base_ + HOTMETER_LAYOUT.insts); }
SharedSegment::Series* SharedSegment::series() const { return reinterpret_cast<Series*>(base_ + HOTMETER_LAYOUT.series); }
uint32_t* SharedSegment::buckets() const { return reinterpret_cast<uint32_t*>(base_ + HOTMETER_LAYOUT.buckets); }
SharedSegment::Node* SharedSegment::nodes() const { return reinterpret_cast<Node*>(base_ + HOTMETER_LAYOUT.nodes); }
SharedSegment::SlabInfo* SharedSegment::slabInfo() const { return reinterpret_cast<SlabInfo*>(base_ + HOTMETER_LAYOUT.slabInfo); }
char* SharedSegment::strings() const { return base_ + HOTMETER_LAYOUT.strings; }
SharedSegment::Journal* SharedSegment::journal() const { return reinterpret_cast<Journal*>(base_ + HOTMETER_LAYOUT.journal); }
uint64_t* SharedSegment::areaFree() const { return reinterpret_cast<uint64_t*>(base_ + HOTMETER_LAYOUT.areaFree); }
double* SharedSegment::SlabData(uint32_t slab) const {
  return reinterpret_cast<double*>(base_ + HOTMETER_LAYOUT.slabs) + size_t{slab} * kSlabDoubles;
}

uint64_t ProcessStartTime(int pid, char* state) {
#ifdef HOTMETER_SHARED_SUPPORTED
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the command name (which may hold spaces and parentheses): from the
  // last ')'; field 3 (state) is the first after it, the start time is field 22.
  char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  p++;
  while (*p == ' ') p++;
  if (state != nullptr) *state = *p;  // field 3
  for (int field = 3; field < 22 && *p; field++) {  // skip fields 3..21
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  return std::strtoull(p, nullptr, 10);
#else
  (void)pid;
  (void)state;
  return 0;
#endif
}

namespace {

// Alive: the pid exists and started when it was registered (a reused pid has another
// start time).
bool ProcessAlive(int pid, uint64_t startTime) {
#ifdef HOTMETER_SHARED_SUPPORTED
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // Unreadable (0): alive; only a start time seen to differ means the pid was reused.
  // (Declaring a live process dead would hand its slabs to another while it writes.)
  // A zombie (Z, X) has exited: it writes nothing any more.
  char state = 0;
  const uint64_t now = ProcessStartTime(pid, &state);
  if (state == 'Z' || state == 'X') return false;
  return now == 0 || now == startTime;
#else
  (void)pid;
  (void)startTime;
  return false;
#endif
}

}  // namespace

std::string SharedSegment::PathFor(const std::string& name) {
#ifdef HOTMETER_SHARED_SUPPORTED
  char buf[96];
  std::snprintf(buf, sizeof buf, "/dev/shm/hotmeter-%u-%016llx", static_cast<unsigned>(geteuid()),
                static_cast<unsigned long long>(Fnv1a(name)));
  return buf;
#else
  (void)name;
  return std::string();
#endif
}

SharedSegment::~SharedSegment() {
#ifdef HOTMETER_SHARED_SUPPORTED
  if (base_ != nullptr) munmap(base_, size_);
#endif
}

std::unique_ptr<SharedSegment> SharedSegment::Open(const std::string& name, std::string* error) {
#ifndef HOTMETER_SHARED_SUPPORTED
  (void)name;
  *error = "processShared needs Linux (POSIX shared memory in /dev/shm)";
  return nullptr;
#else
  const Layout l = HOTMETER_LAYOUT;
  const std::string path = PathFor(name);
  auto fail = [&](const std::string& what) -> std::unique_ptr<SharedSegment> {
    *error = what + " (" + path + "): " + std::strerror(errno);
    return nullptr;
  };
  int fd = -1;
  for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
    fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT) break;
    // Create it fully initialised under a private name, then link it into place: no
    // process ever maps a half-made segment. Losing the race: open the winner's.
    char tmp[160];
    std::snprintf(tmp, sizeof tmp, "%s.%d.tmp", path.c_str(), static_cast<int>(getpid()));
    int t = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (t < 0) return fail("cannot create shared memory file");
    if (fchmod(t, 0600) != 0 || ftruncate(t, static_cast<off_t>(l.total)) != 0) {
      close(t);
      unlink(tmp);
      return fail("cannot size shared memory file");
    }
    void* m = mmap(nullptr, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
    if (m == MAP_FAILED) {
      close(t);
      unlink(tmp);
      return fail("cannot map shared memory file");
    }
    auto* h = static_cast<Header*>(m);
    h->version = kVersion;
    h->uid = static_cast<uint32_t>(geteuid());
    h->size = l.total;
    h->nodeFree = kNone;
    h->slabFree = kNoSlab;
    h->permSlab = kNoSlab;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    std::atomic_ref<uint64_t>(h->magic).store(kMagic, std::memory_order_release);
    munmap(m, l.total);
    const int linked = link(tmp, path.c_str());
    const int linkErr = errno;
    unlink(tmp);
    if (linked == 0) {
      fd = t;
    } else {
      close(t);
      if (linkErr != EEXIST) {
        errno = linkErr;
        return fail("cannot publish shared memory file");
      }
    }
  }
  if (fd < 0) return fail("cannot open shared memory file");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return fail("cannot stat shared memory file");
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    close(fd);
    errno = EPERM;
    return fail("shared memory file is not a private (0600) file of this user");
  }
  if (static_cast<size_t>(st.st_size) != l.total) {
    close(fd);
    errno = EINVAL;
    return fail("shared memory file has another layout (another hotmeter version?); remove it with MeterProvider.cleanupProcessShared");
  }
  void* m = mmap(nullptr, l.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return fail("cannot map shared memory file");
  auto* h = static_cast<Header*>(m);
  if (std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire) != kMagic || h->version != kVersion ||
      h->size != l.total) {
    munmap(m, l.total);
    errno = EINVAL;
    return fail("shared memory file has another layout (another hotmeter version?); remove it with MeterProvider.cleanupProcessShared");
  }
  std::unique_ptr<SharedSegment> s(new SharedSegment());
  s->base_ = static_cast<char*>(m);
  s->size_ = l.total;
  return s;
#endif
}

int SharedSegment::Cleanup(const std::string& name, std::string* error) {
#ifndef HOTMETER_SHARED_SUPPORTED
  (void)name;
  *error = "processShared needs Linux";
  return -1;
#else
  const std::string path = PathFor(name);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  std::unique_ptr<SharedSegment> s = Open(name, error);
  if (!s) {
    // Not ours to judge (another layout): remove it only if it is this user's file.
    if (S_ISREG(st.st_mode) && st.st_uid == geteuid() && unlink(path.c_str()) == 0) {
      unlink(PushLease::PathFor(path).c_str());
      return 1;
    }
    return -1;
  }
  Guard g(s.get());
  s->ReapLocked();
  if (s->LiveProcessesLocked() > 0) {
    *error = "in use by a live process";
    return -1;
  }
  if (unlink(path.c_str()) != 0) return 0;
  unlink(PushLease::PathFor(path).c_str());  // no live process: none holds it
  return 1;
#endif
}

void SharedSegment::Lock() {
  const int rc = pthread_mutex_lock(&header()->mu);
  // Its holder died holding it: make the mutex usable again. Structures are updated so
  // that a half-done change leaves at most an unreachable node, slab or string, or a
  // series no lookup finds; a half-done fold is undone or finished from the journal.
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&header()->mu);
  RecoverLocked();
}

void SharedSegment::Unlock() { pthread_mutex_unlock(&header()->mu); }

bool SharedSegment::TryLock() {
  const int rc = pthread_mutex_trylock(&header()->mu);
  if (rc != 0 && rc != EOWNERDEAD) return false;
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&header()->mu);
  RecoverLocked();
  return true;
}

bool SharedSegment::Attach() {
#ifndef HOTMETER_SHARED_SUPPORTED
  return false;
#else
  Guard g(this);
  ReapLocked();
  const int pid = static_cast<int>(getpid());
  const uint64_t start = ProcessStartTime(pid);
  for (uint32_t i = 0; i < kMaxProcs; i++) {
    Proc& p = procs()[i];
    if (p.state != 0) continue;
    p.pid = pid;
    p.startTime = start;
    p.generation++;
    p.state = 1;
    slot_ = i;
    generation_ = p.generation;
    return true;
  }
  return false;
#endif
}

void SharedSegment::Detach() {
  if (slot_ == UINT32_MAX) return;
  Guard g(this);
  Proc& p = procs()[slot_];
  if (p.generation == generation_ && p.state == 1) p.state = 2;
  slot_ = UINT32_MAX;
}

std::string_view SharedSegment::StringAt(uint64_t off, uint32_t len) const { return {strings() + off, len}; }

uint64_t SharedSegment::AddStringLocked(std::string_view s) {
  Header* h = header();
  if (h->stringUsed + s.size() > kStringBytes) return UINT64_MAX;
  const uint64_t off = h->stringUsed;
  if (!s.empty()) std::memcpy(strings() + off, s.data(), s.size());
  h->stringUsed += s.size();
  return off;
}

uint32_t SharedSegment::FindInstrumentLocked(std::string_view identity) const {
  const Header* h = header();
  for (uint32_t i = 0; i < h->instCount; i++) {
    const Inst& in = insts()[i];
    if (StringAt(in.identOff, in.identLen) == identity) return i + 1;
  }
  return 0;
}

uint32_t SharedSegment::AddInstrumentLocked(std::string_view identity, const Descriptor& d, uint32_t cellSize) {
  Header* h = header();
  if (h->instCount >= kMaxInstruments || cellSize > kSlabDoubles) return 0;
  const std::string desc = EncodeDescriptor(d);
  if (h->stringUsed + identity.size() + desc.size() > kStringBytes) return 0;
  const uint64_t off = AddStringLocked(identity);
  const uint64_t descOff = AddStringLocked(desc);
  Inst& in = insts()[h->instCount];
  in.identOff = off;
  in.identLen = static_cast<uint32_t>(identity.size());
  in.cellSize = cellSize;
  in.kind = static_cast<uint32_t>(d.aggregation);
  in.seriesCount = 0;
  in.descOff = descOff;
  in.descLen = static_cast<uint32_t>(desc.size());
  in.exDoubles = static_cast<uint32_t>(exemplar::Slots(d) * exemplar::kDoubles);
  return ++h->instCount;  // last: published once complete
}

uint32_t SharedSegment::InstrumentCountLocked() const { return header()->instCount; }

bool SharedSegment::InstrumentInfoLocked(uint32_t inst, std::string* identity, Descriptor* d, uint32_t* cellSize) const {
  if (inst == 0 || inst > header()->instCount) return false;
  const Inst& in = insts()[inst - 1];
  if (!DecodeDescriptor(StringAt(in.descOff, in.descLen), d)) return false;
  if (static_cast<uint32_t>(d->aggregation) != in.kind || CellSize(*d) != in.cellSize) return false;
  identity->assign(StringAt(in.identOff, in.identLen));
  *cellSize = in.cellSize;
  return true;
}

namespace {

// EncodeDescriptor's format: a tag, then fields in a fixed order; strings and vectors as
// a uint32 length and their bytes; numbers in this machine's representation (the
// segment is only ever read on this host).
constexpr uint32_t kDescriptorTag = 0x44534831;  // "DSH1"

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
void PutString(std::string* out, const std::string& s) {
  Put(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
void PutDoubles(std::string* out, const std::vector<double>& v) {
  Put(out, static_cast<uint32_t>(v.size()));
  for (double x : v) Put(out, x);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  template <typename T>
  T Get() {
    T v{};
    if (in.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
  std::string String() {
    const auto n = Get<uint32_t>();
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  std::vector<double> Doubles() {
    const auto n = Get<uint32_t>();
    if (!ok || in.size() / sizeof(double) < n) {
      ok = false;
      return {};
    }
    std::vector<double> v(n);
    for (auto& x : v) x = Get<double>();
    return v;
  }
};

}  // namespace

std::string EncodeDescriptor(const Descriptor& d) {
  std::string out;
  Put(&out, kDescriptorTag);
  PutString(&out, d.name);
  PutString(&out, d.description);
  PutString(&out, d.unit);
  PutString(&out, d.scopeName);
  PutString(&out, d.scopeVersion);
  PutString(&out, d.scopeSchemaUrl);
  Put(&out, static_cast<uint8_t>(d.kind));
  Put(&out, static_cast<uint8_t>(d.valueType));
  Put(&out, static_cast<uint8_t>(d.aggregation));
  Put(&out, static_cast<uint8_t>(d.monotonic ? 1 : 0));
  Put(&out, static_cast<uint8_t>(d.recordMinMax ? 1 : 0));
  PutDoubles(&out, d.bounds);
  Put(&out, d.relativeAccuracy);
  Put(&out, d.maxSize);
  Put(&out, d.maxScale);
  PutDoubles(&out, d.quantiles);
  return out;
}

bool DecodeDescriptor(std::string_view bytes, Descriptor* d) {
  Reader r{bytes};
  if (r.Get<uint32_t>() != kDescriptorTag) return false;
  d->name = r.String();
  d->description = r.String();
  d->unit = r.String();
  d->scopeName = r.String();
  d->scopeVersion = r.String();
  d->scopeSchemaUrl = r.String();
  const auto kind = r.Get<uint8_t>(), vt = r.Get<uint8_t>(), agg = r.Get<uint8_t>();
  d->monotonic = r.Get<uint8_t>() != 0;
  d->recordMinMax = r.Get<uint8_t>() != 0;
  d->bounds = r.Doubles();
  d->relativeAccuracy = r.Get<double>();
  d->maxSize = r.Get<uint32_t>();
  d->maxScale = r.Get<int32_t>();
  d->quantiles = r.Doubles();
  if (!r.ok || !r.in.empty() || kind >= kInstrumentKindCount || vt > 1 || agg >= kAggregationKindCount) return false;
  d->kind = static_cast<InstrumentKind>(kind);
  d->valueType = static_cast<ValueType>(vt);
  d->aggregation = static_cast<AggregationKind>(agg);
  return true;
}

void (*SharedSegment::foldStepHook)(int) = nullptr;

namespace {

// Keeps the compiler from moving the segment's stores across it: a process killed
// between two steps has made exactly the stores before it (the stores it executed reach
// the shared pages; only their order in the program matters). Fold steps 1-5, removal
// steps 11-15, exemplar fold steps 21-23, level drop steps 31-33 (SharedSegment::foldStepHook).
inline void Step(int step) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (SharedSegment::foldStepHook != nullptr) SharedSegment::foldStepHook(step);
}

}  // namespace

namespace {

constexpr uint64_t Handle(uint32_t generation, uint32_t index) { return (uint64_t{generation} << 32) | index; }

// The size class of a key block for `len` bytes (0 < len < 2^kKeyClasses-1).
uint32_t KeyClass(uint32_t len) {
  uint32_t c = SharedSegment::kMinKeyClass;
  while ((uint64_t{1} << c) < len) c++;
  return c;
}

}  // namespace

uint32_t SharedSegment::LiveIndexLocked(uint64_t h) const {
  const auto index = static_cast<uint32_t>(h & 0xffffffffu);
  if (index == kNone || index > header()->seriesCount) return 0;
  const Series& se = series()[index - 1];
  return se.removed == 0 && se.generation == static_cast<uint32_t>(h >> 32) ? index : 0;
}

uint64_t SharedSegment::AllocKeyLocked(uint32_t len) {
  if (len == 0) return 0;
  const uint32_t c = KeyClass(len);
  if (c >= kKeyClasses) return UINT64_MAX;
  Header* h = header();
  if (h->keyFree[c] != 0) {
    const uint64_t off = h->keyFree[c] - 1;
    uint64_t next = 0;
    std::memcpy(&next, strings() + off, sizeof next);
    h->keyFree[c] = next;  // a holder killed after this only leaks the block
    return off;
  }
  const uint64_t size = uint64_t{1} << c;
  if (h->stringUsed + size > kStringBytes) return UINT64_MAX;
  const uint64_t off = h->stringUsed;
  h->stringUsed += size;
  return off;
}

void SharedSegment::FreeKeyLocked(uint64_t off, uint32_t len) {
  if (len == 0) return;
  const uint32_t c = KeyClass(len);
  Header* h = header();
  std::memcpy(strings() + off, &h->keyFree[c], sizeof h->keyFree[c]);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  h->keyFree[c] = off + 1;  // last: a holder killed before it only leaks the block
}

uint64_t SharedSegment::FindSeriesLocked(uint32_t inst, std::string_view key) const {
  const uint64_t hash = Fnv1a(key, 0xcbf29ce484222325ull ^ inst);
  for (uint32_t s = buckets()[hash & (kBuckets - 1)]; s != kNone; s = series()[s - 1].hashNext) {
    const Series& se = series()[s - 1];
    if (se.inst == inst && se.removed == 0 && StringAt(se.keyOff, se.keyLen) == key) return Handle(se.generation, s);
  }
  return kNone;
}

uint64_t SharedSegment::AddSeriesLocked(uint32_t inst, std::string_view key, double startMs) {
  Header* h = header();
  if (inst == 0 || inst > h->instCount || key.size() >= (uint64_t{1} << (kKeyClasses - 1))) return kNone;
  if (h->seriesFree == kNone && h->seriesCount >= kMaxSeries) return kNone;
  // Every store below but the last is to memory no other process reads (a free key
  // block, a slot that is not live): a holder killed before the last leaks the block
  // and the slot (never reused: neither is on a free list), nothing else.
  const uint64_t off = AllocKeyLocked(static_cast<uint32_t>(key.size()));
  if (off == UINT64_MAX) return kNone;
  if (!key.empty()) std::memcpy(strings() + off, key.data(), key.size());
  Step(41);
  uint32_t id = h->seriesFree;
  if (id != kNone) {
    h->seriesFree = series()[id - 1].freeNext;  // off the free list (still not live)
    h->reuses++;
  } else {
    id = h->seriesCount + 1;
    series()[id - 1].removed = 1;  // not live before it is in range
    std::atomic_signal_fence(std::memory_order_seq_cst);
    h->seriesCount = id;
  }
  Step(42);
  Series& se = series()[id - 1];
  se.removed = 1;
  se.inst = inst;
  se.keyOff = off;
  se.keyLen = static_cast<uint32_t>(key.size());
  se.head = kNone;
  se.deadSlab = kNoSlab;  // dead areas: taken (and set to the identity) on first fold
  se.deadOff = 0;
  se.startMs = startMs;
  se.exHead = kNone;
  se.exDeadSlab = kNoSlab;
  se.exDeadOff = 0;
  se.freeNext = kNone;
  // A reused slot's series gets a new handle: its previous series' stay removed.
  if (se.seq != 0) se.generation++;
  se.seq = ++h->created;
  Step(43);
  const uint64_t hash = Fnv1a(key, 0xcbf29ce484222325ull ^ inst);
  uint32_t& bucket = buckets()[hash & (kBuckets - 1)];
  se.hashNext = bucket;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  bucket = id;  // in the index, not yet found (not live)
  Step(44);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  se.removed = 0;  // published: found, synced, summed from now on
  Step(45);
  // Counted after: a holder killed in between leaves at worst a live series uncounted
  // (its instrument's cardinality limit one series loose until it is removed).
  insts()[inst - 1].seriesCount++;
  h->liveSeries++;
  return Handle(se.generation, id);
}

bool SharedSegment::RemoveSeriesLocked(uint64_t handle) {
  const uint32_t s = LiveIndexLocked(handle);
  if (s == kNone) return false;
  Series& se = series()[s - 1];
  // Counted before it is flagged: a holder killed in between leaves every process to look
  // for removed series once more and find none (the series stays, whole). Counted after
  // it, a process that had synced the count would keep its record of a series no lookup
  // finds, exporting it while the others start a new one.
  header()->removals++;
  Step(11);
  // Flagged next: a holder killed after this leaves the series out of every lookup and
  // sync, at worst with its bucket entry or some nodes still reachable from it (the
  // nodes are still linked, never also free: the next reap frees them), and its slot,
  // key block and dead areas leaked (not on a free list: never reused).
  se.removed = 1;
  Inst& in = insts()[se.inst - 1];
  if (in.seriesCount > 0) in.seriesCount--;
  if (header()->liveSeries > 0) header()->liveSeries--;
  Step(12);
  const uint64_t hash = Fnv1a(StringAt(se.keyOff, se.keyLen), 0xcbf29ce484222325ull ^ se.inst);
  for (uint32_t* link = &buckets()[hash & (kBuckets - 1)]; *link != kNone; link = &series()[*link - 1].hashNext) {
    if (*link == s) {
      *link = se.hashNext;
      break;
    }
  }
  Step(13);
  // Its cells are left to their processes (their writes go nowhere now); the nodes go
  // back, each unlinked before it is freed.
  for (uint32_t* head : {&se.head, &se.exHead}) {
    while (*head != kNone) {
      const uint32_t n = *head;
      *head = nodes()[n - 1].next;
      Step(14);
      FreeNodeLocked(n);
    }
  }
  Step(15);
  // Out of the index (its key is read no more), no chain: its key block and dead areas
  // go back, then the slot. Each is on a free list only once nothing else uses it.
  FreeKeyLocked(se.keyOff, se.keyLen);
  Step(16);
  if (se.deadSlab != kNoSlab) FreePermanentLocked(se.deadSlab, se.deadOff, in.cellSize);
  if (se.exDeadSlab != kNoSlab) FreePermanentLocked(se.exDeadSlab, se.exDeadOff, in.exDoubles);
  se.deadSlab = se.exDeadSlab = kNoSlab;
  Step(17);
  se.removed = 2;
  se.freeNext = header()->seriesFree;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  header()->seriesFree = s;  // last: a holder killed before it only leaks the slot
  Step(18);
  return true;
}

bool SharedSegment::SeriesRemovedLocked(uint64_t h) const { return LiveIndexLocked(h) == kNone; }

uint64_t SharedSegment::RemovalsLocked() const { return header()->removals; }

uint32_t SharedSegment::SeriesCountOfLocked(uint32_t inst) const {
  return inst == 0 || inst > header()->instCount ? 0 : insts()[inst - 1].seriesCount;
}

uint64_t SharedSegment::SeriesTotalLocked() const { return header()->created; }
uint32_t SharedSegment::LiveSeriesLocked() const { return header()->liveSeries; }
uint32_t SharedSegment::SeriesSlotsLocked() const { return header()->seriesCount; }
uint64_t SharedSegment::SeriesReusesLocked() const { return header()->reuses; }

uint64_t SharedSegment::SeriesAtLocked(uint32_t index) const {
  if (index == kNone || index > header()->seriesCount || series()[index - 1].removed != 0) return 0;
  return Handle(series()[index - 1].generation, index);
}

uint64_t SharedSegment::SeriesSequenceLocked(uint64_t h) const {
  const uint32_t s = LiveIndexLocked(h);
  return s == kNone ? 0 : series()[s - 1].seq;
}

bool SharedSegment::SeriesInfoLocked(uint64_t h, uint32_t* inst, std::string_view* key, double* startMs) const {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) {
    *inst = 0;
    *key = {};
    *startMs = 0;
    return false;
  }
  const Series& se = series()[s - 1];
  *inst = se.inst;
  *key = StringAt(se.keyOff, se.keyLen);
  *startMs = se.startMs;
  return true;
}

uint32_t SharedSegment::AcquireSlabLocked() {
  if (slot_ == UINT32_MAX) return kNoSlab;
  Header* h = header();
  uint32_t slab = kNoSlab;
  if (h->slabFree != kNoSlab) {
    slab = h->slabFree;
    h->slabFree = slabInfo()[slab].nextFree;
  } else if (h->slabUsed < kMaxSlabs) {
    slab = h->slabUsed++;
  } else {
    return kNoSlab;
  }
  slabInfo()[slab].owner = slot_;
  slabInfo()[slab].nextFree = kNoSlab;
  return slab;
}

void SharedSegment::ReleaseSlabLocked(uint32_t slab) {
  slabInfo()[slab].owner = kNoSlab;
  slabInfo()[slab].nextFree = header()->slabFree;
  header()->slabFree = slab;
}

uint32_t SharedSegment::AllocNodeLocked() {
  Header* h = header();
  if (h->nodeFree != kNone) {
    const uint32_t n = h->nodeFree;
    h->nodeFree = nodes()[n - 1].next;
    return n;
  }
  if (h->nodeUsed >= kMaxNodes) return kNone;
  return ++h->nodeUsed;
}

void SharedSegment::FreeNodeLocked(uint32_t node) {
  nodes()[node - 1].next = header()->nodeFree;
  header()->nodeFree = node;
}

bool SharedSegment::LinkCellLocked(uint64_t h, uint32_t slab, uint32_t offset) {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return false;
  const uint32_t n = AllocNodeLocked();
  if (n == kNone) return false;
  Node& node = nodes()[n - 1];
  node.slab = slab;
  node.offset = offset;
  node.referenced = 0;
  node.next = series()[s - 1].head;
  series()[s - 1].head = n;
  return true;
}

void SharedSegment::SetReferencedLocked(uint64_t h, uint32_t slab, uint32_t offset, bool referenced) {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return;
  for (uint32_t n = series()[s - 1].head; n != kNone; n = nodes()[n - 1].next) {
    Node& node = nodes()[n - 1];
    if (node.slab == slab && node.offset == offset) {
      node.referenced = referenced ? 1 : 0;
      return;
    }
  }
}

bool SharedSegment::ReferencedLocked(uint64_t h) const {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return false;
  for (uint32_t n = series()[s - 1].head; n != kNone; n = nodes()[n - 1].next) {
    if (nodes()[n - 1].referenced != 0) return true;
  }
  return false;
}

bool SharedSegment::PermanentLocked(uint32_t size, uint32_t* slab, uint32_t* off) {
  Header* h = header();
  if (size == 0 || size > kSlabDoubles) return false;
  uint64_t& free = areaFree()[size];
  if (free != 0) {
    // A removed series' area: its first double holds the next free one (0: none).
    *slab = static_cast<uint32_t>((free >> 32) - 1);
    *off = static_cast<uint32_t>(free & 0xffffffffu);
    uint64_t next = 0;
    std::memcpy(&next, SlabData(*slab) + *off, sizeof next);
    free = next;  // a holder killed before its caller publishes the area only leaks it
    h->deadInUse += size;
    return true;
  }
  if (h->permSlab == kNoSlab || kSlabDoubles - h->permUsed < size) {
    const uint32_t saved = slot_;
    slot_ = kPermanent;  // AcquireSlabLocked's owner
    const uint32_t fresh = AcquireSlabLocked();
    slot_ = saved;
    if (fresh == kNoSlab) return false;
    h->permSlab = fresh;
    h->permUsed = 0;
  }
  *slab = h->permSlab;
  *off = h->permUsed;
  h->permUsed += size;  // a holder killed before its caller publishes the area only leaks it
  h->deadInUse += size;
  return true;
}

void SharedSegment::FreePermanentLocked(uint32_t slab, uint32_t off, uint32_t size) {
  if (size == 0 || size > kSlabDoubles) return;
  uint64_t& free = areaFree()[size];
  std::memcpy(SlabData(slab) + off, &free, sizeof free);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  free = ((uint64_t{slab} + 1) << 32) | off;  // last: a holder killed before it leaks the area
  if (header()->deadInUse >= size) header()->deadInUse -= size;
}

double* SharedSegment::DeadLocked(uint32_t s) {
  Series& se = series()[s - 1];
  const Inst& in = insts()[se.inst - 1];
  if (se.deadSlab != kNoSlab) return SlabData(se.deadSlab) + se.deadOff;
  uint32_t slab = 0, off = 0;
  if (!PermanentLocked(in.cellSize, &slab, &off)) return nullptr;
  double* d = SlabData(slab) + off;
  InitState(static_cast<AggregationKind>(in.kind), d, in.cellSize);
  se.deadOff = off;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  se.deadSlab = slab;  // last: published once initialised
  return d;
}

bool SharedSegment::FoldUnlinkLocked(uint32_t s, uint32_t* link, uint32_t n) {
  const Series& se = series()[s - 1];
  const Inst& in = insts()[se.inst - 1];
  double* dead = DeadLocked(s);
  if (dead == nullptr) return false;
  Journal* j = journal();
  std::memcpy(j->undo, dead, in.cellSize * sizeof(double));
  j->series = s;
  j->node = n;
  j->cellSize = in.cellSize;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j->stage = 1;
  Step(1);
  std::vector<double> tmp(in.cellSize);
  Node& node = nodes()[n - 1];
  LoadCell(tmp.data(), SlabData(node.slab) + node.offset, in.cellSize);
  MergeState(static_cast<AggregationKind>(in.kind), dead, tmp.data(), in.cellSize);
  Step(2);
  j->stage = 2;
  Step(3);
  *link = node.next;
  Step(4);
  FreeNodeLocked(n);
  Step(5);
  j->stage = 0;
  return true;
}

void SharedSegment::RecoverLocked() {
  Journal* j = journal();
  if (j->stage == 0) return;
  if (j->series == 0 || j->series > header()->seriesCount || j->node == 0 || j->node > kMaxNodes) {
    j->stage = 0;  // never written whole (cannot happen: stage is written last)
    return;
  }
  Series& se = series()[j->series - 1];
  uint32_t* link = &se.head;
  while (*link != kNone && *link != j->node) link = &nodes()[*link - 1].next;
  if (j->stage == 1) {
    // The merge may have begun, the cell is still linked (unlinking comes after stage 2):
    // the accumulator goes back to what it was.
    if (se.deadSlab != kNoSlab) std::memcpy(SlabData(se.deadSlab) + se.deadOff, j->undo, j->cellSize * sizeof(double));
  } else if (*link == j->node) {
    // Merged, still linked: unlink and free it. (Unlinked already: done; if it was not
    // yet on the free list, it stays unreachable.)
    *link = nodes()[j->node - 1].next;
    FreeNodeLocked(j->node);
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j->stage = 0;
}

bool SharedSegment::LevelLocked(uint32_t inst) const {
  Descriptor d;
  std::string identity;
  uint32_t cellSize = 0;
  // A descriptor that cannot be decoded (a damaged entry): folded, as any other cell.
  return InstrumentInfoLocked(inst, &identity, &d, &cellSize) && d.kind == InstrumentKind::ObservableUpDownCounter &&
         d.aggregation == AggregationKind::PrecomputedSum;
}

// No journal: only the chain changes (the dead accumulator is never touched), and the
// unlink is one store. A holder killed before it leaves the cell linked, its owner still
// gone (the next reap drops it); killed after it, at most an unreachable node.
void SharedSegment::DropUnlinkLocked(uint32_t* link, uint32_t n) {
  Step(31);
  *link = nodes()[n - 1].next;
  Step(32);
  FreeNodeLocked(n);
  Step(33);
}

bool SharedSegment::RetireCellLocked(uint64_t h, uint32_t slab, uint32_t offset) {
  // A removed series has no chain: its cell was unlinked with it (and a later series in
  // its slot never linked this cell: another handle).
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return true;
  uint32_t* link = &series()[s - 1].head;
  while (*link != kNone) {
    const uint32_t n = *link;
    Node& node = nodes()[n - 1];
    if (node.slab == slab && node.offset == offset) {
      // A thread's level goes with it as a process's does (ReapLocked).
      if (!LevelLocked(series()[s - 1].inst)) return FoldUnlinkLocked(s, link, n);
      DropUnlinkLocked(link, n);
      return true;
    }
    link = &node.next;
  }
  return true;
}

uint32_t SharedSegment::ReapLocked() {
  std::vector<uint8_t> gone(kMaxProcs, 0);
  bool any = false;
  for (uint32_t i = 0; i < kMaxProcs; i++) {
    Proc& p = procs()[i];
    if (p.state == 1 && i != slot_ && !ProcessAlive(p.pid, p.startTime)) p.state = 2;
    if (p.state == 2) {
      gone[i] = 1;
      any = true;
    }
  }
  if (!any) return 0;
  // Fold every cell that lives in a slab of a gone process, then free what it held.
  std::vector<uint8_t> failed(kMaxProcs, 0);
  std::vector<int8_t> level(header()->instCount + 1, -1);  // LevelLocked by instrument, once asked
  const uint32_t total = header()->seriesCount;
  for (uint32_t s = 1; s <= total; s++) {
    uint32_t* link = &series()[s - 1].head;
    if (series()[s - 1].removed != 0) {
      // Nodes a holder killed mid-removal left linked: nothing sums them, so they just go.
      for (uint32_t* head : {link, &series()[s - 1].exHead}) {
        while (*head != kNone) {
          const uint32_t n = *head;
          *head = nodes()[n - 1].next;
          std::atomic_signal_fence(std::memory_order_seq_cst);  // unlinked before it is free
          FreeNodeLocked(n);
        }
      }
      continue;
    }
    // Exemplar cells of gone processes: into the series' dead exemplar area.
    for (uint32_t* ex = &series()[s - 1].exHead; *ex != kNone;) {
      const uint32_t n = *ex;
      const uint32_t owner = slabInfo()[nodes()[n - 1].slab].owner;
      if (owner < kMaxProcs && gone[owner]) {
        if (FoldExemplarUnlinkLocked(s, ex, n)) continue;
        failed[owner] = 1;
      }
      ex = &nodes()[n - 1].next;
    }
    while (*link != kNone) {
      const uint32_t n = *link;
      Node& node = nodes()[n - 1];
      const uint32_t owner = slabInfo()[node.slab].owner;
      if (owner < kMaxProcs && gone[owner]) {
        // A level's cell (an observable up-down counter's) goes with its process: the
        // fleet's level is the live processes' sum. Every other cell is folded.
        int8_t& lv = level[series()[s - 1].inst];
        if (lv < 0) lv = LevelLocked(series()[s - 1].inst) ? 1 : 0;
        if (lv == 1) {
          DropUnlinkLocked(link, n);
          continue;
        }
        if (FoldUnlinkLocked(s, link, n)) continue;
        failed[owner] = 1;
      }
      link = &node.next;
    }
  }
  const uint32_t used = header()->slabUsed;
  for (uint32_t b = 0; b < used; b++) {
    const uint32_t owner = slabInfo()[b].owner;
    if (owner < kMaxProcs && gone[owner] && !failed[owner]) ReleaseSlabLocked(b);
  }
  uint32_t reaped = 0;
  for (uint32_t i = 0; i < kMaxProcs; i++) {
    if (!gone[i] || failed[i]) continue;
    procs()[i].state = 0;
    procs()[i].pid = 0;
    reaped++;
  }
  header()->reaped += reaped;
  return reaped;
}

bool SharedSegment::SumLocked(uint64_t h, double* out, double* tmp) const {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return false;
  const Series& se = series()[s - 1];
  const Inst& in = insts()[se.inst - 1];
  const auto kind = static_cast<AggregationKind>(in.kind);
  if (se.deadSlab != kNoSlab) {
    std::memcpy(out, SlabData(se.deadSlab) + se.deadOff, in.cellSize * sizeof(double));
  } else {
    InitState(kind, out, in.cellSize);
  }
  for (uint32_t n = se.head; n != kNone; n = nodes()[n - 1].next) {
    const Node& node = nodes()[n - 1];
    LoadCell(tmp, SlabData(node.slab) + node.offset, in.cellSize);
    MergeState(kind, out, tmp, in.cellSize);
  }
  return true;
}

bool SharedSegment::LinkExemplarCellLocked(uint64_t h, uint32_t slab, uint32_t offset) {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return false;
  Series& se = series()[s - 1];
  if (insts()[se.inst - 1].exDoubles == 0) return false;
  const uint32_t n = AllocNodeLocked();
  if (n == kNone) return false;
  Node& node = nodes()[n - 1];
  node.slab = slab;
  node.offset = offset;
  node.referenced = 0;
  node.next = se.exHead;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // whole before it is reachable
  se.exHead = n;
  return true;
}

double* SharedSegment::ExDeadLocked(uint32_t s) {
  Series& se = series()[s - 1];
  const uint32_t size = insts()[se.inst - 1].exDoubles;
  if (se.exDeadSlab != kNoSlab) return SlabData(se.exDeadSlab) + se.exDeadOff;
  uint32_t slab = 0, off = 0;
  if (!PermanentLocked(size, &slab, &off)) return nullptr;
  double* d = SlabData(slab) + off;
  std::fill(d, d + size, 0.0);  // every slot empty (time 0)
  se.exDeadOff = off;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  se.exDeadSlab = slab;  // last: published once initialised
  return d;
}

// No journal: the merge (latest per slot) is idempotent, and it writes a slot's time
// last, so a holder killed mid-merge leaves at worst a slot whose time is older than the
// cell's (still linked: it is exported from the cell, and merged again by the next fold),
// and one killed after the unlink at worst an unreachable node.
bool SharedSegment::FoldExemplarUnlinkLocked(uint32_t s, uint32_t* link, uint32_t n) {
  const Series& se = series()[s - 1];
  const uint32_t size = insts()[se.inst - 1].exDoubles;
  double* dead = ExDeadLocked(s);
  if (dead == nullptr) return false;
  const Node& node = nodes()[n - 1];
  std::vector<double> tmp(size);
  LoadCell(tmp.data(), SlabData(node.slab) + node.offset, size);
  for (uint32_t o = 0; o + exemplar::kDoubles <= size; o += exemplar::kDoubles) {
    if (!(tmp[o + exemplar::kTime] > dead[o + exemplar::kTime])) continue;
    for (size_t k = 1; k < exemplar::kDoubles; k++) dead[o + k] = tmp[o + k];
    Step(21);
    dead[o + exemplar::kTime] = tmp[o + exemplar::kTime];
  }
  Step(22);  // merged before it is unlinked
  *link = node.next;
  Step(23);
  FreeNodeLocked(n);
  return true;
}

bool SharedSegment::RetireExemplarCellLocked(uint64_t h, uint32_t slab, uint32_t offset) {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return true;  // no chain (see RetireCellLocked)
  uint32_t* link = &series()[s - 1].exHead;
  while (*link != kNone) {
    const uint32_t n = *link;
    Node& node = nodes()[n - 1];
    if (node.slab == slab && node.offset == offset) return FoldExemplarUnlinkLocked(s, link, n);
    link = &node.next;
  }
  return true;
}

uint32_t SharedSegment::ExemplarsLocked(uint64_t h, double* out, double* tmp) const {
  const uint32_t s = LiveIndexLocked(h);
  if (s == kNone) return 0;
  const Series& se = series()[s - 1];
  const uint32_t size = insts()[se.inst - 1].exDoubles;
  const size_t slots = size / exemplar::kDoubles;
  if (slots == 0 || (se.exDeadSlab == kNoSlab && se.exHead == kNone)) return 0;  // none ever
  if (se.exDeadSlab != kNoSlab) {
    std::memcpy(out, SlabData(se.exDeadSlab) + se.exDeadOff, size * sizeof(double));
  } else {
    std::fill(out, out + size, 0.0);
  }
  for (uint32_t n = se.exHead; n != kNone; n = nodes()[n - 1].next) {
    const Node& node = nodes()[n - 1];
    LoadCell(tmp, SlabData(node.slab) + node.offset, size);
    exemplar::Merge(out, tmp, slots);
  }
  for (size_t k = 0; k < slots; k++) {
    if (out[k * exemplar::kDoubles + exemplar::kTime] > 0) return static_cast<uint32_t>(slots);
  }
  return 0;
}

uint32_t SharedSegment::ExemplarDoublesLocked(uint64_t h) const {
  const uint32_t s = LiveIndexLocked(h);
  return s == kNone ? 0 : insts()[series()[s - 1].inst - 1].exDoubles;
}

uint64_t SharedSegment::StringBytesUsedLocked() const { return header()->stringUsed; }

uint64_t SharedSegment::DeadDoublesInUseLocked() const { return header()->deadInUse; }

uint32_t SharedSegment::LiveProcessesLocked() const {
  uint32_t n = 0;
  for (uint32_t i = 0; i < kMaxProcs; i++) n += procs()[i].state == 1 ? 1 : 0;
  return n;
}

uint32_t SharedSegment::NodesInUseLocked() const {
  uint32_t free = 0;
  for (uint32_t n = header()->nodeFree; n != kNone && free < kMaxNodes; n = nodes()[n - 1].next) free++;
  return header()->nodeUsed - free;
}

uint32_t SharedSegment::SlabsInUseLocked() const {
  uint32_t n = 0;
  for (uint32_t b = 0; b < header()->slabUsed; b++) n += slabInfo()[b].owner != kNoSlab ? 1 : 0;
  return n;
}

}  // namespace hotmeter
