#include "output_pool.h"

#include <cstdint>
#include <cstdlib>
#include <new>

#include "asan.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace hotmeter::prometheus {

char* MapLarge(size_t bytes, bool hugePages) {
  constexpr size_t kAlign = OutputPool::kBlockBytes;
#if defined(__linux__)
  // Map one alignment more than needed and unmap the ends.
  void* m = mmap(nullptr, bytes + kAlign, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (start + kAlign - 1) & ~(uintptr_t{kAlign} - 1);
  const uintptr_t end = start + bytes + kAlign;
  if (aligned > start) munmap(m, aligned - start);
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
#if defined(MADV_HUGEPAGE)
  if (hugePages) madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advice only
#endif
  return reinterpret_cast<char*>(aligned);
#else
  (void)hugePages;
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, bytes) != 0) throw std::bad_alloc();
  return static_cast<char*>(p);
#endif
}

void UnmapLarge(char* p, size_t bytes) noexcept {
  if (p == nullptr) return;
#if defined(__linux__)
  munmap(p, bytes);
#else
  (void)bytes;
  std::free(p);
#endif
}

OutputPool& OutputPool::Global() {
  static OutputPool* pool = new OutputPool();  // never destroyed: finalizers may run at exit
  return *pool;
}

char* OutputPool::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return nullptr;
  char* p = free_.back().block;
  free_.pop_back();
  reused_++;
  HOTMETER_UNPOISON(p, kBlockBytes);
  return p;
}

void OutputPool::Give(char* block) {
  if (block == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if ((free_.size() + 1) * kBlockBytes <= kMaxPooledBytes) {
#if defined(__linux__) && defined(MADV_FREE) && !defined(HOTMETER_ASAN)
      madvise(block, kBlockBytes, MADV_FREE);  // advice only
#endif
      HOTMETER_POISON(block, kBlockBytes);
      free_.push_back({block, generation_});
      return;
    }
  }
  UnmapLarge(block, kBlockBytes);
}

uint64_t OutputPool::BeginScrape() {
  std::lock_guard<std::mutex> lock(mu_);
  return ++generation_;
}

void OutputPool::EndScrape(uint64_t ticket) {
  std::vector<char*> surplus;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t kept = 0;
    for (const Entry& e : free_) {
      if (e.generation < ticket) {
        surplus.push_back(e.block);
      } else {
        free_[kept++] = e;
      }
    }
    free_.resize(kept);
  }
  for (char* p : surplus) {
    HOTMETER_UNPOISON(p, kBlockBytes);
    UnmapLarge(p, kBlockBytes);
  }
}

void OutputPool::Lend(const char* data) {
  std::lock_guard<std::mutex> lock(mu_);
  lent_.insert(data);
}

void OutputPool::Unlend(const char* data) {
  std::lock_guard<std::mutex> lock(mu_);
  lent_.erase(data);
}

bool OutputPool::IsLent(const char* data) {
  std::lock_guard<std::mutex> lock(mu_);
  return lent_.count(data) != 0;
}

uint64_t OutputPool::reusedBlocks() {
  std::lock_guard<std::mutex> lock(mu_);
  return reused_;
}

size_t OutputPool::lentChunks() {
  std::lock_guard<std::mutex> lock(mu_);
  return lent_.size();
}

size_t OutputPool::pooledBlocks() {
  std::lock_guard<std::mutex> lock(mu_);
  return free_.size();
}

void OutputPool::Clear() {
  std::vector<Entry> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(free_);
  }
  for (const Entry& e : all) {
    HOTMETER_UNPOISON(e.block, kBlockBytes);
    UnmapLarge(e.block, kBlockBytes);
  }
}

}  // namespace hotmeter::prometheus
