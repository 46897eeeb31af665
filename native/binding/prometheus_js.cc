// The Prometheus functions of the addon: argument checks and conversions, and the async
// work and Promises of scrape() and the streamed scrape (whose lifecycle is in
// native/core/prometheus_stream.*). ~500 lines: one binding per JS entry point, nothing
// shared with the record map's bindings but js_util.h.
#include "prometheus_js.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/output_pool.h"
#include "../core/prometheus_serializer.h"
#include "../core/prometheus_stream.h"
#include "../core/record_map.h"
#include "js_util.h"

namespace hotmeter::js {

namespace {

constexpr size_t kMaxQuantiles = 64;
constexpr size_t kMaxPrefixBytes = 16 * 1024 * 1024;

// A collection pass's bookkeeping on a result object (serializePrometheus and
// openPrometheusStream): epoch, records, stale, reclaimed, dropped, merged
// ([instrument, other, how]* of SerializationPlan::collisions), snapshotMs.
void SetPass(Napi::Env env, Napi::Object r, uint64_t epoch, size_t records, const std::vector<uint64_t>& stale,
             const std::vector<uint64_t>& reclaimed, const std::vector<uint32_t>& dropped,
             const std::vector<prometheus::Collision>& collisions, double snapshotMs) {
  r.Set("epoch", static_cast<double>(epoch));
  r.Set("records", static_cast<double>(records));
  r.Set("stale", IdsArray(env, stale));
  r.Set("reclaimed", IdsArray(env, reclaimed));
  Napi::Uint32Array d = Napi::Uint32Array::New(env, dropped.size());
  for (size_t i = 0; i < dropped.size(); i++) d[i] = dropped[i];
  r.Set("dropped", d);
  Napi::Uint32Array m = Napi::Uint32Array::New(env, collisions.size() * 3);
  for (size_t i = 0; i < collisions.size(); i++) {
    m[3 * i] = collisions[i].instrument;
    m[3 * i + 1] = collisions[i].other;
    m[3 * i + 2] = static_cast<uint32_t>(collisions[i].how);
  }
  r.Set("merged", m);
  r.Set("snapshotMs", snapshotMs);
}

// Registers `data` as lent to a Buffer; frees it (and rethrows) if that fails.
void LendOrFree(char* data, void* capacity) {
  try {
    prometheus::OutputPool::Global().Lend(data);
  } catch (...) {
    prometheus::FreeChunkData(data, static_cast<size_t>(reinterpret_cast<uintptr_t>(capacity)));
    throw;
  }
}

// The chunks as Buffers over their own memory (emptied out of `chunks`); `bytes` gets their
// total size. Zero copy where external buffers are allowed: a block is freed (or pooled for
// the next scrape) with its Buffer, or when releaseOutput detaches it; where they are not,
// the Buffer is a copy and the block goes at once.
Napi::Array LendChunks(Napi::Env env, std::vector<prometheus::Chunk>* chunks, size_t* bytes) {
  Napi::Array a = Napi::Array::New(env, chunks->size());
  *bytes = 0;
  for (size_t i = 0; i < chunks->size(); i++) {
    prometheus::Chunk& c = (*chunks)[i];
    const size_t size = c.size();
    *bytes += size;
    // The capacity travels as the finalizer's hint (an integer, not a pointer).
    void* capacity = reinterpret_cast<void*>(static_cast<uintptr_t>(c.capacity()));
    char* data = c.release();
    LendOrFree(data, capacity);
    a.Set(static_cast<uint32_t>(i),
          Napi::Buffer<char>::NewOrCopy(
              env, data, size,
              [](Napi::Env, char* d, void* cap) {
                prometheus::OutputPool::Global().Unlend(d);
                prometheus::FreeChunkData(d, static_cast<size_t>(reinterpret_cast<uintptr_t>(cap)));
              },
              capacity));
  }
  chunks->clear();
  return a;
}

// One scrape: the snapshot (under the record map's lock) is taken on the JS thread when
// the scrape is queued, so it is one cut of everything that thread recorded (as collect()
// is: an in-flight gauge and a done counter always add up); the serialization, the long
// part, runs lock-free on a libuv pool thread. Execute touches only the worker's own
// members, so the worker may outlive the environment that queued it (its result is then
// dropped).
class SerializeWorker : public Napi::AsyncWorker {
 public:
  SerializeWorker(Napi::Env env, CollectOptions co, bool all, std::vector<uint32_t> include,
                  prometheus::Options opts, prometheus::ExactQuantiles exact)
      : Napi::AsyncWorker(env, "hotmeter.serializePrometheus"),
        deferred_(Napi::Promise::Deferred::New(env)),
        co_(co),
        all_(all),
        include_(std::move(include)),
        opts_(std::move(opts)),
        exact_(std::move(exact)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  // On the JS thread, before Queue().
  void TakeSnapshot() {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      snap_ = prometheus::ReuseSnapshot();
      prometheus::TakeSnapshot(RecordMap::Global(), co_, all_ ? nullptr : &include_, &snap_);
      snapshotMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
      snapshotError_ = e.what();
    }
  }

