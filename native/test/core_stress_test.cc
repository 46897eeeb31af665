// Threaded stress tests of the native core: concurrent writers, collections, retirement.
//
// Usage: core_stress_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "core_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// Threaded stress: writers on their own arenas, a churning acquirer/releaser, and a
// collector, all at once.

constexpr int kWriters = 4;
constexpr int kLabels = 64;
constexpr int kChurnLabels = 32;
constexpr uint32_t kChurnLimit = 20;  // cardinality limit of the churn instrument

std::vector<double> StressBounds() {
  std::vector<double> b;  // 127 bounds: 0, 8, ..., 1008; histogram cells of 131 doubles
  for (int i = 0; i < 127; i++) b.push_back(i * 8.0);
  return b;
}

// The deterministic update stream of writer t: at step i, label L, Sum += SumV, Histogram
// records HistV. Labels unlock gradually over the first half of the run, so acquisitions
// (and slab allocations) keep happening while collections run.
struct Stream {
  int t;
  long iters;
  int Label(long i) const {
    long unlocked = std::min<long>(kLabels, 1 + i * kLabels / std::max<long>(1, iters / 2));
    uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t) * 0xBF58476D1CE4E5B9ull;
    return static_cast<int>((h >> 33) % static_cast<uint64_t>(unlocked));
  }
  double SumV(long i) const { return static_cast<double>(1 + (static_cast<uint64_t>(i) * 31 + t) % 7); }
  double HistV(long i) const {
    return static_cast<double>(static_cast<long>((static_cast<uint64_t>(i) * 40503u + static_cast<uint64_t>(t) * 97) % 1031) - 5);
  }
};

struct Expected {
  double sum = 0;
  std::vector<double> hist;  // full histogram state
};

