// Tests of the native core's memory: slab arenas, the block pool, the record pool, the probe table.
//
// Usage: core_memory_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "core_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// SlabArena.

TEST(slab_arena_no_overlap_no_straddle) {
  SlabArena a(7);
  CHECK_EQ(a.id(), 7u);
  CHECK_EQ(a.SlabCount(), 0u);
  CHECK_EQ(a.BytesReserved(), 0u);
  std::mt19937_64 rng(7);
  struct Cell { CellRef ref; size_t size; };
  std::vector<Cell> cells;
  for (int i = 0; i < 3000; i++) {
    size_t size = rng() % 8 == 0 ? rng() % 2000 : rng() % 40;
    if (i % 700 == 699) size = SlabArena::kSlabDoubles + rng() % 100;  // a few oversize
    cells.push_back({a.Allocate(size), std::max<size_t>(size, 1)});
  }
  size_t reserved = 0;
  for (uint32_t s = 0; s < a.SlabCount(); s++) reserved += a.SlabDoubles(s) * sizeof(double);
  CHECK_EQ(a.BytesReserved(), reserved);

  std::map<uint32_t, std::vector<std::pair<size_t, size_t>>> bySlab;
  for (const Cell& c : cells) {
    REQUIRE(c.ref.slab < a.SlabCount());
    // A cell never straddles the end of its slab.
    CHECK(static_cast<size_t>(c.ref.offset) + c.size <= a.SlabDoubles(c.ref.slab));
    CHECK(a.Data(c.ref) == a.SlabData(c.ref.slab) + c.ref.offset);
    bySlab[c.ref.slab].push_back({c.ref.offset, c.size});
  }
  for (auto& [slab, spans] : bySlab) {
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); i++) {
      if (spans[i - 1].first + spans[i - 1].second > spans[i].first) {
        Fail(__FILE__, __LINE__, "cells overlap in slab " + std::to_string(slab));
        return;
      }
    }
  }
  // Fill every cell with its own pattern, then check none was overwritten.
  for (size_t i = 0; i < cells.size(); i++) {
    double* d = a.Data(cells[i].ref);
    for (size_t j = 0; j < cells[i].size; j++) d[j] = static_cast<double>(i) + 0.5;
  }
  size_t bad = 0;
  for (size_t i = 0; i < cells.size(); i++) {
    const double* d = a.Data(cells[i].ref);
    for (size_t j = 0; j < cells[i].size; j++) bad += d[j] != static_cast<double>(i) + 0.5;
  }
  CHECK_EQ(bad, 0u);
}

TEST(slab_arena_slab_boundary) {
  SlabArena a(1);
  constexpr size_t S = SlabArena::kSlabDoubles;
  static_assert(S == 8192);
  // 81 cells of 100 doubles use 8100; a 92-double cell exactly fills slab 0.
  for (int i = 0; i < 81; i++) {
    CellRef r = a.Allocate(100);
    CHECK_EQ(r.slab, 0u);
    CHECK_EQ(r.offset, static_cast<uint32_t>(i * 100));
  }
  CellRef exact = a.Allocate(92);
  CHECK_EQ(exact.slab, 0u);
  CHECK_EQ(exact.offset, 8100u);
  CHECK_EQ(a.SlabCount(), 1u);
  // The slab is full: the next cell, however small, starts a new slab.
  CellRef next = a.Allocate(1);
  CHECK_EQ(next.slab, 1u);
  CHECK_EQ(next.offset, 0u);
  // 8191 - 8000 = 191 left in slab 1 after this; a 192-double cell does not fit.
  CellRef big = a.Allocate(8000);
  CHECK_EQ(big.slab, 1u);
  CHECK_EQ(big.offset, 1u);
  CellRef spill = a.Allocate(192);
  CHECK_EQ(spill.slab, 2u);
  CHECK_EQ(spill.offset, 0u);
  // A cell of exactly one slab fits in a fresh normal slab.
  CellRef whole = a.Allocate(S);
  CHECK_EQ(whole.offset, 0u);
  CHECK_EQ(a.SlabDoubles(whole.slab), S);
  for (uint32_t s = 0; s < a.SlabCount(); s++) CHECK_EQ(a.SlabDoubles(s), S);
  CHECK_EQ(a.BytesReserved(), a.SlabCount() * S * sizeof(double));
}