  void Execute() override {
    if (!snapshotError_.empty()) {
      SetError("hotmeter native: Prometheus snapshot failed: " + snapshotError_);
      return;
    }
    try {
      const auto t1 = std::chrono::steady_clock::now();
      const uint64_t ticket = prometheus::OutputPool::Global().BeginScrape();
      prometheus::ChunkedOutput out(opts_.chunkBytes);
      prometheus::Serialize(snap_, opts_, exact_, &out, &dropped_, &collisions_);
      chunks_ = out.Take();
      prometheus::OutputPool::Global().EndScrape(ticket);
      serializeMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
      epoch_ = snap_.epoch;
      records_ = snap_.records.size();
      stale_ = std::move(snap_.stale);
      reclaimed_ = std::move(snap_.reclaimed);
      prometheus::StashSnapshot(std::move(snap_));  // here, not on the JS thread
      snap_ = prometheus::Snapshot();
    } catch (const std::exception& e) {
      SetError(std::string("hotmeter native: Prometheus serialization failed: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    size_t bytes = 0;
    Napi::Array chunks = LendChunks(env, &chunks_, &bytes);
    Napi::Object r = Napi::Object::New(env);
    r.Set("chunks", chunks);
    r.Set("bytes", static_cast<double>(bytes));
    SetPass(env, r, epoch_, records_, stale_, reclaimed_, dropped_, collisions_, snapshotMs_);
    r.Set("serializeMs", serializeMs_);
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  CollectOptions co_;
  bool all_;
  std::vector<uint32_t> include_;
  prometheus::Options opts_;
  prometheus::ExactQuantiles exact_;
  prometheus::Snapshot snap_;
  std::string snapshotError_;
  std::vector<prometheus::Chunk> chunks_;
  std::vector<uint64_t> stale_, reclaimed_;
  std::vector<uint32_t> dropped_;
  std::vector<prometheus::Collision> collisions_;
  uint64_t epoch_ = 0;
  size_t records_ = 0;
  double snapshotMs_ = 0, serializeMs_ = 0;
};

// Calls f(id, values) for each [id, n, v_1 .. v_n] group of a Float64Array.
template <class F>
void ForEachGroup(Napi::Env env, const Napi::Value& v, const char* what, F f) {
  if (v.IsUndefined()) return;
  if (!IsTypedArrayOf(v, napi_float64_array)) ThrowType(env, std::string(what) + " must be a Float64Array");
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  const size_t len = a.ElementLength();
  size_t i = 0;
  while (i < len) {
    if (len - i < 2) ThrowType(env, std::string(what) + " must hold [id, n, ...n values] groups");
    double id = a[i], n = a[i + 1];
    if (!IsSafeId(id)) ThrowType(env, std::string(what) + ": bad id");
    if (!(n >= 0 && n <= static_cast<double>(len - i - 2)) || std::floor(n) != n) {
      ThrowType(env, std::string(what) + " must hold [id, n, ...n values] groups");
    }
    std::vector<double> vals(a.Data() + i + 2, a.Data() + i + 2 + static_cast<size_t>(n));
    f(id, std::move(vals));
    i += 2 + static_cast<size_t>(n);
  }
}

void ReadOptions(Napi::Env env, const Napi::Value& v, prometheus::Options* o, prometheus::ExactQuantiles* exact) {
  if (v.IsUndefined()) return;
  if (!IsOptionsObject(v)) ThrowType(env, "options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  auto flag = [&](const char* key, bool* out) {
    Napi::Value x = obj.Get(key);
    if (x.IsUndefined()) return;
    if (!x.IsBoolean()) ThrowType(env, std::string(key) + " must be a boolean");
    *out = x.As<Napi::Boolean>().Value();
  };
  bool om = false;
  flag("openMetrics", &om);
  o->format = om ? prometheus::Format::OpenMetrics100 : prometheus::Format::Text004;
  bool protobuf = false;
  flag("protobuf", &protobuf);
  if (protobuf) o->format = prometheus::Format::Protobuf;
  flag("scopeLabels", &o->scopeLabels);
  Napi::Value q = obj.Get("quantiles");
  if (!q.IsUndefined()) {
    if (!IsTypedArrayOf(q, napi_float64_array)) ThrowType(env, "quantiles must be a Float64Array");
    Napi::Float64Array qa = q.As<Napi::Float64Array>();
    if (qa.ElementLength() > kMaxQuantiles) ThrowType(env, "too many quantiles");
    o->quantiles.clear();
    for (size_t i = 0; i < qa.ElementLength(); i++) {
      double x = qa[i];
      if (!(x >= 0 && x <= 1)) ThrowType(env, "quantiles must be in [0, 1]");
      o->quantiles.push_back(x);
    }
  }
  Napi::Value p = obj.Get("prefix");
  if (!p.IsUndefined()) {
    if (!p.IsString()) ThrowType(env, "prefix must be a string");
    o->prefix = p.As<Napi::String>().Utf8Value();
    if (o->prefix.size() > kMaxPrefixBytes) ThrowType(env, "prefix is too long");
  }
  auto text = [&](const char* key, std::string* out) {
    Napi::Value x = obj.Get(key);
    if (x.IsUndefined()) return;
    if (!x.IsString()) ThrowType(env, std::string(key) + " must be a string");
    *out = x.As<Napi::String>().Utf8Value();
    if (out->size() > kMaxPrefixBytes) ThrowType(env, std::string(key) + " is too long");
  };
  text("namePrefix", &o->namePrefix);
  text("constantLabels", &o->constantLabels);
  text("sampleSuffix", &o->sampleSuffix);
  flag("withoutUnits", &o->withoutUnits);
  flag("withoutCounterSuffixes", &o->withoutCounterSuffixes);
  // targetInfo: [name, value, ...] (protobuf's target_info labels).
  Napi::Value ti = obj.Get("targetInfo");
  if (!ti.IsUndefined()) {
    if (!ti.IsArray()) ThrowType(env, "targetInfo must be an array of strings");
    Napi::Array a = ti.As<Napi::Array>();
    if (a.Length() % 2 != 0) ThrowType(env, "targetInfo must hold name, value pairs");
    size_t bytes = 0;
    for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
      Napi::Value k = a.Get(i), v = a.Get(i + 1);
      if (!k.IsString() || !v.IsString()) ThrowType(env, "targetInfo must be an array of strings");
      o->targetInfo.emplace_back(k.As<Napi::String>().Utf8Value(), v.As<Napi::String>().Utf8Value());
      bytes += o->targetInfo.back().first.size() + o->targetInfo.back().second.size();
      if (bytes > kMaxPrefixBytes) ThrowType(env, "targetInfo is too long");
    }
  }
  Napi::Value rn = obj.Get("reservedNames");
  if (!rn.IsUndefined()) {
    if (!rn.IsArray()) ThrowType(env, "reservedNames must be an array of strings");
    Napi::Array a = rn.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value s = a.Get(i);
      if (!s.IsString()) ThrowType(env, "reservedNames must be an array of strings");
      o->reservedNames.push_back(s.As<Napi::String>().Utf8Value());
    }
  }
  Napi::Value cb = obj.Get("chunkBytes");
  if (!cb.IsUndefined()) {
    if (!cb.IsNumber()) ThrowType(env, "chunkBytes must be a number");
    double d = cb.As<Napi::Number>().DoubleValue();
    if (!(d >= 4096 && d <= 1073741824.0)) ThrowType(env, "chunkBytes must be in [4096, 2^30]");
    o->chunkBytes = static_cast<size_t>(d);
  }
  Napi::Value th = obj.Get("threads");
  if (!th.IsUndefined()) {
    if (!th.IsNumber()) ThrowType(env, "threads must be a number");
    double d = th.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 64) || std::floor(d) != d) ThrowType(env, "threads must be an integer in [0, 64]");
    o->threads = static_cast<unsigned>(d);
    if (o->threads > 0) o->parallelMinRecords = 0;
  }
  // instrumentQuantiles: [instrumentId, n, q_1 .. q_n] groups.
  ForEachGroup(env, obj.Get("instrumentQuantiles"), "instrumentQuantiles", [&](double id, std::vector<double> qs) {
    if (id > 4294967295.0) ThrowType(env, "instrumentQuantiles: bad instrument id");
    if (qs.size() > kMaxQuantiles) ThrowType(env, "instrumentQuantiles: too many quantiles");
    for (double q : qs) {
      if (!(q >= 0 && q <= 1)) ThrowType(env, "instrumentQuantiles: quantiles must be in [0, 1]");
    }
    o->instrumentQuantiles[static_cast<uint32_t>(id)] = std::move(qs);
  });
  // exact: [recordId, n, v_1 .. v_n] groups, one value per quantile of the record's instrument.
  ForEachGroup(env, obj.Get("exact"), "exact", [&](double id, std::vector<double> vs) {
    (*exact)[static_cast<uint64_t>(id)] = std::move(vs);
  });
}

}  // namespace

// The arguments serializePrometheus and openPrometheusStream share:
//   (domain, reclaim: boolean, reclaimBefore: epoch | undefined,
//    include: Uint32Array (instrument ids, any order) | null (all),
//    options?: { openMetrics?, protobuf?, targetInfo?: string[], scopeLabels?, quantiles?: Float64Array,
//                instrumentQuantiles?: Float64Array ([id, n, q..]*), prefix?: string,
//                reservedNames?: string[], chunkBytes?, exact?: Float64Array ([recordId, n, v..]*),
//                threads?, readerEpoch?, staleBefore? })
struct ScrapeArgs {
  CollectOptions co;
  bool all = true;
  std::vector<uint32_t> include;
  prometheus::Options opts;
  prometheus::ExactQuantiles exact;
};

ScrapeArgs ReadScrapeArgs(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) ThrowType(env, std::string(fn) + " expects 4 or 5 arguments");
  ScrapeArgs a;
  a.co.domain = static_cast<uint32_t>(ToId(env, info[0], "domain"));
  if (a.co.domain == 0 || a.co.domain > 0xffffffffu) ThrowType(env, "domain must come from registerDomain");
  a.co.reclaim = ArgBool(info, 1, "reclaim");
  if (!info[2].IsUndefined()) a.co.reclaimBefore = ToId(env, info[2], "reclaimBefore");
  a.co.nowMs = NowMs();
  a.all = info[3].IsNull();
  if (!a.all && !IsTypedArrayOf(info[3], napi_uint32_array)) {
    ThrowType(env, "include must be a Uint32Array or null");
  }
  if (!a.all) {
    Napi::Uint32Array inc = info[3].As<Napi::Uint32Array>();
    a.include.assign(inc.Data(), inc.Data() + inc.ElementLength());
    std::sort(a.include.begin(), a.include.end());
  }
  if (info.Length() > 4) {
    ReadOptions(env, info[4], &a.opts, &a.exact);
    // readerEpoch: the epoch of the reader's previous pass (CollectOptions::readerEpoch).
    if (info[4].IsObject()) {
      Napi::Value re = info[4].As<Napi::Object>().Get("readerEpoch");
      if (!re.IsUndefined()) a.co.readerEpoch = ToId(env, re, "readerEpoch");
      Napi::Value sb = info[4].As<Napi::Object>().Get("staleBefore");
      if (!sb.IsUndefined()) a.co.staleBefore = ToId(env, sb, "staleBefore");
    }
  }
  return a;
}

