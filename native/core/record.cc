#include "record.h"

#include <cstring>

namespace hotmeter {

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

std::vector<std::string> DecodeLabelKey(const std::string& key) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i + 4 <= key.size()) {
    const auto* b = reinterpret_cast<const unsigned char*>(key.data() + i);
    uint32_t n = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    i += 4;
    if (n > key.size() - i) break;  // malformed: stop rather than read past the end
    parts.emplace_back(key, i, n);
    i += n;
  }
  return parts;
}

}  // namespace hotmeter
