// Tests of the record map (native/core/record_map.h), single-threaded but for last-value ordering.
//
// Usage: core_record_map_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "core_helpers.h"
#include "../core/exemplar.h"

namespace {

// ---------------------------------------------------------------------------------------
// RecordMap (a local map, never Global()).

TEST(record_map_register_instrument) {
  RecordMap m;
  bool existed = true;
  uint32_t a = m.RegisterInstrument("meter/a", MakeDesc("a", AggregationKind::Sum), &existed);
  CHECK(!existed);
  CHECK_EQ(a, 1u);
  uint32_t h = m.RegisterInstrument("meter/h", MakeDesc("h", AggregationKind::Histogram, {1, 2, 3}), &existed);
  CHECK(!existed);
  CHECK_EQ(h, 2u);
  // Same identity: same id, even with another descriptor; the first descriptor is kept.
  uint32_t a2 = m.RegisterInstrument("meter/a", MakeDesc("other", AggregationKind::LastValue), &existed);
  CHECK(existed);
  CHECK_EQ(a2, a);
  uint32_t a3 = m.RegisterInstrument("meter/a", MakeDesc("a", AggregationKind::Sum), nullptr);
  CHECK_EQ(a3, a);
  Descriptor d;
  REQUIRE(m.GetDescriptor(a, &d));
  CHECK_EQ(d.name, std::string("a"));
  CHECK(d.aggregation == AggregationKind::Sum);
  REQUIRE(m.GetDescriptor(h, &d));
  CHECK_EQ(d.name, std::string("h"));
  CHECK_EQ(d.description, std::string("test instrument h"));
  CHECK(d.aggregation == AggregationKind::Histogram);
  CHECK_EQ(d.bounds, (std::vector<double>{1, 2, 3}));
  CHECK(!m.GetDescriptor(0, &d));
  CHECK(!m.GetDescriptor(3, &d));
  CHECK(!m.GetDescriptor(0xffffffffu, &d));
  // Identities are exact byte strings.
  uint32_t b = m.RegisterInstrument(std::string("meter/a\0", 8), MakeDesc("b", AggregationKind::Sum), &existed);
  CHECK(!existed);
  CHECK_EQ(b, 3u);
}

// ReleaseDomain: a domain lives while any of its uses (providers, by thread) is left;
// the last use, or the exit of the last thread that used it, frees its instruments,
// records, cells and label sets, referenced or not, and its name.
TEST(record_map_release_domain_frees_removed_records) {
  // A series removed while a thread still references it lives in no instrument list; when
  // its domain is freed it must go too (its instrument goes), and a late Release of it is
  // an unknown id, not a use of freed memory.
  RecordMap m;
  uint32_t t1 = m.RegisterArena();
  const size_t records0 = m.RecordCount(), labels0 = m.LabelSetCount();
  uint32_t d = m.RegisterDomain("", t1);
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d);
  Acquired a;
  REQUIRE(m.Acquire(t1, c, Key("k", "1"), 0, &a));
  CHECK_EQ(m.Remove(c, Key("k", "1")), a.recordId);
  CHECK_EQ(m.RecordCount(), records0 + 1);  // still referenced by t1: kept, removed
  CHECK(m.ReleaseDomain(d, t1));
  CHECK_EQ(m.RecordCount(), records0);
  CHECK_EQ(m.LabelSetCount(), labels0);
  CHECK(!m.Release(a.recordId, t1));
  m.RetireArena(t1);
  CHECK_EQ(m.RecordCount(), records0);
}

TEST(record_map_release_domain) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  const size_t records0 = m.RecordCount(), instruments0 = m.InstrumentCount(), labels0 = m.LabelSetCount();
  uint32_t d = m.RegisterDomain("app", t1);
  CHECK_EQ(m.RegisterDomain("app", t1), d);  // a second provider of thread 1
  CHECK_EQ(m.RegisterDomain("app", t2), d);  // a worker's attached provider
  uint32_t keep = m.RegisterDomain("", t1);  // another provider's domain: untouched
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d);
  uint32_t h = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {1, 2}), nullptr, d);
  uint32_t k = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, keep);
  Acquired a, b, w, o;
  REQUIRE(m.Acquire(t1, c, Key("k", "1"), 0, &a));
  REQUIRE(m.Acquire(t1, h, Key("k", "1"), 0, &b));
  REQUIRE(m.Acquire(t2, c, Key("k", "1"), 0, &w));  // a second thread's cell of the same record
  REQUIRE(m.Acquire(t1, k, Key("k", "1"), 0, &o));
  CHECK_EQ(w.recordId, a.recordId);
  CHECK_EQ(m.RecordCount(), records0 + 3);
  CHECK(!m.ReleaseDomain(d, t1));
  CHECK(!m.ReleaseDomain(d, t1));
  CHECK(!m.ReleaseDomain(d, t1));  // thread 1 holds no use any more
  CHECK_EQ(m.RecordCount(), records0 + 3);  // the worker still uses the domain
  Descriptor desc;
  CHECK(m.GetDescriptor(c, &desc));
  // The worker's thread exits: its arena retires, the domain has no use left.
  m.RetireArena(t2);
  CHECK_EQ(m.RecordCount(), records0 + 1);
  CHECK_EQ(m.InstrumentCount(), instruments0 + 1);
  CHECK_EQ(m.LabelSetCount(), labels0 + 1);  // {k=1} of `keep`'s record
  CHECK(!m.GetDescriptor(c, &desc));
  CHECK(!m.GetDescriptor(h, &desc));
  Acquired x;
  CHECK(!m.Acquire(t1, c, Key("k", "2"), 0, &x));  // a freed instrument takes nothing
  CHECK(!m.ReleaseDomain(d, t1));                  // unknown now
  // The name makes a new domain; ids are never reused.
  uint32_t d2 = m.RegisterDomain("app", t1);
  CHECK(d2 != d);
  uint32_t c2 = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr, d2);
  CHECK(c2 != c);
  // The freed cells are reused by thread 1's next records.
  REQUIRE(m.Acquire(t1, c2, Key("k", "1"), 0, &x));
  CHECK(x.slab == a.slab && x.offset == a.offset);
  std::map<uint32_t, size_t> sizes = {{k, 1}, {c2, 1}};
  Collected all = DoCollect(m, sizes, false, 0, 0);
  REQUIRE(all.ok);
  CHECK_EQ(all.rows.size(), 2u);
  CHECK(m.ReleaseDomain(d2, t1));
  CHECK(m.ReleaseDomain(keep, t1));
  CHECK_EQ(m.RecordCount(), records0);
  CHECK_EQ(m.InstrumentCount(), instruments0);
  CHECK_EQ(m.LabelSetCount(), labels0);
}