TEST(stress_concurrent_writers_and_collect) {
  RecordMap m;
  const std::vector<double> bounds = StressBounds();
  // Each instrument in its own domain; the collector rotates over them and "all" (0).
  const uint32_t domSum = m.RegisterDomain("sum"), domHist = m.RegisterDomain("hist"), domChurn = m.RegisterDomain("");
  const uint32_t sumId =
      m.RegisterInstrument("stress.sum", MakeDesc("stress.sum", AggregationKind::Sum), nullptr, domSum);
  const uint32_t histId = m.RegisterInstrument(
      "stress.hist", MakeDesc("stress.hist", AggregationKind::Histogram, bounds), nullptr, domHist);
  const uint32_t churnId =
      m.RegisterInstrument("stress.churn", MakeDesc("stress.churn", AggregationKind::Sum), nullptr, domChurn);
  const std::map<uint32_t, uint32_t> domainOf = {{sumId, domSum}, {histId, domHist}, {churnId, domChurn}};
  const uint32_t rotation[] = {0, domSum, domHist, domChurn, 0, domChurn};
  const size_t hn = CellSize(AggregationKind::Histogram, bounds.size());
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {histId, hn}, {churnId, 1}};

  std::vector<std::string> keys, churnKeys;
  for (int l = 0; l < kLabels; l++) keys.push_back(EncodeLabelKey({"route", "/r/" + std::to_string(l), "status", "200"}));
  for (int l = 0; l < kChurnLabels; l++) churnKeys.push_back(Key("churn", std::to_string(l)));

  const long base = std::max<long>(1000, static_cast<long>(1000000 * g_scale));
  std::vector<Stream> streams;
  for (int t = 0; t < kWriters; t++) streams.push_back({t, base + t * base / 4});

  // Expected final state per label, from the same streams.
  std::vector<Expected> expect(kLabels);
  for (auto& e : expect) e.hist = Identity(AggregationKind::Histogram, hn);
  long totalUpdates = 0;
  for (const Stream& s : streams) {
    for (long i = 0; i < s.iters; i++) {
      Expected& e = expect[s.Label(i)];
      e.sum += s.SumV(i);
      Update(AggregationKind::Histogram, e.hist.data(), bounds, s.HistV(i));
    }
    totalUpdates += 2 * s.iters;
  }
  for (int l = 0; l < kLabels; l++) REQUIRE(Activity(AggregationKind::Histogram, expect[l].hist.data(), hn) > 0);

  std::atomic<int> writersDone{0}, writersWritten{0};
  std::atomic<bool> stopChurn{false};
  std::vector<uint32_t> arenas(kWriters, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; t++) {
    // Writers 0 and 2 retire their arena when they finish (a worker exiting); 1 and 3 don't.
    const bool retire = t % 2 == 0;
    threads.emplace_back([&, t, retire] {
      const Stream s = streams[t];
      const uint32_t arena = m.RegisterArena();
      arenas[t] = arena;
      std::vector<double*> sumCell(kLabels, nullptr), histCell(kLabels, nullptr);
      for (long i = 0; i < s.iters; i++) {
        const int l = s.Label(i);
        if (sumCell[l] == nullptr) {
          Acquired a, b;
          if (!m.Acquire(arena, sumId, keys[l], static_cast<double>(t), &a) ||
              !m.Acquire(arena, histId, keys[l], static_cast<double>(t), &b)) {
            Fail(__FILE__, __LINE__, "writer Acquire failed");
            break;
          }
          CHECK(a.newCell && b.newCell);
          sumCell[l] = CellPtr(m, arena, a, 1);
          histCell[l] = CellPtr(m, arena, b, hn);
          if (!sumCell[l] || !histCell[l]) break;
          CHECK_EQ(LoadRelaxed(*sumCell[l]), 0.0);
        }
        AddRelaxed(*sumCell[l], s.SumV(i));
        double* h = histCell[l];
        const double v = s.HistV(i);
        AddRelaxed(h[0], v);
        if (v < LoadRelaxed(h[1])) StoreRelaxed(h[1], v);
        if (v > LoadRelaxed(h[2])) StoreRelaxed(h[2], v);
        AddRelaxed(h[3 + BucketIndex(bounds.data(), bounds.size(), v)], 1);
      }
      // A retiring writer waits until every writer has written: a record it alone had
      // acquired so far would otherwise be unreferenced, idle and reclaimable before a
      // slower writer acquires its label set (a legitimate reclaim, but the final totals
      // below assume one record per label for the whole run).
      writersWritten.fetch_add(1);
      if (retire) {
        while (writersWritten.load() < kWriters) std::this_thread::yield();
        m.RetireArena(arena);
      }
      writersDone.fetch_add(1);
    });
  }

  // Churn: acquire, write, release records of another instrument, so that collections
  // reclaim them and re-acquisitions reuse freed cells, concurrently with everything else.
  std::atomic<long> churnOps{0}, churnReclaimsSeen{0}, churnOverflows{0};
  std::thread churn([&] {
    const uint32_t arena = m.RegisterArena();
    std::map<uint64_t, double> written;  // record id -> what this thread wrote to its cell
    std::vector<uint64_t> lastId(kChurnLabels, 0);
    std::vector<bool> lastOverflow(kChurnLabels, false);
    std::set<uint64_t> issued;  // every record id this thread was given
    std::mt19937 rng(12345);
    long ops = 0;
    while (!stopChurn.load()) {
      const int l = static_cast<int>(rng() % kChurnLabels);
      Acquired a;
      if (!m.Acquire(arena, churnId, churnKeys[l], 0, &a, kChurnLimit)) {
        Fail(__FILE__, __LINE__, "churn Acquire failed");
        break;
      }
      double* c = CellPtr(m, arena, a, 1);
      if (c == nullptr) break;
      const double cur = LoadRelaxed(*c);
      auto it = written.find(a.recordId);
      if (it != written.end()) {
        // Not reclaimed: our own cell, with everything we wrote.
        CHECK(!a.newCell);
        CHECK_EQ(cur, it->second);
      } else {
        // A new record (first use, or recreated after reclamation): identity state.
        CHECK(a.newCell);
        CHECK_EQ(cur, 0.0);
        CHECK(issued.insert(a.recordId).second);  // a new record never has an old id
        it = written.emplace(a.recordId, 0).first;
      }
      uint32_t inst = 0;
      std::string key;
      CHECK(m.RecordInfo(a.recordId, &inst, &key));
      CHECK_EQ(key, a.overflow ? OverflowLabelKey() : churnKeys[l]);
      churnOverflows.fetch_add(a.overflow ? 1 : 0);
      if (lastId[l] != 0 && lastId[l] != a.recordId && !(lastOverflow[l] && !a.overflow)) {
        // The label set's previous record (or overflow record) is gone, not just hidden.
        churnReclaimsSeen.fetch_add(1);
        CHECK(!m.RecordInfo(lastId[l], &inst, &key));
      }
      lastId[l] = a.recordId;
      lastOverflow[l] = a.overflow;
      const int k = 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < k; j++) AddRelaxed(*c, 1);
      it->second += k;
      CHECK(m.Release(a.recordId));
      if (++ops % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    churnOps.store(ops);
    m.RetireArena(arena);
  });

  // Collector: collect until every writer is done, checking what can be checked of a
  // snapshot taken while cells are being written.
  struct Seen { double activity = 0; std::vector<double> state; };
  std::map<uint64_t, Seen> seen;           // by record id
  std::map<uint64_t, int> labelOf;         // writer record id -> label
  std::set<uint64_t> churnIds, reclaimedIds;
  long collects = 0, reclaimCollects = 0;
  uint64_t lastEpoch = 0;
  size_t failuresBefore = static_cast<size_t>(g_failures.load());
  std::map<uint64_t, uint64_t> lastUpdatedAt;  // record id -> epoch that last saw it updated
  auto check_snapshot = [&](const Collected& c, const CollectOptions& opts) {
    const uint32_t domain = opts.domain;
    CHECK_EQ(c.epoch, lastEpoch + 1);
    lastEpoch = c.epoch;
    CHECK(opts.reclaim || c.reclaimed.empty());
    for (uint64_t id : c.reclaimed) {
      CHECK(churnIds.count(id) == 1);  // only released churn records are ever reclaimed
      CHECK(reclaimedIds.insert(id).second);
      CHECK(lastUpdatedAt[id] <= opts.reclaimBefore);
    }
    size_t churnRows = 0;
    for (const Row& r : c.rows) {
      if (r.updated) lastUpdatedAt[r.id] = c.epoch;
      churnRows += r.instrument == churnId;
    }
    CHECK(churnRows <= kChurnLimit);
    for (const Row& r : c.rows) {
      CHECK(reclaimedIds.count(r.id) == 0);  // ids are never reused
      CHECK(domain == 0 || domainOf.at(r.instrument) == domain);
      Seen& prev = seen[r.id];
      double activity = 0;
      if (r.instrument == churnId) {
        churnIds.insert(r.id);
        activity = r.state[0];
        CHECK(activity >= prev.activity);
      } else {
        auto it = labelOf.find(r.id);
        if (it == labelOf.end()) {
          uint32_t inst = 0;
          std::string key;
          if (!m.RecordInfo(r.id, &inst, &key)) {
            Fail(__FILE__, __LINE__, "RecordInfo failed for a listed record");
            continue;
          }
          CHECK_EQ(inst, r.instrument);
          auto k = std::find(keys.begin(), keys.end(), key);
          if (k == keys.end()) {
            Fail(__FILE__, __LINE__, "unknown label key");
            continue;
          }
          it = labelOf.emplace(r.id, static_cast<int>(k - keys.begin())).first;
        }
        const Expected& e = expect[it->second];
        if (r.instrument == sumId) {
          activity = r.state[0];
          // Every cell only grows (positive increments), up to the final total.
          CHECK(activity >= prev.activity);
          CHECK(activity <= e.sum);
        } else {
          CHECK_EQ(r.instrument, histId);
          for (size_t b = 3; b < hn; b++) {
            CHECK(r.state[b] <= e.hist[b]);
            activity += r.state[b];
          }
          CHECK(activity >= prev.activity);
          CHECK(r.state[1] >= e.hist[1]);  // min
          CHECK(r.state[2] <= e.hist[2]);  // max
        }
      }
      // An activity change is always an update; a record not updated has exactly the
      // state of the previous collection (it may be updated with the same activity: a
      // torn read then, or a new record).
      if (activity != prev.activity) CHECK(r.updated);
      if (!r.updated) CHECK(r.state == prev.state);
      prev.activity = activity;
      prev.state = r.state;
      if (static_cast<size_t>(g_failures.load()) > failuresBefore + 50) return;
    }
  };
  do {  // at least one collection, however quickly the writers finish
    CollectOptions opts;
    opts.nowMs = static_cast<double>(collects);
    opts.reclaim = collects % 2 == 1;
    opts.domain = rotation[collects % std::size(rotation)];
    // Sometimes a reader lags a few collections behind.
    if (collects % 4 == 3) opts.reclaimBefore = lastEpoch > 3 ? lastEpoch - 3 : 0;
    Collected c = DoCollect(m, sizes, opts);
    collects++;
    reclaimCollects += opts.reclaim;
    if (!c.ok) break;
    check_snapshot(c, opts);
    if (static_cast<size_t>(g_failures.load()) > failuresBefore + 50) break;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  } while (writersDone.load() < kWriters);
  for (auto& th : threads) th.join();
  stopChurn.store(true);
  churn.join();

  // Quiescent: exact totals.
  auto check_totals = [&](const Collected& c, const char* when) {
    size_t sums = 0, hists = 0, bad = 0;
    for (const Row& r : c.rows) {
      if (r.instrument == churnId) continue;
      auto it = labelOf.find(r.id);
      if (it == labelOf.end()) {
        uint32_t inst = 0;
        std::string key;
        if (!m.RecordInfo(r.id, &inst, &key)) { bad++; continue; }
        auto k = std::find(keys.begin(), keys.end(), key);
        if (k == keys.end()) { bad++; continue; }
        it = labelOf.emplace(r.id, static_cast<int>(k - keys.begin())).first;
      }
      const Expected& e = expect[it->second];
      if (r.instrument == sumId) {
        sums++;
        if (r.state[0] != e.sum) {
          if (bad++ < 5) Fail(__FILE__, __LINE__, std::string(when) + ": sum " + Show(r.state[0]) + " != " + Show(e.sum));
        }
      } else {
        hists++;
        double buckets = 0;
        for (size_t b = 3; b < hn; b++) buckets += r.state[b];
        double count = Activity(AggregationKind::Histogram, e.hist.data(), hn);
        if (r.state != e.hist || buckets != count) {
          if (bad++ < 5) Fail(__FILE__, __LINE__, std::string(when) + ": histogram " + Show(r.state) + " != " + Show(e.hist));
        }
      }
    }
    CHECK_EQ(sums, static_cast<size_t>(kLabels));
    CHECK_EQ(hists, static_cast<size_t>(kLabels));
    CHECK_EQ(bad, 0u);
  };
  // The histogram count of each label is the number of records made into it.
  double totalHist = 0, totalSum = 0, streamSum = 0;
  for (const Expected& e : expect) {
    totalHist += Activity(AggregationKind::Histogram, e.hist.data(), hn);
    totalSum += e.sum;
  }
  for (const Stream& s : streams) {
    for (long i = 0; i < s.iters; i++) streamSum += s.SumV(i);
  }
  CHECK_EQ(totalHist, static_cast<double>(totalUpdates / 2));
  CHECK_EQ(totalSum, streamSum);

  CollectOptions all, allReclaim;
  allReclaim.reclaim = true;
  Collected f1 = DoCollect(m, sizes, false);
  REQUIRE(f1.ok);
  check_snapshot(f1, all);
  check_totals(f1, "after join");
  // Nothing changes any more: not updated, same totals.
  Collected f2 = DoCollect(m, sizes, false);
  REQUIRE(f2.ok);
  check_snapshot(f2, all);
  for (const Row& r : f2.rows) CHECK(!r.updated);
  check_totals(f2, "second final collect");
  // Two reclaiming collections drop every churn record (all released) and nothing else:
  // writers 1 and 3 still hold references to every writer record.
  Collected f3 = DoCollect(m, sizes, true);
  REQUIRE(f3.ok);
  check_snapshot(f3, allReclaim);
  Collected f4 = DoCollect(m, sizes, true);
  REQUIRE(f4.ok);
  check_snapshot(f4, allReclaim);
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(2 * kLabels));
  check_totals(f4, "after reclaiming");
  // The remaining writers exit: totals survive, all memory is returned.
  for (int t = 0; t < kWriters; t++) {
    if (t % 2 == 1) m.RetireArena(arenas[t]);
  }
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected f5 = DoCollect(m, sizes, false);
  REQUIRE(f5.ok);
  check_snapshot(f5, all);
  for (const Row& r : f5.rows) CHECK(!r.updated);
  check_totals(f5, "after every arena retired");
  // Their references went with them: the next reclaiming collection frees every record.
  Collected f6 = DoCollect(m, sizes, true);
  REQUIRE(f6.ok);
  CHECK(f6.rows.empty());
  CHECK_EQ(f6.reclaimed.size(), static_cast<size_t>(2 * kLabels));
  CHECK_EQ(m.RecordCount(), 0u);

  std::printf("    stress: %ld updates by %d writers, %ld concurrent collects (%ld reclaiming), "
              "%ld churn ops (%ld overflowed), %zu churn records reclaimed (%ld label sets moved)\n",
              totalUpdates, kWriters, collects, reclaimCollects, churnOps.load(), churnOverflows.load(),
              reclaimedIds.size(), churnReclaimsSeen.load());
  CHECK(collects > 0);
}

