// Tests of label keys (native/core/label_set.h) and of the record map's interned label sets.
//
// Usage: core_label_test [--scale=F] [--list] [name-substring ...] (check.h); scripts/native-test.sh runs it.
#include "core_helpers.h"

namespace {

// ---------------------------------------------------------------------------------------
// Label keys.

TEST(label_key_layout) {
  // For each string: its byte length as a LEB128 varint, then the bytes.
  CHECK_EQ(EncodeLabelKey({}), std::string());
  CHECK_EQ(EncodeLabelKey({""}), std::string(1, '\0'));
  CHECK_EQ(EncodeLabelKey({"ab"}), std::string("\x02" "ab", 3));
  CHECK_EQ(EncodeLabelKey({"k", "v"}), std::string("\x01k\x01v", 4));
  std::string s127(127, 'w');
  CHECK_EQ(EncodeLabelKey({s127}), std::string("\x7f", 1) + s127);
  std::string s300(300, 'x');
  CHECK_EQ(EncodeLabelKey({s300}), std::string("\xac\x02", 2) + s300);
  std::string s70000(70000, 'y');
  CHECK_EQ(EncodeLabelKey({s70000}).substr(0, 3), std::string("\xf0\xa2\x04", 3));
}

TEST(label_key_round_trip) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {""},
      {"", ""},
      {"", "", ""},
      {"a"},
      {"service.name", "checkout", "http.route", "/api/v1/items/:id"},
      {std::string("\0", 1)},
      {std::string("a\0b", 3), std::string("\0\0\0\0", 4)},
      {std::string("\x03\0\0\0abc", 7)},                     // looks like an encoded part
      {std::string("\xff\xff\xff\xff", 4), std::string("\x01\0\0", 3)},
      {std::string("\x05\0\0\0", 4), ""},                    // a length prefix pointing past the end
      {"caf\xc3\xa9", "\xf0\x9f\x98\x80"},                    // UTF-8
      {std::string(255, 'a'), std::string(256, 'b'), std::string(65536, 'c')},
      {std::string(70000, '\0')},
  };
  for (const auto& parts : cases) {
    std::string key = EncodeLabelKey(parts);
    size_t bytes = 0;
    for (const auto& p : parts) bytes += (p.size() < 128 ? 1 : p.size() < 16384 ? 2 : 3) + p.size();
    CHECK_EQ(key.size(), bytes);
    CHECK_EQ(DecodeLabelKey(key), parts);
  }
  // Random binary strings.
  std::mt19937_64 rng(6);
  for (int trial = 0; trial < 500; trial++) {
    std::vector<std::string> parts(rng() % 7);
    for (auto& p : parts) {
      p.resize(rng() % 12);
      for (auto& c : p) c = static_cast<char>(rng() % 6 == 0 ? 0 : rng() & 0xff);
    }
    std::vector<std::string> back = DecodeLabelKey(EncodeLabelKey(parts));
    if (back != parts) {
      Fail(__FILE__, __LINE__, "round trip of " + Show(parts) + " gave " + Show(back));
      return;
    }
  }
}

TEST(label_key_injective) {
  auto differ = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return EncodeLabelKey(a) != EncodeLabelKey(b);
  };
  CHECK(differ({"a", "bc"}, {"ab", "c"}));
  CHECK(differ({"a", ""}, {"a"}));
  CHECK(differ({"", "a"}, {"a"}));
  CHECK(differ({"", "a"}, {"a", ""}));
  CHECK(differ({}, {""}));
  CHECK(differ({""}, {"", ""}));
  CHECK(differ({std::string("\0", 1)}, {""}));
  CHECK(differ({"k", "v1"}, {"k", "v10"}));
  CHECK(differ({std::string("\x01\0\0\0x", 5)}, {"x"}));
  CHECK(differ({"x", "y"}, {std::string("x\x01\0\0\0y", 6)}));
  // Exhaustive over short strings from a tiny alphabet that includes NUL and \x01.
  const char alphabet[] = {'a', '\0', '\x01'};
  std::vector<std::string> strings = {""};
  for (size_t len = 1; len <= 2; len++) {
    size_t start = strings.size();
    for (size_t i = 0; i < start; i++) {
      if (strings[i].size() != len - 1) continue;
      for (char c : alphabet) strings.push_back(strings[i] + c);
    }
  }
  std::map<std::string, std::vector<std::string>> seen;
  size_t collisions = 0;
  auto add = [&](const std::vector<std::string>& parts) {
    auto [it, inserted] = seen.emplace(EncodeLabelKey(parts), parts);
    if (!inserted && it->second != parts) collisions++;
  };
  add({});
  for (const auto& a : strings) {
    add({a});
    for (const auto& b : strings) {
      add({a, b});
      for (const auto& c : strings) add({a, b, c});
    }
  }
  CHECK_EQ(collisions, 0u);
  CHECK(seen.size() > 1000);
}