TEST(record_map_domains) {
  RecordMap m;
  uint32_t anon1 = m.RegisterDomain(""), anon2 = m.RegisterDomain("");
  uint32_t shared = m.RegisterDomain("shared"), shared2 = m.RegisterDomain("shared");
  uint32_t other = m.RegisterDomain("other");
  CHECK(anon1 != 0 && anon2 != 0 && shared != 0 && other != 0);
  CHECK(anon1 != anon2);  // an empty name always makes a new domain
  CHECK_EQ(shared, shared2);
  CHECK(shared != anon1 && shared != anon2 && shared != other && other != anon1 && other != anon2);
  // The same identity in two domains is two instruments.
  bool existed = true;
  uint32_t i1 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon1);
  CHECK(!existed);
  uint32_t i2 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon2);
  CHECK(!existed);
  CHECK(i1 != i2);
  CHECK_EQ(m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed, anon1), i1);
  CHECK(existed);
  uint32_t i3 = m.RegisterInstrument("requests", MakeDesc("requests", AggregationKind::Sum), &existed);
  CHECK(!existed);  // domain 0 is a domain of its own for registration
  CHECK(i3 != i1 && i3 != i2);
  // (domain, identity) pairs whose text concatenates alike stay distinct: domain dA with
  // identity "<d>x" vs domain dB = dA * 10 + d with identity "x".
  uint32_t dA = m.RegisterDomain(""), dB = 0;
  for (int i = 0; i < 1000 && dB < 10 * dA + 1; i++) dB = m.RegisterDomain("");
  REQUIRE(dB >= 10 * dA + 1);
  const std::string dAs = std::to_string(dA), dBs = std::to_string(dB);
  REQUIRE(dBs.compare(0, dAs.size(), dAs) == 0);
  const std::string digit = dBs.substr(dAs.size());
  uint32_t x1 = m.RegisterInstrument(digit + "x", MakeDesc("x", AggregationKind::Sum), &existed, dA);
  CHECK(!existed);
  uint32_t x2 = m.RegisterInstrument("x", MakeDesc("x", AggregationKind::Sum), &existed, dB);
  CHECK(!existed);
  CHECK(x1 != x2);
  uint32_t x3 = m.RegisterInstrument(digit + std::string("\0", 1) + "x", MakeDesc("x", AggregationKind::Sum), &existed, dA);
  CHECK(!existed);
  CHECK(x3 != x1 && x3 != x2);

  // Collect(domain) covers only that domain's instruments; domain 0 covers all.
  uint32_t arena = m.RegisterArena();
  Acquired a1, a2;
  REQUIRE(m.Acquire(arena, i1, Key("k", "v"), 0, &a1));
  REQUIRE(m.Acquire(arena, i2, Key("k", "v"), 0, &a2));
  CHECK(a1.recordId != a2.recordId);
  double* c1 = CellPtr(m, arena, a1, 1);
  double* c2 = CellPtr(m, arena, a2, 1);
  REQUIRE(c1 && c2);
  *c1 += 1;
  *c2 += 2;
  std::map<uint32_t, size_t> sizes;
  for (uint32_t id : {i1, i2, i3, x1, x2, x3}) sizes[id] = 1;
  Collected d1 = DoCollect(m, sizes, false, 0, anon1);
  REQUIRE(d1.ok);
  REQUIRE(d1.rows.size() == 1);
  CHECK_EQ(d1.rows[0].id, a1.recordId);
  CHECK_EQ(d1.rows[0].state, (std::vector<double>{1}));
  CHECK(d1.rows[0].updated);
  // Collecting one domain does not consume another domain's updates.
  *c1 += 1;
  Collected d2 = DoCollect(m, sizes, false, 0, anon2);
  REQUIRE(d2.ok);
  REQUIRE(d2.rows.size() == 1);
  CHECK_EQ(d2.rows[0].id, a2.recordId);
  CHECK(d2.rows[0].updated);
  CHECK(d2.epoch > d1.epoch);
  Collected none = DoCollect(m, sizes, true, 0, other);
  REQUIRE(none.ok);
  CHECK(none.rows.empty());
  Collected all = DoCollect(m, sizes, false, 0, 0);
  REQUIRE(all.ok);
  CHECK_EQ(all.rows.size(), 2u);
  REQUIRE(all.Find(a1.recordId));
  CHECK(all.Find(a1.recordId)->updated);
  CHECK_EQ(all.Find(a1.recordId)->state, (std::vector<double>{2}));
  CHECK(!all.Find(a2.recordId)->updated);
  // Reclaiming one domain leaves the others' records alone.
  CHECK(m.Release(a1.recordId));
  CHECK(m.Release(a2.recordId));
  Collected r2 = DoCollect(m, sizes, true, 0, anon2);
  REQUIRE(r2.ok);
  CHECK_EQ(r2.reclaimed, std::vector<uint64_t>{a2.recordId});
  CHECK_EQ(m.RecordCount(), 1u);
  uint32_t inst;
  std::string key;
  CHECK(m.RecordInfo(a1.recordId, &inst, &key));
  Collected r1 = DoCollect(m, sizes, true, 0, anon1);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed, std::vector<uint64_t>{a1.recordId});
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(record_map_reclaim_before) {
  // A released, idle record is reclaimed only once its last update was first seen before
  // epoch reclaimBefore (every reader has exported it, then seen it idle).
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "b"), 0, &b));
  double* ca = CellPtr(m, arena, a, 1);
  double* cb = CellPtr(m, arena, b, 1);
  REQUIRE(ca && cb);
  *ca += 1;
  *cb += 1;
  Collected c1 = DoCollect(m, sizes, false);  // epoch 1 sees both updates
  REQUIRE(c1.ok);
  REQUIRE(c1.epoch == 1);
  *cb += 1;
  Collected c2 = DoCollect(m, sizes, false);  // epoch 2 sees b's second update
  REQUIRE(c2.ok);
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(b.recordId));
  CollectOptions opts;
  opts.reclaim = true;
  opts.reclaimBefore = 0;  // no reader has collected yet: nothing that was updated goes
  Collected c3 = DoCollect(m, sizes, opts);
  REQUIRE(c3.ok);
  CHECK(c3.reclaimed.empty());
  CHECK_EQ(c3.rows.size(), 2u);
  for (const Row& r : c3.rows) CHECK(!r.updated);
  opts.reclaimBefore = 1;  // seen at 1 is not before 1: both stay
  Collected c4a = DoCollect(m, sizes, opts);
  REQUIRE(c4a.ok);
  CHECK(c4a.reclaimed.empty());
  opts.reclaimBefore = 2;  // a (last update seen at 1) goes; b (seen at 2) stays
  Collected c4 = DoCollect(m, sizes, opts);
  REQUIRE(c4.ok);
  CHECK_EQ(c4.reclaimed, std::vector<uint64_t>{a.recordId});
  REQUIRE(c4.rows.size() == 1);
  CHECK_EQ(c4.rows[0].id, b.recordId);
  opts.reclaimBefore = 3;
  Collected c5 = DoCollect(m, sizes, opts);
  REQUIRE(c5.ok);
  CHECK_EQ(c5.reclaimed, std::vector<uint64_t>{b.recordId});
  CHECK_EQ(m.RecordCount(), 0u);
  // A record never written is a series too (add(0)): the first pass that sees it exports
  // it as updated, whatever reclaimBefore says; then it goes like any other.
  Acquired z;
  REQUIRE(m.Acquire(arena, sum, Key("k", "z"), 0, &z));
  CHECK(m.Release(z.recordId));
  opts.reclaimBefore = UINT64_MAX;
  Collected c6 = DoCollect(m, sizes, opts);
  REQUIRE(c6.ok);
  CHECK(c6.reclaimed.empty());
  REQUIRE(c6.Find(z.recordId));
  CHECK(c6.Find(z.recordId)->updated);
  opts.reclaimBefore = c6.epoch;  // seen at c6.epoch: not before it
  Collected c7 = DoCollect(m, sizes, opts);
  REQUIRE(c7.ok);
  CHECK(c7.reclaimed.empty());
  opts.reclaimBefore = c6.epoch + 1;
  Collected c8 = DoCollect(m, sizes, opts);
  REQUIRE(c8.ok);
  CHECK_EQ(c8.reclaimed, std::vector<uint64_t>{z.recordId});
}

TEST(record_map_never_reclaims_non_monotonic_sums) {
  // An up-down counter's value is a level: however long it is idle and whatever
  // reclaimBefore says, its record (and value) stays; a counter's goes.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  Descriptor ud = MakeDesc("ud", AggregationKind::Sum);
  ud.kind = InstrumentKind::UpDownCounter;
  Descriptor oud = MakeDesc("oud", AggregationKind::PrecomputedSum);
  oud.kind = InstrumentKind::ObservableUpDownCounter;
  uint32_t u = m.RegisterInstrument("ud", ud, nullptr);
  uint32_t o = m.RegisterInstrument("oud", oud, nullptr);
  uint32_t c = m.RegisterInstrument("c", MakeDesc("c", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{u, 1}, {o, 2}, {c, 1}};
  Acquired a, b, d;
  REQUIRE(m.Acquire(arena, u, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, o, Key("k", "a"), 0, &b));
  REQUIRE(m.Acquire(arena, c, Key("k", "a"), 0, &d));
  *CellPtr(m, arena, a, 1) += 5;
  *CellPtr(m, arena, b, 2) = 7;
  *CellPtr(m, arena, d, 1) += 1;
  REQUIRE(m.Release(a.recordId));
  REQUIRE(m.Release(b.recordId));
  REQUIRE(m.Release(d.recordId));
  REQUIRE(DoCollect(m, sizes, false).ok);
  CollectOptions opts;
  opts.reclaim = true;
  opts.reclaimBefore = UINT64_MAX;
  Collected c2 = DoCollect(m, sizes, opts);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed, std::vector<uint64_t>{d.recordId});
  Collected c3 = DoCollect(m, sizes, opts);
  REQUIRE(c3.ok);
  CHECK(c3.reclaimed.empty());
  REQUIRE(c3.Find(a.recordId));
  CHECK_EQ(c3.Find(a.recordId)->state[0], 5.0);
  REQUIRE(c3.Find(b.recordId));
  CHECK_EQ(c3.Find(b.recordId)->state[0], 7.0);
}

TEST(record_map_remove) {
  // Remove unlinks a series: later passes do not show it, the next Acquire of its label
  // set makes a new record (new id, new start time, from zero), and the removed record is
  // freed once its last reference goes; threads caching it find it in their stale queue.
  RecordMap m;
  uint32_t t1 = m.RegisterArena();
  uint32_t t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a1, a2, b;
  REQUIRE(m.Acquire(t1, sum, Key("k", "a"), 1, &a1));
  REQUIRE(m.Acquire(t2, sum, Key("k", "a"), 1, &a2));
  REQUIRE(m.Acquire(t1, sum, Key("k", "b"), 1, &b));
  REQUIRE(a1.recordId == a2.recordId);
  *CellPtr(m, t1, a1, 1) += 2;
  *CellPtr(m, t2, a2, 1) += 3;
  REQUIRE(m.Release(b.recordId));
  CHECK_EQ(m.Remove(sum, Key("k", "nope")), 0u);
  CHECK_EQ(m.Remove(sum + 1, Key("k", "a")), 0u);
  CHECK_EQ(m.Remove(sum, Key("k", "a")), a1.recordId);
  CHECK_EQ(m.Remove(sum, Key("k", "a")), 0u);  // gone already
  CHECK_EQ(m.RecordCount(), 2u);               // referenced by both threads: kept
  Collected c1 = DoCollect(m, sizes, false);
  REQUIRE(c1.ok);
  CHECK_EQ(c1.rows.size(), 1u);
  CHECK(c1.Find(a1.recordId) == nullptr);
  std::vector<uint64_t> ids;
  m.DrainStale(t2, &ids);
  CHECK_EQ(ids, std::vector<uint64_t>{a1.recordId});
  // The same label set again: a new record, from zero, with its own start time.
  Acquired n1;
  REQUIRE(m.Acquire(t1, sum, Key("k", "a"), 9, &n1));
  CHECK(n1.recordId != a1.recordId);
  *CellPtr(m, t1, n1, 1) += 1;
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  REQUIRE(c2.Find(n1.recordId));
  CHECK_EQ(c2.Find(n1.recordId)->state[0], 1.0);
  CHECK_EQ(c2.Find(n1.recordId)->startTimeMs, 9.0);
  // The removed record goes with its last reference (t2's by release, t1's by retiring).
  CHECK(m.Release(a2.recordId, t2));
  CHECK_EQ(m.RecordCount(), 3u);
  m.RetireArena(t1);
  CHECK_EQ(m.RecordCount(), 2u);  // n1 (folded into retired state) and b
  CHECK(!m.Release(a1.recordId));
  // RemoveAll: every series of the instrument; unreferenced ones are freed at once.
  std::vector<uint64_t> all;
  m.RemoveAll(sum, &all);
  CHECK_EQ(all.size(), 2u);
  CHECK_EQ(m.RecordCount(), 0u);
  Collected c3 = DoCollect(m, sizes, false);
  REQUIRE(c3.ok);
  CHECK(c3.rows.empty());
}