// serializePrometheus(...ScrapeArgs)
//   -> Promise<{ chunks: Buffer[], bytes, epoch, records, stale: Float64Array,
//                reclaimed: Float64Array, dropped: Uint32Array, merged: Uint32Array,
//                snapshotMs, serializeMs }>
// One collection pass (the same as collect(): epoch, update detection, reclamation),
// taken on the calling thread, and its text, computed on a libuv pool thread.
Napi::Value SerializePrometheus(const Napi::CallbackInfo& info) {
  ScrapeArgs a = ReadScrapeArgs(info, "serializePrometheus");
  auto* w = new SerializeWorker(info.Env(), a.co, a.all, std::move(a.include), std::move(a.opts), std::move(a.exact));
  Napi::Promise p = w->Promise();
  w->TakeSnapshot();
  w->Queue();  // deletes itself after OnOK / OnError
  return p;
}

namespace {

// The JS handle of a stream holds one reference (PrometheusStream: shared ownership);
// closePrometheusStream resets it, and its finalizer deletes it.
using StreamRef = std::shared_ptr<prometheus::PrometheusStream>;

// Marks the handles openPrometheusStream makes, so that any other object is a TypeError.
constexpr napi_type_tag kStreamTag = {0x5d1c0a2e7b3f4e91ULL, 0x9a64c3d2e18b7f05ULL};

bool IsStreamHandle(const Napi::Value& v) {
  return v.IsExternal() && v.As<Napi::Object>().CheckTypeTag(&kStreamTag);
}

// The stream behind a handle; TypeError for anything else, Error once it is closed.
StreamRef* StreamOf(Napi::Env env, const Napi::Value& v) {
  if (!IsStreamHandle(v)) ThrowType(env, "expected a stream from openPrometheusStream");
  auto* ref = v.As<Napi::External<StreamRef>>().Data();
  if (!*ref) throw Napi::Error::New(env, "hotmeter native: the Prometheus stream is closed");
  return ref;
}

// One part of a stream, claimed on the JS thread (PrometheusStream::Next) and written on a
// libuv pool thread (PrometheusStream::Write); Done() again on the JS thread.
class StreamPartWorker : public Napi::AsyncWorker {
 public:
  StreamPartWorker(Napi::Env env, StreamRef stream, size_t part)
      : Napi::AsyncWorker(env, "hotmeter.readPrometheusStream"),
        deferred_(Napi::Promise::Deferred::New(env)),
        stream_(std::move(stream)),
        part_(part) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      chunks_ = stream_->Write(part_);
      serializeMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
      SetError(std::string("hotmeter native: Prometheus serialization failed: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    stream_->Done();
    size_t bytes = 0;
    Napi::Array chunks = LendChunks(env, &chunks_, &bytes);
    Napi::Object r = Napi::Object::New(env);
    r.Set("chunks", chunks);
    r.Set("bytes", static_cast<double>(bytes));
    r.Set("part", static_cast<double>(part_));
    r.Set("last", stream_->IsLast(part_));
    r.Set("serializeMs", serializeMs_);
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override {
    stream_->Done();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  StreamRef stream_;
  size_t part_;
  std::vector<prometheus::Chunk> chunks_;
  double serializeMs_ = 0;
};

}  // namespace

// openPrometheusStream(...ScrapeArgs with options.partBytes?: number in [4096, 2^30])
//   -> { stream, parts, epoch, records, stale: Float64Array, reclaimed: Float64Array,
//        dropped: Uint32Array, merged: Uint32Array, snapshotMs, snapshotBytes }
// The collection pass and snapshot of serializePrometheus, taken now on this thread, and
// the plan that cuts its text into `parts` parts of about partBytes (default 4 MiB) each,
// written one at a time by readPrometheusStream. Close it when done.
Napi::Value OpenPrometheusStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ScrapeArgs a = ReadScrapeArgs(info, "openPrometheusStream");
  size_t partBytes = prometheus::PrometheusStream::kDefaultPartBytes;
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Value pb = info[4].As<Napi::Object>().Get("partBytes");
    if (!pb.IsUndefined()) {
      if (!pb.IsNumber()) ThrowType(env, "partBytes must be a number");
      const double d = pb.As<Napi::Number>().DoubleValue();
      if (!(d >= 4096 && d <= 1073741824.0)) ThrowType(env, "partBytes must be in [4096, 2^30]");
      partBytes = static_cast<size_t>(d);
    }
  }
  StreamRef stream;
  prometheus::StreamPass pass;
  try {
    stream = prometheus::PrometheusStream::Open(RecordMap::Global(), a.co, a.all ? nullptr : &a.include,
                                                std::move(a.opts), std::move(a.exact), partBytes, &pass);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("hotmeter native: Prometheus snapshot failed: ") + e.what());
  }
  Napi::External<StreamRef> handle = Napi::External<StreamRef>::New(
      env, new StreamRef(stream), [](Napi::Env, StreamRef* ref) { delete ref; });
  handle.TypeTag(&kStreamTag);
  Napi::Object r = Napi::Object::New(env);
  r.Set("stream", handle);
  r.Set("parts", static_cast<double>(stream->parts()));
  SetPass(env, r, pass.epoch, pass.records, pass.stale, pass.reclaimed, pass.dropped, pass.collisions,
          pass.snapshotMs);
  r.Set("snapshotBytes", static_cast<double>(pass.snapshotBytes));
  return r;
}

