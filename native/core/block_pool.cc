#include "block_pool.h"

#include <cstdlib>
#include <new>

#include "asan.h"

namespace hotmeter {

BlockPool::~BlockPool() {
  for (auto& page : pages_) HOTMETER_UNPOISON(page.get(), kPage);
}

void* BlockPool::Allocate(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxSmall) {
    void* p = std::malloc(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  const size_t cls = ClassOf(bytes);
  const size_t size = cls * kGrain;
  if (FreeBlock* b = free_[cls]) {
    HOTMETER_UNPOISON(b, size);
    free_[cls] = b->next;
    return b;
  }
  if (left_ < size) {
    pages_.push_back(std::make_unique<char[]>(kPage));  // the old tail stays unused
    cur_ = pages_.back().get();
    left_ = kPage;
    HOTMETER_POISON(cur_, kPage);
  }
  char* p = cur_;
  cur_ += size;
  left_ -= size;
  HOTMETER_UNPOISON(p, size);
  return p;
}

void BlockPool::Free(void* p, size_t bytes) {
  if (p == nullptr) return;
  if (bytes == 0) bytes = 1;
  if (bytes > kMaxSmall) {
    std::free(p);
    return;
  }
  const size_t cls = ClassOf(bytes);
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free_[cls];
  free_[cls] = b;
  HOTMETER_POISON(b, cls * kGrain);
}

}  // namespace hotmeter