TEST(record_map_cardinality_limit) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t other = m.RegisterInstrument("o", MakeDesc("o", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {other, 1}};
  CHECK_EQ(DecodeLabelKey(OverflowLabelKey()), (std::vector<std::string>{"otel.metric.overflow", "btrue"}));
  constexpr uint32_t kLimit = 4;  // 3 label sets + the overflow series
  std::vector<Acquired> own(3);
  for (int i = 0; i < 3; i++) {
    REQUIRE(m.Acquire(t1, sum, Key("l", std::to_string(i)), 0, &own[i], kLimit));
    CHECK(!own[i].overflow);
  }
  Acquired o1, o2, o3, again, o4;
  REQUIRE(m.Acquire(t1, sum, Key("l", "3"), 0, &o1, kLimit));
  CHECK(o1.overflow);
  CHECK(o1.newCell);
  REQUIRE(m.Acquire(t1, sum, Key("l", "4"), 0, &o2, kLimit));
  CHECK(o2.overflow);
  CHECK(!o2.newCell);
  CHECK_EQ(o2.recordId, o1.recordId);
  CHECK_EQ(o2.offset, o1.offset);
  for (const Acquired& a : own) CHECK(a.recordId != o1.recordId);
  // Known label sets keep their own records.
  REQUIRE(m.Acquire(t1, sum, Key("l", "1"), 0, &again, kLimit));
  CHECK(!again.overflow);
  CHECK_EQ(again.recordId, own[1].recordId);
  // Another thread overflows into the same record, with its own cell.
  REQUIRE(m.Acquire(t2, sum, Key("l", "9"), 0, &o3, kLimit));
  CHECK(o3.overflow);
  CHECK_EQ(o3.recordId, o1.recordId);
  CHECK(o3.newCell);
  // The overflow series itself.
  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(o1.recordId, &inst, &key));
  CHECK_EQ(inst, sum);
  CHECK_EQ(key, OverflowLabelKey());
  REQUIRE(m.Acquire(t1, sum, OverflowLabelKey(), 0, &o4, kLimit));
  CHECK_EQ(o4.recordId, o1.recordId);
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(kLimit));
  // The limit is per instrument; 0 means none.
  for (int i = 0; i < 10; i++) {
    Acquired x;
    REQUIRE(m.Acquire(t1, other, Key("l", std::to_string(i)), 0, &x, 0));
    CHECK(!x.overflow);
  }
  CHECK_EQ(m.RecordCount(), static_cast<size_t>(kLimit) + 10);
  // Measurements past the limit add up in the overflow series.
  double* c1 = CellPtr(m, t1, o1, 1);
  double* c3 = CellPtr(m, t2, o3, 1);
  REQUIRE(c1 && c3);
  *c1 += 2;
  *c3 += 5;
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.Find(o1.recordId));
  CHECK_EQ(c.Find(o1.recordId)->state, (std::vector<double>{7}));
  size_t sumRows = 0;
  for (const Row& r : c.rows) sumRows += r.instrument == sum;
  CHECK_EQ(sumRows, static_cast<size_t>(kLimit));
  // Reclaiming a label set's record makes room for a new label set.
  CHECK(m.Release(own[0].recordId));
  Collected r1 = DoCollect(m, sizes, true);
  REQUIRE(r1.ok);
  CHECK_EQ(r1.reclaimed, std::vector<uint64_t>{own[0].recordId});
  Acquired fresh, full;
  REQUIRE(m.Acquire(t1, sum, Key("l", "new"), 0, &fresh, kLimit));
  CHECK(!fresh.overflow);
  CHECK(fresh.recordId != o1.recordId);
  REQUIRE(m.Acquire(t1, sum, Key("l", "0"), 0, &full, kLimit));  // full again
  CHECK(full.overflow);
  CHECK_EQ(full.recordId, o1.recordId);
  // A limit of 1 leaves room for the overflow series only.
  uint32_t one = m.RegisterInstrument("one", MakeDesc("one", AggregationKind::Sum), nullptr);
  Acquired p, q;
  REQUIRE(m.Acquire(t1, one, Key("l", "a"), 0, &p, 1));
  REQUIRE(m.Acquire(t1, one, Key("l", "b"), 0, &q, 1));
  CHECK(p.overflow && q.overflow);
  CHECK_EQ(p.recordId, q.recordId);
}

TEST(record_map_acquire_identity) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t arena2 = m.RegisterArena();
  CHECK(arena != 0 && arena2 != 0 && arena != arena2);
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t sum2 = m.RegisterInstrument("s2", MakeDesc("s2", AggregationKind::Sum), nullptr);
  const std::string k1 = Key("route", "/a"), k2 = Key("route", "/b");

  Acquired a1, a1b, a2, a3, a4;
  REQUIRE(m.Acquire(arena, sum, k1, 100, &a1));
  CHECK(a1.recordId != 0);
  CHECK(a1.newCell);
  REQUIRE(m.Acquire(arena, sum, k1, 200, &a1b));
  CHECK_EQ(a1b.recordId, a1.recordId);
  CHECK(!a1b.newCell);
  CHECK_EQ(a1b.slab, a1.slab);
  CHECK_EQ(a1b.offset, a1.offset);
  REQUIRE(m.Acquire(arena, sum, k2, 300, &a2));
  CHECK(a2.recordId != a1.recordId);
  CHECK(a2.newCell);
  CHECK(!(a2.slab == a1.slab && a2.offset == a1.offset));
  // Same labels on another instrument: another record.
  REQUIRE(m.Acquire(arena, sum2, k1, 300, &a3));
  CHECK(a3.recordId != a1.recordId && a3.recordId != a2.recordId);
  // Same record from another thread's arena: same record, its own cell.
  REQUIRE(m.Acquire(arena2, sum, k1, 400, &a4));
  CHECK_EQ(a4.recordId, a1.recordId);
  CHECK(a4.newCell);
  CHECK_EQ(m.RecordCount(), 3u);

  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(a2.recordId, &inst, &key));
  CHECK_EQ(inst, sum);
  CHECK_EQ(key, k2);
  CHECK(!m.RecordInfo(0, &inst, &key));
  CHECK(!m.RecordInfo(9999, &inst, &key));

  // New cells start at the identity state, whatever the slab held.
  double* c1 = CellPtr(m, arena, a1, 1);
  double* c4 = CellPtr(m, arena2, a4, 1);
  REQUIRE(c1 && c4);
  CHECK(c1 != c4);
  CHECK_EQ(*c1, 0.0);
  CHECK_EQ(*c4, 0.0);
  // The record's start time is its creation time.
  Collected c = DoCollect(m, {{sum, 1}, {sum2, 1}}, false);
  REQUIRE(c.ok);
  const Row* r1 = c.Find(a1.recordId);
  REQUIRE(r1);
  CHECK_EQ(r1->startTimeMs, 100.0);
}

TEST(record_map_record_keys_share_label_sets) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t s1 = m.RegisterInstrument("s1", MakeDesc("s1", AggregationKind::Sum), nullptr);
  uint32_t s2 = m.RegisterInstrument("s2", MakeDesc("s2", AggregationKind::Sum), nullptr);
  const std::string k1 = Key("route", "/a"), k2 = Key("route", "/b");
  Acquired a, b, c;
  REQUIRE(m.Acquire(arena, s1, k1, 100, &a));
  REQUIRE(m.Acquire(arena, s1, k2, 100, &b));
  REQUIRE(m.Acquire(arena, s2, k1, 100, &c));  // k1 again, on another instrument
  std::vector<std::string> keys;
  std::vector<bool> found;
  std::vector<int64_t> same;
  m.RecordKeys({a.recordId, b.recordId, 9999, c.recordId, b.recordId}, &keys, &found, &same);
  REQUIRE(keys.size() == 5 && found.size() == 5 && same.size() == 5);
  CHECK(found[0] && found[1] && !found[2] && found[3] && found[4]);
  CHECK_EQ(keys[0], k1);
  CHECK_EQ(same[0], int64_t{-1});
  CHECK_EQ(keys[1], k2);
  CHECK_EQ(same[1], int64_t{-1});
  CHECK_EQ(same[2], int64_t{-1});
  CHECK_EQ(same[3], int64_t{0});  // c shares a's label set
  CHECK(keys[3].empty());
  CHECK_EQ(same[4], int64_t{1});
  // Without `same`, every key is written.
  m.RecordKeys({a.recordId, c.recordId}, &keys, &found);
  CHECK_EQ(keys[0], k1);
  CHECK_EQ(keys[1], k1);
}

TEST(record_map_refcounts) {
  RecordMap m;
  uint32_t arena = m.RegisterArena(), arena2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(arena2, sum, Key("k", "v"), 0, &a));
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(a.recordId));
  CHECK(!m.Release(a.recordId));  // refcount 0
  CHECK(!m.Release(a.recordId));
  CHECK(!m.Release(0));
  CHECK(!m.Release(a.recordId + 1000));  // unknown
  // Reacquire after reaching 0 (no collection in between): the same record.
  Acquired b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &b));
  CHECK_EQ(b.recordId, a.recordId);
  CHECK(!b.newCell);
  CHECK(m.Release(b.recordId));
  CHECK(!m.Release(b.recordId));
}

TEST(record_map_refcounts_per_arena) {
  // Each thread (arena) releases only the references it holds; retiring an arena drops
  // the references it still held (its handles and caches died with the thread).
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena(), t3 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(t1, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(t1, sum, Key("k", "v"), 0, &a));
  REQUIRE(m.Acquire(t2, sum, Key("k", "v"), 0, &b));
  REQUIRE(a.recordId == b.recordId);
  CHECK(!m.Release(a.recordId, t3));  // t3 holds none
  CHECK(m.Release(a.recordId, t2));
  CHECK(!m.Release(a.recordId, t2));  // t2's only reference is gone
  CHECK(m.Release(a.recordId, t1));
  // t1 still holds one: not reclaimable, whatever the collections say.
  double* c = CellPtr(m, t1, a, 1);
  REQUIRE(c);
  *c += 3;
  for (int i = 0; i < 3; i++) REQUIRE(DoCollect(m, sizes, true).ok);
  CHECK_EQ(m.RecordCount(), 1u);
  // t1 exits holding it: its reference goes, the total stays, then it is reclaimable.
  m.RetireArena(t1);
  CHECK(!m.Release(a.recordId, t1));
  CHECK(!m.Release(a.recordId));
  Collected c1 = DoCollect(m, sizes, true);
  REQUIRE(c1.ok);
  CHECK(c1.WasReclaimed(a.recordId));  // not updated since the collections above
  CHECK_EQ(m.RecordCount(), 0u);
  m.RetireArena(t2);
  m.RetireArena(t3);
}