// readPrometheusStream(stream) -> Promise<{ chunks: Buffer[], bytes, part, last, serializeMs } | null>
// Writes the next part on a libuv pool thread; null after the last one. One read at a
// time: a read while one is in flight, or of a closed stream, throws an Error.
Napi::Value ReadPrometheusStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1) ThrowType(env, "readPrometheusStream expects a stream");
  StreamRef& stream = *StreamOf(env, info[0]);
  size_t part = 0;
  switch (stream->Next(&part)) {
    case prometheus::PrometheusStream::Claim::kBusy:
      throw Napi::Error::New(env, "hotmeter native: a read of this Prometheus stream is in flight");
    case prometheus::PrometheusStream::Claim::kEnd: {
      Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Null());
      return d.Promise();
    }
    case prometheus::PrometheusStream::Claim::kPart:
      break;
  }
  // Claimed: Done() in OnOK / OnError. Only the worker's construction (its Promise) may
  // throw before Queue(); the part is given back then.
  StreamPartWorker* w = nullptr;
  try {
    w = new StreamPartWorker(env, stream, part);
  } catch (...) {
    stream->Unclaim();
    throw;
  }
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself after OnOK / OnError
  return p;
}

// closePrometheusStream(stream) -> undefined
// Drops the handle's reference: the snapshot goes once no part is being written. Later
// reads throw; closing again does nothing.
Napi::Value ClosePrometheusStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !IsStreamHandle(info[0])) {
    ThrowType(env, "closePrometheusStream expects a stream from openPrometheusStream");
  }
  info[0].As<Napi::External<StreamRef>>().Data()->reset();
  return env.Undefined();
}