TEST(slab_arena_oversize_dedicated_slab) {
  SlabArena a(2);
  constexpr size_t S = SlabArena::kSlabDoubles;
  CellRef small = a.Allocate(10);
  CHECK_EQ(small.slab, 0u);
  CellRef over = a.Allocate(S + 5);
  CHECK(over.slab != small.slab);
  CHECK_EQ(over.offset, 0u);
  REQUIRE(over.slab < a.SlabCount());
  CHECK_EQ(a.SlabDoubles(over.slab), S + 5);
  // The whole oversize cell is writable (ASan would flag a short allocation).
  double* d = a.Data(over);
  for (size_t i = 0; i < S + 5; i++) d[i] = static_cast<double>(i);
  CHECK_EQ(d[S + 4], static_cast<double>(S + 4));
  // Later small cells never land in the dedicated slab.
  for (int i = 0; i < 10; i++) {
    CellRef r = a.Allocate(10);
    CHECK(r.slab != over.slab);
    CHECK(static_cast<size_t>(r.offset) + 10 <= a.SlabDoubles(r.slab));
  }
  CellRef over2 = a.Allocate(3 * S);
  CHECK_EQ(over2.offset, 0u);
  CHECK_EQ(a.SlabDoubles(over2.slab), 3 * S);
  CHECK(over2.slab != over.slab);
  size_t expect = 0;
  for (uint32_t s = 0; s < a.SlabCount(); s++) expect += a.SlabDoubles(s) * sizeof(double);
  CHECK_EQ(a.BytesReserved(), expect);
}

TEST(slab_arena_free_reuse) {
  SlabArena a(3);
  CellRef r1 = a.Allocate(5);
  CellRef r2 = a.Allocate(5);
  CellRef r3 = a.Allocate(7);
  CHECK(r1.offset != r2.offset);
  a.Free(r1, 5);
  CellRef r4 = a.Allocate(5);  // reuses r1
  CHECK_EQ(r4.slab, r1.slab);
  CHECK_EQ(r4.offset, r1.offset);
  a.Free(r2, 5);
  CellRef r5 = a.Allocate(6);  // different size: not r2
  CHECK(!(r5.slab == r2.slab && r5.offset == r2.offset));
  CellRef r6 = a.Allocate(5);  // same size: r2
  CHECK_EQ(r6.offset, r2.offset);
  CellRef r7 = a.Allocate(5);  // free list empty: fresh
  CHECK(r7.offset != r1.offset && r7.offset != r2.offset && r7.offset != r3.offset);
  // Size 0 is a 1-double cell; Free/Allocate of size 0 agree with that.
  CellRef z1 = a.Allocate(0), z2 = a.Allocate(0);
  CHECK(z1.offset != z2.offset);
  a.Free(z1, 0);
  CellRef z3 = a.Allocate(0);
  CHECK_EQ(z3.offset, z1.offset);
  // Oversize cells go back to the free list too and keep their dedicated slab.
  constexpr size_t S = SlabArena::kSlabDoubles;
  CellRef o1 = a.Allocate(S + 1);
  size_t slabs = a.SlabCount();
  a.Free(o1, S + 1);
  CellRef o2 = a.Allocate(S + 1);
  CHECK_EQ(o2.slab, o1.slab);
  CHECK_EQ(o2.offset, 0u);
  CHECK_EQ(a.SlabCount(), slabs);
}

// ---------------------------------------------------------------------------------------
// BlockPool, RecordPool, ProbeTable.

TEST(block_pool_blocks_never_overlap_and_are_reused) {
  // Random allocations and frees of small and large blocks, each filled with its own
  // byte: every live block keeps its contents, so none overlaps another (ASan also sees
  // any access to a freed block's poisoned bytes).
  BlockPool pool;
  struct Live {
    unsigned char* p;
    size_t n;
    unsigned char fill;
  };
  std::vector<Live> live;
  std::mt19937 rng(11);
  size_t reused = 0;
  std::set<void*> freed;
  for (int step = 0; step < 40000; step++) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t n = rng() % 10 == 0 ? 257 + rng() % 600 : 1 + rng() % BlockPool::kMaxSmall;
      auto* p = static_cast<unsigned char*>(pool.Allocate(n));
      CHECK(reinterpret_cast<uintptr_t>(p) % 8 == 0);
      reused += freed.erase(p);
      const auto fill = static_cast<unsigned char>(step);
      std::memset(p, fill, n);
      live.push_back({p, n, fill});
    } else {
      const size_t i = rng() % live.size();
      for (size_t j = 0; j < live[i].n; j++) {
        if (live[i].p[j] != live[i].fill) {
          Fail(__FILE__, __LINE__, "a block's bytes changed while it was live");
          return;
        }
      }
      if (live[i].n <= BlockPool::kMaxSmall) freed.insert(live[i].p);
      pool.Free(live[i].p, live[i].n);
      live[i] = live.back();
      live.pop_back();
    }
  }
  for (const Live& l : live) {
    for (size_t j = 0; j < l.n; j++) REQUIRE(l.p[j] == l.fill);
    pool.Free(l.p, l.n);
  }
  CHECK(reused > 1000);  // freed small blocks come back
}