TEST(record_map_stale_queue) {
  // A reclaiming collection queues idle, referenced records into the stale queue of every
  // arena holding references; DrainStale hands them to that thread once.
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t mm = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {mm, 4}};
  Acquired x1, x2, y1, z2, w1;
  REQUIRE(m.Acquire(t1, sum, Key("k", "x"), 0, &x1));  // shared by t1 and t2
  REQUIRE(m.Acquire(t2, sum, Key("k", "x"), 0, &x2));
  REQUIRE(m.Acquire(t1, sum, Key("k", "y"), 0, &y1));  // t1 only
  REQUIRE(m.Acquire(t2, mm, Key("k", "z"), 0, &z2));   // t2 only
  REQUIRE(m.Acquire(t1, mm, Key("k", "w"), 0, &w1));   // t1 only, released below
  CHECK(!x1.stalePending && !z2.stalePending);
  double* cx1 = CellPtr(m, t1, x1, 1);
  double* cy1 = CellPtr(m, t1, y1, 1);
  double* cz2 = CellPtr(m, t2, z2, 4);
  REQUIRE(cx1 && cy1 && cz2);
  *cx1 += 1;
  *cy1 += 1;
  Update(AggregationKind::MinMaxSumCount, cz2, {}, 5);
  std::vector<uint64_t> ids;
  m.DrainStale(t1, &ids);
  CHECK(ids.empty());

  // Everything is new in this pass: updated (x, y, z) or referenced only... w was never
  // written, so it is idle: queued for t1. A non-reclaiming pass queues nothing.
  REQUIRE(DoCollect(m, sizes, false).ok);
  m.DrainStale(t1, &ids);
  CHECK(ids.empty());
  REQUIRE(DoCollect(m, sizes, true).ok);  // nothing changed since the previous pass
  Acquired probe;
  REQUIRE(m.Acquire(t1, sum, Key("k", "probe"), 0, &probe));  // t1 learns it has work
  CHECK(probe.stalePending);
  CHECK(m.Release(probe.recordId, t1));
  // t2 writes x after the queueing: x stays cached in t2, but t1 (idle on x) lets go.
  double* cx2 = CellPtr(m, t2, x2, 1);
  REQUIRE(cx2);
  *cx2 += 1;
  m.DrainStale(t1, &ids);
  std::sort(ids.begin(), ids.end());
  std::vector<uint64_t> want1 = {x1.recordId, y1.recordId, w1.recordId};
  std::sort(want1.begin(), want1.end());
  CHECK(ids == want1);
  ids.clear();
  m.DrainStale(t2, &ids);  // t2 wrote x since: only z
  CHECK(ids == std::vector<uint64_t>{z2.recordId});
  ids.clear();
  m.DrainStale(t1, &ids);  // once
  CHECK(ids.empty());

  // t1 releases what it drained (its caches let go); y and w become reclaimable.
  CHECK(m.Release(x1.recordId, t1));
  CHECK(m.Release(y1.recordId, t1));
  CHECK(m.Release(w1.recordId, t1));
  Collected c = DoCollect(m, sizes, true);
  REQUIRE(c.ok);
  CHECK(c.WasReclaimed(y1.recordId));
  CHECK(c.WasReclaimed(w1.recordId));
  CHECK(!c.WasReclaimed(x1.recordId));  // t2 updated it and still holds it
  CHECK(!c.WasReclaimed(z2.recordId));  // t2 holds it
  // Still idle in t2 after its drain: queued again by a later pass; then z is written
  // by t2 before its drain, so the drain leaves it out.
  REQUIRE(DoCollect(m, sizes, true).ok);
  Update(AggregationKind::MinMaxSumCount, cz2, {}, 6);
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(ids == std::vector<uint64_t>{x2.recordId});
  // A queued record that is reclaimed before the drain is left out of it.
  REQUIRE(DoCollect(m, sizes, true).ok);  // z updated: not queued; x idle: queued for t2
  CHECK(m.Release(x2.recordId, t2));
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK(c2.WasReclaimed(x2.recordId));
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(std::find(ids.begin(), ids.end(), x2.recordId) == ids.end());
  // A retired arena's queue goes with it.
  m.RetireArena(t2);
  ids.clear();
  m.DrainStale(t2, &ids);
  CHECK(ids.empty());
  m.RetireArena(t1);
}

TEST(record_map_acquire_failures) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t drop = m.RegisterInstrument("d", MakeDesc("d", AggregationKind::Drop), nullptr);
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  CHECK(!m.Acquire(arena, drop, Key("k", "v"), 0, &a));    // disabled instrument
  CHECK(!m.Acquire(arena, 0, Key("k", "v"), 0, &a));       // unknown instrument
  CHECK(!m.Acquire(arena, 99, Key("k", "v"), 0, &a));
  CHECK(!m.Acquire(0, sum, Key("k", "v"), 0, &a));         // unknown arena
  CHECK(!m.Acquire(arena + 100, sum, Key("k", "v"), 0, &a));
  CHECK_EQ(m.RecordCount(), 0u);
  // A retired arena is unknown from then on.
  uint32_t gone = m.RegisterArena();
  m.RetireArena(gone);
  CHECK(!m.Acquire(gone, sum, Key("k", "v"), 0, &a));
  double* data = nullptr;
  size_t doubles = 0;
  CHECK(!m.SlabMemory(gone, 0, &data, &doubles));
  m.RetireArena(gone);    // twice: a no-op
  m.RetireArena(12345);   // unknown: a no-op
  CHECK_EQ(m.RecordCount(), 0u);
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  CHECK_EQ(m.RecordCount(), 1u);
  CHECK(m.SlabMemory(arena, a.slab, &data, &doubles));
  CHECK(!m.SlabMemory(arena, a.slab + 1, &data, &doubles));  // no such slab
  Collected c = DoCollect(m, {{drop, 0}, {sum, 1}}, false);
  REQUIRE(c.ok);
  CHECK_EQ(c.rows.size(), 1u);
}

TEST(record_map_collect_layout_and_cell_writes) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::vector<double> bounds = {1, 2, 5};
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  uint32_t mmsc = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const size_t hn = CellSize(AggregationKind::Histogram, bounds.size());
  REQUIRE(hn == 7);

  Acquired as, ah, am, al;
  REQUIRE(m.Acquire(arena, sum, Key("a", "1"), 1000, &as));
  REQUIRE(m.Acquire(arena, hist, Key("a", "1"), 1001, &ah));
  REQUIRE(m.Acquire(arena, mmsc, Key("a", "1"), 1002, &am));
  REQUIRE(m.Acquire(arena, lv, Key("a", "1"), 1003, &al));
  double* cs = CellPtr(m, arena, as, 1);
  double* ch = CellPtr(m, arena, ah, hn);
  double* cm = CellPtr(m, arena, am, 4);
  double* cl = CellPtr(m, arena, al, 2);
  REQUIRE(cs && ch && cm && cl);
  // The cell reached through SlabMemory + offset is the identity state.
  CHECK_EQ(std::vector<double>(ch, ch + hn), Identity(AggregationKind::Histogram, hn));
  CHECK_EQ(std::vector<double>(cm, cm + 4), Identity(AggregationKind::MinMaxSumCount, 4));

  // Write the cells as JS does.
  for (double v : {3.0, 4.5, -1.0}) Update(AggregationKind::Sum, cs, {}, v);
  for (double v : {0.5, 1.0, 2.0, 2.0, 7.0, -3.0}) Update(AggregationKind::Histogram, ch, bounds, v);
  for (double v : {4.0, -2.0, 10.0}) Update(AggregationKind::MinMaxSumCount, cm, {}, v);
  for (double v : {8.0, 9.0}) Update(AggregationKind::LastValue, cl, {}, v);
  const double lastStamp = LastStamp();

  std::vector<double> out = {-7, -7};  // Collect appends
  CollectOptions opts;
  opts.nowMs = 5000;
  m.Collect(opts, &out);
  CHECK_EQ(out[0], -7.0);
  CHECK_EQ(out[1], -7.0);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, hn}, {mmsc, 4}, {lv, 2}};
  Collected c = Parse(out, 2, sizes);
  REQUIRE(c.ok);
  CHECK_EQ(out.size(), 2u + 3u + (4 + 1) + (4 + hn) + (4 + 4) + (4 + 2));
  CHECK_EQ(c.epoch, 1u);
  REQUIRE(c.rows.size() == 4);
  CHECK(c.reclaimed.empty());
  const Row* rs = c.Find(as.recordId);
  const Row* rh = c.Find(ah.recordId);
  const Row* rm = c.Find(am.recordId);
  const Row* rl = c.Find(al.recordId);
  REQUIRE(rs && rh && rm && rl);
  CHECK_EQ(rs->instrument, sum);
  CHECK_EQ(rh->instrument, hist);
  CHECK_EQ(rm->instrument, mmsc);
  CHECK_EQ(rl->instrument, lv);
  for (const Row& r : c.rows) CHECK(r.updated);
  CHECK_EQ(rs->startTimeMs, 1000.0);
  CHECK_EQ(rh->startTimeMs, 1001.0);
  CHECK_EQ(rm->startTimeMs, 1002.0);
  CHECK_EQ(rl->startTimeMs, 1003.0);
  CHECK_EQ(rs->state, (std::vector<double>{6.5}));
  // [sum, min, max, (-inf,1], (1,2], (2,5], (5,+inf)]
  CHECK_EQ(rh->state, (std::vector<double>{9.5, -3, 7, 3, 2, 0, 1}));
  CHECK_EQ(rm->state, (std::vector<double>{3, 12, -2, 10}));
  CHECK_EQ(rl->state, (std::vector<double>{9, lastStamp}));

  // The epoch counts collections.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.epoch, 2u);
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.epoch, 3u);
}