// releaseOutput(chunks: Buffer[]) -> number
// Detaches each Buffer whose memory serializePrometheus lent and that is still attached
// (others are left alone), so that its memory goes back to the output pool on the next
// turn of the event loop rather than after garbage collection. The Buffers read as empty
// afterwards. Returns how many were detached.
Napi::Value ReleaseOutput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsArray()) ThrowType(env, "releaseOutput expects an array of Buffers");
  Napi::Array a = info[0].As<Napi::Array>();
  const uint32_t n = a.Length();
  std::vector<Napi::ArrayBuffer> ours;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = a.Get(i);
    if (!IsTypedArrayOf(v, napi_uint8_array)) {
      ThrowType(env, "releaseOutput expects an array of Buffers");
    }
    Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
    Napi::ArrayBuffer ab = b.ArrayBuffer();
    // Whole-buffer views of lent memory only (a Buffer over part of a block is not ours).
    if (ab.IsDetached() || b.ByteOffset() != 0 || ab.ByteLength() != b.ByteLength()) continue;
    if (prometheus::OutputPool::Global().IsLent(static_cast<const char*>(ab.Data()))) ours.push_back(ab);
  }
  uint32_t detached = 0;
  for (Napi::ArrayBuffer& ab : ours) {
    if (ab.IsDetached()) continue;  // listed twice
    if (napi_detach_arraybuffer(env, ab) == napi_ok) detached++;
  }
  return Napi::Number::New(env, detached);
}

}  // namespace hotmeter::js
