#include "record.h"

#include <cstring>
#include <new>

namespace hotmeter {

RecordCell* Record::FindCell(uint32_t arena) {
  for (size_t i = 0, n = CellCount(); i < n; i++) {
    if (Cell(i).arena == arena) return &Cell(i);
  }
  return nullptr;
}

RecordCell& Record::PushCell(const RecordCell& c) {
  if (cell.arena == 0 && (!extra || extra->cells.empty())) {
    cell = c;
    return cell;
  }
  if (!extra) extra = std::make_unique<RecordExtra>();
  extra->cells.push_back(c);
  return extra->cells.back();
}

void Record::EraseCell(size_t i) {
  if (i == 0) {
    if (extra && !extra->cells.empty()) {
      cell = extra->cells.front();
      extra->cells.erase(extra->cells.begin());
    } else {
      cell = RecordCell();
    }
  } else {
    extra->cells.erase(extra->cells.begin() + static_cast<std::ptrdiff_t>(i - 1));
  }
  if (extra && extra->cells.empty() && !extra->retired && extra->series == 0) extra.reset();
}

uint32_t Record::Refcount() const {
  uint32_t n = 0;
  for (size_t i = 0, c = CellCount(); i < c; i++) n += Cell(i).refs;
  return n;
}

Record* RecordPool::Find(uint64_t id) {
  const auto slot = static_cast<uint32_t>(id & 0xffffffffu);
  const auto generation = static_cast<uint32_t>(id >> 32);
  if (slot >= used_ || generation == 0) return nullptr;
  Record& r = At(slot);
  return r.labels != nullptr && r.generation == generation ? &r : nullptr;
}

uint32_t RecordPool::Allocate() {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    if (used_ == UINT32_MAX) throw std::bad_alloc();
    if (used_ % kChunk == 0) chunks_.push_back(std::make_unique<Record[]>(kChunk));
    slot = used_++;
    At(slot).generation = 1;
  }
  live_++;
  return slot;
}

void RecordPool::Free(uint32_t slot) {
  Record& r = At(slot);
  const uint32_t next = r.generation == kMaxGeneration ? 1 : r.generation + 1;
  r = Record();
  r.generation = next;
  free_.push_back(slot);
  live_--;
}

namespace {

inline uint64_t FingerprintStep(uint64_t h, uint64_t x) {
  // Bijective in h for a given x, and in x for a given h.
  h = (h ^ x) * 0xff51afd7ed558ccdULL;
  return h ^ (h >> 29);
}

inline uint64_t Bits(const double* d) {
  uint64_t b;
  std::memcpy(&b, d, sizeof b);
  return b;
}

}  // namespace

uint64_t StateFingerprint(const double* state, size_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ size;
  if (size < 8) {
    for (size_t i = 0; i < size; i++) h = FingerprintStep(h, Bits(state + i));
    return h;
  }
  // Four chains over interleaved doubles (a multiply's latency once per four doubles, not
  // per double), with their own seeds, then each lane fed into the main chain as one word.
  // A change within one lane changes that lane's value and so (every step bijective) the
  // result; lanes are never XORed together, which let count and sum changes cancel.
  uint64_t l0 = h ^ 0x243f6a8885a308d3ULL, l1 = h ^ 0x13198a2e03707344ULL;
  uint64_t l2 = h ^ 0xa4093822299f31d0ULL, l3 = h ^ 0x082efa98ec4e6c89ULL;
  size_t i = 0;
  for (; i + 4 <= size; i += 4) {
    l0 = FingerprintStep(l0, Bits(state + i));
    l1 = FingerprintStep(l1, Bits(state + i + 1));
    l2 = FingerprintStep(l2, Bits(state + i + 2));
    l3 = FingerprintStep(l3, Bits(state + i + 3));
  }
  for (; i < size; i++) h = FingerprintStep(h, Bits(state + i));
  h = FingerprintStep(h, l0);
  h = FingerprintStep(h, l1);
  h = FingerprintStep(h, l2);
  return FingerprintStep(h, l3);
}

std::string EncodeLabelKey(const std::vector<std::string>& parts) {
  std::string key;
  size_t total = 0;
  for (const auto& p : parts) total += 5 + p.size();
  key.reserve(total);
  for (const auto& p : parts) {
    uint64_t n = p.size();
    do {
      const auto byte = static_cast<unsigned char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
      key.push_back(static_cast<char>(byte));
      n >>= 7;
    } while (n != 0);
    key.append(p);
  }
  return key;
}

bool NextLabelKeyPart(std::string_view key, size_t* pos, std::string_view* part) {
  size_t i = *pos;
  uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    if (i >= key.size() || shift > 35) return false;
    const auto b = static_cast<unsigned char>(key[i++]);
    n |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) break;
  }
  if (n > key.size() - i) return false;  // malformed: stop rather than read past the end
  *part = key.substr(i, n);
  *pos = i + n;
  return true;
}

std::vector<std::string> DecodeLabelKey(std::string_view key) {
  std::vector<std::string> parts;
  size_t pos = 0;
  std::string_view part;
  while (NextLabelKeyPart(key, &pos, &part)) parts.emplace_back(part);
  return parts;
}

}  // namespace hotmeter
