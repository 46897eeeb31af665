#include "label_set.h"

#include "record.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace hotmeter {

uint32_t LabelSet::HashOf(std::string_view key) {
  // FNV-1a, 64-bit, folded: label keys are short and hashed once per Acquire.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return static_cast<uint32_t>(h ^ (h >> 32));
}

bool LabelSet::IsPlainKey(std::string_view key) {
  size_t pos = 0;
  std::string_view name, value;
  while (pos < key.size()) {
    if (!NextLabelKeyPart(key, &pos, &name) || !NextLabelKeyPart(key, &pos, &value)) return false;
    if (value.empty() || value[0] != 's' || name.empty()) return false;
    if (name == "le" || name == "quantile" || name == "otel_scope_name" || name == "otel_scope_version") return false;
    char prev = 0;
    for (size_t i = 0; i < name.size(); i++) {
      const char c = name[i];
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
      const bool digit = c >= '0' && c <= '9';
      if (!(alpha || (digit && i > 0)) || (c == '_' && prev == '_')) return false;
      prev = c;
    }
  }
  return true;
}

namespace {
// A name as the Prometheus exposition writes it (prometheus::SanitizeLabelName, then
// `le`, `quantile` and `otel_scope_*` renamed `exported_<name>`, as with scope labels).
std::string LabelNameOf(std::string_view in) {
  std::string s;
  for (char c : in) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    const char o = ok ? c : '_';
    if (o == '_' && !s.empty() && s.back() == '_') continue;
    s.push_back(o);
  }
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') s.insert(s.begin(), '_');
  if (s.empty()) s.push_back('_');
  if (s == "le" || s == "quantile" || s == "otel_scope_name" || s == "otel_scope_version") {
    std::string renamed("exported_");
    renamed.append(s);
    return renamed;
  }
  return s;
}
}  // namespace

uint32_t LabelSet::ShapeOf(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  };
  std::vector<std::string> names;
  size_t pos = 0;
  std::string_view name, value;
  bool merges = false;
  while (pos < key.size()) {
    if (!NextLabelKeyPart(key, &pos, &name) || !NextLabelKeyPart(key, &pos, &value)) {
      merges = true;  // malformed: no claim
      break;
    }
    for (unsigned char c : name) mix(c);
    mix(0);
    mix(value.empty() ? 0 : static_cast<unsigned char>(value[0]));
    std::string n = LabelNameOf(name);
    // A name already clean and not renamed is itself; others are rare: compare them all.
    for (const std::string& o : names) merges = merges || o == n;
    // Without scope labels otel_scope_* keep their names: `otel_scope_name` and
    // `otel.scope.name` merge then too (the renamed forms compare equal above).
    names.push_back(std::move(n));
  }
  const uint32_t folded = static_cast<uint32_t>(h ^ (h >> 32)) & ~kShapeMerges;
  return merges ? (folded | kShapeMerges) : folded;
}

LabelSetTable::~LabelSetTable() {
  table_.ForEach([this](LabelSet* s) { Free(s); });
  FreeRetired();
}

LabelSet* LabelSetTable::Find(std::string_view key) const {
  const uint32_t h = LabelSet::HashOf(key);
  return table_.Find(MixHash(h), [&](const LabelSet* s) { return s->hash() == h && s->view() == key; });
}

LabelSet* LabelSetTable::Acquire(std::string_view key) {
  LabelSet* s = Find(key);
  if (s == nullptr) {
    // One block: the header, then the bytes.
    void* mem = blocks_.Allocate(sizeof(LabelSet) + key.size());
    s = new (mem) LabelSet();
    s->hash_ = LabelSet::HashOf(key);
    s->size_ = static_cast<uint32_t>(key.size()) & 0x7fffffffu;
    s->plain_ = LabelSet::IsPlainKey(key) ? 1 : 0;
    s->shape_ = LabelSet::ShapeOf(key);
    if (!key.empty()) std::memcpy(reinterpret_cast<char*>(s + 1), key.data(), key.size());
    table_.Insert(s);
    bytes_ += sizeof(LabelSet) + key.size();
  }
  s->refs_++;
  return s;
}

void LabelSetTable::Release(LabelSet* s, bool keep, uint64_t stamp) {
  if (--s->refs_ > 0) return;
  table_.Erase(s);
  if (keep) {
    retired_.emplace_back(s, stamp);
  } else {
    Free(s);
  }
}

void LabelSetTable::FreeRetired(uint64_t below) {
  size_t n = 0;
  while (n < retired_.size() && retired_[n].second < below) Free(retired_[n++].first);
  retired_.erase(retired_.begin(), retired_.begin() + static_cast<std::ptrdiff_t>(n));
}

void LabelSetTable::Free(LabelSet* s) {
  const size_t bytes = sizeof(LabelSet) + s->size_;
  bytes_ -= bytes;
  s->~LabelSet();
  blocks_.Free(s, bytes);
}

}  // namespace hotmeter