// Two readers collecting one domain: each must see every update once, whichever
// reader's pass saw it first. Collect reports the epoch of the pass that first saw a
// record's last update; CollectPass's `fresh` compares it with the reader's previous pass.
TEST(record_map_last_update_epoch_per_reader) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  Acquired a, b;
  REQUIRE(m.Acquire(arena, sum, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "b"), 0, &b));
  double* ca = CellPtr(m, arena, a, 1);
  REQUIRE(ca);
  Collected c1 = DoCollect(m, sizes, false);  // reader X's first pass
  REQUIRE(c1.ok);
  CHECK_EQ(c1.Find(a.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c1.epoch));
  Update(AggregationKind::Sum, ca, {}, 2);
  Collected c2 = DoCollect(m, sizes, false);  // reader Y's pass sees the write first
  REQUIRE(c2.ok);
  CHECK(c2.Find(a.recordId)->updated);
  CHECK(!c2.Find(b.recordId)->updated);
  CHECK_EQ(c2.Find(a.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c2.epoch));
  CHECK_EQ(c2.Find(b.recordId)->lastUpdateEpoch, static_cast<uint32_t>(c1.epoch));
  // Reader X's next pass: not updated in it, but since X's previous pass (c1).
  std::map<uint64_t, std::pair<bool, bool>> seen;  // id -> (updated, fresh)
  CollectOptions opts;
  opts.readerEpoch = c1.epoch;
  std::vector<uint64_t> reclaimed;
  const uint64_t e3 = m.CollectPass(
      opts, [&](const CheckpointView& v) { seen[v.id] = {v.updated, v.fresh}; }, &reclaimed);
  CHECK(e3 > c2.epoch);
  CHECK(!seen[a.recordId].first);
  CHECK(seen[a.recordId].second);   // changed since reader X's previous pass
  CHECK(!seen[b.recordId].second);  // unchanged since it
  // Without a reader epoch, fresh is updated.
  seen.clear();
  Update(AggregationKind::Sum, ca, {}, 1);
  m.CollectPass(CollectOptions{}, [&](const CheckpointView& v) { seen[v.id] = {v.updated, v.fresh}; }, &reclaimed);
  CHECK(seen[a.recordId].first && seen[a.recordId].second);
  CHECK(!seen[b.recordId].first && !seen[b.recordId].second);
  CHECK(reclaimed.empty());
}

// changedOnly: records not changed since the reader's previous pass are written as
// [recordId, -1] (idleIds) or left out; changed ones in full, in pass order.
TEST(record_map_collect_changed_only) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a, b, c;
  REQUIRE(m.Acquire(arena, sum, Key("k", "a"), 0, &a));
  REQUIRE(m.Acquire(arena, sum, Key("k", "b"), 0, &b));
  REQUIRE(m.Acquire(arena, sum, Key("k", "c"), 0, &c));
  double* cb = CellPtr(m, arena, b, 1);
  REQUIRE(cb);
  std::vector<double> first;
  m.Collect(CollectOptions{}, &first);
  const uint64_t since = static_cast<uint64_t>(first[0]);
  Update(AggregationKind::Sum, cb, {}, 4);
  CollectOptions opts;
  opts.readerEpoch = since;
  opts.changedOnly = true;
  opts.idleIds = true;
  std::vector<double> out;
  m.Collect(opts, &out);
  CHECK_EQ(out[1], 3.0);
  CHECK_EQ(out[2], 0.0);
  CHECK_EQ(out, (std::vector<double>{static_cast<double>(since + 1), 3, 0, static_cast<double>(a.recordId), -1,
                                     static_cast<double>(b.recordId), static_cast<double>(sum),
                                     static_cast<double>(since + 1), 0, 4, static_cast<double>(c.recordId), -1}));
  // Without idle ids, from the same reader epoch: b again (changed since `since`), alone.
  opts.idleIds = false;
  out.clear();
  m.Collect(opts, &out);
  CHECK_EQ(out, (std::vector<double>{static_cast<double>(since + 2), 1, 0, static_cast<double>(b.recordId),
                                     static_cast<double>(sum), static_cast<double>(since + 1), 0, 4}));
  // From the latest pass: nothing changed.
  opts.readerEpoch = since + 2;
  out.clear();
  m.Collect(opts, &out);
  CHECK_EQ(out, (std::vector<double>{static_cast<double>(since + 3), 0, 0}));
}

// Collect with a progress hook: the records are handed on in parts of progressEvery
// records (whole records, in pass order, no header); parts + the records after the last
// part are exactly the records of the same pass without the hook.
TEST(record_map_collect_progress_parts) {
  for (size_t every : {1, 2, 3, 100}) {
    RecordMap m;
    uint32_t arena = m.RegisterArena();
    uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
    uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {10}), nullptr);
    std::vector<double*> cells;
    for (int i = 0; i < 7; i++) {
      Acquired a;
      const uint32_t inst = i % 2 == 0 ? sum : hist;
      REQUIRE(m.Acquire(arena, inst, Key("k", std::to_string(i)), 0, &a));
      double* c = CellPtr(m, arena, a, inst == sum ? 1 : 5);
      REQUIRE(c);
      if (inst == sum) Update(AggregationKind::Sum, c, {}, i + 1);
      else Update(AggregationKind::Histogram, c, {10}, i * 3);
    }
    std::vector<double> plain;
    CollectOptions po;
    po.readerEpoch = 0;
    po.changedOnly = true;
    po.idleIds = true;
    m.Collect(po, &plain);  // every record changed since epoch 0
    std::vector<double> parts, out;
    size_t calls = 0, sent = 3;
    CollectOptions so = po;
    so.progressEvery = every;
    so.progress = [&](const std::vector<double>& o, size_t end) {
      calls++;
      parts.insert(parts.end(), o.begin() + static_cast<std::ptrdiff_t>(sent), o.begin() + static_cast<std::ptrdiff_t>(end));
      sent = end;
    };
    m.Collect(so, &out);  // the same records again, as changed since epoch 0
    CHECK_EQ(calls, 7 / every);
    CHECK_EQ(out[1], 7.0);
    CHECK_EQ(out[2], 0.0);
    parts.insert(parts.end(), out.begin() + static_cast<std::ptrdiff_t>(sent), out.end());
    // The same records as the plain pass (its header: another epoch).
    CHECK_EQ(parts, std::vector<double>(plain.begin() + 3, plain.end()));
  }
}

TEST(record_map_updated_flag) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {10}), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 5}, {lv, 2}};
  Acquired as, ah, al, aidle;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &as));
  REQUIRE(m.Acquire(arena, hist, Key("k", "v"), 0, &ah));
  REQUIRE(m.Acquire(arena, lv, Key("k", "v"), 0, &al));
  REQUIRE(m.Acquire(arena, sum, Key("k", "idle"), 0, &aidle));
  double* cs = CellPtr(m, arena, as, 1);
  double* ch = CellPtr(m, arena, ah, 5);
  double* cl = CellPtr(m, arena, al, 2);
  REQUIRE(cs && ch && cl);
  auto updated = [&](const Collected& c, uint64_t id) {
    const Row* r = c.Find(id);
    if (!r) {
      Fail(__FILE__, __LINE__, "record missing from Collect");
      return false;
    }
    return r->updated;
  };

  Update(AggregationKind::Sum, cs, {}, 2);
  Update(AggregationKind::Histogram, ch, {10}, 3);
  Update(AggregationKind::LastValue, cl, {}, 4);
  Collected c1 = DoCollect(m, sizes, false);
  REQUIRE(c1.ok);
  CHECK(updated(c1, as.recordId));
  CHECK(updated(c1, ah.recordId));
  CHECK(updated(c1, al.recordId));
  CHECK(updated(c1, aidle.recordId));  // acquired, never written: new, so exported once
  // Nothing written since: not updated, and the same state.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK(!updated(c2, as.recordId));
  CHECK(!updated(c2, ah.recordId));
  CHECK(!updated(c2, al.recordId));
  CHECK_EQ(c2.Find(as.recordId)->state, c1.Find(as.recordId)->state);
  CHECK_EQ(c2.Find(ah.recordId)->state, c1.Find(ah.recordId)->state);
  // Only the histogram changes.
  Update(AggregationKind::Histogram, ch, {10}, 30);
  Collected c3 = DoCollect(m, sizes, false);
  REQUIRE(c3.ok);
  CHECK(!updated(c3, as.recordId));
  CHECK(updated(c3, ah.recordId));
  CHECK(!updated(c3, al.recordId));
  // A gauge recording the same value again was updated.
  Update(AggregationKind::LastValue, cl, {}, 4);
  const double gaugeStamp = LastStamp();
  Update(AggregationKind::Sum, cs, {}, 0.25);
  Collected c4 = DoCollect(m, sizes, false);
  REQUIRE(c4.ok);
  CHECK(updated(c4, al.recordId));
  CHECK(updated(c4, as.recordId));
  CHECK(!updated(c4, ah.recordId));
  CHECK_EQ(c4.Find(as.recordId)->state, (std::vector<double>{2.25}));
  CHECK_EQ(c4.Find(al.recordId)->state, (std::vector<double>{4, gaugeStamp}));
  // The flag compares with the previous collection, not with the one before it.
  Collected c5 = DoCollect(m, sizes, false);
  REQUIRE(c5.ok);
  for (const Row& r : c5.rows) CHECK(!r.updated);
}

TEST(state_fingerprint_sees_structured_changes) {
  // Update detection trusts StateFingerprint: a changed state that keeps its fingerprint
  // is exported as unchanged (a delta lost, a stale cumulative value) and may be reclaimed
  // as idle. States change in structured ways (small integers; count and sum moving
  // together), where a weak hash collides far more often than 2^-64: a four-lane variant
  // (lanes XORed together at the end) gave (2,4,1,2) -> (3,6,1,2) the same fingerprint,
  // because count and sum flipped the same bit. Every measurement of a min/max/sum/count
  // state on this grid must change the fingerprint.
  long collisions = 0, transitions = 0;
  for (int c = 1; c <= 120; c++) {
    for (int s = c; s <= 5 * c; s++) {
      for (int lo = 1; lo <= 5; lo++) {
        for (int hi = lo; hi <= 5; hi++) {
          const double a[4] = {double(c), double(s), double(lo), double(hi)};
          const uint64_t before = StateFingerprint(a, 4);
          for (int v = 1; v <= 5; v++) {
            const double b[4] = {double(c + 1), double(s + v), double(std::min(lo, v)), double(std::max(hi, v))};
            transitions++;
            if (StateFingerprint(b, 4) == before) collisions++;
          }
        }
      }
    }
  }
  CHECK(transitions > 2000000);
  CHECK_EQ(collisions, 0L);
  // A histogram cell (count, sum, buckets): a measurement moves count, sum and one bucket.
  collisions = 0;
  double h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 200000; i++) {
    const uint64_t before = StateFingerprint(h, 8);
    h[0] += 1;
    h[1] += 1 + i % 7;
    h[2 + (i * 7919) % 6] += 1;
    if (StateFingerprint(h, 8) == before) collisions++;
  }
  CHECK_EQ(collisions, 0L);
  // A 16-bucket histogram's state (sum, min, max, 16 buckets: 19 doubles, four lanes and a
  // tail): a measurement moves the sum, one bucket and maybe min or max, on a grid of
  // small values; and two measurements at once (two buckets), which touch two lanes.
  collisions = 0;
  transitions = 0;
  for (int s = 0; s <= 400; s++) {
    for (int b = 0; b < 16; b++) {
      for (int n = 0; n <= 6; n++) {
        double st[19] = {double(s), 1, 9};
        st[3 + b] = n;
        st[3 + (b + 5) % 16] = n / 2;
        const uint64_t before = StateFingerprint(st, 19);
        for (int v = 1; v <= 4; v++) {
          for (int b2 = 0; b2 < 16; b2++) {
            double one[19];
            std::copy(st, st + 19, one);
            one[0] += v;
            one[3 + b2] += 1;
            transitions++;
            if (StateFingerprint(one, 19) == before) collisions++;
            one[0] += v;
            one[3 + (b2 + 3) % 16] += 1;  // a second measurement, another lane
            transitions++;
            if (StateFingerprint(one, 19) == before) collisions++;
          }
        }
      }
    }
  }
  CHECK(transitions > 2000000);
  CHECK_EQ(collisions, 0L);
}