TEST(record_pool_ids_name_one_record_and_never_a_later_one) {
  RecordPool pool;
  LabelSet* const dummy = reinterpret_cast<LabelSet*>(uintptr_t{64});  // never dereferenced
  std::vector<uint32_t> slots;
  for (uint32_t i = 0; i < RecordPool::kChunk + 3; i++) {  // spans two chunks
    slots.push_back(pool.Allocate());
    pool.At(slots.back()).labels = dummy;
  }
  CHECK_EQ(pool.size(), static_cast<size_t>(RecordPool::kChunk + 3));
  const Record* first = &pool.At(slots[0]);
  const uint64_t id = pool.IdOf(slots[5]);
  CHECK(id != 0);
  CHECK(pool.Find(id) == &pool.At(slots[5]));
  pool.Free(slots[5]);
  CHECK(pool.Find(id) == nullptr);  // freed
  const uint32_t again = pool.Allocate();
  CHECK_EQ(again, slots[5]);  // the slot is reused...
  pool.At(again).labels = dummy;
  CHECK(pool.Find(id) == nullptr);  // ...under a new id
  CHECK(pool.IdOf(again) != id);
  CHECK(pool.Find(pool.IdOf(again)) == &pool.At(again));
  CHECK(&pool.At(slots[0]) == first);  // chunks never move
  CHECK(pool.Find(0) == nullptr);
  CHECK(pool.Find(uint64_t{1} << 32 | (RecordPool::kChunk + 3)) == nullptr);  // never issued
  // The generation wraps past its maximum to 1, never 0, and ids stay below 2^53.
  pool.At(again).generation = RecordPool::kMaxGeneration;
  CHECK(pool.IdOf(again) < (uint64_t{1} << 53));
  pool.Free(again);
  CHECK_EQ(pool.At(again).generation, 1u);
}

TEST(probe_table_matches_a_std_set) {
  // Random inserts and erases (erase is a backward shift: every later element of a run
  // must stay findable) against std::set, with a weak hash so runs are long; the table
  // grows and shrinks through it.
  struct Item { uint64_t key; };
  struct Weak {
    static uint64_t Hash(const Item* i) { return i->key % 61; }  // many collisions
  };
  ProbeTable<Item, Weak> t;
  std::map<uint64_t, std::unique_ptr<Item>> owned;
  std::mt19937_64 rng(7);
  auto find = [&](uint64_t k) { return t.Find(k % 61, [k](const Item* i) { return i->key == k; }); };
  size_t peakCapacity = 0;
  for (int step = 0; step < 60000; step++) {
    const uint64_t k = rng() % 3000;
    const bool grow = step < 30000 ? rng() % 3 != 0 : rng() % 10 == 0;  // fill, then drain
    auto it = owned.find(k);
    if (grow && it == owned.end()) {
      auto item = std::make_unique<Item>(Item{k});
      t.Insert(item.get());
      owned.emplace(k, std::move(item));
    } else if (!grow && it != owned.end()) {
      CHECK(t.Erase(it->second.get()));
      owned.erase(it);
    }
    peakCapacity = std::max(peakCapacity, t.capacity());
    if (step % 997 == 0) {
      CHECK_EQ(t.size(), owned.size());
      for (uint64_t q = 0; q < 3000; q++) {
        const Item* f = find(q);
        auto o = owned.find(q);
        CHECK(o == owned.end() ? f == nullptr : f == o->second.get());
      }
    }
  }
  CHECK(t.size() * 5 <= t.capacity() * 4);
  CHECK(t.capacity() < peakCapacity);  // shrank while draining
  for (auto& [k, item] : owned) CHECK(t.Erase(item.get()));
  CHECK_EQ(t.size(), 0u);
  Item stranger{1};
  CHECK(!t.Erase(&stranger));
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
