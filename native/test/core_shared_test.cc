// Tests of process-shared records (native/core/shared_segment.h, RecordMap's shared
// domains). Each RecordMap here stands for one process: it maps the segment on its own
// and takes its own process slot (same pid, so "death" is simulated by ReleaseDomain,
// which detaches), except shared_forked_process_killed, which forks a real process that
// exits without detaching.
//
// Usage: core_shared_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/exemplar.h"
#include "../core/push_lease.h"
#include "../core/shared_segment.h"
#include "core_helpers.h"

namespace {

std::string UniqueName(const char* tag) {
  static int n = 0;
  return std::string("native-test-") + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// A process: its own map, arena and registration of the shared domain.
struct Proc {
  RecordMap map;
  uint32_t arena = 0;
  uint32_t domain = 0;
  explicit Proc(const std::string& name) {
    arena = map.RegisterArena();
    std::string error;
    domain = map.RegisterSharedDomain(name, arena, &error);
    if (domain == 0) Fail(__FILE__, __LINE__, "RegisterSharedDomain: " + error);
  }
  uint32_t Instrument(const std::string& name, AggregationKind kind, std::vector<double> bounds = {}) {
    return map.RegisterInstrument("meter/" + name, MakeDesc(name, kind, std::move(bounds)), nullptr, domain);
  }
  // An instrument of this kind with its default aggregation (observables: as JS makes them).
  uint32_t Of(const std::string& name, InstrumentKind ik) {
    AggregationKind agg = AggregationKind::Sum;
    if (ik == InstrumentKind::ObservableCounter || ik == InstrumentKind::ObservableUpDownCounter) agg = AggregationKind::PrecomputedSum;
    if (ik == InstrumentKind::ObservableGauge || ik == InstrumentKind::Gauge) agg = AggregationKind::LastValue;
    Descriptor d = MakeDesc(name, agg);
    d.kind = ik;
    d.monotonic = ik == InstrumentKind::Counter || ik == InstrumentKind::ObservableCounter;
    return map.RegisterInstrument("meter/" + name, d, nullptr, domain);
  }
  // The calling "thread"'s cell of (instrument, key), as JS reaches it.
  double* Cell(uint32_t inst, const std::string& key, uint32_t limit = 0, uint32_t arenaId = 0, Acquired* out = nullptr) {
    Acquired a;
    const uint32_t ar = arenaId != 0 ? arenaId : arena;
    if (!map.Acquire(ar, inst, key, 0, &a, limit)) return nullptr;
    if (out) *out = a;
    Descriptor d;
    map.GetDescriptor(inst, &d);
    return CellPtr(map, ar, a, CellSize(d));
  }
  // "instrument name|label key" -> state, from one collection pass.
  std::map<std::string, std::vector<double>> Collect() {
    CollectOptions o;
    o.domain = domain;
    // A provider without expiry (reclaimBefore 0): stale queues are filled, nothing expires
    // (the expiring passes of shared series are Expire's, below).
    o.reclaim = true;
    o.reclaimBefore = 0;
    std::vector<uint64_t> reclaimed;
    std::map<std::string, std::vector<double>> out;
    map.CollectPass(
        o,
        [&](const CheckpointView& v) {
          out[v.instrument->descriptor.name + "|" + std::string(v.record->labels->view())].assign(
              v.state, v.state + v.instrument->cellSize);
        },
        &reclaimed);
    if (!reclaimed.empty()) Fail(__FILE__, __LINE__, "a shared record was reclaimed");
    return out;
  }
  // The first double of a series' state (a sum's value), by value: CHECK_EQ binds its
  // arguments by reference, which must not reach into a temporary map.
  double First(const std::string& key) {
    auto s = Collect();
    auto it = s.find(key);
    return it == s.end() || it->second.empty() ? -1 : it->second[0];
  }
  // The calling "thread"'s exemplar cell of (instrument, key), as offerExemplar reaches it.
  double* Exemplar(uint32_t inst, const std::string& key, uint32_t arenaId = 0) {
    Acquired a;
    const uint32_t ar = arenaId != 0 ? arenaId : arena;
    if (!map.Acquire(ar, inst, key, 0, &a)) return nullptr;
    uint32_t slab = 0, offset = 0, slots = 0;
    if (!map.ExemplarCell(ar, a.recordId, &slab, &offset, &slots)) return nullptr;
    double* data = nullptr;
    size_t doubles = 0;
    if (!map.SlabMemory(ar, slab, &data, &doubles)) return nullptr;
    return data + offset;
  }
  // The exemplar slots a pass shows for "instrument name|label key" (empty: none).
  std::vector<double> Exemplars(const std::string& want) {
    CollectOptions o;
    o.domain = domain;
    std::vector<uint64_t> reclaimed;
    std::vector<double> out;
    map.CollectPass(
        o,
        [&](const CheckpointView& v) {
          if (v.instrument->descriptor.name + "|" + std::string(v.record->labels->view()) == want && v.exemplars) {
            out.assign(v.exemplars, v.exemplars + v.exemplarSlots * exemplar::kDoubles);
          }
        },
        &reclaimed);
    return out;
  }
  void Release() { map.ReleaseDomain(domain, arena); }
  // An expiring pass (every reader delivered everything, idle long enough: reclaimBefore
  // UINT64_MAX): "instrument name|label key" -> first double of the state, of the records
  // kept; the ids of the records it reclaimed (expired) in *reclaimed. `visit`, if given,
  // runs for each record kept, inside the pass (this map's lock held, no segment lock).
  std::map<std::string, double> Expire(std::vector<uint64_t>* reclaimed,
                                       const std::function<void(const CheckpointView&)>& visit = nullptr) {
    CollectOptions o;
    o.domain = domain;
    o.reclaim = true;
    o.reclaimBefore = UINT64_MAX;
    std::map<std::string, double> out;
    map.CollectPass(
        o,
        [&](const CheckpointView& v) {
          out[v.instrument->descriptor.name + "|" + std::string(v.record->labels->view())] = v.state[0];
          if (visit) visit(v);
        },
        reclaimed);
    return out;
  }
  uint32_t Nodes() {
    uint32_t procs = 0, slabs = 0, series = 0, nodes = 0;
    if (!map.SharedStats(domain, &procs, &slabs, &series, &nodes)) Fail(__FILE__, __LINE__, "SharedStats");
    return nodes;
  }
};

// The stress tests' fleet: P processes of `name`, each with its counter "c" (Sum).
struct Fleet {
  std::vector<std::unique_ptr<Proc>> ps;
  std::vector<uint32_t> inst;  // each process's id of "c"
  Fleet(const std::string& name, int P) {
    for (int p = 0; p < P; p++) {
      ps.push_back(std::make_unique<Proc>(name));
      inst.push_back(ps.back()->Instrument("c", AggregationKind::Sum));
    }
  }
  void Release() {
    for (auto& p : ps) p->Release();
  }
};

// Writes an exemplar into slot `slot` of an exemplar cell as offerExemplar does (time last).
void PutExemplar(double* e, size_t slot, double time, double value, double traceWord) {
  double* s = e + slot * exemplar::kDoubles;
  s[exemplar::kValue] = value;
  for (size_t w = 0; w < 6; w++) s[exemplar::kTrace + w] = traceWord;
  s[exemplar::kTime] = time;
}

// (time, value, first trace word) of a slot of Exemplars(); all -1 if there is none.
std::vector<double> Slot(const std::vector<double>& ex, size_t slot) {
  if ((slot + 1) * exemplar::kDoubles > ex.size()) return {-1, -1, -1};
  const double* s = ex.data() + slot * exemplar::kDoubles;
  return {s[exemplar::kTime], s[exemplar::kValue], s[exemplar::kTrace]};
}
using Ex = std::vector<double>;

void Cleanup(const std::string& name) {
  std::string error;
  if (SharedSegment::Cleanup(name, &error) != 1) Fail(__FILE__, __LINE__, "Cleanup: " + error);
}

TEST(shared_two_processes_sum_and_see_each_others_series) {
  const std::string name = UniqueName("sum");
  {
    Proc a(name), b(name);
    const std::vector<double> bounds{1, 10};
    uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    uint32_t ha = a.Instrument("h", AggregationKind::Histogram, bounds);
    uint32_t hb = b.Instrument("h", AggregationKind::Histogram, bounds);
    double* a1 = a.Cell(ca, Key("k", "1"));
    double* b1 = b.Cell(cb, Key("k", "1"));
    double* b2 = b.Cell(cb, Key("k", "2"));
    REQUIRE(a1 && b1 && b2);
    CHECK(a1 != b1);  // each process writes its own cell
    for (int i = 0; i < 3; i++) Update(AggregationKind::Sum, a1, {}, 1);
    for (int i = 0; i < 4; i++) Update(AggregationKind::Sum, b1, {}, 1);
    Update(AggregationKind::Sum, b2, {}, 5);
    double* ah = a.Cell(ha, Key("k", "1"));
    double* bh = b.Cell(hb, Key("k", "1"));
    REQUIRE(ah && bh);
    Update(AggregationKind::Histogram, ah, bounds, 0.5);
    Update(AggregationKind::Histogram, bh, bounds, 5);
    Update(AggregationKind::Histogram, bh, bounds, 50);
    std::vector<double> hist = Identity(AggregationKind::Histogram, 6);
    for (double v : {0.5, 5.0, 50.0}) Update(AggregationKind::Histogram, hist.data(), bounds, v);
    for (Proc* p : {&a, &b}) {
      auto s = p->Collect();
      CHECK_EQ(s.size(), 3u);
      const double k1 = s["c|" + Key("k", "1")][0], k2 = s["c|" + Key("k", "2")][0];
      CHECK_EQ(k1, 7.0);
      CHECK_EQ(k2, 5.0);  // made by b, a exports it too
      CHECK(s["h|" + Key("k", "1")] == hist);
    }
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_detached_process_is_folded_and_its_slabs_reused) {
  const std::string name = UniqueName("fold");
  {
    Proc a(name);
    a.Instrument("c", AggregationKind::Sum);
    a.Instrument("g", AggregationKind::LastValue);
    uint32_t procs = 0, slabs = 0, series = 0;
    for (int round = 1; round <= 20; round++) {
      Proc b(name);
      uint32_t cb = b.Instrument("c", AggregationKind::Sum);
      uint32_t gb = b.Instrument("g", AggregationKind::LastValue);
      double* c = b.Cell(cb, Key("k", "1"));
      double* g = b.Cell(gb, Key("k", "1"));
      REQUIRE(c && g);
      Update(AggregationKind::Sum, c, {}, 10);
      Update(AggregationKind::LastValue, g, {}, round);
      CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
      CHECK_EQ(procs, 2u);
      b.Release();  // as if the process died: the next collection folds it
      auto s = a.Collect();
      const double sum = s["c|" + Key("k", "1")][0], last = s["g|" + Key("k", "1")][0];
      CHECK_EQ(sum, 10.0 * round);                  // never goes back
      CHECK_EQ(last, static_cast<double>(round));  // the latest write
    }
    CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
    CHECK_EQ(procs, 1u);
    CHECK_EQ(slabs, 1u);  // the dead accumulators' slab; no slab of the 20 gone processes
    CHECK_EQ(series, 2u);
    a.Release();
  }
  Cleanup(name);
}

TEST(shared_thread_exit_folds_its_cells) {
  const std::string name = UniqueName("thread");
  {
    Proc a(name);
    uint32_t c = a.Instrument("c", AggregationKind::Sum);
    uint32_t t2 = a.map.RegisterArena();
    double* mine = a.Cell(c, Key("k", "1"));
    double* theirs = a.Cell(c, Key("k", "1"), 0, t2);
    REQUIRE(mine && theirs);
    Update(AggregationKind::Sum, mine, {}, 1);
    Update(AggregationKind::Sum, theirs, {}, 2);
    CHECK_EQ(a.First("c|" + Key("k", "1")), 3.0);
    a.map.RetireArena(t2);
    CHECK_EQ(a.First("c|" + Key("k", "1")), 3.0);
    Update(AggregationKind::Sum, mine, {}, 1);
    CHECK_EQ(a.First("c|" + Key("k", "1")), 4.0);
    uint32_t procs = 0, slabs = 0, series = 0;
    CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
    CHECK_EQ(slabs, 2u);  // a's thread's slab and the accumulators'; t2's went back
    a.Release();
  }
  Cleanup(name);
}

TEST(shared_cardinality_limit_counts_every_process) {
  const std::string name = UniqueName("limit");
  {
    Proc a(name), b(name);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    Acquired got;
    REQUIRE(a.Cell(ca, Key("k", "1"), 3, 0, &got));
    CHECK(!got.overflow);
    REQUIRE(b.Cell(cb, Key("k", "2"), 3, 0, &got));
    CHECK(!got.overflow);
    // Limit 3: two label sets and the overflow series, fleet-wide.
    REQUIRE(a.Cell(ca, Key("k", "3"), 3, 0, &got));
    CHECK(got.overflow);
    REQUIRE(b.Cell(cb, Key("k", "1"), 3, 0, &got));
    CHECK(!got.overflow);  // an existing series made by another process
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_identity_registered_first_decides_the_layout) {
  // b asks for a histogram of an identity a registered as a sum: b gets a's instrument
  // (its descriptor and cells), so both export one series with every process's counts.
  const std::string name = UniqueName("layout");
  {
    Proc a(name), b(name);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum);
    bool existed = false;
    uint32_t cb = b.map.RegisterInstrument("meter/c", MakeDesc("c", AggregationKind::Histogram, {1}), &existed, b.domain);
    CHECK(existed);
    Descriptor d;
    REQUIRE(b.map.GetDescriptor(cb, &d));
    CHECK(d.aggregation == AggregationKind::Sum);
    double* x = a.Cell(ca, Key("k", "1"));
    double* y = b.Cell(cb, Key("k", "1"));
    REQUIRE(x && y);
    Update(AggregationKind::Sum, x, {}, 2);
    Update(AggregationKind::Sum, y, {}, 3);
    CHECK_EQ(a.First("c|" + Key("k", "1")), 5.0);
    CHECK_EQ(b.First("c|" + Key("k", "1")), 5.0);
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_name_with_another_kind_records_nothing) {
  // Same scope and name, another kind: the segment's first one is every process's; the
  // later one is registered as Drop (records nothing, exported by no process).
  const std::string name = UniqueName("conflict");
  {
    Proc a(name), b(name);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum);
    Descriptor h = MakeDesc("C", AggregationKind::Histogram, {1});  // names are case-insensitive
    bool existed = false;
    uint32_t hb = b.map.RegisterInstrument("meter/C/histogram", h, &existed, b.domain);
    CHECK(existed);
    Descriptor d;
    REQUIRE(b.map.GetDescriptor(hb, &d));
    CHECK(d.aggregation == AggregationKind::Drop);
    CHECK(b.Cell(hb, Key("k", "1")) == nullptr);
    double* x = a.Cell(ca, Key("k", "1"));
    REQUIRE(x);
    Update(AggregationKind::Sum, x, {}, 2);
    for (Proc* p : {&a, &b}) {
      auto s = p->Collect();
      CHECK_EQ(s.size(), 1u);
      CHECK_EQ(s["c|" + Key("k", "1")][0], 2.0);
    }
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_instrument_table_full_records_nothing) {
  // Past the segment's instrument capacity a new identity is registered as Drop in every
  // process (none exports an instrument of its own); the ones registered keep working.
  const std::string name = UniqueName("full");
  {
    Proc a(name), b(name);
    for (uint32_t i = 0; i < SharedSegment::kMaxInstruments; i++) {
      REQUIRE(a.map.RegisterInstrument("meter/i" + std::to_string(i), MakeDesc("i" + std::to_string(i), AggregationKind::Sum), nullptr, a.domain));
    }
    for (Proc* p : {&a, &b}) {
      bool existed = false;
      uint32_t extra = p->map.RegisterInstrument("meter/extra", MakeDesc("extra", AggregationKind::Sum), &existed, p->domain);
      CHECK(existed);
      Descriptor d;
      REQUIRE(p->map.GetDescriptor(extra, &d));
      CHECK(d.aggregation == AggregationKind::Drop);
      CHECK(p->Cell(extra, Key("k", "1")) == nullptr);
    }
    uint32_t last = b.Instrument("i4095", AggregationKind::Sum);
    double* c = b.Cell(last, Key("k", "1"));
    REQUIRE(c);
    Update(AggregationKind::Sum, c, {}, 3);
    auto s = a.Collect();
    CHECK_EQ(s.size(), 1u);
    CHECK_EQ(s["i4095|" + Key("k", "1")][0], 3.0);
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_instrument_only_another_process_made_is_exported) {
  // b never registers a's instruments: its collection shows them, with a's descriptor.
  const std::string name = UniqueName("foreign");
  {
    Proc a(name), b(name);
    const std::vector<double> bounds{1, 10};
    Descriptor hd = MakeDesc("h", AggregationKind::Histogram, bounds);
    hd.unit = "s";
    hd.quantiles = {0.5, 0.9};
    hd.recordMinMax = false;
    hd.scopeName = "scope";
    uint32_t ha = a.map.RegisterInstrument("meter/h", hd, nullptr, a.domain);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum);
    double* h = a.Cell(ha, Key("k", "1"));
    double* c = a.Cell(ca, Key("k", "2"));
    REQUIRE(h && c);
    Update(AggregationKind::Histogram, h, bounds, 5);
    Update(AggregationKind::Sum, c, {}, 7);
    auto s = b.Collect();
    CHECK_EQ(s.size(), 2u);
    CHECK_EQ(s["c|" + Key("k", "2")][0], 7.0);
    std::vector<double> hist = Identity(AggregationKind::Histogram, 6);
    Update(AggregationKind::Histogram, hist.data(), bounds, 5);
    CHECK(s["h|" + Key("k", "1")] == hist);
    // The descriptor b exports it with is a's.
    CollectOptions o;
    o.domain = b.domain;
    std::vector<uint64_t> reclaimed;
    Descriptor seen;
    b.map.CollectPass(o, [&](const CheckpointView& v) { if (v.instrument->descriptor.name == "h") seen = v.instrument->descriptor; }, &reclaimed);
    CHECK(seen.unit == "s" && seen.scopeName == "scope" && seen.bounds == bounds);
    CHECK(seen.quantiles == hd.quantiles && !seen.recordMinMax && seen.kind == InstrumentKind::Histogram);
    CHECK(seen.description == hd.description);
    // Registering it later gives b the same instrument.
    bool existed = false;
    uint32_t hb = b.map.RegisterInstrument("meter/h", hd, &existed, b.domain);
    CHECK(existed);
    double* hb1 = b.Cell(hb, Key("k", "1"));
    REQUIRE(hb1);
    Update(AggregationKind::Histogram, hb1, bounds, 50);
    Update(AggregationKind::Histogram, hist.data(), bounds, 50);
    CHECK(a.Collect()["h|" + Key("k", "1")] == hist);
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_observable_series_is_fresh_in_every_pass_of_every_process) {
  // b never runs a's callbacks: a's observations must still be in each of b's reader's
  // passes (fresh), not only in the first one after they changed; a synchronous
  // counter's series is fresh only when it changed.
  const std::string name = UniqueName("observable");
  {
    Proc a(name), b(name);
    Descriptor od = MakeDesc("o", AggregationKind::PrecomputedSum);
    od.kind = InstrumentKind::ObservableCounter;
    Descriptor gd = MakeDesc("g", AggregationKind::LastValue);
    gd.kind = InstrumentKind::ObservableGauge;
    uint32_t oa = a.map.RegisterInstrument("meter/o", od, nullptr, a.domain);
    uint32_t ga = a.map.RegisterInstrument("meter/g", gd, nullptr, a.domain);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum);
    double* o = a.Cell(oa, Key("k", "1"));
    double* g = a.Cell(ga, Key("k", "1"));
    double* c = a.Cell(ca, Key("k", "1"));
    REQUIRE(o && g && c);
    o[0] = 7;  // an observation: [value, stamp]
    o[1] = 1000;
    g[0] = 21.5;
    g[1] = 1000;
    Update(AggregationKind::Sum, c, {}, 1);
    uint64_t readerEpoch = 0;
    for (int pass = 0; pass < 3; pass++) {
      CollectOptions opts;
      opts.domain = b.domain;
      opts.readerEpoch = readerEpoch;
      std::vector<uint64_t> reclaimed;
      std::map<std::string, std::pair<bool, double>> seen;  // name -> fresh, state[0]
      readerEpoch = b.map.CollectPass(
          opts, [&](const CheckpointView& v) { seen[v.instrument->descriptor.name] = {v.fresh, v.state[0]}; }, &reclaimed);
      CHECK_EQ(seen.size(), 3u);
      CHECK(seen["o"].first);
      CHECK(seen["g"].first);
      CHECK_EQ(seen["o"].second, 7.0);
      CHECK_EQ(seen["g"].second, 21.5);
      CHECK_EQ(seen["c"].first, pass == 0);
    }
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

// An observation as a callback writes it: [value, stamp].
void Observe(double* cell, double value, double stamp) {
  cell[0] = value;
  cell[1] = stamp;
}

TEST(shared_gone_process_level_is_dropped_others_folded) {
  // Three processes observe their own level of an observable up-down counter (q), and
  // an observable counter (o), a gauge (g) and add to an up-down counter (u). One goes
  // (detaches, as a dead process is reaped), then a thread of another exits: their q
  // levels leave the sum, every other kind keeps what they wrote.
  const std::string name = UniqueName("level");
  {
    Proc a(name), b(name), c(name);
    const std::string k = Key("k", "1");
    std::map<char, double*> qa, qb, qc;
    for (auto [p, cells] : {std::pair{&a, &qa}, std::pair{&b, &qb}, std::pair{&c, &qc}}) {
      (*cells)['q'] = p->Cell(p->Of("q", InstrumentKind::ObservableUpDownCounter), k);
      (*cells)['o'] = p->Cell(p->Of("o", InstrumentKind::ObservableCounter), k);
      (*cells)['g'] = p->Cell(p->Of("g", InstrumentKind::ObservableGauge), k);
      (*cells)['u'] = p->Cell(p->Of("u", InstrumentKind::UpDownCounter), k);
      for (char x : {'q', 'o', 'g', 'u'}) REQUIRE((*cells)[x] != nullptr);
    }
    Observe(qa['q'], 2, 1000);
    Observe(qb['q'], 30, 1000);
    Observe(qc['q'], 400, 1000);
    Observe(qa['o'], 1, 1000);
    Observe(qb['o'], 10, 1000);
    Observe(qc['o'], 100, 1000);
    Observe(qa['g'], 1, 1000);
    Observe(qb['g'], 2, 3000);
    Observe(qc['g'], 3, 2000);
    Update(AggregationKind::Sum, qa['u'], {}, 1);
    Update(AggregationKind::Sum, qb['u'], {}, 10);
    auto s = a.Collect();
    CHECK_EQ(s["q|" + k][0], 432.0);
    CHECK_EQ(s["o|" + k][0], 111.0);
    CHECK_EQ(s["g|" + k][0], 2.0);
    CHECK_EQ(s["u|" + k][0], 11.0);
    b.Release();  // as if it died
    s = c.Collect();
    CHECK_EQ(s["q|" + k][0], 402.0);  // b's level went with it
    CHECK_EQ(s["o|" + k][0], 111.0);  // folded: never goes back
    CHECK_EQ(s["g|" + k][0], 2.0);    // folded: still the latest observation
    CHECK_EQ(s["u|" + k][0], 11.0);   // folded: its adds are the fleet's level
    CHECK_EQ(s.size(), 4u);
    // A thread of c observes too, then exits: its level goes, c's main thread's stays.
    const uint32_t t2 = c.map.RegisterArena();
    double* q2 = c.Cell(c.Of("q", InstrumentKind::ObservableUpDownCounter), k, 0, t2);
    double* o2 = c.Cell(c.Of("o", InstrumentKind::ObservableCounter), k, 0, t2);
    REQUIRE(q2 && o2);
    Observe(q2, 5000, 4000);
    Observe(o2, 1000, 4000);
    CHECK_EQ(a.First("q|" + k), 5402.0);
    c.map.RetireArena(t2);
    s = a.Collect();
    CHECK_EQ(s["q|" + k][0], 402.0);
    CHECK_EQ(s["o|" + k][0], 1111.0);
    c.Release();
    a.Release();
    // No live process observed it: the series stays, at 0 (a new one adds to nothing).
    Proc d(name);
    s = d.Collect();
    CHECK_EQ(s.size(), 4u);
    CHECK_EQ(s["q|" + k][0], 0.0);
    CHECK_EQ(s["o|" + k][0], 1111.0);
    CHECK_EQ(s["u|" + k][0], 11.0);
    double* qd = d.Cell(d.Of("q", InstrumentKind::ObservableUpDownCounter), k);
    REQUIRE(qd);
    Observe(qd, 7, 5000);
    CHECK_EQ(d.First("q|" + k), 7.0);
    d.Release();
  }
  Cleanup(name);
}

TEST(shared_descriptor_encoding_round_trips) {
  Descriptor d = MakeDesc("x", AggregationKind::ExponentialHistogram);
  d.scopeVersion = "1.2";
  d.scopeSchemaUrl = "https://example.com/s";
  d.valueType = ValueType::Int;
  d.monotonic = true;
  d.maxSize = 80;
  d.maxScale = 5;
  d.relativeAccuracy = 0.02;
  d.quantiles = {0.99};
  const std::string bytes = EncodeDescriptor(d);
  Descriptor back;
  REQUIRE(DecodeDescriptor(bytes, &back));
  CHECK(back.name == d.name && back.description == d.description && back.unit == d.unit);
  CHECK(back.scopeVersion == d.scopeVersion && back.scopeSchemaUrl == d.scopeSchemaUrl);
  CHECK(back.valueType == d.valueType && back.monotonic && back.maxSize == 80u && back.maxScale == 5);
  CHECK(back.relativeAccuracy == 0.02 && back.quantiles == d.quantiles && back.aggregation == d.aggregation);
  CHECK(!DecodeDescriptor(bytes.substr(0, bytes.size() - 1), &back));
  CHECK(!DecodeDescriptor(bytes + "x", &back));
}

TEST(shared_push_lease_one_holder_until_it_exits) {
  // One holder of a fleet's push lease at a time (each RecordMap here opens the lease file
  // on its own, as a process would); released with the domain or by the holder's death,
  // SIGKILL included, and then taken by the next one that asks.
  const std::string name = UniqueName("lease");
  {
    Proc a(name);
    Proc b(name);
    CHECK(a.map.PushLeader(a.domain));
    CHECK(a.map.PushLeader(a.domain));  // kept
    CHECK(!b.map.PushLeader(b.domain));
    CHECK(!a.map.PushLeader(a.domain + 1000));  // not a shared domain
    a.Release();
    CHECK(b.map.PushLeader(b.domain));
    b.Release();
    const std::string path = SharedSegment::PathFor(name);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    const pid_t pid = fork();
    if (pid == 0) {
      auto* lease = new PushLease();  // held until the kill
      const char ok = lease->TryHold(path) ? '1' : '0';
      if (write(ready[1], &ok, 1) != 1) _exit(2);
      for (;;) pause();
    }
    REQUIRE(pid > 0);
    char ok = 0;
    REQUIRE(read(ready[0], &ok, 1) == 1);
    CHECK(ok == '1');
    PushLease mine;
    CHECK(!mine.TryHold(path));
    kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(mine.TryHold(path));
    close(ready[0]);
    close(ready[1]);
  }
  Cleanup(name);
  struct stat st;
  CHECK(stat(PushLease::PathFor(SharedSegment::PathFor(name)).c_str(), &st) != 0);  // removed with the segment
}

TEST(shared_forked_process_killed) {
  // A real process that writes and then dies without detaching (as SIGKILL leaves it):
  // what it wrote is kept, its slot and slab are reclaimed.
  const std::string name = UniqueName("fork");
  {
    Proc a(name);
    uint32_t c = a.Instrument("c", AggregationKind::Sum);
    double* mine = a.Cell(c, Key("k", "1"));
    REQUIRE(mine);
    Update(AggregationKind::Sum, mine, {}, 1);
    for (int child = 0; child < 3; child++) {
      const pid_t pid = fork();
      if (pid == 0) {
        auto* p = new Proc(name);  // never destroyed: the process just ends
        double* cell = p->Cell(p->Instrument("c", AggregationKind::Sum), Key("k", "1"));
        if (cell == nullptr) _exit(2);
        for (int i = 0; i < 1000; i++) cell[0] += 1;
        _exit(0);
      }
      REQUIRE(pid > 0);
      int status = 0;
      REQUIRE(waitpid(pid, &status, 0) == pid);
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      CHECK_EQ(a.First("c|" + Key("k", "1")), 1.0 + 1000.0 * (child + 1));
    }
    uint32_t procs = 0, slabs = 0, series = 0;
    CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
    CHECK_EQ(procs, 1u);
    CHECK_EQ(slabs, 2u);
    a.Release();
  }
  Cleanup(name);
}

TEST(shared_exemplars_are_fleet_wide) {
  // An exemplar one process records on a shared series is exported by every process's
  // collection; per slot the latest wins, whichever process (or thread) wrote it; a
  // thread's exit and a process's detach keep theirs exported.
  const std::string name = UniqueName("exemplar");
  {
    Proc a(name), b(name);
    const std::vector<double> bounds{1, 10};
    uint32_t ha = a.Instrument("h", AggregationKind::Histogram, bounds);
    uint32_t hb = b.Instrument("h", AggregationKind::Histogram, bounds);
    uint32_t ca = a.Instrument("c", AggregationKind::Sum);
    const std::string hk = "h|" + Key("k", "1"), ck = "c|" + Key("k", "1");
    double* ea = a.Exemplar(ha, Key("k", "1"));
    double* eca = a.Exemplar(ca, Key("k", "1"));
    REQUIRE(ea && eca);
    PutExemplar(ea, 0, 50, 0.5, 3);
    PutExemplar(ea, 1, 100, 5, 7);
    PutExemplar(eca, 0, 60, 2, 9);
    for (Proc* p : {&a, &b}) {
      const Ex got = p->Exemplars(hk);
      CHECK(Slot(got, 0) == Ex({50, 0.5, 3}));
      CHECK(Slot(got, 1) == Ex({100, 5, 7}));
      CHECK(Slot(got, 2) == Ex({0, 0, 0}));  // empty
      CHECK(Slot(p->Exemplars(ck), 0) == Ex({60, 2, 9}));  // b never registered c
    }
    // b's newer exemplar replaces a's in its slot only; a's older write loses to it.
    double* eb = b.Exemplar(hb, Key("k", "1"));
    REQUIRE(eb && eb != ea);
    PutExemplar(eb, 1, 200, 6, 8);
    PutExemplar(eb, 0, 40, 0.25, 4);  // older than a's: a's stays
    for (Proc* p : {&a, &b}) {
      const Ex got = p->Exemplars(hk);
      CHECK(Slot(got, 0) == Ex({50, 0.5, 3}));
      CHECK(Slot(got, 1) == Ex({200, 6, 8}));
    }
    // A thread of b that exits: its exemplar is folded and stays, for a too.
    uint32_t t2 = b.map.RegisterArena();
    double* et = b.Exemplar(hb, Key("k", "1"), t2);
    REQUIRE(et && et != eb);
    PutExemplar(et, 2, 300, 50, 5);
    b.map.RetireArena(t2);
    CHECK(Slot(a.Exemplars(hk), 2) == Ex({300, 50, 5}));
    // a leaves: its exemplars stay exported by b (folded by b's reap).
    a.Release();
    for (int pass = 0; pass < 2; pass++) {
      const Ex got = b.Exemplars(hk);
      CHECK(Slot(got, 0) == Ex({50, 0.5, 3}));
      CHECK(Slot(got, 1) == Ex({200, 6, 8}));
      CHECK(Slot(got, 2) == Ex({300, 50, 5}));
      CHECK(Slot(b.Exemplars(ck), 0) == Ex({60, 2, 9}));
    }
    // A newer one replaces a folded one.
    PutExemplar(eb, 0, 400, 0.75, 6);
    CHECK(Slot(b.Exemplars(hk), 0) == Ex({400, 0.75, 6}));
    // Removed: the series made by a later write starts with no exemplar, and a write
    // through the removed series' cell reaches no export.
    CHECK(b.map.Remove(hb, Key("k", "1")) != 0);
    PutExemplar(eb, 1, 500, 7, 9);
    REQUIRE(b.Cell(hb, Key("k", "1")) != nullptr);
    CHECK(b.Exemplars(hk).empty());
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_forked_process_killed_keeps_its_exemplar) {
  // A real process records an exemplar and is SIGKILLed: the others keep exporting it
  // (its cell is folded when it is reaped) until a newer one replaces it.
  const std::string name = UniqueName("exkill");
  {
    Proc a(name);
    const std::vector<double> bounds{1, 10};
    uint32_t h = a.Instrument("h", AggregationKind::Histogram, bounds);
    const std::string hk = "h|" + Key("k", "1");
    double* mine = a.Exemplar(h, Key("k", "1"));
    REQUIRE(mine);
    PutExemplar(mine, 0, 10, 0.5, 1);
    const pid_t pid = fork();
    if (pid == 0) {
      auto* p = new Proc(name);  // never destroyed: the process is killed
      double* e = p->Exemplar(p->Instrument("h", AggregationKind::Histogram, bounds), Key("k", "1"));
      if (e == nullptr) _exit(2);
      PutExemplar(e, 1, 20, 5, 2);
      PutExemplar(e, 0, 5, 0.1, 3);  // older than a's
      kill(getpid(), SIGKILL);
      _exit(3);
    }
    REQUIRE(pid > 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (int pass = 0; pass < 2; pass++) {  // the first pass reaps it, the second reads the fold
      const Ex got = a.Exemplars(hk);
      CHECK(Slot(got, 0) == Ex({10, 0.5, 1}));
      CHECK(Slot(got, 1) == Ex({20, 5, 2}));
    }
    uint32_t procs = 0, slabs = 0, series = 0;
    CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
    CHECK_EQ(procs, 1u);  // reaped
    CHECK_EQ(slabs, 2u);  // a's and the permanent one: the child's went back
    PutExemplar(mine, 1, 30, 6, 4);
    CHECK(Slot(a.Exemplars(hk), 1) == Ex({30, 6, 4}));
    a.Release();
  }
  Cleanup(name);
}

TEST(shared_exemplar_cell_without_room_is_refused_as_no_room) {
  // A thread's first exemplar of a shared series needs a node and room in a slab of the
  // segment. Without it, ExemplarCell says "no room" (JS drops the exemplar with a
  // diagnostic); the measurement's own cell is untouched. Another mapping of the segment
  // (a "process") takes every node, then every slab.
  const std::string name = UniqueName("exroom");
  {
    Proc a(name);
    const uint32_t c = a.Instrument("c", AggregationKind::Sum);
    Acquired acq;
    double* cell = a.Cell(c, Key("k", "1"), 0, 0, &acq);
    Acquired other;
    REQUIRE(cell && a.Cell(c, Key("k", "2"), 0, 0, &other));
    uint32_t slab = 0, offset = 0, slots = 0;
    bool noRoom = false;
    std::string error;
    std::unique_ptr<SharedSegment> filler = SharedSegment::Open(name, &error);
    REQUIRE(filler && filler->Attach());
    uint64_t series2 = 0;
    uint32_t fillerSlab = 0;
    {
      SharedSegment::Guard g(filler.get());
      series2 = filler->FindSeriesLocked(filler->FindInstrumentLocked("meter/c"), Key("k", "2"));
      fillerSlab = filler->AcquireSlabLocked();
      REQUIRE(series2 != 0 && fillerSlab != SharedSegment::kNoSlab);
      while (filler->LinkCellLocked(series2, fillerSlab, 0)) {
      }
    }
    CHECK(!a.map.ExemplarCell(a.arena, acq.recordId, &slab, &offset, &slots, &noRoom));
    CHECK(noRoom);
    Update(AggregationKind::Sum, cell, {}, 3);  // the measurement is still recorded
    CHECK_EQ(a.First("c|" + Key("k", "1")), 3.0);
    {
      SharedSegment::Guard g(filler.get());
      CHECK(filler->RemoveSeriesLocked(series2));  // its nodes go back
    }
    CHECK(a.map.ExemplarCell(a.arena, acq.recordId, &slab, &offset, &slots, &noRoom));
    CHECK(!noRoom);
    CHECK_EQ(slots, 1u);
    // No slab left: a thread that has none of the segment yet finds no room.
    {
      SharedSegment::Guard g(filler.get());
      while (filler->AcquireSlabLocked() != SharedSegment::kNoSlab) {
      }
    }
    const uint32_t t2 = a.map.RegisterArena();
    CHECK(!a.map.ExemplarCell(t2, acq.recordId, &slab, &offset, &slots, &noRoom));
    CHECK(noRoom);
    // Refused for another reason (the record of a removed series): not "no room".
    CHECK(!a.map.ExemplarCell(a.arena, other.recordId, &slab, &offset, &slots, &noRoom));
    CHECK(!noRoom);
    Update(AggregationKind::Sum, cell, {}, 1);
    CHECK_EQ(a.First("c|" + Key("k", "1")), 4.0);
    filler->Detach();
    a.map.RetireArena(t2);
    a.Release();
  }
  Cleanup(name);
}

TEST(shared_segment_lock_is_free_while_a_pass_visits) {
  // A collection holds the segment's mutex only while it sums the shared series, not
  // while its visitor runs (a scrape's copy and serialization): other processes' record
  // creation does not wait for it.
  const std::string name = UniqueName("lockscope");
  {
    Proc a(name);
    uint32_t c = a.Instrument("c", AggregationKind::Sum);
    for (int k = 0; k < 3; k++) Update(AggregationKind::Sum, a.Cell(c, Key("k", std::to_string(k))), {}, k + 1);
    std::string error;
    std::unique_ptr<SharedSegment> other = SharedSegment::Open(name, &error);
    REQUIRE(other != nullptr);
    CollectOptions o;
    o.domain = a.domain;
    std::vector<uint64_t> reclaimed;
    int visited = 0, free = 0;
    double total = 0;
    a.map.CollectPass(
        o,
        [&](const CheckpointView& v) {
          visited++;
          total += v.state[0];
          if (other->TryLock()) {
            free++;
            other->Unlock();
          }
        },
        &reclaimed);
    CHECK_EQ(visited, 3);
    CHECK_EQ(free, 3);
    CHECK_EQ(total, 6.0);
    a.Release();
  }
  Cleanup(name);
}

int g_killAt = 0;
void KillAtStep(int step) {
  if (step == g_killAt) raise(SIGKILL);
}

// Forks a process that runs child(arm): it sets itself up, calls arm() (from then on the
// segment's step hook SIGKILLs it at `step`) and does what is to be killed; it exits 2 if
// its setup failed, 3 if it outlived the step. Checks that it died by SIGKILL.
template <typename Child>
void KilledAtStep(int step, Child child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child([step] {
      g_killAt = step;
      SharedSegment::foldStepHook = KillAtStep;
    });
    _exit(3);
  }
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(shared_holder_killed_mid_fold_counts_the_cell_once) {
  // A real process folds its exiting thread's cell and is SIGKILLed at each step of the
  // fold in turn, holding the lock: the next locker undoes or finishes the fold, so the
  // cell is counted exactly once and the series chain stays sound.
  for (int step = 1; step <= 5; step++) {
    const std::string name = UniqueName("journal");
    {
      Proc a(name);
      uint32_t c = a.Instrument("c", AggregationKind::Sum);
      double* mine = a.Cell(c, Key("k", "1"));
      REQUIRE(mine);
      Update(AggregationKind::Sum, mine, {}, 5);
      KilledAtStep(step, [&](const auto& arm) {
        auto* p = new Proc(name);  // never destroyed: the process is killed
        const uint32_t t2 = p->map.RegisterArena();
        double* cell = p->Cell(p->Instrument("c", AggregationKind::Sum), Key("k", "1"), 0, t2);
        if (cell == nullptr) _exit(2);
        cell[0] += 7;
        arm();
        p->map.RetireArena(t2);  // folds t2's cell: killed at `step`
      });
      CHECK_EQ(a.First("c|" + Key("k", "1")), 12.0);
      Update(AggregationKind::Sum, mine, {}, 1);
      CHECK_EQ(a.First("c|" + Key("k", "1")), 13.0);
      uint32_t procs = 0, slabs = 0, series = 0;
      CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
      CHECK_EQ(procs, 1u);
      CHECK_EQ(slabs, 2u);  // a's and the accumulators'; the killed process's went back
      a.Release();
    }
    Cleanup(name);
  }
}

TEST(shared_holder_killed_mid_level_drop_drops_the_cell_once) {
  // A real process drops its exiting thread's level cell (an observable up-down
  // counter's) and is SIGKILLed at each step of the drop in turn, holding the lock: the
  // next locker's reap drops what is left of the killed process, the chain stays sound,
  // nothing is folded (no dead accumulator is ever made) and the live level stays.
  for (int step = 31; step <= 33; step++) {
    const std::string name = UniqueName("drop");
    {
      Proc a(name);
      double* mine = a.Cell(a.Of("q", InstrumentKind::ObservableUpDownCounter), Key("k", "1"));
      REQUIRE(mine);
      Observe(mine, 5, 1000);
      KilledAtStep(step, [&](const auto& arm) {
        auto* p = new Proc(name);  // never destroyed: the process is killed
        const uint32_t q = p->Of("q", InstrumentKind::ObservableUpDownCounter);
        const uint32_t t2 = p->map.RegisterArena();
        double* own = p->Cell(q, Key("k", "1"));
        double* cell = p->Cell(q, Key("k", "1"), 0, t2);
        if (own == nullptr || cell == nullptr) _exit(2);
        Observe(own, 20, 2000);
        Observe(cell, 300, 2000);
        if (p->First("q|" + Key("k", "1")) != 325.0) _exit(4);
        arm();
        p->map.RetireArena(t2);  // drops t2's cell: killed at `step`
      });
      CHECK_EQ(a.First("q|" + Key("k", "1")), 5.0);
      Observe(mine, 6, 3000);
      CHECK_EQ(a.First("q|" + Key("k", "1")), 6.0);
      uint32_t procs = 0, slabs = 0, series = 0;
      CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
      CHECK_EQ(procs, 1u);
      CHECK_EQ(slabs, 1u);  // a's only: the killed process's went back, no accumulator was made
      a.Release();
    }
    Cleanup(name);
  }
}

TEST(shared_holder_killed_mid_exemplar_fold_keeps_the_latest) {
  // A real process folds its exiting thread's exemplar cell over an older folded
  // exemplar and is SIGKILLed at each step of the fold in turn, holding the lock: every
  // slot still shows its latest exemplar whole (never a mix of the two), and stays so.
  for (int step = 21; step <= 23; step++) {
    const std::string name = UniqueName("exjournal");
    {
      Proc a(name);
      const std::vector<double> bounds{1, 10};
      uint32_t h = a.Instrument("h", AggregationKind::Histogram, bounds);
      const std::string hk = "h|" + Key("k", "1");
      const uint32_t t0 = a.map.RegisterArena();
      double* old = a.Exemplar(h, Key("k", "1"), t0);
      REQUIRE(old);
      PutExemplar(old, 0, 10, 1, 1);
      a.map.RetireArena(t0);  // into the dead exemplar area
      KilledAtStep(step, [&](const auto& arm) {
        auto* p = new Proc(name);  // never destroyed: the process is killed
        const uint32_t t2 = p->map.RegisterArena();
        double* e = p->Exemplar(p->Instrument("h", AggregationKind::Histogram, bounds), Key("k", "1"), t2);
        if (e == nullptr) _exit(2);
        PutExemplar(e, 0, 20, 2, 2);
        PutExemplar(e, 1, 30, 3, 3);
        arm();
        p->map.RetireArena(t2);  // folds t2's exemplar cell: killed at `step`
      });
      for (int pass = 0; pass < 2; pass++) {  // the first pass reaps the killed process
        const Ex got = a.Exemplars(hk);
        CHECK(Slot(got, 0) == Ex({20, 2, 2}));
        CHECK(Slot(got, 1) == Ex({30, 3, 3}));
        CHECK(Slot(got, 2) == Ex({0, 0, 0}));
      }
      double* mine = a.Exemplar(h, Key("k", "1"));
      REQUIRE(mine);
      PutExemplar(mine, 0, 40, 4, 4);
      CHECK(Slot(a.Exemplars(hk), 0) == Ex({40, 4, 4}));
      uint32_t procs = 0, slabs = 0, series = 0;
      CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series));
      CHECK_EQ(procs, 1u);
      CHECK_EQ(slabs, 2u);  // a's and the permanent one; the killed process's went back
      a.Release();
    }
    Cleanup(name);
  }
}

TEST(shared_stress_processes_write_and_collect_concurrently) {
  // P "processes", each with W writer threads (own arenas) and a collector thread that
  // checks no series goes back; one more process joins and leaves repeatedly. Totals exact.
  const std::string name = UniqueName("stress");
  const int P = 3, W = 2, L = 16;
  const int N = static_cast<int>(20000 * g_scale);
  {
    Fleet fleet(name, P);
    auto& ps = fleet.ps;
    auto& inst = fleet.inst;
    std::atomic<bool> done{false};
    std::atomic<long> wentBack{0};
    std::vector<std::thread> collectors;
    for (int p = 0; p < P; p++) {
      collectors.emplace_back([&, p] {
        std::map<std::string, double> last;
        while (!done.load()) {
          for (auto& [k, v] : ps[p]->Collect()) {
            if (v[0] < last[k]) wentBack++;
            last[k] = v[0];
          }
        }
      });
    }
    std::vector<std::thread> writers;
    std::vector<uint32_t> arenas;
    for (int p = 0; p < P; p++) {
      for (int w = 0; w < W; w++) {
        const uint32_t ar = ps[p]->map.RegisterArena();
        writers.emplace_back([&, p, ar] {
          std::vector<double*> cells;
          for (int l = 0; l < L; l++) cells.push_back(ps[p]->Cell(inst[p], Key("k", std::to_string(l)), 0, ar));
          for (int i = 0; i < N; i++) AddRelaxed(*cells[i % L], 1);
          ps[p]->map.RetireArena(ar);  // the thread exits
        });
      }
    }
    std::thread churn([&] {
      for (int r = 0; r < 10; r++) {
        Proc q(name);
        double* cell = q.Cell(q.Instrument("c", AggregationKind::Sum), Key("k", "0"));
        if (cell != nullptr) AddRelaxed(*cell, 1);
        q.Release();
      }
    });
    for (auto& t : writers) t.join();
    churn.join();
    done = true;
    for (auto& t : collectors) t.join();
    CHECK_EQ(wentBack.load(), 0L);
    for (int p = 0; p < P; p++) {
      auto s = ps[p]->Collect();
      for (int l = 0; l < L; l++) {
        const double expect = static_cast<double>(P * W) * (N / L + (l < N % L ? 1 : 0)) + (l == 0 ? 10 : 0);
        const double got = s["c|" + Key("k", std::to_string(l))][0];
        CHECK_EQ(got, expect);
      }
    }
    fleet.Release();
  }
  Cleanup(name);
}

TEST(shared_remove_while_other_processes_write_and_collect) {
  // Process b's W writer threads write series k=0 and k=1 through cells acquired before;
  // a and b collect all along; a removes k=0 in the middle. No collection after the
  // removal shows k=0, k=1 stays exact, the writers' references are drained, and a later
  // write (either process) starts a new series from zero: the old cells, still written,
  // are never summed into it. Then clear() from b removes a series only a made.
  const std::string name = UniqueName("remove");
  const int W = 2;
  const int N = static_cast<int>(20000 * g_scale);
  {
    Proc a(name), b(name);
    const uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    const std::string k0 = "c|" + Key("k", "0"), k1 = "c|" + Key("k", "1");
    double* a0 = a.Cell(ca, Key("k", "0"));
    REQUIRE(a0 != nullptr);
    Update(AggregationKind::Sum, a0, {}, 5);
    std::vector<uint32_t> arenas;
    std::vector<double*> cells0, cells1;
    uint64_t oldId = 0;
    for (int w = 0; w < W; w++) {
      arenas.push_back(b.map.RegisterArena());
      Acquired got;
      cells0.push_back(b.Cell(cb, Key("k", "0"), 0, arenas.back(), &got));
      oldId = got.recordId;
      cells1.push_back(b.Cell(cb, Key("k", "1"), 0, arenas.back()));
      REQUIRE(cells0.back() && cells1.back());
    }
    std::atomic<int> started{0};
    std::atomic<bool> removed{false}, done{false};
    std::atomic<long> seenAfter{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < W; w++) {
      writers.emplace_back([&, w] {
        for (int i = 0; i < N; i++) {
          AddRelaxed(*cells0[w], 1);
          AddRelaxed(*cells1[w], 1);
          if (i == N / 4) started++;
        }
      });
    }
    std::vector<std::thread> collectors;
    for (Proc* p : {&a, &b}) {
      collectors.emplace_back([&, p] {
        while (!done.load()) {
          const bool after = removed.load();
          if (after && p->Collect().count(k0) > 0) seenAfter++;
          if (!after) p->Collect();
        }
      });
    }
    while (started.load() < W) std::this_thread::yield();
    CHECK(a.map.Remove(ca, Key("k", "0")) != 0);
    removed = true;
    for (auto& t : writers) t.join();
    done = true;
    for (auto& t : collectors) t.join();
    CHECK_EQ(seenAfter.load(), 0L);
    for (Proc* p : {&a, &b}) {
      auto s = p->Collect();
      CHECK_EQ(s.count(k0), 0u);
      const double v1 = s[k1][0];
      CHECK_EQ(v1, static_cast<double>(W) * N);
    }
    // Each writer's cached reference of the removed record is drained.
    for (uint32_t ar : arenas) {
      std::vector<uint64_t> stale;
      b.map.DrainStale(ar, &stale);
      CHECK(std::find(stale.begin(), stale.end(), oldId) != stale.end());
    }
    // A new series: only what is written after. Old cells written again count nowhere.
    Acquired fresh;
    double* n0 = b.Cell(cb, Key("k", "0"), 0, arenas[0], &fresh);
    REQUIRE(n0 != nullptr);
    CHECK(fresh.recordId != oldId);
    CHECK(n0 != cells0[0]);
    Update(AggregationKind::Sum, n0, {}, 3);
    AddRelaxed(*cells0[1], 100);
    Update(AggregationKind::Sum, a0, {}, 100);
    CHECK_EQ(a.First(k0), 3.0);
    double* a0new = a.Cell(ca, Key("k", "0"));
    REQUIRE(a0new != nullptr);
    CHECK(a0new != a0);
    Update(AggregationKind::Sum, a0new, {}, 2);
    CHECK_EQ(a.First(k0), 5.0);
    CHECK_EQ(b.First(k0), 5.0);
    // clear() from b: also a series only a made (b has not collected since).
    double* a2 = a.Cell(ca, Key("k", "2"));
    REQUIRE(a2 != nullptr);
    Update(AggregationKind::Sum, a2, {}, 1);
    std::vector<uint64_t> ids;
    b.map.RemoveAll(cb, &ids);
    CHECK(a.Collect().empty());
    CHECK(b.Collect().empty());
    for (uint32_t ar : arenas) b.map.RetireArena(ar);  // the writer threads exit
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_expiry_removes_idle_unreferenced_series_fleet_wide) {
  // a expires (reclaimBefore: everything delivered, idle long enough) a counter series both
  // wrote and let go of: gone from a's and b's passes, its nodes and cells freed (b's cell
  // is reused for its next cell), a later write a new series from zero. Not expired: a
  // series a thread of b still references (until b lets go), an up-down counter's and an
  // observable counter's series.
  const std::string name = UniqueName("expire");
  {
    Proc a(name), b(name);
    const uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    const uint32_t ua = a.Of("u", InstrumentKind::UpDownCounter), ub = b.Of("u", InstrumentKind::UpDownCounter);
    const uint32_t oa = a.Of("o", InstrumentKind::ObservableCounter);
    const std::string k1 = "c|" + Key("k", "1"), k2 = "c|" + Key("k", "2"), u1 = "u|" + Key("k", "1"),
                      o1 = "o|" + Key("k", "1");
    const uint32_t nodes0 = a.Nodes();
    Acquired got;
    double* a1 = a.Cell(ca, Key("k", "1"), 0, 0, &got);
    REQUIRE(a1);
    Update(AggregationKind::Sum, a1, {}, 2);
    CHECK(a.map.Release(got.recordId, a.arena));
    double* b1 = b.Cell(cb, Key("k", "1"), 0, 0, &got);
    REQUIRE(b1);
    Update(AggregationKind::Sum, b1, {}, 3);
    CHECK(b.map.Release(got.recordId, b.arena));
    Acquired held;
    double* b2 = b.Cell(cb, Key("k", "2"), 0, 0, &held);  // b keeps this reference
    REQUIRE(b2);
    Update(AggregationKind::Sum, b2, {}, 4);
    for (auto [inst, p] : {std::pair{ua, &a}, std::pair{ub, &b}}) {
      double* u = p->Cell(inst, Key("k", "1"), 0, 0, &got);
      REQUIRE(u);
      Update(AggregationKind::Sum, u, {}, 1);
      CHECK(p->map.Release(got.recordId, p->arena));
    }
    double* o = a.Cell(oa, Key("k", "1"), 0, 0, &got);
    REQUIRE(o);
    Observe(o, 7, 1000);
    CHECK(a.map.Release(got.recordId, a.arena));
    CHECK_EQ(a.Nodes(), nodes0 + 6);  // c k=1 twice, c k=2, u k=1 twice, o k=1

    std::vector<uint64_t> reclaimed;
    auto s = a.Expire(&reclaimed);  // first sight: exported, whatever it holds
    CHECK(reclaimed.empty());
    CHECK_EQ(s[k1], 5.0);
    s = a.Expire(&reclaimed);  // idle, unreferenced: c k=1 expires
    CHECK_EQ(reclaimed.size(), 1u);
    CHECK_EQ(s.count(k1), 0u);
    CHECK_EQ(s[k2], 4.0);
    CHECK_EQ(s[u1], 2.0);
    CHECK_EQ(s[o1], 7.0);
    CHECK_EQ(a.Nodes(), nodes0 + 4);
    auto sb = b.Collect();
    CHECK_EQ(sb.count(k1), 0u);  // b dropped its record at its sync
    CHECK_EQ(sb.size(), 3u);
    // Referenced by b: stays however often a expires; let go: expires.
    for (int pass = 0; pass < 3; pass++) CHECK_EQ(a.Expire(&reclaimed).count(k2), 1u);
    CHECK_EQ(reclaimed.size(), 1u);
    CHECK(b.map.Release(held.recordId, b.arena));
    CHECK_EQ(a.Expire(&reclaimed).count(k2), 0u);
    CHECK_EQ(reclaimed.size(), 2u);
    CHECK_EQ(a.Nodes(), nodes0 + 3);
    CHECK_EQ(b.Collect().count(k2), 0u);
    // A write after: a new series, from zero. b's freed cell is reused for it (initialised).
    double* again = b.Cell(cb, Key("k", "1"));
    REQUIRE(again);
    CHECK(again == b1 || again == b2);
    CHECK_EQ(again[0], 0.0);
    Update(AggregationKind::Sum, again, {}, 6);
    CHECK_EQ(a.First(k1), 6.0);
    CHECK_EQ(b.First(k1), 6.0);
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_expiry_rechecks_the_fleet_under_the_lock_at_removal) {
  // The pass sums shared states early and lets go of the segment lock. Between that and
  // its removal of an idle series, another process writes it (acquire, write, release),
  // or takes a reference and keeps it: the series is not expired (the write is not lost;
  // the reference never writes into a removed series). The visitor of an earlier
  // instrument's record does it, inside a's pass.
  const std::string name = UniqueName("recheck");
  {
    Proc a(name), b(name);
    const uint32_t firstA = a.Instrument("first", AggregationKind::Sum);
    const uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    const std::string k1 = "c|" + Key("k", "1");
    Acquired keep;
    REQUIRE(a.Cell(firstA, Key("k", "0"), 0, 0, &keep));  // referenced: visited in every pass
    Acquired got;
    double* a1 = a.Cell(ca, Key("k", "1"), 0, 0, &got);
    REQUIRE(a1);
    Update(AggregationKind::Sum, a1, {}, 1);
    CHECK(a.map.Release(got.recordId, a.arena));
    std::vector<uint64_t> reclaimed;
    a.Expire(&reclaimed);
    // Written by b during a's pass, after its sums: kept, with the write.
    bool wrote = false;
    auto s = a.Expire(&reclaimed, [&](const CheckpointView& v) {
      if (v.instrument->descriptor.name != "first" || wrote) return;
      wrote = true;
      Acquired bg;
      double* cell = b.Cell(cb, Key("k", "1"), 0, 0, &bg);
      if (cell == nullptr) return;
      Update(AggregationKind::Sum, cell, {}, 10);
      b.map.Release(bg.recordId, b.arena);
    });
    CHECK(wrote);
    CHECK(reclaimed.empty());
    CHECK_EQ(s[k1], 1.0);  // this pass's sum, from before the write
    CHECK_EQ(a.First(k1), 11.0);
    // Referenced by b during a's pass (idle since First's pass): kept; b's write through
    // it is in the series.
    double* bcell = nullptr;
    Acquired bref;
    a.Expire(&reclaimed, [&](const CheckpointView& v) {
      if (v.instrument->descriptor.name == "first" && bcell == nullptr) bcell = b.Cell(cb, Key("k", "1"), 0, 0, &bref);
    });
    REQUIRE(bcell);
    CHECK(reclaimed.empty());
    for (int pass = 0; pass < 2; pass++) a.Expire(&reclaimed);
    CHECK(reclaimed.empty());
    Update(AggregationKind::Sum, bcell, {}, 100);
    CHECK_EQ(a.First(k1), 111.0);
    CHECK(b.map.Release(bref.recordId, b.arena));
    a.Expire(&reclaimed);
    a.Expire(&reclaimed);
    CHECK_EQ(reclaimed.size(), 1u);
    CHECK_EQ(b.First(k1), -1.0);
    CHECK(a.map.Release(keep.recordId, a.arena));
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_stress_expiry_while_threads_acquire_write_release) {
  // Two processes' writer threads take a reference to a series (acquire), write it, and
  // let go (release), over and over, pausing now and then; each process's collector
  // thread runs expiring passes meanwhile. A series may expire (any process) once idle
  // and unreferenced. Every write is counted exactly once: in the value a collector saw
  // last of a record that its pass then expired (that series' final value), or in the
  // live series at the end. A write into a removed series, or one a removal lost, breaks
  // the sum.
  const std::string name = UniqueName("expstress");
  const int P = 2, W = 2, L = 6;
  const int N = static_cast<int>(20000 * g_scale);
  {
    Fleet fleet(name, P);
    auto& ps = fleet.ps;
    auto& inst = fleet.inst;
    std::atomic<bool> done{false};
    std::vector<std::map<std::string, double>> expiredSum(P);  // per collector, by key
    std::vector<long> expiries(P, 0);
    auto pass = [&](int p, std::map<uint64_t, std::pair<std::string, double>>& seen) {
      std::vector<uint64_t> reclaimed;
      CollectOptions o;
      o.domain = ps[p]->domain;
      o.reclaim = true;
      o.reclaimBefore = UINT64_MAX;
      std::map<uint64_t, std::pair<std::string, double>> now;
      ps[p]->map.CollectPass(
          o, [&](const CheckpointView& v) { now[v.id] = {std::string(v.record->labels->view()), v.state[0]}; },
          &reclaimed);
      for (uint64_t id : reclaimed) {
        // Not updated in the pass that expired it: its value is the one seen last.
        auto it = seen.find(id);
        if (it == seen.end()) {
          Fail(__FILE__, __LINE__, "a record expired in its first pass");
          continue;
        }
        expiredSum[p][it->second.first] += it->second.second;
        expiries[p]++;
      }
      seen.swap(now);
    };
    // Per process, the records its last pass kept (its collector's, then the main thread's).
    std::vector<std::map<uint64_t, std::pair<std::string, double>>> seen(P);
    std::vector<std::thread> collectors;
    for (int p = 0; p < P; p++) {
      collectors.emplace_back([&, p] {
        while (!done.load()) pass(p, seen[p]);
      });
    }
    std::vector<std::vector<long>> written(P * W, std::vector<long>(L, 0));
    std::vector<std::thread> writers;
    for (int p = 0; p < P; p++) {
      for (int w = 0; w < W; w++) {
        const uint32_t ar = ps[p]->map.RegisterArena();
        writers.emplace_back([&, p, w, ar] {
          std::mt19937 rng(static_cast<unsigned>(p * 31 + w));
          for (int i = 0; i < N; i++) {
            const int l = static_cast<int>(rng() % L);
            Acquired got;
            double* cell = ps[p]->Cell(inst[p], Key("k", std::to_string(l)), 0, ar, &got);
            if (cell == nullptr) Fail(__FILE__, __LINE__, "acquire failed");
            if (cell == nullptr) return;
            const int times = 1 + static_cast<int>(rng() % 3);
            for (int t = 0; t < times; t++) AddRelaxed(*cell, 1);
            written[p * W + w][l] += times;
            if (!ps[p]->map.Release(got.recordId, ar)) Fail(__FILE__, __LINE__, "release failed");
            if (i % 64 == 63) std::this_thread::sleep_for(std::chrono::microseconds(200));  // series go idle
          }
          ps[p]->map.RetireArena(ar);  // the thread exits
        });
      }
    }
    for (auto& t : writers) t.join();
    done = true;
    for (auto& t : collectors) t.join();
    // Then, with no writer left, every series expires (a few passes each).
    for (int k = 0; k < 3; k++) {
      for (int p = 0; p < P; p++) pass(p, seen[p]);
    }
    long during = expiries[0] + expiries[1];
    std::printf("    %ld expiries (both processes, writers running and after)\n", during);
    for (int l = 0; l < L; l++) {
      const std::string key = Key("k", std::to_string(l));
      long want = 0;
      for (auto& w : written) want += w[l];
      double got = 0;
      for (int p = 0; p < P; p++) got += expiredSum[p][key];
      CHECK_EQ(got, static_cast<double>(want));
    }
    for (int p = 0; p < P; p++) CHECK(ps[p]->Collect().empty());
    CHECK_EQ(ps[0]->Nodes(), 0u);
    fleet.Release();
  }
  Cleanup(name);
}

TEST(shared_holder_killed_mid_removal_leaves_every_process_agreeing) {
  // A real process removes a series (its and a's cells linked) and is SIGKILLed at each
  // step of the removal in turn, holding the lock. Every process then agrees: either the
  // series is whole (12, and a later write adds to it) or it is gone everywhere (a's
  // record of it too; a later write starts a new series that a's old cell never joins).
  for (int step = 11; step <= 18; step++) {
    const std::string name = UniqueName("rmkill");
    {
      Proc a(name);
      const uint32_t c = a.Instrument("c", AggregationKind::Sum);
      const std::string k1 = "c|" + Key("k", "1");
      double* mine = a.Cell(c, Key("k", "1"));
      REQUIRE(mine);
      Update(AggregationKind::Sum, mine, {}, 5);
      CHECK_EQ(a.First(k1), 5.0);  // a has synced the removal count
      KilledAtStep(step, [&](const auto& arm) {
        auto* p = new Proc(name);  // never destroyed: the process is killed
        const uint32_t pc = p->Instrument("c", AggregationKind::Sum);
        double* cell = p->Cell(pc, Key("k", "1"));
        if (cell == nullptr) _exit(2);
        cell[0] += 7;
        arm();
        p->map.Remove(pc, Key("k", "1"));  // killed at `step`
      });
      Proc b(name);  // a process that starts after
      b.Instrument("c", AggregationKind::Sum);
      const double seenA = a.First(k1), seenB = b.First(k1);
      CHECK_EQ(seenA, seenB);
      const bool gone = seenA == -1;
      if (!gone) CHECK_EQ(seenA, 12.0);
      CHECK_EQ(gone, step > 11);  // counted, not flagged: not removed
      Update(AggregationKind::Sum, mine, {}, 100);  // a's cached cell of the old series
      double* fresh = b.Cell(b.Instrument("c", AggregationKind::Sum), Key("k", "1"));
      REQUIRE(fresh);
      Update(AggregationKind::Sum, fresh, {}, 1);
      const double want = gone ? 1.0 : 113.0;
      CHECK_EQ(a.First(k1), want);
      CHECK_EQ(b.First(k1), want);
      b.Release();
      a.Release();
    }
    Cleanup(name);
  }
}


// The segment's own counts, read through another mapping of it (no process slot taken).
struct SegmentUse {
  uint32_t live = 0, slots = 0;
  uint64_t stringBytes = 0, deadDoubles = 0;
};
// The first double of "instrument|key" in a Collect(); -1 if absent.
double FirstOf(const std::map<std::string, std::vector<double>>& s, const std::string& k) {
  auto it = s.find(k);
  return it == s.end() || it->second.empty() ? -1 : it->second[0];
}

SegmentUse UseOf(SharedSegment* view) {
  SharedSegment::Guard g(view);
  return {view->LiveSeriesLocked(), view->SeriesSlotsLocked(), view->StringBytesUsedLocked(),
          view->DeadDoublesInUseLocked()};
}

TEST(shared_removed_and_expired_series_give_their_slots_keys_and_dead_areas_back) {
  // Series come and go, many more over time than are ever live at once: each round, a
  // makes a counter series and a histogram series (key lengths vary), b finds the counter
  // series by syncing (in whatever slot it took) and holds a cell of it, a thread of b
  // writes the histogram series and exits (its cell folded into the dead accumulator);
  // then both go, removed by a or b, or expired. The slots, key bytes and dead areas in
  // use follow the live series (3 at most: the kept one and this round's two), values
  // stay exact, and b's record of the previous round's counter, whose cell b still
  // writes, never shows or joins the series that took its slot.
  const std::string name = UniqueName("reuse");
  const int R = std::max(200, static_cast<int>(1500 * g_scale));
  const std::vector<double> bounds = {1, 2, 3};
  {
    Proc a(name), b(name);
    const uint32_t ca = a.Instrument("c", AggregationKind::Sum), cb = b.Instrument("c", AggregationKind::Sum);
    const uint32_t ha = a.Instrument("h", AggregationKind::Histogram, bounds);
    const uint32_t hb = b.Instrument("h", AggregationKind::Histogram, bounds);
    std::string error;
    std::unique_ptr<SharedSegment> view = SharedSegment::Open(name, &error);
    REQUIRE(view);
    double* keep = a.Cell(ca, Key("k", "keep"));
    REQUIRE(keep);
    Update(AggregationKind::Sum, keep, {}, 1);
    const size_t hn = CellSize(MakeDesc("h", AggregationKind::Histogram, bounds));
    std::vector<double> wantH(hn);  // the histogram of 2.5 (a) and 0.5 (b's thread)
    InitState(AggregationKind::Histogram, wantH.data(), hn);
    Update(AggregationKind::Histogram, wantH.data(), bounds, 2.5);
    Update(AggregationKind::Histogram, wantH.data(), bounds, 0.5);
    double* stale = nullptr;  // b's cell of the previous round's removed counter series
    SegmentUse warm;
    int reused = 0;
    for (int r = 0; r < R; r++) {
      char num[16];
      std::snprintf(num, sizeof num, "%06d", r);  // key lengths vary with r % 40 only
      const std::string key = Key("k", std::string(1 + r % 40, 'x') + num);
      const std::string ck = "c|" + key, hk = "h|" + key;
      const bool expire = r % 3 == 2;
      Acquired acC, acH;
      double* ac = a.Cell(ca, key, 0, 0, &acC);
      double* ah = a.Cell(ha, key, 0, 0, &acH);
      REQUIRE(ac && ah);
      Update(AggregationKind::Sum, ac, {}, r + 1);
      Update(AggregationKind::Histogram, ah, bounds, 2.5);
      {
        SharedSegment::Guard g(view.get());
        const uint64_t h = view->FindSeriesLocked(view->FindInstrumentLocked("meter/c"), key);
        CHECK(h != 0);
        if ((h >> 32) != 0) reused++;  // a slot's later series (generation > 0)
      }
      const uint32_t t = b.map.RegisterArena();
      double* bh = b.Cell(hb, key, 0, t);
      REQUIRE(bh);
      Update(AggregationKind::Histogram, bh, bounds, 0.5);
      b.map.RetireArena(t);  // folded into the histogram series' dead accumulator
      if (stale != nullptr) AddRelaxed(*stale, 7);  // goes nowhere
      // b made no record of the counter series: it finds it by syncing.
      for (Proc* p : {&a, &b}) {
        auto s = p->Collect();
        CHECK_EQ(s.size(), 3u);  // keep, and this round's two: no record of a removed series
        CHECK_EQ(FirstOf(s, "c|" + Key("k", "keep")), 1.0);
        CHECK_EQ(FirstOf(s, ck), r + 1.0);
        CHECK(s.count(hk) == 1 && s[hk] == wantH);
      }
      stale = nullptr;
      std::vector<uint64_t> drained;
      b.map.DrainStale(b.arena, &drained);  // b's thread lets go of last round's record
      for (uint64_t id : drained) b.map.Release(id, b.arena);
      if (expire) {
        a.map.Release(acC.recordId, a.arena);
        a.map.Release(acH.recordId, a.arena);
        std::vector<uint64_t> reclaimed;
        a.Expire(&reclaimed);  // sees this round's writes
        a.Expire(&reclaimed);  // idle since: both expire fleet-wide
        CHECK_EQ(reclaimed.size(), 2u);
      } else {
        stale = b.Cell(cb, key);  // b holds its own cell of the counter series
        REQUIRE(stale);
        Proc& remover = r % 2 == 0 ? a : b;
        CHECK(remover.map.Remove(&remover == &a ? ca : cb, key) != 0);
        CHECK(remover.map.Remove(&remover == &a ? ha : hb, key) != 0);
      }
      // b syncs the removal only next round, after a has made that round's series (in
      // these slots): b's records of these series must not name them.
      CHECK_EQ(a.Collect().size(), 1u);
      const SegmentUse u = UseOf(view.get());
      CHECK_EQ(u.live, 1u);
      CHECK(u.slots <= 3u);
      CHECK_EQ(u.deadDoubles, uint64_t{0});  // the removed series' dead areas are free
      if (r == 80) warm = u;  // every key length seen by now
      if (r > 80) CHECK_EQ(u.stringBytes, warm.stringBytes);
    }
    CHECK(reused >= R - 3);
    uint32_t procs = 0, slabs = 0, series = 0, nodes = 0, live = 0;
    CHECK(a.map.SharedStats(a.domain, &procs, &slabs, &series, &nodes, &live));
    CHECK_EQ(series, static_cast<uint32_t>(2 * R + 1));  // every series ever
    CHECK_EQ(live, 1u);
    CHECK_EQ(nodes, 1u);  // a's cell of the kept series
    CHECK(slabs <= 3u);   // a's, b's and one of dead areas
    a.Release();
    b.Release();
  }
  Cleanup(name);
}

TEST(shared_stress_processes_make_and_remove_series_while_collecting) {
  // P processes (threads, each its own mapping and map) each make series after series,
  // write a value that names it, collect, and remove it, all at once. Every collection
  // of every process shows each series either unwritten (0) or with its own value, never
  // another's (a record of a removed series whose slot another took); the slots in use
  // stay at most P, and at the end no series is live.
  const std::string name = UniqueName("reusestress");
  const int P = 3;
  const int M = std::max(100, static_cast<int>(600 * g_scale));
  {
    Fleet fleet(name, P);
    auto& ps = fleet.ps;
    auto& insts = fleet.inst;
    std::string error;
    std::unique_ptr<SharedSegment> view = SharedSegment::Open(name, &error);
    REQUIRE(view);
    std::mutex mu;
    std::map<std::string, double> want;  // "c|key" -> its value, set before it is written
    std::atomic<long> wrong{0}, maxSlots{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < P; p++) {
      threads.emplace_back([&, p] {
        Proc& me = *ps[p];
        for (int i = 0; i < M; i++) {
          const std::string key = Key("k", std::to_string(p) + "-" + std::to_string(i));
          const double v = p * 1e6 + i + 1;
          {
            std::lock_guard<std::mutex> l(mu);
            want["c|" + key] = v;
          }
          Acquired got;
          double* cell = me.Cell(insts[p], key, 0, 0, &got);
          if (cell == nullptr) {
            wrong++;
            return;
          }
          Update(AggregationKind::Sum, cell, {}, v);
          auto s = me.Collect();
          if (FirstOf(s, "c|" + key) != v) wrong++;
          for (auto& [k, st] : s) {
            std::lock_guard<std::mutex> l(mu);
            auto w = want.find(k);
            if (w == want.end() || st.empty() || (st[0] != 0 && st[0] != w->second)) wrong++;
          }
          if (me.map.Remove(insts[p], key) == 0) wrong++;
          std::vector<uint64_t> drained;
          me.map.DrainStale(me.arena, &drained);
          for (uint64_t id : drained) me.map.Release(id, me.arena);
          const long slots = UseOf(view.get()).slots;
          long seen = maxSlots.load();
          while (slots > seen && !maxSlots.compare_exchange_weak(seen, slots)) {
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK_EQ(wrong.load(), 0L);
    CHECK(maxSlots.load() <= P);
    for (auto& p : ps) CHECK(p->Collect().empty());
    const SegmentUse u = UseOf(view.get());
    CHECK_EQ(u.live, 0u);
    CHECK(u.slots <= static_cast<uint32_t>(P));
    fleet.Release();
  }
  Cleanup(name);
}

TEST(shared_holder_killed_mid_add_in_a_reused_slot_leaves_the_segment_sound) {
  // A real process adds a series in a removed series' slot and is SIGKILLed at each step
  // of the add in turn, holding the lock. Then every process agrees on the series (made
  // whole at step 45, else absent), a record of the slot's removed series stays removed,
  // a later write makes or finds exactly one series with exact values in both processes,
  // and the slots keep being reused (a leaked slot at most).
  for (int step = 41; step <= 45; step++) {
    const std::string name = UniqueName("addkill");
    {
      Proc a(name);
      const uint32_t c = a.Instrument("c", AggregationKind::Sum);
      const std::string k2 = "c|" + Key("k", "2");
      double* old = a.Cell(c, Key("k", "1"));
      REQUIRE(old);
      Update(AggregationKind::Sum, old, {}, 5);
      CHECK(a.map.Remove(c, Key("k", "1")) != 0);  // its slot goes on the free list
      KilledAtStep(step, [&](const auto& arm) {
        auto* p = new Proc(name);  // never destroyed: the process is killed
        const uint32_t pc = p->Instrument("c", AggregationKind::Sum);
        arm();
        p->Cell(pc, Key("k", "2"));  // killed at `step`
      });
      Proc b(name);  // a process that starts after
      const uint32_t cb = b.Instrument("c", AggregationKind::Sum);
      const double seenA = a.First(k2), seenB = b.First(k2);
      CHECK_EQ(seenA, seenB);
      CHECK_EQ(seenA, step == 45 ? 0.0 : -1.0);
      AddRelaxed(*old, 100);  // a's cell of the removed series: counted nowhere
      double* fa = a.Cell(c, Key("k", "2"));
      double* fb = b.Cell(cb, Key("k", "2"));
      REQUIRE(fa && fb);
      Update(AggregationKind::Sum, fa, {}, 1);
      Update(AggregationKind::Sum, fb, {}, 2);
      CHECK_EQ(a.First(k2), 3.0);
      CHECK_EQ(b.First(k2), 3.0);
      CHECK_EQ(a.Collect().size(), 1u);
      CHECK_EQ(b.Collect().size(), 1u);
      std::string error;
      std::unique_ptr<SharedSegment> view = SharedSegment::Open(name, &error);
      REQUIRE(view);
      // Killed after it was published, before it was counted: live, uncounted (until removed).
      CHECK_EQ(UseOf(view.get()).live, step == 45 ? 0u : 1u);
      // Later series still reuse slots: 20 more come and go in at most 2 more slots.
      const uint32_t slotsBefore = UseOf(view.get()).slots;
      for (int i = 0; i < 20; i++) {
        const std::string k = Key("m", std::to_string(i));
        double* m = b.Cell(cb, k);
        REQUIRE(m);
        Update(AggregationKind::Sum, m, {}, i + 1);
        CHECK_EQ(a.First("c|" + k), i + 1.0);
        CHECK(b.map.Remove(cb, k) != 0);
      }
      CHECK(UseOf(view.get()).slots <= slotsBefore + 1);
      CHECK_EQ(a.First(k2), 3.0);
      b.Release();
      a.Release();
    }
    Cleanup(name);
  }
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
