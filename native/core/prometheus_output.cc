// Prometheus output memory: chunks of text (pooled, large ones huge-page backed) and ChunkedOutput.
#include "prometheus_serializer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "output_pool.h"

namespace hotmeter::prometheus {

namespace {
constexpr size_t kHuge = size_t{2} << 20;

char* AllocateBlock(size_t* cap, bool hugePages = true) {
  if (*cap >= kHuge) {
    *cap = (*cap + kHuge - 1) / kHuge * kHuge;
    return MapLarge(*cap, hugePages);
  }
  void* p = std::malloc(*cap);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}

// Frees what AllocateBlock returned with this capacity.
void FreeBlock(char* p, size_t cap) noexcept {
  if (cap >= kHuge) {
    UnmapLarge(p, cap);
  } else {
    std::free(p);
  }
}
}  // namespace

void* AllocateLarge(size_t bytes) {
  size_t cap = std::max<size_t>(bytes, 1);
  return AllocateBlock(&cap, false);
}

void FreeLarge(void* p, size_t bytes) noexcept {
  size_t cap = std::max<size_t>(bytes, 1);
  if (cap >= kHuge) cap = (cap + kHuge - 1) / kHuge * kHuge;
  FreeBlock(static_cast<char*>(p), cap);
}

Chunk::Chunk(size_t capacity) : cap_(std::max<size_t>(capacity, 64)) {
  if (cap_ == OutputPool::kBlockBytes) data_ = OutputPool::Global().Take();
  if (data_ == nullptr) data_ = AllocateBlock(&cap_);
}

void FreeChunkData(char* data, size_t capacity) noexcept {
  if (data == nullptr) return;
  if (capacity == OutputPool::kBlockBytes) {
    OutputPool::Global().Give(data);
  } else {
    FreeBlock(data, capacity);
  }
}

Chunk::~Chunk() { FreeChunkData(data_, cap_); }

Chunk::Chunk(Chunk&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
  o.data_ = nullptr;
  o.size_ = o.cap_ = 0;
}

Chunk& Chunk::operator=(Chunk&& o) noexcept {
  if (this != &o) {
    FreeChunkData(data_, cap_);
    data_ = o.data_;
    size_ = o.size_;
    cap_ = o.cap_;
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  return *this;
}

char* Chunk::release() {
  char* p = data_;
  data_ = nullptr;
  size_ = cap_ = 0;
  return p;
}

void Chunk::Grow(size_t need) {
  size_t cap = std::max<size_t>({64, cap_ * 2, size_ + need});
  char* p = AllocateBlock(&cap);
  if (size_ > 0) std::memcpy(p, data_, size_);
  FreeChunkData(data_, cap_);
  data_ = p;
  cap_ = cap;
}

ChunkedOutput::ChunkedOutput(size_t chunkBytes)
    : chunkBytes_(std::max<size_t>(chunkBytes, 4096)), cur_(chunkBytes_ + (size_t{64} << 10)) {}

void ChunkedOutput::Cut() {
  chunks_.push_back(std::move(cur_));
  cur_ = Chunk(chunkBytes_ + (size_t{64} << 10));
}

std::vector<Chunk> ChunkedOutput::Take() {
  if (!cur_.empty()) chunks_.push_back(std::move(cur_));
  cur_ = Chunk();
  std::vector<Chunk> out;
  out.swap(chunks_);
  return out;
}

void ChunkedOutput::Append(std::vector<Chunk> chunks) {
  if (!cur_.empty()) Cut();
  for (auto& c : chunks) {
    if (!c.empty()) chunks_.push_back(std::move(c));
  }
}

std::string Join(const std::vector<Chunk>& chunks) {
  std::string s;
  size_t n = 0;
  for (const auto& c : chunks) n += c.size();
  s.reserve(n);
  for (const auto& c : chunks) s.append(c.view());
  return s;
}

}  // namespace hotmeter::prometheus
