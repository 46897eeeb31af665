#include "output_pool.h"

#include <cstdlib>

#include "asan.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace hotmeter::prometheus {

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
  std::free(block);
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
    std::free(p);
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
    std::free(e.block);
  }
}

}  // namespace hotmeter::prometheus