// Writer threads write records the way JS does (a reference taken, writes, the reference
// given back; some records kept referenced for a stretch of writes) while a collector runs
// sparse passes (changedOnly: only records that may have changed since a pass read them,
// or updated since the previous pass) and sums the deltas it sees: every record's summed
// deltas are its exact total, also for records whose writes stop early in the run.
TEST(stress_sparse_pass_exact) {
  RecordMap m;
  const uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes{{c, 1}};
  constexpr int kWriters = 2;
  constexpr int kRecords = 256;
  const long iters = static_cast<long>(200000 * g_scale);
  std::vector<std::vector<double>> totals(kWriters, std::vector<double>(kRecords, 0));
  std::atomic<int> running{kWriters};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; w++) {
    writers.emplace_back([&, w] {
      const uint32_t arena = m.RegisterArena();
      std::mt19937 rng(1234 + w);
      for (long i = 0; i < iters;) {
        // Records of the upper half are written in the first half of the run only.
        const int span = i < iters / 2 ? kRecords : kRecords / 2;
        const int k = static_cast<int>(rng() % span);
        Acquired a;
        if (!m.Acquire(arena, c, Key("k", std::to_string(k)), 0, &a)) continue;
        double* cell = CellPtr(m, arena, a, 1);
        const int writes = rng() % 8 == 0 ? 50 : 1;  // held for a stretch, or one write
        for (int j = 0; j < writes && i < iters; j++, i++) {
          AddRelaxed(*cell, 1);
          totals[w][k] += 1;
        }
        m.Release(a.recordId);
      }
      running.fetch_sub(1);
    });
  }
  std::map<uint64_t, double> last;  // the cumulative state last exported per record
  std::map<uint64_t, double> deltas;  // sum of exported changes per record
  CollectOptions opts;
  opts.changedOnly = true;
  opts.readerEpoch = 0;
  long passes = 0;
  auto pass = [&] {
    Collected got = DoCollect(m, sizes, opts);
    CHECK(got.ok);
    for (const Row& r : got.rows) {
      deltas[r.id] += r.state[0] - last[r.id];
      last[r.id] = r.state[0];
    }
    opts.readerEpoch = got.epoch;
    passes++;
  };
  while (running.load() > 0) pass();
  for (std::thread& t : writers) t.join();
  pass();
  // Each label's record: the sum of every writer's writes to it.
  const uint32_t reader = m.RegisterArena();
  size_t bad = 0;
  for (int k = 0; k < kRecords; k++) {
    double expect = 0;
    for (int w = 0; w < kWriters; w++) expect += totals[w][k];
    if (expect == 0) continue;
    Acquired a;
    REQUIRE(m.Acquire(reader, c, Key("k", std::to_string(k)), 0, &a));
    bad += deltas[a.recordId] != expect ? 1 : 0;
    m.Release(a.recordId);
  }
  CHECK_EQ(bad, size_t{0});
  std::printf("  (%ld passes)\n", passes);
}

