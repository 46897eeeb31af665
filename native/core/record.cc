#include "record.h"

#include <cstring>

namespace hotmeter {

void CellList::PushBack(const RecordCell& c) {
  if (size_ == cap_) {
    const uint32_t cap = cap_ * 2;
    auto grown = std::make_unique<RecordCell[]>(cap);
    for (uint32_t i = 0; i < size_; i++) grown[i] = data()[i];
    heap_ = std::move(grown);
    cap_ = cap;
  }
  data()[size_++] = c;
}

void CellList::Erase(size_t i) {
  RecordCell* d = data();
  for (size_t j = i + 1; j < size_; j++) d[j - 1] = d[j];
  size_--;
}

uint64_t StateFingerprint(const double* state, size_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ size;
  for (size_t i = 0; i < size; i++) {
    uint64_t bits;
    std::memcpy(&bits, state + i, sizeof bits);
    h = (h ^ bits) * 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
  }
  return h;
}

std::string EncodeLabelKey(const std::vector<std::string>& parts) {
  std::string key;
  size_t total = 0;
  for (const auto& p : parts) total += 4 + p.size();
  key.reserve(total);
  for (const auto& p : parts) {
    uint32_t n = static_cast<uint32_t>(p.size());
    char len[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                   static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
    key.append(len, 4);
    key.append(p);
  }
  return key;
}

std::vector<std::string> DecodeLabelKey(std::string_view key) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i + 4 <= key.size()) {
    const auto* b = reinterpret_cast<const unsigned char*>(key.data() + i);
    uint32_t n = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    i += 4;
    if (n > key.size() - i) break;  // malformed: stop rather than read past the end
    parts.emplace_back(key.substr(i, n));
    i += n;
  }
  return parts;
}

}  // namespace hotmeter
