// Reuse of the serializer's 2 MiB output blocks across scrapes.
//
// A large scrape writes hundreds of MB of fresh memory; each new page costs a fault and
// the kernel's zeroing, which was most of the scrape's time (perf: clear_page_erms). Blocks
// of exactly kBlockBytes come back here when their Chunk (or the JS Buffer that took it
// over) is freed, and the next scrape writes into them again.
//
// Early release: a scrape's consumer that is done with its Buffers (the HTTP handler once
// the response is written) detaches them (Node-API), which runs their finalizers at once
// instead of after a full GC and V8's concurrent ArrayBuffer sweep (measured: one to two
// scrapes later), so the next scrape finds the blocks here.
//
// Ownership: a block belongs to the pool between Give() and Take(); to a Chunk, then to
// the JS Buffer made from it, between Take() and Give(). Thread-safe (a mutex: Take and
// Give happen once per 2 MiB).
// Bounds: at most kMaxPooledBytes are held; EndScrape() frees the blocks that were already
// pooled when that scrape began and were not needed by it (so the pool shrinks to what one
// scrape uses). Pooled blocks are advised MADV_FREE on Linux: the kernel may take their
// pages back under memory pressure (they then fault in again as zeros when reused).
#pragma once
// See docs/design.md, "Prometheus output: snapshot, chunks and the output pool".
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace hotmeter::prometheus {

// Memory of kBlockBytes (2 MiB) or more, a multiple of it: 2 MiB aligned, with
// `hugePages` advised as transparent huge pages where the system has them, straight from
// mmap and back to the kernel with munmap (glibc keeps freed memory in the freeing
// thread's arena: blocks freed from the serializer's many threads made a streamed
// scrape's RSS grow ~30 MB a scrape). Elsewhere posix_memalign / free.
// Huge pages are for output text: where the kernel defragments for madvised regions
// (THP defrag "madvise", Debian's default) a huge-page fault may stall in compaction, and
// the snapshot's vectors, faulted in on the JS thread under the record map's lock, took
// 10 ms or 60-90 ms by the system's state (100,000 series) against ~19 ms every time
// with 4 KiB pages.
char* MapLarge(size_t bytes, bool hugePages = true);
void UnmapLarge(char* p, size_t bytes) noexcept;

class OutputPool {
 public:
  static constexpr size_t kBlockBytes = size_t{2} << 20;
  static constexpr size_t kMaxPooledBytes = size_t{1} << 30;

  static OutputPool& Global();

  // A pooled block (kBlockBytes, 2 MiB aligned), or nullptr when none is pooled.
  char* Take();
  // Takes back a block of kBlockBytes from Take() or AllocateBlock (frees it if full).
  void Give(char* block);
  // A scrape's bracket: BeginScrape returns the ticket EndScrape wants.
  uint64_t BeginScrape();
  void EndScrape(uint64_t ticket);

  // Output memory lent to JS Buffers, so that only memory this process's serializer made
  // is ever detached early (JS may ask to release any Buffer). Lend() before handing a
  // block to a Buffer; Unlend() before it is freed (the Buffer's finalizer does both).
  void Lend(const char* data);
  void Unlend(const char* data);
  bool IsLent(const char* data);
  // Output chunks lent to Buffers now (not yet freed or given back).
  size_t lentChunks();

  size_t pooledBlocks();
  // Take() calls answered from the pool, since the process started.
  uint64_t reusedBlocks();
  // Frees every pooled block.
  void Clear();

 private:
  struct Entry {
    char* block;
    uint64_t generation;  // the scrape count when the block was given back
  };
  std::mutex mu_;
  std::vector<Entry> free_;  // LIFO: the most recently returned block is reused first
  uint64_t generation_ = 0;
  uint64_t reused_ = 0;
  std::unordered_set<const char*> lent_;
};

}  // namespace hotmeter::prometheus
