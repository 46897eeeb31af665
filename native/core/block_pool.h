// BlockPool: small blocks (up to kMaxSmall bytes) in 8-byte size classes, carved from
// 64 KiB pages. A freed block goes on its class's free list and is reused by the next
// block of that class; pages go back only with the pool. Many small long-lived blocks
// (interned label sets) then cost their size rounded to 8, not malloc's header and
// 16-byte rounding. Larger blocks use malloc.
// Not thread-safe: the RecordMap lock guards it. Under ASan, free and unused bytes are
// poisoned, so a stray access still reports.
#pragma once
// See docs/design.md, "The record map and its lock".
#include <cstddef>
#include <memory>
#include <vector>

namespace hotmeter {

class BlockPool {
 public:
  static constexpr size_t kGrain = 8;
  static constexpr size_t kMaxSmall = 256;
  static constexpr size_t kPage = size_t{64} << 10;

  BlockPool() = default;
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // 8-byte aligned; throws std::bad_alloc.
  void* Allocate(size_t bytes);
  // `bytes` must be what the block was allocated with.
  void Free(void* p, size_t bytes);

 private:
  static size_t ClassOf(size_t bytes) { return (bytes + kGrain - 1) / kGrain; }
  struct FreeBlock {
    FreeBlock* next;
  };
  std::vector<std::unique_ptr<char[]>> pages_;
  char* cur_ = nullptr;  // unused tail of the last page
  size_t left_ = 0;
  FreeBlock* free_[kMaxSmall / kGrain + 1] = {};
};

}  // namespace hotmeter
