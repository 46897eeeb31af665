#include "prometheus_stream.h"

#include <chrono>
#include <stdexcept>
#include <utility>

#include "output_pool.h"

namespace hotmeter::prometheus {

PrometheusStream::PrometheusStream() : ticket_(OutputPool::Global().BeginScrape()) {}

PrometheusStream::~PrometheusStream() { Finish(); }

std::shared_ptr<PrometheusStream> PrometheusStream::Open(RecordMap& map, const CollectOptions& co,
                                                         const std::vector<uint32_t>* include, Options opts,
                                                         ExactQuantiles exact, size_t partBytes,
                                                         StreamPass* pass) {
  std::shared_ptr<PrometheusStream> s(new PrometheusStream());
  s->opts_ = std::move(opts);
  s->exact_ = std::move(exact);
  const auto t0 = std::chrono::steady_clock::now();
  s->snap_ = ReuseSnapshot();
  TakeSnapshot(map, co, include, &s->snap_);
  pass->snapshotMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  pass->dropped.clear();
  s->plan_ = std::make_unique<SerializationPlan>(s->snap_, s->opts_, s->exact_, &pass->dropped);
  s->bounds_ = s->plan_->Parts(partBytes);
  pass->epoch = s->snap_.epoch;
  pass->records = s->snap_.records.size();
  pass->snapshotBytes = s->snap_.records.capacity() * sizeof(SnapshotRecord) + s->snap_.states.capacity() * sizeof(double);
  pass->stale = s->snap_.stale;
  pass->reclaimed = s->snap_.reclaimed;
  pass->collisions = s->plan_->collisions();
  return s;
}

PrometheusStream::Claim PrometheusStream::Next(size_t* part) {
  if (busy_) return Claim::kBusy;
  if (next_ + 1 >= bounds_.size()) return Claim::kEnd;
  *part = next_++;
  busy_ = true;
  return Claim::kPart;
}

std::vector<Chunk> PrometheusStream::Write(size_t part) {
  if (part + 1 >= bounds_.size() || finished_) throw std::logic_error("no such part of the Prometheus stream");
  ChunkedOutput out(opts_.chunkBytes);
  plan_->Write(bounds_[part], bounds_[part + 1], part == 0, IsLast(part), &out);
  std::vector<Chunk> chunks = out.Take();
  if (IsLast(part)) Finish();  // here, not on the reader's thread; no part reads it again
  return chunks;
}

void PrometheusStream::Finish() {
  if (finished_) return;
  finished_ = true;
  plan_.reset();
  StashSnapshot(std::move(snap_));
  OutputPool::Global().EndScrape(ticket_);
}

}  // namespace hotmeter::prometheus