TEST(record_map_stale_drain_between_lookups) {
  // A worker thread caches one label set's sum while another thread's bound handle keeps
  // that sum updated: the label set's min/max goes stale alone and is released, then the
  // bound thread exits and the sum goes stale too. The worker's next measurement on the
  // label set hits the cached sum, writes it, and only then misses on the min/max, which
  // drains the stale queue. The sum, written since it was queued, stays cached and its
  // write is exported. (Written after that drain instead, it would go through a released
  // reference into a record the next pass reclaims: not a legal write.)
  RecordMap m;
  const uint32_t x = m.RegisterArena(), y = m.RegisterArena();
  const uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const uint32_t mm = m.RegisterInstrument("m", MakeDesc("m", AggregationKind::MinMaxSumCount), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {mm, 4}};
  const std::string label = Key("k", "L");
  Acquired xs, xm, yb;
  REQUIRE(m.Acquire(x, sum, label, 0, &xs));  // x's cache entries
  REQUIRE(m.Acquire(x, mm, label, 0, &xm));
  REQUIRE(m.Acquire(y, sum, label, 0, &yb));  // y's bound handle
  double* s = CellPtr(m, x, xs, 1);
  double* c = CellPtr(m, x, xm, 4);
  double* b = CellPtr(m, y, yb, 1);
  REQUIRE(s && c && b);
  *s += 1;
  Update(AggregationKind::MinMaxSumCount, c, {}, 1);
  *b += 1;
  REQUIRE(DoCollect(m, sizes, true).ok);
  *b += 1;
  REQUIRE(DoCollect(m, sizes, true).ok);  // the sum is updated (by y), the min/max idle
  std::vector<uint64_t> ids;
  m.DrainStale(x, &ids);  // x's timer
  CHECK(ids == std::vector<uint64_t>{xm.recordId});
  CHECK(m.Release(xm.recordId, x));
  CHECK(m.Release(yb.recordId, y));
  m.RetireArena(y);
  Collected c1 = DoCollect(m, sizes, true);  // the sum idle: queued for x
  REQUIRE(c1.ok);
  CHECK(c1.WasReclaimed(xm.recordId));
  Acquired probe;
  REQUIRE(m.Acquire(x, sum, Key("k", "probe"), 0, &probe));
  CHECK(probe.stalePending);
  CHECK(m.Release(probe.recordId, x));
  // The next measurement: the sum's lookup hits, its write, then the min/max's lookup
  // misses and drains first.
  *s += 2;
  ids.clear();
  m.DrainStale(x, &ids);
  CHECK(std::find(ids.begin(), ids.end(), xs.recordId) == ids.end());  // written since queued: kept
  Acquired xm2;
  REQUIRE(m.Acquire(x, mm, label, 0, &xm2));
  CHECK(xm2.recordId != xm.recordId);
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK(!c2.WasReclaimed(xs.recordId));
  REQUIRE(c2.Find(xs.recordId));
  CHECK_EQ(c2.Find(xs.recordId)->state, (std::vector<double>{5}));
  CHECK(c2.Find(xs.recordId)->updated);
  // Once x lets go, the record goes only after a pass that exported its final state.
  CHECK(m.Release(xs.recordId, x));
  CHECK(m.Release(xm2.recordId, x));
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK(c3.WasReclaimed(xs.recordId));
  m.RetireArena(x);
}

TEST(record_map_reclaim) {
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, {1, 2}), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}};
  const std::string kA = Key("r", "A"), kB = Key("r", "B"), kC = Key("r", "C"), kH = Key("r", "H");
  Acquired a, b, cc, h;
  REQUIRE(m.Acquire(arena, sum, kA, 10, &a));
  REQUIRE(m.Acquire(arena, sum, kB, 10, &b));
  REQUIRE(m.Acquire(arena, sum, kC, 10, &cc));
  REQUIRE(m.Acquire(arena, hist, kH, 10, &h));
  double* pa = CellPtr(m, arena, a, 1);
  double* pb = CellPtr(m, arena, b, 1);
  double* pc = CellPtr(m, arena, cc, 1);
  double* ph = CellPtr(m, arena, h, 6);
  REQUIRE(pa && pb && pc && ph);
  *pa += 1;
  *pb += 2;
  *pc += 3;
  Update(AggregationKind::Histogram, ph, {1, 2}, 1.5);
  Collected c1 = DoCollect(m, sizes, true);  // all updated: nothing reclaimed
  REQUIRE(c1.ok);
  CHECK_EQ(c1.rows.size(), 4u);
  CHECK(c1.reclaimed.empty());

  // A: released, updated since c1 -> exported, kept. B: released, not updated -> reclaimed.
  // C: still referenced, not updated -> kept. H: released, not updated -> reclaimed.
  CHECK(m.Release(a.recordId));
  CHECK(m.Release(b.recordId));
  CHECK(m.Release(h.recordId));
  *pa += 10;
  // reclaim=false never reclaims.
  Collected c2 = DoCollect(m, sizes, false);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.rows.size(), 4u);
  CHECK(c2.reclaimed.empty());
  CHECK_EQ(m.RecordCount(), 4u);
  *pa += 10;
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.reclaimed.size(), 2u);
  CHECK(c3.WasReclaimed(b.recordId));
  CHECK(c3.WasReclaimed(h.recordId));
  CHECK(!c3.WasReclaimed(a.recordId));
  CHECK(!c3.WasReclaimed(cc.recordId));
  CHECK(c3.Find(b.recordId) == nullptr);  // reclaimed records are not listed as records
  CHECK(c3.Find(h.recordId) == nullptr);
  REQUIRE(c3.Find(a.recordId) && c3.Find(cc.recordId));
  CHECK(c3.Find(a.recordId)->updated);
  CHECK_EQ(c3.Find(a.recordId)->state, (std::vector<double>{21}));
  CHECK(!c3.Find(cc.recordId)->updated);
  CHECK_EQ(m.RecordCount(), 2u);
  uint32_t inst;
  std::string key;
  CHECK(!m.RecordInfo(b.recordId, &inst, &key));
  CHECK(!m.Release(b.recordId));

  // A is reclaimed by the next collection, once it has not been updated; C never is.
  Collected c4 = DoCollect(m, sizes, true);
  REQUIRE(c4.ok);
  CHECK_EQ(c4.reclaimed, std::vector<uint64_t>{a.recordId});
  CHECK_EQ(c4.rows.size(), 1u);
  for (int i = 0; i < 3; i++) {
    Collected ci = DoCollect(m, sizes, true);
    REQUIRE(ci.ok);
    CHECK(ci.reclaimed.empty());
    CHECK(ci.Find(cc.recordId) != nullptr);
  }

  // Re-acquiring B's labels creates a new record from the identity state, even though the
  // freed cell (which held 2) is reused.
  Acquired b2, h2;
  REQUIRE(m.Acquire(arena, sum, kB, 20, &b2));
  REQUIRE(m.Acquire(arena, hist, kH, 20, &h2));
  CHECK(b2.recordId != b.recordId);
  CHECK(b2.recordId != a.recordId && b2.recordId != cc.recordId);  // ids are never reused
  CHECK(b2.newCell);
  double* pb2 = CellPtr(m, arena, b2, 1);
  double* ph2 = CellPtr(m, arena, h2, 6);
  REQUIRE(pb2 && ph2);
  CHECK_EQ(*pb2, 0.0);
  CHECK_EQ(std::vector<double>(ph2, ph2 + 6), Identity(AggregationKind::Histogram, 6));
  CHECK(pb2 == pb || pb2 == pa);  // a freed 1-double cell was reused
  CHECK(ph2 == ph);
  Collected c5 = DoCollect(m, sizes, false);
  REQUIRE(c5.ok);
  const Row* rb = c5.Find(b2.recordId);
  REQUIRE(rb);
  CHECK_EQ(rb->state, (std::vector<double>{0}));
  CHECK_EQ(rb->startTimeMs, 20.0);
  CHECK(rb->updated);  // the first pass that sees a record exports it
  *pb2 += 4;
  Collected c6 = DoCollect(m, sizes, true);
  REQUIRE(c6.ok);
  rb = c6.Find(b2.recordId);
  REQUIRE(rb);
  CHECK_EQ(rb->state, (std::vector<double>{4}));
  CHECK(rb->updated);
}

