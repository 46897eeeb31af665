// Tests of Prometheus snapshots and output: bookkeeping, chunks, output pool, parallel and parts.
//
// Usage: prometheus_output_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "prometheus_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// Snapshots and output.

TEST(snapshot_bookkeeping_matches_collect) {
  // Two identical maps: one collected with Collect, one through TakeSnapshot; the epoch,
  // stale and reclaimed records must agree, pass after pass.
  Fixture a, b;
  std::vector<double*> ca, cb;
  std::vector<uint64_t> ids;
  for (Fixture* f : {&a, &b}) {
    uint32_t c = f->Add("c", Desc("c", AggregationKind::Sum));
    uint32_t o = f->Add("o", Desc("o", AggregationKind::LastValue, InstrumentKind::ObservableGauge, false));
    for (int i = 0; i < 4; i++) {
      uint64_t id = 0;
      double* cell = f->Acquire(c, {"i", "n" + std::to_string(i)}, &id);
      (f == &a ? ca : cb).push_back(cell);
      if (f == &a) ids.push_back(id);
    }
    double* oc = f->Acquire(o, {});
    (f == &a ? ca : cb).push_back(oc);
  }
  for (size_t i = 0; i < ca.size(); i++) REQUIRE(ca[i] && cb[i]);
  auto write = [&](size_t i, double v) {
    ca[i][0] += v;
    cb[i][0] += v;
    if (i == 4) {  // the observable gauge: [value, stamp] (stamps increase)
      ca[i][1] += 1;
      cb[i][1] += 1;
    }
  };
  // Release records 2 and 3 (no handle holds them any more).
  for (Fixture* f : {&a, &b}) {
    f->m.Release(ids[2]);
    f->m.Release(ids[3]);
  }
  for (int pass = 0; pass < 4; pass++) {
    if (pass == 0) for (size_t i = 0; i < 5; i++) write(i, 1);
    if (pass == 2) write(0, 1);
    CollectOptions co;
    co.domain = a.domain;
    co.reclaim = true;
    std::vector<double> out;
    a.m.Collect(co, &out);
    prom::Snapshot snap;
    co.domain = b.domain;
    prom::TakeSnapshot(b.m, co, nullptr, &snap);
    CHECK(static_cast<uint64_t>(out[0]) == snap.epoch);
    std::vector<uint64_t> staleA, reclaimedA;
    size_t count = static_cast<size_t>(out[1]), i = 3;
    for (size_t r = 0; r < count; r++) {
      uint64_t id = static_cast<uint64_t>(out[i]);
      uint32_t inst = static_cast<uint32_t>(out[i + 1]);
      if (out[i + 2] != out[0]) staleA.push_back(id);  // lastUpdateEpoch: not this pass
      i += 4 + (inst == 1 ? 1 : 2);
    }
    for (size_t r = 0; r < static_cast<size_t>(out[2]); r++) reclaimedA.push_back(static_cast<uint64_t>(out[i + r]));
    std::sort(staleA.begin(), staleA.end());
    std::sort(snap.stale.begin(), snap.stale.end());
    std::sort(reclaimedA.begin(), reclaimedA.end());
    std::sort(snap.reclaimed.begin(), snap.reclaimed.end());
    CHECK(staleA == snap.stale);
    CHECK(reclaimedA == snap.reclaimed);
    if (pass == 1) CHECK(snap.reclaimed.size() == 2);  // records 2 and 3, idle and unreferenced
    // The observable gauge is exported only in the pass that observed it.
    bool hasObservable = false;
    for (const auto& si : snap.instruments) hasObservable |= si.descriptor.name == "o";
    CHECK(hasObservable == (pass == 0));
  }
}

