// A streamed Prometheus scrape: one collection pass's snapshot and its SerializationPlan,
// written a part at a time as the reader asks (openPrometheusStream / readPrometheusStream
// / closePrometheusStream in the binding). No Node dependency.
//
// Threads and ownership:
//   - Open() runs on the reader's thread (the JS thread): it takes the snapshot under the
//     record map's lock, so the snapshot is one cut of what that thread recorded.
//   - Shared ownership (std::shared_ptr): the reader's handle holds a reference until it is
//     closed (or garbage collected); each part's writer holds one while it runs, so the
//     snapshot outlives either. Closing is dropping the handle's reference; a stream closed
//     before its last part (abandoned) ends when the last reference goes.
//   - Claim() and Done() are the reader's: one thread only (the JS thread), never
//     concurrently with each other. They alone read or write next_ and busy_.
//   - Write(part) runs on any thread (a libuv pool thread) between the Claim() that
//     returned `part` and the matching Done(): one Write at a time per stream. It reads the
//     snapshot, options and plan (const) and writes only its own output; the last part's
//     Write ends the scrape (Finish), since no part reads the snapshot after it.
//   - Finish() runs once: after the last part's Write, or in the destructor (whichever
//     thread drops the last reference). The snapshot's memory is stashed for the next
//     scrape (StashSnapshot, which also drops its label pin) and the output pool's scrape
//     ends.
#pragma once
// See docs/design.md, "Prometheus output: snapshot, chunks and the output pool".
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "prometheus_serializer.h"
#include "record_map.h"

namespace hotmeter::prometheus {

// The collection pass a stream's snapshot came from, as Open() reports it: the snapshot's
// epoch, record count, stale and reclaimed ids, the plan's dropped instruments and
// collisions, and the time the snapshot took on the calling thread.
struct StreamPass {
  uint64_t epoch = 0;
  size_t records = 0;
  std::vector<uint64_t> stale;
  std::vector<uint64_t> reclaimed;
  std::vector<uint32_t> dropped;
  std::vector<Collision> collisions;
  double snapshotMs = 0;
  size_t snapshotBytes = 0;  // what the snapshot holds while the stream is open (records, states)
};

class PrometheusStream {
 public:
  static constexpr size_t kDefaultPartBytes = size_t{4} << 20;

  // Takes the snapshot of `map` (TakeSnapshot with `co` and `include`: sorted instrument
  // ids, nullptr for all) and plans its text in parts of about `partBytes` each. Throws
  // what TakeSnapshot and the plan throw (nothing is left held then).
  static std::shared_ptr<PrometheusStream> Open(RecordMap& map, const CollectOptions& co,
                                                const std::vector<uint32_t>* include, Options opts,
                                                ExactQuantiles exact, size_t partBytes, StreamPass* pass);

  ~PrometheusStream();
  PrometheusStream(const PrometheusStream&) = delete;
  PrometheusStream& operator=(const PrometheusStream&) = delete;

  // How many parts the text has (at least 1).
  size_t parts() const { return bounds_.size() - 1; }
  // Whether `part` is the last one.
  bool IsLast(size_t part) const { return part + 2 == bounds_.size(); }

  enum class Claim {
    kPart,  // *part is the next part to Write; the stream is busy until Done()
    kEnd,   // every part was claimed
    kBusy,  // a claimed part is not Done() yet
  };
  // Reader's thread: the next part to write.
  Claim Next(size_t* part);
  // Reader's thread: the claimed part's Write is over (returned or threw).
  void Done() { busy_ = false; }
  // Reader's thread: gives back the part Next() just claimed, not written (its write could
  // not be started); the next Next() claims it again.
  void Unclaim() {
    next_--;
    busy_ = false;
  }

  // Any one thread at a time, after Next() claimed `part`: writes it (chunks of
  // opts.chunkBytes). After the last part the scrape ends (Finish).
  std::vector<Chunk> Write(size_t part);

  const Options& options() const { return opts_; }

 private:
  PrometheusStream();
  void Finish();

  Options opts_;
  ExactQuantiles exact_;
  Snapshot snap_;
  std::unique_ptr<SerializationPlan> plan_;  // reads snap_, opts_, exact_
  std::vector<size_t> bounds_;               // split points: bounds_.size() - 1 parts
  size_t next_ = 0;                          // reader's thread only
  bool busy_ = false;                        // reader's thread only
  bool finished_ = false;                    // the last part's writer, then the destructor
  // The whole stream is one scrape for the output pool: blocks given back by earlier parts
  // are reused by later ones; what was pooled before and not needed goes at the end.
  uint64_t ticket_;
};

}  // namespace hotmeter::prometheus