TEST(record_map_reclaim_unwritten_record) {
  // A record acquired and released without a write (add(0) leaves the identity) is a
  // series: the first reclaiming collection exports it as updated, the next drops it.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  Acquired a;
  REQUIRE(m.Acquire(arena, sum, Key("k", "v"), 0, &a));
  CHECK(m.Release(a.recordId));
  Collected c = DoCollect(m, {{sum, 1}}, true);
  REQUIRE(c.ok);
  CHECK(c.reclaimed.empty());
  REQUIRE(c.Find(a.recordId));
  CHECK(c.Find(a.recordId)->updated);
  CHECK_EQ(c.Find(a.recordId)->state, (std::vector<double>{0}));
  Collected c2 = DoCollect(m, {{sum, 1}}, true);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed, std::vector<uint64_t>{a.recordId});
  CHECK(c2.rows.empty());
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(record_map_multiple_arenas_merge) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena(), t3 = m.RegisterArena();
  const std::vector<double> bounds = {0, 10};
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}};
  const std::string k = Key("k", "v");
  Acquired s1, s2, s3, h1, h2;
  REQUIRE(m.Acquire(t1, sum, k, 0, &s1));
  REQUIRE(m.Acquire(t2, sum, k, 0, &s2));
  REQUIRE(m.Acquire(t3, sum, k, 0, &s3));
  REQUIRE(m.Acquire(t1, hist, k, 0, &h1));
  REQUIRE(m.Acquire(t2, hist, k, 0, &h2));
  CHECK(s1.recordId == s2.recordId && s2.recordId == s3.recordId);
  double* c1 = CellPtr(m, t1, s1, 1);
  double* c2 = CellPtr(m, t2, s2, 1);
  double* c3 = CellPtr(m, t3, s3, 1);
  double* hc1 = CellPtr(m, t1, h1, 6);
  double* hc2 = CellPtr(m, t2, h2, 6);
  REQUIRE(c1 && c2 && c3 && hc1 && hc2);
  *c1 += 1;
  *c2 += 20;
  *c3 += 300;
  for (double v : {-1.0, 5.0}) Update(AggregationKind::Histogram, hc1, bounds, v);
  for (double v : {10.0, 50.0, 0.0}) Update(AggregationKind::Histogram, hc2, bounds, v);
  Collected c = DoCollect(m, sizes, false);
  REQUIRE(c.ok);
  REQUIRE(c.rows.size() == 2);
  CHECK_EQ(c.Find(s1.recordId)->state, (std::vector<double>{321}));
  CHECK_EQ(c.Find(h1.recordId)->state, (std::vector<double>{64, -1, 50, 2, 2, 1}));
}

TEST(record_map_retire_arena) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  const std::vector<double> bounds = {0, 10};
  uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}, {hist, 6}, {lv, 2}};
  const std::string k = Key("k", "v"), only1 = Key("k", "only-t1");
  Acquired s1, s2, h1, h2, o1, g1;
  REQUIRE(m.Acquire(t1, sum, k, 0, &s1));
  REQUIRE(m.Acquire(t2, sum, k, 0, &s2));
  REQUIRE(m.Acquire(t1, hist, k, 0, &h1));
  REQUIRE(m.Acquire(t2, hist, k, 0, &h2));
  REQUIRE(m.Acquire(t1, sum, only1, 0, &o1));
  REQUIRE(m.Acquire(t1, lv, k, 0, &g1));
  double* c1 = CellPtr(m, t1, s1, 1);
  double* c2 = CellPtr(m, t2, s2, 1);
  double* hc1 = CellPtr(m, t1, h1, 6);
  double* hc2 = CellPtr(m, t2, h2, 6);
  double* oc1 = CellPtr(m, t1, o1, 1);
  double* gc1 = CellPtr(m, t1, g1, 2);
  REQUIRE(c1 && c2 && hc1 && hc2 && oc1 && gc1);
  *c1 += 5;
  *c2 += 7;
  *oc1 += 11;
  Update(AggregationKind::Histogram, hc1, bounds, -100);
  Update(AggregationKind::Histogram, hc2, bounds, 3);
  Update(AggregationKind::LastValue, gc1, {}, 42);
  const double gaugeStamp = LastStamp();
  Collected before = DoCollect(m, sizes, false);
  REQUIRE(before.ok);
  size_t bytesBefore = m.ArenaBytes();
  CHECK(bytesBefore > 0);

  // Thread 1 writes a little more and exits.
  *c1 += 1;
  Update(AggregationKind::Histogram, hc1, bounds, 20);
  m.RetireArena(t1);
  CHECK(m.ArenaBytes() < bytesBefore);
  double* data;
  size_t doubles;
  CHECK(!m.SlabMemory(t1, 0, &data, &doubles));
  CHECK_EQ(m.RecordCount(), 4u);  // records survive their threads

  Collected after = DoCollect(m, sizes, false);
  REQUIRE(after.ok);
  REQUIRE(after.Find(s1.recordId) && after.Find(h1.recordId) && after.Find(o1.recordId) && after.Find(g1.recordId));
  CHECK_EQ(after.Find(s1.recordId)->state, (std::vector<double>{13}));
  CHECK(after.Find(s1.recordId)->updated);  // its last writes happened before the retirement
  CHECK_EQ(after.Find(h1.recordId)->state, (std::vector<double>{-77, -100, 20, 1, 1, 1}));
  CHECK_EQ(after.Find(o1.recordId)->state, (std::vector<double>{11}));
  CHECK(!after.Find(o1.recordId)->updated);  // retirement alone is not an update
  CHECK_EQ(after.Find(g1.recordId)->state, (std::vector<double>{42, gaugeStamp}));
  CHECK(!after.Find(g1.recordId)->updated);

  // Thread 2 keeps writing on top of the retired totals.
  *c2 += 100;
  Update(AggregationKind::Histogram, hc2, bounds, 1000);
  Collected later = DoCollect(m, sizes, false);
  REQUIRE(later.ok);
  CHECK_EQ(later.Find(s1.recordId)->state, (std::vector<double>{113}));
  CHECK_EQ(later.Find(h1.recordId)->state, (std::vector<double>{923, -100, 1000, 1, 1, 2}));

  // A new thread joining a record whose only writer retired starts a fresh cell.
  uint32_t t3 = m.RegisterArena();
  Acquired o3;
  REQUIRE(m.Acquire(t3, sum, only1, 0, &o3));
  CHECK_EQ(o3.recordId, o1.recordId);
  CHECK(o3.newCell);
  double* oc3 = CellPtr(m, t3, o3, 1);
  REQUIRE(oc3);
  CHECK_EQ(*oc3, 0.0);
  *oc3 += 1;
  Collected withT3 = DoCollect(m, sizes, false);
  REQUIRE(withT3.ok);
  CHECK_EQ(withT3.Find(o1.recordId)->state, (std::vector<double>{12}));

  // Everyone exits: the totals remain and every arena is freed.
  m.RetireArena(t2);
  m.RetireArena(t3);
  CHECK_EQ(m.ArenaBytes(), 0u);
  Collected last = DoCollect(m, sizes, false);
  REQUIRE(last.ok);
  CHECK_EQ(last.Find(s1.recordId)->state, (std::vector<double>{113}));
  CHECK_EQ(last.Find(o1.recordId)->state, (std::vector<double>{12}));
  CHECK_EQ(last.Find(h1.recordId)->state, (std::vector<double>{923, -100, 1000, 1, 1, 2}));
  for (const Row& r : last.rows) CHECK(!r.updated);

  // The references went with their threads: nothing is left to release, and records
  // whose threads are gone are reclaimable.
  for (uint64_t id : {s1.recordId, h1.recordId, o1.recordId, g1.recordId}) CHECK(!m.Release(id));
  Collected rc = DoCollect(m, sizes, true);
  REQUIRE(rc.ok);
  CHECK_EQ(rc.reclaimed.size(), 4u);
  CHECK_EQ(m.RecordCount(), 0u);
}

// Exemplar cells (exemplar.h): one per record and thread, zeroed when made, the same on a
// second call; a pass shows each slot's latest exemplar over every thread's cell; a
// retired thread's exemplars are folded into the record and stay; instruments that keep
// none get no cell.
TEST(record_map_exemplar_cells) {
  RecordMap m;
  uint32_t t1 = m.RegisterArena(), t2 = m.RegisterArena();
  const std::vector<double> bounds = {1, 10};
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  Descriptor gd = MakeDesc("g", AggregationKind::LastValue);
  gd.kind = InstrumentKind::Gauge;
  uint32_t gauge = m.RegisterInstrument("g", gd, nullptr);
  const std::string k = Key("k", "v");
  Acquired h1, h2, g1;
  REQUIRE(m.Acquire(t1, hist, k, 0, &h1));
  REQUIRE(m.Acquire(t2, hist, k, 0, &h2));
  REQUIRE(m.Acquire(t1, gauge, k, 0, &g1));
  uint32_t slab = 0, offset = 0, slots = 0;
  CHECK(!m.ExemplarCell(t1, g1.recordId, &slab, &offset, &slots));
  CHECK(!m.ExemplarCell(t1, 12345, &slab, &offset, &slots));
  auto cell = [&](uint32_t arena, uint64_t id) -> double* {
    uint32_t sl = 0, off = 0, n = 0;
    if (!m.ExemplarCell(arena, id, &sl, &off, &n) || n != 3) return nullptr;
    double* data = nullptr;
    size_t doubles = 0;
    if (!m.SlabMemory(arena, sl, &data, &doubles)) return nullptr;
    return data + off;
  };
  double* e1 = cell(t1, h1.recordId);
  double* e2 = cell(t2, h2.recordId);
  REQUIRE(e1 != nullptr && e2 != nullptr && e1 != e2);
  CHECK(cell(t1, h1.recordId) == e1);
  for (size_t i = 0; i < 3 * exemplar::kDoubles; i++) CHECK_EQ(e1[i], 0.0);
  auto put = [](double* e, size_t slot, double time, double value, double word) {
    double* s = e + slot * exemplar::kDoubles;
    s[exemplar::kValue] = value;
    for (size_t w = 0; w < 6; w++) s[exemplar::kTrace + w] = word;
    s[exemplar::kTime] = time;
  };
  put(e1, 0, 100, 0.5, 1);
  put(e1, 1, 300, 5, 1);
  put(e2, 1, 200, 6, 2);  // older than t1's: t1's wins
  put(e2, 2, 400, 50, 2);
  auto exemplars = [&]() {
    std::vector<double> out;
    std::vector<uint64_t> reclaimed;
    m.CollectPass(CollectOptions{}, [&](const CheckpointView& v) {
      if (v.id == h1.recordId && v.exemplars != nullptr) out.assign(v.exemplars, v.exemplars + v.exemplarSlots * exemplar::kDoubles);
    }, &reclaimed);
    return out;
  };
  std::vector<double> got = exemplars();
  REQUIRE(got.size() == 3 * exemplar::kDoubles);
  CHECK_EQ(got[0 * exemplar::kDoubles + exemplar::kValue], 0.5);
  CHECK_EQ(got[1 * exemplar::kDoubles + exemplar::kValue], 5.0);
  CHECK_EQ(got[1 * exemplar::kDoubles + exemplar::kTrace], 1.0);
  CHECK_EQ(got[2 * exemplar::kDoubles + exemplar::kValue], 50.0);
  CHECK_EQ(got[2 * exemplar::kDoubles + exemplar::kSpan + 1], 2.0);
  // t1 exits: its exemplars stay in the record, merged with t2's live cell.
  m.RetireArena(t1);
  put(e2, 0, 50, 0.25, 2);  // older than the retired one: the retired one wins
  got = exemplars();
  REQUIRE(got.size() == 3 * exemplar::kDoubles);
  CHECK_EQ(got[0 * exemplar::kDoubles + exemplar::kValue], 0.5);
  CHECK_EQ(got[1 * exemplar::kDoubles + exemplar::kValue], 5.0);
  CHECK_EQ(got[2 * exemplar::kDoubles + exemplar::kValue], 50.0);
}