TEST(label_sets_a_snapshot_points_at_outlive_their_records_until_it_goes) {
  // A snapshot keeps pointers to the record map's label sets, not copies: a set whose last
  // record is reclaimed while a snapshot is held must stay, bytes unchanged, until the
  // snapshot goes; new sets of the same size must not take its memory.
  Fixture f;
  const uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  auto acquireAll = [&](const std::string& prefix, double v) {
    for (int i = 0; i < 10; i++) {
      uint64_t id = 0;
      double* cell = f.Acquire(c, {"k", "s" + prefix + std::to_string(i)}, &id);  // "s": a string
      REQUIRE(cell != nullptr);
      *cell += v;
      f.m.Release(id);  // no handle keeps it: idle, it is reclaimable
    }
  };
  acquireAll("v", 1);
  CollectOptions co;
  co.domain = f.domain;
  co.reclaim = true;
  prom::Snapshot held;
  prom::TakeSnapshot(f.m, co, nullptr, &held);  // first pass: every record updated, kept
  REQUIRE(held.records.size() == 10 && held.pin.held());
  prom::ChunkedOutput before;
  prom::Serialize(held, Text(), {}, &before, nullptr);
  const std::string expected = prom::Join(before.Take());
  CHECK(expected.find("c_total{k=\"v7\"} 1\n") != std::string::npos);

  std::vector<double> out;
  f.m.Collect(co, &out);  // idle and unreferenced: reclaimed, and their sets retired
  CHECK(out[2] == 10);
  CHECK(f.m.LabelSetCount() == 0);
  CHECK(f.m.RetiredLabelSets() == 10);
  acquireAll("w", 2);  // same sizes: freed memory would be reused here
  prom::ChunkedOutput after;
  prom::Serialize(held, Text(), {}, &after, nullptr);
  CHECK(prom::Join(after.Take()) == expected);

  held.pin.reset();  // the last pin frees the retired sets
  CHECK(f.m.RetiredLabelSets() == 0);
  CHECK(f.m.LabelSetCount() == 10);
  // No pin held: reclamation frees at once.
  f.m.Collect(co, &out);
  out.clear();
  f.m.Collect(co, &out);
  CHECK(out[2] == 10);
  CHECK(f.m.LabelSetCount() == 0 && f.m.RetiredLabelSets() == 0);
}

TEST(chunks_end_at_line_boundaries) {
  Fixture f;
  uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  for (int i = 0; i < 5000; i++) {
    double* cell = f.Acquire(c, {"k", "s" + std::string(static_cast<size_t>(i % 50), 'x') + std::to_string(i)});
    REQUIRE(cell);
    cell[0] = i;
  }
  prom::Snapshot snap = f.Snap();
  prom::Options o = Text();
  o.chunkBytes = 4096;
  prom::ChunkedOutput out(o.chunkBytes);
  prom::Serialize(snap, o, {}, &out, nullptr);
  auto chunks = out.Take();
  CHECK(chunks.size() > 10);
  size_t lines = 0;
  for (const auto& ch : chunks) {
    CHECK(!ch.empty() && ch.back() == '\n');
    lines += static_cast<size_t>(std::count(ch.view().begin(), ch.view().end(), '\n'));
  }
  CHECK(lines == 5002);
}