TEST(label_key_decode_malformed) {
  // Malformed keys never read past the end (ASan checks this); whole parts are kept.
  std::string good = EncodeLabelKey({"a", "b"});
  CHECK_EQ(DecodeLabelKey(good + std::string("\x05\0", 2)), (std::vector<std::string>{"a", "b"}));
  CHECK_EQ(DecodeLabelKey(good + std::string("\x09" "abc", 4)), (std::vector<std::string>{"a", "b"}));
  CHECK_EQ(DecodeLabelKey(std::string("\xff\xff\xff\xff", 4)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string("\x02\0", 2)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string("\x01k\x80", 3)), std::vector<std::string>{"k"});  // varint cut short
  // A varint longer than any length (more than five bytes) is malformed.
  CHECK_EQ(DecodeLabelKey(std::string("\xff\xff\xff\xff\xff\xff\x01", 7)), std::vector<std::string>{});
  CHECK_EQ(DecodeLabelKey(std::string()), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------
// Label sets.

TEST(label_sets_are_interned_and_freed_with_their_last_record) {
  // One label set, many instruments: one copy of the key; it goes with the last record.
  RecordMap m;
  uint32_t arena = m.RegisterArena();
  uint32_t a = m.RegisterInstrument("a", MakeDesc("a", AggregationKind::Sum), nullptr);
  uint32_t b = m.RegisterInstrument("b", MakeDesc("b", AggregationKind::Sum), nullptr);
  const std::string k1 = Key("route", "/x"), k2 = Key("route", "/y");
  Acquired a1, b1, a2;
  REQUIRE(m.Acquire(arena, a, k1, 0, &a1));
  REQUIRE(m.Acquire(arena, b, k1, 0, &b1));
  REQUIRE(m.Acquire(arena, a, k2, 0, &a2));
  CHECK(a1.recordId != b1.recordId);
  CHECK_EQ(m.LabelSetCount(), 2u);
  uint32_t inst = 0;
  std::string key;
  REQUIRE(m.RecordInfo(b1.recordId, &inst, &key));
  CHECK_EQ(key, k1);
  CHECK_EQ(inst, b);
  for (uint64_t id : {a1.recordId, b1.recordId, a2.recordId}) CHECK(m.Release(id));
  const std::map<uint32_t, size_t> sizes = {{a, 1}, {b, 1}};
  Collected c1 = DoCollect(m, sizes, true);  // first sight: exported
  REQUIRE(c1.ok);
  CHECK(c1.reclaimed.empty());
  Acquired again;
  REQUIRE(m.Acquire(arena, b, k1, 0, &again));  // b's record of k1 is held again
  CHECK_EQ(again.recordId, b1.recordId);
  Collected c2 = DoCollect(m, sizes, true);
  REQUIRE(c2.ok);
  CHECK_EQ(c2.reclaimed.size(), 2u);  // a1 and a2
  CHECK_EQ(m.LabelSetCount(), 1u);    // k2 freed; k1 still used by b's record
  CHECK(m.Release(again.recordId));
  Collected c3 = DoCollect(m, sizes, true);
  REQUIRE(c3.ok);
  CHECK_EQ(c3.reclaimed, std::vector<uint64_t>{b1.recordId});
  CHECK_EQ(m.LabelSetCount(), 0u);
  CHECK_EQ(m.RecordCount(), 0u);
}

TEST(label_set_table_retired_sets_freed_by_stamp) {
  // A set retired under stamp S is freed by FreeRetired(below) once S < below: the sets a
  // newer pin cannot point at go while that pin is still held.
  LabelSetTable t;
  LabelSet* a = t.Acquire(EncodeLabelKey({"k", "a"}));
  LabelSet* b = t.Acquire(EncodeLabelKey({"k", "b"}));
  LabelSet* c = t.Acquire(EncodeLabelKey({"k", "c"}));
  t.Release(a, true, 1);
  t.Release(b, true, 2);
  t.Release(c, true, 2);
  CHECK_EQ(t.Retired(), 3u);
  CHECK(t.Find(EncodeLabelKey({"k", "a"})) == nullptr);  // out of the table, memory kept
  t.FreeRetired(2);  // the oldest pin held is 2: a (stamp 1) goes
  CHECK_EQ(t.Retired(), 2u);
  t.FreeRetired(2);
  CHECK_EQ(t.Retired(), 2u);
  t.FreeRetired(3);
  CHECK_EQ(t.Retired(), 0u);
  LabelSet* d = t.Acquire(EncodeLabelKey({"k", "d"}));
  t.Release(d, true, 5);
  t.FreeRetired();  // no pin held: everything
  CHECK_EQ(t.Retired(), 0u);
}

}  // namespace

int main(int argc, char** argv) { return RunTests(argc, argv); }