TEST(record_map_last_value_is_last_in_time_across_threads) {
  // A gauge written by two threads (same label set): main 20, worker 99, main 21, 23.
  // The checkpoint holds the write with the greatest stamp (23), not the cell merged
  // last (the worker's, acquired second), and the same after the worker exits and its
  // cell is folded into the record's retired state.
  RecordMap m;
  uint32_t mainArena = m.RegisterArena(), worker = m.RegisterArena();
  uint32_t lv = m.RegisterInstrument("g", MakeDesc("g", AggregationKind::LastValue), nullptr);
  const std::map<uint32_t, size_t> sizes = {{lv, 2}};
  const std::string k = Key("room", "a"), solo = Key("room", "solo");
  Acquired gm, gw, gs;
  REQUIRE(m.Acquire(mainArena, lv, k, 0, &gm));
  REQUIRE(m.Acquire(worker, lv, k, 0, &gw));
  REQUIRE(m.Acquire(worker, lv, solo, 0, &gs));
  REQUIRE(gm.recordId == gw.recordId);
  double* cm = CellPtr(m, mainArena, gm, 2);
  double* cw = CellPtr(m, worker, gw, 2);
  double* cs = CellPtr(m, worker, gs, 2);
  REQUIRE(cm && cw && cs);
  auto value = [&](uint64_t id) {
    Collected c = DoCollect(m, sizes, false);
    const Row* r = c.ok ? c.Find(id) : nullptr;
    return r != nullptr ? r->state[0] : std::nan("");
  };

  Update(AggregationKind::LastValue, cm, {}, 20);
  Update(AggregationKind::LastValue, cw, {}, 99);
  CHECK_EQ(value(gm.recordId), 99.0);
  Update(AggregationKind::LastValue, cm, {}, 21);
  Update(AggregationKind::LastValue, cm, {}, 23);
  CHECK_EQ(value(gm.recordId), 23.0);
  // A label set only one thread writes: its last write, as before.
  for (double v : {5.0, -2.0, 7.5}) Update(AggregationKind::LastValue, cs, {}, v);
  CHECK_EQ(value(gs.recordId), 7.5);

  // The worker writes last, then exits: its folded state is the latest and wins over
  // the live cell of the main thread.
  Update(AggregationKind::LastValue, cw, {}, 100);
  m.RetireArena(worker);
  CHECK_EQ(value(gm.recordId), 100.0);
  CHECK_EQ(value(gs.recordId), 7.5);
  // The main thread writes again: later than the retired state.
  Update(AggregationKind::LastValue, cm, {}, 24);
  CHECK_EQ(value(gm.recordId), 24.0);

  // Several retired threads: the fold keeps the latest of them, in whatever order
  // they exit.
  uint32_t w2 = m.RegisterArena(), w3 = m.RegisterArena();
  Acquired a2, a3;
  REQUIRE(m.Acquire(w2, lv, k, 0, &a2));
  REQUIRE(m.Acquire(w3, lv, k, 0, &a3));
  double* c2 = CellPtr(m, w2, a2, 2);
  double* c3 = CellPtr(m, w3, a3, 2);
  REQUIRE(c2 && c3);
  Update(AggregationKind::LastValue, c2, {}, 1);
  Update(AggregationKind::LastValue, c3, {}, 2);
  Update(AggregationKind::LastValue, c2, {}, 3);  // w2 writes last
  m.RetireArena(w2);
  m.RetireArena(w3);
  CHECK_EQ(value(gm.recordId), 3.0);
}

TEST(record_map_many_records_span_slabs) {
  // Enough histogram cells that one arena needs several slabs; every cell stays
  // independent and collects exactly.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  std::vector<double> bounds;
  for (int i = 0; i < 200; i++) bounds.push_back(i);
  uint32_t hist = m.RegisterInstrument("h", MakeDesc("h", AggregationKind::Histogram, bounds), nullptr);
  const size_t n = CellSize(AggregationKind::Histogram, bounds.size());
  std::map<uint64_t, int> idToLabel;
  std::set<uint32_t> slabs;
  for (int l = 0; l < 300; l++) {
    Acquired a;
    REQUIRE(m.Acquire(arena, hist, Key("l", std::to_string(l)), 0, &a));
    idToLabel[a.recordId] = l;
    slabs.insert(a.slab);
    double* c = CellPtr(m, arena, a, n);
    REQUIRE(c);
    for (int j = 0; j <= l % 5; j++) Update(AggregationKind::Histogram, c, bounds, l % 250);
  }
  CHECK(slabs.size() >= 8);
  Collected c = DoCollect(m, {{hist, n}}, false);
  REQUIRE(c.ok);
  CHECK_EQ(c.rows.size(), 300u);
  size_t bad = 0;
  for (const Row& r : c.rows) {
    int l = idToLabel[r.id];
    std::vector<double> expect = Identity(AggregationKind::Histogram, n);
    for (int j = 0; j <= l % 5; j++) Update(AggregationKind::Histogram, expect.data(), bounds, l % 250);
    bad += r.state != expect;
  }
  CHECK_EQ(bad, 0u);
}

// A sparse pass (changedOnly, no idle ids, no expiry) reads a record only when some thread
// may have written it since a pass last read it (a reference taken since, or new) or when it
// was updated after the reader's previous pass; it exports the same records a full pass
// would (every written one, exactly), and reads no idle record with no reference held.
TEST(sparse_pass_reads_what_may_have_changed) {
  RecordMap m;
  const uint32_t arena = m.RegisterArena();
  const uint32_t sum = m.RegisterInstrument("s", MakeDesc("s", AggregationKind::Sum), nullptr);
  const std::map<uint32_t, size_t> sizes = {{sum, 1}};
  constexpr int kIdle = 100;
  std::vector<uint64_t> idle;
  for (int i = 0; i < kIdle; i++) {
    Acquired a;
    REQUIRE(m.Acquire(arena, sum, Key("i", std::to_string(i)), 0, &a));
    *CellPtr(m, arena, a, 1) += 1;
    CHECK(m.Release(a.recordId));  // written once, no reference kept
    idle.push_back(a.recordId);
  }
  Acquired held;
  REQUIRE(m.Acquire(arena, sum, Key("k", "held"), 0, &held));
  double* heldCell = CellPtr(m, arena, held, 1);
  CollectOptions opts;
  opts.changedOnly = true;
  opts.readerEpoch = 0;
  uint64_t reads = m.StateReads();
  Collected c1 = DoCollect(m, sizes, opts);
  REQUIRE(c1.ok);
  CHECK_EQ(c1.rows.size(), size_t{kIdle + 1});
  CHECK_EQ(m.StateReads() - reads, uint64_t{kIdle + 1});
  // Idle: only the record a thread still references is read; nothing is exported.
  opts.readerEpoch = c1.epoch;
  reads = m.StateReads();
  Collected c2 = DoCollect(m, sizes, opts);
  REQUIRE(c2.ok);
  CHECK(c2.rows.empty());
  CHECK_EQ(m.StateReads() - reads, uint64_t{1});
  // Written through the held reference: exported.
  *heldCell += 5;
  opts.readerEpoch = c2.epoch;
  Collected c3 = DoCollect(m, sizes, opts);
  REQUIRE(c3.ok);
  REQUIRE(c3.rows.size() == 1);
  CHECK_EQ(c3.rows[0].id, held.recordId);
  CHECK_EQ(c3.rows[0].state[0], 5.0);
  // An idle record taken again and written, then released before the pass: read, exported.
  Acquired again;
  REQUIRE(m.Acquire(arena, sum, Key("i", "7"), 0, &again));
  CHECK_EQ(again.recordId, idle[7]);
  *CellPtr(m, arena, again, 1) += 2;
  CHECK(m.Release(again.recordId));
  opts.readerEpoch = c3.epoch;
  reads = m.StateReads();
  Collected c4 = DoCollect(m, sizes, opts);
  REQUIRE(c4.ok);
  REQUIRE(c4.rows.size() == 1);
  CHECK_EQ(c4.rows[0].id, idle[7]);
  CHECK_EQ(c4.rows[0].state[0], 3.0);
  CHECK_EQ(m.StateReads() - reads, uint64_t{2});  // it and the held record
  // Another reader's pass (a full one) sees the next update first; this reader's sparse
  // pass still exports it (updated after its readerEpoch).
  REQUIRE(m.Acquire(arena, sum, Key("i", "9"), 0, &again));
  *CellPtr(m, arena, again, 1) += 4;
  CHECK(m.Release(again.recordId));
  Collected other = DoCollect(m, sizes, false);
  REQUIRE(other.ok);
  opts.readerEpoch = c4.epoch;
  Collected c5 = DoCollect(m, sizes, opts);
  REQUIRE(c5.ok);
  REQUIRE(c5.rows.size() == 1);
  CHECK_EQ(c5.rows[0].id, idle[9]);
  CHECK_EQ(c5.rows[0].state[0], 5.0);
  CHECK(m.Release(held.recordId));
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