TEST(output_pool_reuses_blocks_and_frees_what_a_scrape_did_not_need) {
  prom::OutputPool& pool = prom::OutputPool::Global();
  pool.Clear();
  constexpr size_t kBlock = prom::OutputPool::kBlockBytes;
  // A default-size chunk's block goes back to the pool and is the next chunk's block.
  const char* first;
  {
    prom::Chunk c(kBlock);
    c.append("abc");
    first = c.data();
  }
  CHECK(pool.pooledBlocks() == 1);
  {
    prom::Chunk c(kBlock);
    CHECK(c.data() == first);
    CHECK(pool.pooledBlocks() == 0);
    c.append(kBlock, 'x');  // the whole block is writable (ASan checks the unpoisoning)
    // release() + FreeChunkData (what a JS Buffer's finalizer does) pools it too.
    const size_t cap = c.capacity();
    char* p = c.release();
    prom::FreeChunkData(p, cap);
  }
  CHECK(pool.pooledBlocks() == 1);
  // Other sizes are never pooled.
  {
    prom::Chunk small(4096);
    small.append("x");
  }
  CHECK(pool.pooledBlocks() == 1);
  // Blocks that sat in the pool through a whole scrape are surplus: freed at its end;
  // blocks given back during the scrape stay.
  {
    prom::Chunk a(kBlock), b(kBlock);
    CHECK(pool.pooledBlocks() == 0);
  }
  CHECK(pool.pooledBlocks() == 2);
  const uint64_t ticket = pool.BeginScrape();
  prom::Chunk taken(kBlock);  // the scrape used one of the two
  CHECK(pool.pooledBlocks() == 1);
  { prom::Chunk returned(kBlock); }  // comes from the pool and goes back: now newer
  { char* extra = static_cast<char*>(prom::AllocateLarge(kBlock)); prom::FreeChunkData(extra, kBlock); }
  CHECK(pool.pooledBlocks() == 2);
  pool.EndScrape(ticket);
  CHECK(pool.pooledBlocks() == 2);  // both were given back during the scrape
  const uint64_t next = pool.BeginScrape();
  pool.EndScrape(next);  // a scrape that needed none of them
  CHECK(pool.pooledBlocks() == 0);
  pool.Clear();
}

// The lent registry answers for exactly the blocks lent and not yet given back, and the
// reuse counter counts the blocks Take() answered from the pool.
TEST(output_pool_knows_what_it_lent_and_counts_reuse) {
  prom::OutputPool& pool = prom::OutputPool::Global();
  pool.Clear();
  constexpr size_t kBlock = prom::OutputPool::kBlockBytes;
  const uint64_t reused0 = pool.reusedBlocks();
  prom::Chunk a(kBlock), b(kBlock);
  CHECK(pool.reusedBlocks() == reused0);  // the pool was empty: fresh blocks
  const size_t cap = a.capacity();
  char* pa = a.release();
  pool.Lend(pa);
  CHECK(pool.IsLent(pa));
  CHECK(!pool.IsLent(b.data()));
  CHECK(!pool.IsLent(pa + 1));  // only the block's start names it
  pool.Unlend(pa);              // what the Buffer finalizer does before FreeChunkData
  prom::FreeChunkData(pa, cap);
  CHECK(!pool.IsLent(pa));
  CHECK(pool.pooledBlocks() == 1);
  prom::Chunk c(kBlock);
  CHECK(c.data() == pa);
  CHECK(pool.reusedBlocks() == reused0 + 1);
  pool.Unlend(c.data());  // unlending what is not lent is harmless
  CHECK(!pool.IsLent(c.data()));
}

// Serializing again into pooled blocks gives the same text (nothing of the last scrape
// shows through).
TEST(output_from_pooled_blocks_equals_fresh_output) {
  Fixture f;
  uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  for (int i = 0; i < 40000; i++) {
    double* cell = f.Acquire(c, {"k", "value-" + std::to_string(i) + std::string(static_cast<size_t>(100 + i % 40), 'y')});
    REQUIRE(cell);
    cell[0] = i;
  }
  auto scrape = [&]() {
    prom::Snapshot snap = f.Snap();
    const uint64_t ticket = prom::OutputPool::Global().BeginScrape();
    prom::ChunkedOutput out;
    prom::Serialize(snap, Text(), {}, &out, nullptr);
    std::string text = prom::Join(out.Take());  // the chunks go back to the pool here
    prom::OutputPool::Global().EndScrape(ticket);
    return text;
  };
  prom::OutputPool::Global().Clear();
  const std::string fresh = scrape();
  CHECK(fresh.size() > 2 * prom::OutputPool::kBlockBytes);
  CHECK(prom::OutputPool::Global().pooledBlocks() >= 2);
  const std::string again = scrape();
  CHECK(again == fresh);
  prom::OutputPool::Global().Clear();
}