TEST(stress_retire_races_collect) {
  // Threads come and go: each registers an arena, writes shared records, and retires,
  // while the main thread collects. Totals must be exact at the end.
  RecordMap m;
  const uint32_t sumId = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const uint32_t mmId = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {mmId, 4}};
  constexpr int kLabelsHere = 8;
  const int generations = std::max(2, static_cast<int>(20 * std::min(g_scale, 5.0)));
  constexpr int kPerGen = 3;
  constexpr int kWrites = 2000;
  std::atomic<bool> done{false};
  std::thread collector([&] {
    uint64_t epoch = 0;
    while (!done.load()) {
      Collected c = DoCollect(m, sizes, false);
      if (!c.ok) return;
      CHECK_EQ(c.epoch, epoch + 1);
      epoch = c.epoch;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  for (int g = 0; g < generations; g++) {
    std::vector<std::thread> ts;
    for (int w = 0; w < kPerGen; w++) {
      ts.emplace_back([&, w] {
        uint32_t arena = m.RegisterArena();
        for (int l = 0; l < kLabelsHere; l++) {
          Acquired a, b;
          if (!m.Acquire(arena, sumId, Key("l", std::to_string(l)), 0, &a) ||
              !m.Acquire(arena, mmId, Key("l", std::to_string(l)), 0, &b)) {
            Fail(__FILE__, __LINE__, "Acquire failed");
            return;
          }
          double* s = CellPtr(m, arena, a, 1);
          double* mm = CellPtr(m, arena, b, 4);
          if (!s || !mm) return;
          for (int i = 0; i < kWrites; i++) {
            AddRelaxed(*s, 1);
            const double v = static_cast<double>((i * 7 + w) % 1000);
            AddRelaxed(mm[0], 1);
            AddRelaxed(mm[1], v);
            if (v < LoadRelaxed(mm[2])) StoreRelaxed(mm[2], v);
            if (v > LoadRelaxed(mm[3])) StoreRelaxed(mm[3], v);
          }
          CHECK(m.Release(a.recordId, arena));
          CHECK(m.Release(b.recordId, arena));
        }
        m.RetireArena(arena);
      });
    }
    for (auto& t : ts) t.join();
  }
  done.store(true);
  collector.join();
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.rows.size() == 2 * kLabelsHere);
  const double n = static_cast<double>(generations) * kPerGen * kWrites;
  double vsum = 0;
  for (int w = 0; w < kPerGen; w++) {
    for (int i = 0; i < kWrites; i++) vsum += (i * 7 + w) % 1000;
  }
  vsum *= generations;
  for (const Row& r : c.rows) {
    if (r.instrument == sumId) {
      CHECK_EQ(r.state, (std::vector<double>{n}));
    } else {
      CHECK_EQ(r.state, (std::vector<double>{n, vsum, 0, 999}));
    }
  }
  // Everything was released and has been exported: all of it is reclaimable now.
  Collected r1 = DoCollect(m, sizes, true);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed.size(), static_cast<size_t>(2 * kLabelsHere));
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(stress_worker_threads_reclaim) {
  // Worker threads as the JS layer runs them, concurrently with a collector that
  // reclaims: each thread caches (label -> record) with one reference per cache entry,
  // writes only its own cells and only while it holds a reference to the record (a
  // lookup, then its write, before the next lookup), drains its stale queue on a cache
  // miss after Acquire
  // reported pending work and on a "timer", and releases the drained entries; some hold
  // bound references; generations of threads exit with everything released, exit holding
  // references (terminated), or idle for a long time draining only on the timer.
  // Checks: no write is lost (summing every record's last collected state gives exactly
  // what was written), no record id is ever listed after it was reclaimed, an idle
  // thread's private records are reclaimed while it is still alive, and at the end every
  // record and arena is gone.
  RecordMap m;
  const uint32_t dom = m.RegisterDomain("app");
  const uint32_t sumId = m.RegisterInstrument("w.sum", MakeDesc("w.sum", AggregationKind::Sum), nullptr, dom);
  const uint32_t mmId = m.RegisterInstrument("w.mm", MakeDesc("w.mm", AggregationKind::MinMaxSumCount), nullptr, dom);
  const std::map<uint32_t, size_t> sizes = {{sumId, 1}, {mmId, 4}};
  constexpr int kPool = 48;  // shared label sets; each generation uses a sliding window
  constexpr int kIdleLabels = 6;
  std::vector<std::string> keys, idleKeys;
  for (int l = 0; l < kPool; l++) keys.push_back(EncodeLabelKey({"route", "/r/" + std::to_string(l)}));
  for (int l = 0; l < kIdleLabels; l++) idleKeys.push_back(Key("idle", std::to_string(l)));
  const int generations = std::max(3, static_cast<int>(12 * std::min(g_scale, 5.0)));
  constexpr int kPerGen = 3;
  const long opsPerThread = std::max<long>(2000, static_cast<long>(40000 * std::min(g_scale, 5.0)));

  std::atomic<double> writtenSum{0}, writtenCount{0}, writtenMmSum{0};  // what all threads wrote
  auto addTotal = [](std::atomic<double>& a, double v) {
    double cur = a.load();
    while (!a.compare_exchange_weak(cur, cur + v)) {
    }
  };
  std::atomic<long> drains{0}, drainedIds{0}, released{0}, terminatedRefs{0};

  struct Cached {
    uint64_t id;
    double* cell;
  };
  // One thread's life; `idleUntil` makes it a long-lived worker that records into its
  // private label sets, then only drains on its timer until told to exit.
  auto worker = [&](int gen, int w, std::atomic<bool>* idleUntil, std::atomic<int>* idleReleased) {
    const uint32_t arena = m.RegisterArena();
    std::map<std::pair<uint32_t, int>, Cached> cache;  // (instrument, label) -> entry
    std::map<uint64_t, std::pair<uint32_t, int>> byId;
    bool pending = false;
    double sum = 0, count = 0, mmSum = 0;
    auto drain = [&] {
      pending = false;
      std::vector<uint64_t> ids;
      m.DrainStale(arena, &ids);
      drains.fetch_add(1);
      drainedIds.fetch_add(static_cast<long>(ids.size()));
      int n = 0;
      for (uint64_t id : ids) {
        auto it = byId.find(id);
        if (it == byId.end()) continue;  // a bound reference only: kept
        cache.erase(it->second);
        byId.erase(it);
        CHECK(m.Release(id, arena));
        n++;
      }
      released.fetch_add(n);
      return n;
    };
    auto get = [&](uint32_t inst, const std::string& key, int label) -> double* {
      auto it = cache.find({inst, label});
      if (it != cache.end()) return it->second.cell;
      if (pending) drain();
      Acquired a;
      if (!m.Acquire(arena, inst, key, 0, &a)) {
        Fail(__FILE__, __LINE__, "worker Acquire failed");
        return nullptr;
      }
      pending = pending || a.stalePending;
      double* c = CellPtr(m, arena, a, sizes.at(inst));
      if (c == nullptr) return nullptr;
      cache[{inst, label}] = {a.recordId, c};
      byId[a.recordId] = {inst, label};
      return c;
    };
    std::mt19937 rng(static_cast<uint32_t>(gen * 131 + w * 7 + 1));
    // A bound reference on one label set for the thread's whole life.
    Acquired bound;
    const int boundLabel = (gen * 5 + w) % kPool;
    if (!m.Acquire(arena, sumId, keys[boundLabel], 0, &bound)) {
      Fail(__FILE__, __LINE__, "bound Acquire failed");
      return;
    }
    double* boundCell = CellPtr(m, arena, bound, 1);
    if (boundCell == nullptr) return;
    const bool idle = idleUntil != nullptr;
    for (long i = 0; i < opsPerThread; i++) {
      // A window of 8 label sets that slides during the thread's life and with the
      // generation: label sets go idle while their thread still caches them.
      const int slide = gen * 4 + static_cast<int>(i * 16 / opsPerThread);
      const int label = idle ? static_cast<int>(rng() % kIdleLabels) : (slide + static_cast<int>(rng() % 8)) % kPool;
      const std::string& key = idle ? idleKeys[label] : keys[label];
      const double v = static_cast<double>(1 + rng() % 5);
      // Each measurement writes its cell right after its lookup, as JS does
      // (store.lookup(attrs).add(v)): a lookup that misses may drain the stale queue and
      // release other cached entries, this label set's sum among them, and a cell must not
      // be written once its reference is given back (the record may be reclaimed and its
      // cell freed: such a write is legally lost).
      double* s = get(sumId, key, label + (idle ? 1000 : 0));
      if (s == nullptr) return;
      AddRelaxed(*s, v);
      double* c = get(mmId, key, label + (idle ? 1000 : 0));
      if (c == nullptr) return;
      AddRelaxed(c[0], 1);
      AddRelaxed(c[1], v);
      if (v < LoadRelaxed(c[2])) StoreRelaxed(c[2], v);
      if (v > LoadRelaxed(c[3])) StoreRelaxed(c[3], v);
      sum += v;
      count += 1;
      mmSum += v;
      if (i % 7 == 0) {
        AddRelaxed(*boundCell, 1);
        sum += 1;
      }
      if (i % 512 == 0) {
        drain();  // the timer
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
    addTotal(writtenSum, sum);
    addTotal(writtenCount, count);
    addTotal(writtenMmSum, mmSum);
    if (idle) {
      // Records nothing more; its timer keeps draining until its private records are gone.
      while (!idleUntil->load()) {
        idleReleased->fetch_add(drain());
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    }
    switch (w % 3) {
      case 0:  // exits cleanly: caches and the bound handle let go first
        for (auto& [id, where] : byId) CHECK(m.Release(id, arena));
        CHECK(m.Release(bound.recordId, arena));
        break;
      case 1:  // terminated: every reference goes with the arena
        terminatedRefs.fetch_add(static_cast<long>(byId.size()) + 1);
        break;
      default:  // releases the bound handle only
        CHECK(m.Release(bound.recordId, arena));
        break;
    }
    m.RetireArena(arena);
  };

  // Collector: reclaiming collections (sometimes with a lagging reader) and plain ones.
  std::atomic<bool> stop{false};
  std::map<uint64_t, std::vector<double>> last;  // record id -> last collected state
  std::map<uint64_t, uint32_t> instOf;
  std::map<uint64_t, bool> idleOf;  // record id -> belongs to the idle thread's label sets
  std::set<uint64_t> reclaimed;
  long collects = 0, reclaimedCount = 0;
  uint64_t lastEpoch = 0;
  std::mutex lastMu;  // `last` is read by the idle check below, from this thread only
  auto collectOnce = [&](bool reclaim, uint64_t reclaimBefore) {
    CollectOptions o;
    o.domain = collects % 5 == 4 ? 0 : dom;
    o.reclaim = reclaim;
    o.reclaimBefore = reclaimBefore;
    Collected c = DoCollect(m, sizes, o);
    collects++;
    if (!c.ok) return c;
    CHECK_EQ(c.epoch, lastEpoch + 1);
    lastEpoch = c.epoch;
    std::lock_guard<std::mutex> lock(lastMu);
    for (const Row& r : c.rows) {
      CHECK(reclaimed.count(r.id) == 0);  // never listed again once reclaimed
      auto it = last.find(r.id);
      if (it != last.end()) {
        // Cumulative: never goes down.
        CHECK(r.state[0] >= it->second[0]);
        // `updated` means the state changed since the previous pass (its fingerprint, over
        // every value). Not Activity(): a writer caught between `count += 1` and its
        // sum/min/max stores changes a MinMaxSumCount state in the next pass with the
        // same count.
        CHECK_EQ(r.updated, r.state != it->second);
      }
      last[r.id] = r.state;
      if (instOf.emplace(r.id, r.instrument).second) {
        uint32_t inst = 0;
        std::string key;
        CHECK(m.RecordInfo(r.id, &inst, &key));  // only this thread reclaims
        idleOf[r.id] = key.find("idle") != std::string::npos;
      }
    }
    for (uint64_t id : c.reclaimed) {
      CHECK(reclaimed.insert(id).second);
      reclaimedCount++;
    }
    return c;
  };
  std::thread collector([&] {
    while (!stop.load()) {
      const bool reclaim = collects % 3 != 2;
      const uint64_t before = collects % 4 == 3 && lastEpoch > 2 ? lastEpoch - 2 : UINT64_MAX;
      if (!collectOnce(reclaim, before).ok) return;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });

  // One long-lived thread that goes idle; generations of short-lived ones meanwhile.
  std::atomic<bool> idleExit{false};
  std::atomic<int> idleReleased{0};
  std::thread idleThread([&] { worker(0, 1, &idleExit, &idleReleased); });
  for (int g = 0; g < generations; g++) {
    std::vector<std::thread> ts;
    for (int w = 0; w < kPerGen; w++) ts.emplace_back([&, g, w] { worker(g, w, nullptr, nullptr); });
    for (auto& t : ts) t.join();
  }
  // The idle thread's private records (label sets no one else uses) must be reclaimed
  // while it is alive: it drained its stale queue and let go.
  bool idleReclaimed = false;
  for (int i = 0; i < 4000 && !idleReclaimed; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(lastMu);
    size_t idleLive = 0, idleGone = 0;
    for (auto& [id, isIdle] : idleOf) {
      if (!isIdle) continue;
      if (reclaimed.count(id)) idleGone++;
      else idleLive++;
    }
    idleReclaimed = idleLive == 0 && idleGone >= 2 * kIdleLabels;
  }
  CHECK(idleReclaimed);
  idleExit.store(true);
  idleThread.join();
  CHECK(idleReleased.load() >= 2 * kIdleLabels);  // let go by draining, while alive
  stop.store(true);
  collector.join();

  // Quiescent: two more passes, then sum the last state of every record ever listed.
  REQUIRE(collectOnce(false, UINT64_MAX).ok);
  REQUIRE(collectOnce(true, UINT64_MAX).ok);
  double gotSum = 0, gotCount = 0, gotMmSum = 0;
  for (auto& [id, st] : last) {
    if (instOf[id] == sumId) {
      gotSum += st[0];
    } else {
      gotCount += st[0];
      gotMmSum += st[1];  // written after the count: torn reads must not lose it
    }
  }
  CHECK_EQ(gotSum, writtenSum.load());
  CHECK_EQ(gotCount, writtenCount.load());
  CHECK_EQ(gotMmSum, writtenMmSum.load());
  // Every thread is gone, so no references remain: everything is reclaimed.
  REQUIRE(collectOnce(true, UINT64_MAX).ok);
  CHECK_EQ(m.RecordCount(), 0u);
  CHECK_EQ(m.ArenaBytes(), 0u);
  std::printf("    worker stress: %d generations x %d threads + 1 idle, %.0f updates, %ld collects, "
              "%ld records reclaimed, %ld drains (%ld stale ids, %ld cached refs released), "
              "%ld refs dropped by retirement\n",
              generations, kPerGen, writtenCount.load(), collects, reclaimedCount, drains.load(),
              drainedIds.load(), released.load(), terminatedRefs.load());
  CHECK(reclaimedCount > 0);
  CHECK(released.load() > 0);
}

// A distribution state (Sketch or ExponentialHistogram) as plain data: header fields and
// bucket index -> count, independent of where the window sits in the cell.
struct DistNorm {
  double count = 0, sum = 0, min = 0, max = 0, zero = 0, scale = 0;
  std::map<int64_t, double> pos, neg;
  bool operator==(const DistNorm&) const = default;
};

DistNorm NormSketch(const std::vector<double>& s) {
  DistNorm n;
  n.count = s[sketch::kCount];
  n.sum = s[sketch::kSum];
  n.min = s[sketch::kMin];
  n.max = s[sketch::kMax];
  n.zero = s[sketch::kZero];
  if (std::isfinite(s[sketch::kBase])) {
    const auto base = static_cast<int64_t>(s[sketch::kBase]);
    for (size_t i = sketch::kHeader; i < s.size(); i++) {
      if (s[i] != 0) n.pos[base + static_cast<int64_t>(i - sketch::kHeader)] = s[i];
    }
  }
  return n;
}

DistNorm NormExphist(const std::vector<double>& s) {
  DistNorm n;
  n.count = s[exphist::kCount];
  n.sum = s[exphist::kSum];
  n.min = s[exphist::kMin];
  n.max = s[exphist::kMax];
  n.zero = s[exphist::kZero];
  n.scale = s[exphist::kScale];
  for (bool positive : {true, false}) {
    int64_t lo = 0, hi = 0;
    if (!exphist::UsedRange(s.data(), s.size(), positive, &lo, &hi)) continue;
    for (int64_t i = lo; i <= hi; i++) {
      double c = exphist::BucketCount(s.data(), s.size(), positive, i);
      if (c != 0) (positive ? n.pos : n.neg)[i] = c;
    }
  }
  return n;
}

std::string ShowNorm(const DistNorm& n) {
  std::string r = "{count " + Show(n.count) + ", sum " + Show(n.sum) + ", min " + Show(n.min) + ", max " +
                  Show(n.max) + ", zero " + Show(n.zero) + ", scale " + Show(n.scale) + ", pos";
  for (auto& [k, v] : n.pos) r += " " + std::to_string(k) + ":" + Show(v);
  r += ", neg";
  for (auto& [k, v] : n.neg) r += " " + std::to_string(k) + ":" + Show(v);
  return r + "}";
}

TEST(stress_distribution_cells_torn_reads) {
  // Sketch and ExponentialHistogram cells are updated in place, several doubles per value,
  // and their slow paths (moving the window, collapsing, downscaling) rewrite the whole
  // cell. The collector reads them mid-update, so Merge sees torn states: it must stay in
  // bounds (ASan) and the checkpoint must be exact once the writers stop.
  // Writers run the core's reference Update on a private copy and publish each changed
  // double with a relaxed atomic store: the JS plain stores, visible to TSan.
  RecordMap m;
  const uint32_t dom = m.RegisterDomain("dist");
  Descriptor sd = MakeDesc("dist.sketch", AggregationKind::Sketch);
  sd.maxSize = 16;  // small windows: the slow paths run all the time
  Descriptor ed = MakeDesc("dist.exphist", AggregationKind::ExponentialHistogram);
  ed.maxSize = 8;
  const size_t sn = CellSize(sd), en = CellSize(ed);
  REQUIRE(sn == sketch::CellSize(16));
  REQUIRE(en == exphist::CellSize(8));
  const sketch::Mapping mapping(sd.relativeAccuracy);
  const int32_t maxScale = ed.maxScale;
  const uint32_t sketchId = m.RegisterInstrument("dist.sketch", sd, nullptr, dom);
  const uint32_t exphistId = m.RegisterInstrument("dist.exphist", ed, nullptr, dom);
  const std::map<uint32_t, size_t> sizes = {{sketchId, sn}, {exphistId, en}};
  constexpr int kThreads = 3, kDistLabels = 8;
  const long iters = std::max<long>(2000, static_cast<long>(150000 * g_scale));
  std::vector<std::string> keys;
  for (int l = 0; l < kDistLabels; l++) keys.push_back(Key("shard", std::to_string(l)));

  // Final private states, [thread][label], for the expected merge.
  std::vector<std::vector<std::vector<double>>> finalSketch(kThreads), finalExphist(kThreads);
  std::vector<uint32_t> arenas(kThreads, 0);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const uint32_t arena = m.RegisterArena();
      arenas[t] = arena;
      std::vector<double*> sc(kDistLabels, nullptr), ec(kDistLabels, nullptr);
      std::vector<std::vector<double>> sp(kDistLabels), ep(kDistLabels);  // private copies
      std::vector<double> before;
      auto publish = [&](double* cell, const std::vector<double>& now) {
        for (size_t i = 0; i < now.size(); i++) {
          if (now[i] != before[i]) StoreRelaxed(cell[i], now[i]);
        }
      };
      std::mt19937_64 rng(1000 + static_cast<uint64_t>(t));
      bool ok = true;
      for (int l = 0; l < kDistLabels && ok; l++) {
        Acquired a, b;
        ok = m.Acquire(arena, sketchId, keys[l], 0, &a) && m.Acquire(arena, exphistId, keys[l], 0, &b);
        if (!ok) break;
        sc[l] = CellPtr(m, arena, a, sn);
        ec[l] = CellPtr(m, arena, b, en);
        ok = sc[l] && ec[l];
        if (!ok) break;
        sp[l] = Identity(AggregationKind::Sketch, sn);
        ep[l] = Identity(AggregationKind::ExponentialHistogram, en);
        CHECK_EQ(std::vector<double>(sc[l], sc[l] + sn), sp[l]);
        CHECK_EQ(std::vector<double>(ec[l], ec[l] + en), ep[l]);
      }
      if (!ok) Fail(__FILE__, __LINE__, "Acquire failed");
      for (long i = 0; i < iters && ok; i++) {
        const int l = static_cast<int>(rng() % kDistLabels);
        // Integers over six decades (and zeros): sums stay exact, windows keep moving.
        const int bits = static_cast<int>(rng() % 21);
        const double mag = static_cast<double>(rng() & ((uint64_t{1} << bits) - 1));
        before = sp[l];
        sketch::Update(sp[l].data(), sn, mapping, mag);
        publish(sc[l], sp[l]);
        const double v = (rng() & 1) ? -mag : mag;
        before = ep[l];
        exphist::Update(ep[l].data(), en, maxScale, v);
        publish(ec[l], ep[l]);
      }
      finalSketch[t] = sp;
      finalExphist[t] = ep;
      if (t == 0) m.RetireArena(arena);  // one thread exits, the others stay
      done.fetch_add(1);
    });
  }

  long collects = 0;
  std::map<uint64_t, double> lastCount;
  do {
    Collected c = DoCollect(m, sizes, collects % 2 == 1, 0, dom);
    collects++;
    if (!c.ok) break;
    for (const Row& r : c.rows) {
      // count is one double per cell, so the merged count only grows, whatever else tore.
      const double count = r.state[0];
      CHECK(count >= lastCount[r.id]);
      CHECK(count <= static_cast<double>(kThreads) * static_cast<double>(iters));
      lastCount[r.id] = count;
    }
    CHECK(c.reclaimed.empty());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  } while (done.load() < kThreads);
  for (auto& th : threads) th.join();

  // Expected: every thread's final state merged, in the reverse of Collect's order (the
  // retired thread 0 first, then live cells): Merge is order-independent.
  std::vector<DistNorm> expSketch(kDistLabels), expExphist(kDistLabels);
  double totalCount = 0;
  for (int l = 0; l < kDistLabels; l++) {
    std::vector<double> s = Identity(AggregationKind::Sketch, sn), e = Identity(AggregationKind::ExponentialHistogram, en);
    for (int t = kThreads - 1; t >= 0; t--) {
      if (finalSketch[t].size() != static_cast<size_t>(kDistLabels)) continue;
      MergeState(AggregationKind::Sketch, s.data(), finalSketch[t][l].data(), sn);
      MergeState(AggregationKind::ExponentialHistogram, e.data(), finalExphist[t][l].data(), en);
    }
    // Every value is accounted for: zero count plus buckets equals the count.
    CHECK_EQ(sketch::Total(s.data(), sn), s[sketch::kCount]);
    CHECK_EQ(exphist::Total(e.data(), en), e[exphist::kCount]);
    totalCount += s[sketch::kCount];
    expSketch[l] = NormSketch(s);
    expExphist[l] = NormExphist(e);
  }
  CHECK_EQ(totalCount, static_cast<double>(kThreads) * static_cast<double>(iters));

  auto check_final = [&](const char* when) {
    Collected c = DoCollect(m, sizes, false, 0, dom);
    if (!c.ok) return;
    CHECK_EQ(c.rows.size(), static_cast<size_t>(2 * kDistLabels));
    int bad = 0;
    for (const Row& r : c.rows) {
      uint32_t inst = 0;
      std::string key;
      if (!m.RecordInfo(r.id, &inst, &key)) {
        bad++;
        continue;
      }
      const int l = static_cast<int>(std::find(keys.begin(), keys.end(), key) - keys.begin());
      if (l >= kDistLabels) {
        bad++;
        continue;
      }
      const bool isSketch = r.instrument == sketchId;
      const DistNorm got = isSketch ? NormSketch(r.state) : NormExphist(r.state);
      const DistNorm& want = isSketch ? expSketch[l] : expExphist[l];
      if (!(got == want) && bad++ < 3) {
        Fail(__FILE__, __LINE__, std::string(when) + (isSketch ? ": sketch " : ": exphist ") + ShowNorm(got) +
                                     " != " + ShowNorm(want));
      }
    }
    CHECK_EQ(bad, 0);
  };
  check_final("after join");
  for (int t = 1; t < kThreads; t++) m.RetireArena(arenas[t]);
  CHECK_EQ(m.ArenaBytes(), 0u);
  check_final("after every arena retired");
  std::printf("    distribution stress: %ld values x 2 aggregations by %d writers, %ld concurrent collects\n",
              static_cast<long>(kThreads) * iters, kThreads, collects);
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