TEST(snapshot_memory_is_reused_and_the_reused_snapshot_is_complete) {
  Fixture f;
  uint32_t c = f.Add("c", Desc("c", AggregationKind::Sum));
  for (int i = 0; i < 3000; i++) {
    double* cell = f.Acquire(c, {"k", "v" + std::to_string(i)});
    REQUIRE(cell);
    cell[0] = i;
  }
  CollectOptions co;
  co.domain = f.domain;
  auto text = [&](const prom::Snapshot& snap) {
    prom::ChunkedOutput out;
    prom::Serialize(snap, Text(), {}, &out, nullptr);
    return prom::Join(out.Take());
  };
  prom::Snapshot first = prom::ReuseSnapshot();
  prom::TakeSnapshot(f.m, co, nullptr, &first);
  REQUIRE(first.records.size() == 3000);
  const std::string expected = text(first);
  const double* states = first.states.data();
  prom::StashSnapshot(std::move(first));
  prom::Snapshot again = prom::ReuseSnapshot();
  CHECK(again.records.empty() && again.states.empty() && !again.pin.held() && again.instruments.empty());
  CHECK(again.states.capacity() >= 3000 && again.states.data() == states);  // the same memory
  prom::TakeSnapshot(f.m, co, nullptr, &again);
  CHECK(again.records.size() == 3000);
  CHECK(text(again) == expected);
  prom::StashSnapshot(std::move(again));
  prom::Snapshot fresh = prom::ReuseSnapshot();
  prom::Snapshot none = prom::ReuseSnapshot();  // only one is kept
  CHECK(fresh.states.capacity() >= 3000);
  CHECK(none.states.capacity() == 0);
}

TEST(parallel_output_equals_sequential) {
  Fixture f;
  std::vector<uint32_t> ids;
  for (int k = 0; k < 5; k++) {
    Descriptor d = Desc("m" + std::to_string(k % 3), k % 2 ? AggregationKind::Histogram : AggregationKind::Sum,
                        k % 2 ? InstrumentKind::Histogram : InstrumentKind::Counter, k % 2 == 0, {1, 2});
    d.scopeName = "scope" + std::to_string(k);
    ids.push_back(f.Add("i" + std::to_string(k), d));
  }
  std::mt19937 rng(1);
  for (uint32_t id : ids) {
    for (int i = 0; i < 1 + static_cast<int>(rng() % 700); i++) {
      double* c = f.Acquire(id, {"k", "s" + std::to_string(i), "x.y", "n" + std::to_string(rng() % 5)});
      REQUIRE(c);
      c[0] = i;
    }
  }
  for (prom::Format fmt : {prom::Format::Text004, prom::Format::OpenMetrics100}) {
    prom::Options seq = fmt == prom::Format::Text004 ? Text(true) : OM(true);
    seq.threads = 1;
    seq.prefix = "# prefix\n";
    std::vector<uint32_t> d1, d2;
    const std::string want = f.Render(seq, {}, &d1);
    for (unsigned t : {2u, 3u, 4u, 7u}) {
      prom::Options par = seq;
      par.threads = t;
      par.parallelMinRecords = 1;
      par.chunkBytes = 4096;
      d2.clear();
      CHECK(f.Render(par, {}, &d2) == want);
      CHECK(d1 == d2);
    }
  }
}

TEST(parts_written_one_after_another_are_the_whole_text) {
  Fixture f;
  std::vector<uint32_t> ids;
  for (int k = 0; k < 6; k++) {  // counters and histograms of several scopes; some clash
    Descriptor d = Desc("m" + std::to_string(k % 3), k % 2 ? AggregationKind::Histogram : AggregationKind::Sum,
                        k % 2 ? InstrumentKind::Histogram : InstrumentKind::Counter, k % 2 == 0, {1, 2, 5});
    d.scopeName = "scope" + std::to_string(k);
    ids.push_back(f.Add("i" + std::to_string(k), d));
  }
  std::mt19937 rng(7);
  for (uint32_t id : ids) {
    for (int i = 0; i < 1 + static_cast<int>(rng() % 900); i++) {
      double* c = f.Acquire(id, {"k", "s" + std::to_string(i), "v", std::string(rng() % 40, 'x')});
      REQUIRE(c);
      c[0] = i;
    }
  }
  prom::Snapshot snap = f.Snap();
  // Families without records sorting first, between and last: each header belongs to
  // exactly one part. (TakeSnapshot leaves such instruments out; a plan must not rely on it.)
  for (const char* name : {"a_empty", "m1_empty", "z_empty"}) {
    prom::SnapshotInstrument si;
    si.id = 1000 + static_cast<uint32_t>(snap.instruments.size());
    si.descriptor = Desc(name, AggregationKind::Sum, InstrumentKind::Counter, true, {});
    si.firstRecord = snap.records.size();
    snap.instruments.push_back(si);
  }
  for (prom::Format fmt : {prom::Format::Text004, prom::Format::OpenMetrics100}) {
    prom::Options o = fmt == prom::Format::Text004 ? Text(true) : OM(true);
    o.prefix = "# prefix\n";
    o.threads = 1;
    std::vector<uint32_t> whole;
    prom::ChunkedOutput all;
    prom::Serialize(snap, o, {}, &all, &whole);
    const std::string want = prom::Join(all.Take());
    CHECK(want.find("# TYPE a_empty") != std::string::npos);
    CHECK(want.find("# TYPE z_empty") != std::string::npos);
    CHECK(!whole.empty());
    size_t kept = 0;
    for (const prom::SnapshotInstrument& si : snap.instruments) {
      if (std::find(whole.begin(), whole.end(), si.id) == whole.end()) kept += si.recordCount;
    }
    for (unsigned threads : {1u, 2u}) {
      prom::Options po = o;
      po.threads = threads;
      po.parallelMinRecords = 1;
      po.chunkBytes = 4096;
      std::vector<uint32_t> dropped;
      prom::SerializationPlan plan(snap, po, {}, &dropped);
      CHECK(dropped == whole);
      CHECK_EQ(plan.records(), kept);
      for (size_t bytes : {size_t{1}, size_t{2000}, size_t{50000}, size_t{1} << 30}) {
        const std::vector<size_t> parts = plan.Parts(bytes);
        CHECK(parts.front() == 0 && parts.back() == plan.records());
        for (size_t p = 1; p < parts.size(); p++) CHECK(parts[p] > parts[p - 1]);
        if (bytes == 1) CHECK_EQ(parts.size(), plan.records() + 1);  // a record a part
        if (bytes == (size_t{1} << 30)) CHECK_EQ(parts.size(), size_t{2});
        // ~2,000 bytes a part: as many parts as the estimate says (it is within 20% here).
        if (bytes == 2000) CHECK(parts.size() > static_cast<size_t>(plan.estimatedBytes() / 2000));
        if (bytes == 2000) CHECK(plan.estimatedBytes() > 0.8 * static_cast<double>(want.size()));
        std::string text;
        for (size_t p = 0; p + 1 < parts.size(); p++) {
          prom::ChunkedOutput out(po.chunkBytes);
          plan.Write(parts[p], parts[p + 1], p == 0, p + 2 == parts.size(), &out);
          text += prom::Join(out.Take());
        }
        CHECK(text == want);
      }
    }
  }
  // No records at all: one part, the prefix and the headers.
  prom::Snapshot empty;
  empty.instruments.push_back(snap.instruments.back());
  empty.instruments.back().firstRecord = 0;
  prom::Options o = OM();
  o.prefix = "# p\n";
  prom::SerializationPlan plan(empty, o, {}, nullptr);
  CHECK(plan.Parts(100) == std::vector<size_t>({0, 0}));
  prom::ChunkedOutput out;
  plan.Write(0, 0, true, true, &out);
  CHECK(prom::Join(out.Take()) == "# p\n# HELP z_empty z_empty\n# TYPE z_empty counter\n# EOF\n");
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
