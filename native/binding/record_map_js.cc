#include "record_map_js.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/output_pool.h"
#include "../core/record_map.h"
#include "env_state.h"
#include "js_util.h"

namespace hotmeter::js {

namespace {

constexpr size_t kMaxBounds = 4096;
constexpr uint32_t kMaxAggregatorSize = 4096;  // sketch bins / exponential buckets per range

EnvState* State(Napi::Env env) {
  EnvState* st = env.GetInstanceData<EnvState>();
  if (st == nullptr || st->retired) ThrowType(env, "environment is shutting down");
  return st;
}

// This environment's arena, 0 once its state is gone (domain use counts of a thread
// that has no arena).
uint32_t ArenaIdOrZero(Napi::Env env) {
  EnvState* st = env.GetInstanceData<EnvState>();
  return st ? st->arenaId : 0;
}

Napi::Object DescriptorObject(Napi::Env env, uint32_t id, const hotmeter::Descriptor& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", id);
  o.Set("name", d.name);
  o.Set("description", d.description);
  o.Set("unit", d.unit);
  o.Set("kind", static_cast<uint32_t>(d.kind));
  o.Set("valueType", static_cast<uint32_t>(d.valueType));
  o.Set("aggregation", static_cast<uint32_t>(d.aggregation));
  o.Set("monotonic", d.monotonic);
  Napi::Float64Array b = Napi::Float64Array::New(env, d.bounds.size());
  for (size_t i = 0; i < d.bounds.size(); i++) b[i] = d.bounds[i];
  o.Set("bounds", b);
  o.Set("relativeAccuracy", d.relativeAccuracy);
  o.Set("maxSize", EffectiveMaxSize(d));
  o.Set("maxScale", d.maxScale);
  o.Set("scopeName", d.scopeName);
  o.Set("scopeVersion", d.scopeVersion);
  o.Set("scopeSchemaUrl", d.scopeSchemaUrl);
  Napi::Float64Array q = Napi::Float64Array::New(env, d.quantiles.size());
  for (size_t i = 0; i < d.quantiles.size(); i++) q[i] = d.quantiles[i];
  o.Set("quantiles", q);
  o.Set("recordMinMax", d.recordMinMax);
  return o;
}

// The optional options of registerInstrument:
// { relativeAccuracy?: number in [1e-6, 1), maxSize?: integer in [2, 4096],
//   maxScale?: integer in [-10, 20], scopeName?, scopeVersion?, scopeSchemaUrl?: string,
//   quantiles?: Float64Array (at most 64, in [0, 1]), recordMinMax?: boolean };
// absent fields keep the defaults.
void ReadAggregatorOptions(Napi::Env env, const Napi::Value& v, hotmeter::Descriptor* d) {
  if (v.IsUndefined()) return;
  if (!IsOptionsObject(v)) ThrowType(env, "aggregator options must be an object");
  Napi::Object o = v.As<Napi::Object>();
  auto number = [&](const char* key, double* out) {
    Napi::Value x = o.Get(key);
    if (x.IsUndefined()) return false;
    if (!x.IsNumber()) ThrowType(env, std::string(key) + " must be a number");
    *out = x.As<Napi::Number>().DoubleValue();
    return true;
  };
  auto text = [&](const char* key, std::string* out) {
    Napi::Value x = o.Get(key);
    if (x.IsUndefined()) return;
    if (!x.IsString()) ThrowType(env, std::string(key) + " must be a string");
    *out = x.As<Napi::String>().Utf8Value();
    if (out->size() > kMaxStringBytes) ThrowType(env, std::string(key) + " is too long");
  };
  text("scopeName", &d->scopeName);
  text("scopeVersion", &d->scopeVersion);
  text("scopeSchemaUrl", &d->scopeSchemaUrl);
  Napi::Value q = o.Get("quantiles");
  if (!q.IsUndefined()) {
    if (!IsTypedArrayOf(q, napi_float64_array)) ThrowType(env, "quantiles must be a Float64Array");
    Napi::Float64Array qa = q.As<Napi::Float64Array>();
    if (qa.ElementLength() > 64) ThrowType(env, "too many quantiles");
    for (size_t i = 0; i < qa.ElementLength(); i++) {
      if (!(qa[i] >= 0 && qa[i] <= 1)) ThrowType(env, "quantiles must be in [0, 1]");
      d->quantiles.push_back(qa[i]);
    }
  }
  Napi::Value mm = o.Get("recordMinMax");
  if (!mm.IsUndefined()) {
    if (!mm.IsBoolean()) ThrowType(env, "recordMinMax must be a boolean");
    d->recordMinMax = mm.As<Napi::Boolean>().Value();
  }
  double x = 0;
  if (number("relativeAccuracy", &x)) {
    if (!(x >= 1e-6 && x < 1)) ThrowType(env, "relativeAccuracy must be in [1e-6, 1)");
    d->relativeAccuracy = x;
  }
  if (number("maxSize", &x)) {
    if (!(x >= 2 && x <= static_cast<double>(kMaxAggregatorSize)) || std::floor(x) != x) {
      ThrowType(env, "maxSize must be an integer in [2, " + std::to_string(kMaxAggregatorSize) + "]");
    }
    d->maxSize = static_cast<uint32_t>(x);
  }
  if (number("maxScale", &x)) {
    if (!(x >= -10 && x <= 20) || std::floor(x) != x) ThrowType(env, "maxScale must be an integer in [-10, 20]");
    d->maxScale = static_cast<int32_t>(x);
  }
}

}  // namespace

// registerDomain(name: string[, processShared: boolean]) -> id ('' makes a new domain).
// Counts one use of the domain by this thread, ended by releaseDomain() or by the
// thread's exit. processShared: the domain of every process of this user that registers
// `name` so (RecordMap::RegisterSharedDomain); throws a TypeError if it cannot be joined.
Napi::Value RegisterDomain(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "registerDomain");
  std::string name = ArgString(info, 0, "name");
  if (info.Length() > 1 && ArgBool(info, 1, "processShared")) {
    if (name.empty()) ThrowType(info.Env(), "processShared needs a non-empty name");
    std::string error;
    const uint32_t id = RecordMap::Global().RegisterSharedDomain(name, ArenaIdOrZero(info.Env()), &error);
    if (id == 0) ThrowType(info.Env(), "processShared \"" + name + "\": " + error);
    return Napi::Number::New(info.Env(), id);
  }
  return Napi::Number::New(info.Env(), RecordMap::Global().RegisterDomain(name, ArenaIdOrZero(info.Env())));
}

// sharedStats(domain) -> [liveProcesses, slabsInUse, series, nodesInUse, liveSeries] |
// null (not a shared domain).
Napi::Value SharedStats(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "sharedStats");
  uint32_t domain = ArgDomain(info, 0);
  uint32_t procs = 0, slabs = 0, series = 0, nodes = 0, live = 0;
  if (!RecordMap::Global().SharedStats(domain, &procs, &slabs, &series, &nodes, &live)) return info.Env().Null();
  Napi::Array out = Napi::Array::New(info.Env(), 5);
  out.Set(0u, procs);
  out.Set(1u, slabs);
  out.Set(2u, series);
  out.Set(3u, nodes);
  out.Set(4u, live);
  return out;
}

// pushLeader(domain) -> true if this process pushes the processShared fleet's series now
// (RecordMap::PushLeader); false for another domain.
Napi::Value PushLeader(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "pushLeader");
  return Napi::Boolean::New(info.Env(), RecordMap::Global().PushLeader(ArgDomain(info, 0)));
}

// cleanupProcessShared(name) -> 1 removed, 0 absent, -1 in use by a live process or not
// removable (SharedSegment::Cleanup). A runtime condition, not a bad argument: the
// TypeScript side turns -1 into an Error.
Napi::Value CleanupProcessShared(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "cleanupProcessShared");
  std::string name = ArgString(info, 0, "name");
  std::string error;
  return Napi::Number::New(info.Env(), SharedSegment::Cleanup(name, &error));
}

// releaseDomain(domain) -> boolean: ends one use of the domain by this thread; the last
// use (of any thread) frees its instruments and records (RecordMap::ReleaseDomain). The
// caller guarantees that none of its handles writes again.
Napi::Value ReleaseDomain(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "releaseDomain");
  uint32_t domain = ArgDomain(info, 0);
  return Napi::Boolean::New(info.Env(), RecordMap::Global().ReleaseDomain(domain, ArenaIdOrZero(info.Env())));
}

// registerInstrument(domain, identity, name, description, unit, kind, valueType,
//                    aggregation, monotonic, bounds: Float64Array[, options]) -> [id, existed]
// options (Sketch, ExponentialHistogram): { relativeAccuracy?, maxSize?, maxScale? }.
Napi::Value RegisterInstrument(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 10, "registerInstrument");
  uint32_t domain = ArgDomain(info, 0);
  hotmeter::Descriptor d;
  std::string identity = ArgString(info, 1, "identity");
  d.name = ArgString(info, 2, "name");
  d.description = ArgString(info, 3, "description");
  d.unit = ArgString(info, 4, "unit");
  uint32_t kind = ArgU32(info, 5, "kind");
  uint32_t vt = ArgU32(info, 6, "valueType");
  uint32_t agg = ArgU32(info, 7, "aggregation");
  if (kind >= kInstrumentKindCount) ThrowType(env, "kind out of range");
  if (vt > 1) ThrowType(env, "valueType out of range");
  if (agg >= kAggregationKindCount) ThrowType(env, "aggregation out of range");
  const bool monotonic = ArgBool(info, 8, "monotonic");
  if (!IsTypedArrayOf(info[9], napi_float64_array)) ThrowType(env, "bounds must be a Float64Array");
  d.kind = static_cast<InstrumentKind>(kind);
  d.valueType = static_cast<ValueType>(vt);
  d.aggregation = static_cast<AggregationKind>(agg);
  d.monotonic = monotonic;
  Napi::Float64Array bounds = info[9].As<Napi::Float64Array>();
  if (bounds.ElementLength() > kMaxBounds) ThrowType(env, "too many histogram bounds");
  for (size_t i = 0; i < bounds.ElementLength(); i++) {
    double b = bounds[i];
    if (!std::isfinite(b) || (i > 0 && !(b > d.bounds.back()))) {
      ThrowType(env, "bounds must be finite and strictly increasing");
    }
    d.bounds.push_back(b);
  }
  if (info.Length() > 10) ReadAggregatorOptions(env, info[10], &d);
  bool existed = false;
  uint32_t id = RecordMap::Global().RegisterInstrument(identity, std::move(d), &existed, domain);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, id);
  out.Set(1u, existed);
  return out;
}

// descriptor(instrumentId) -> object | null
Napi::Value Descriptor(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "descriptor");
  uint32_t id = ArgU32(info, 0, "instrumentId");
  hotmeter::Descriptor d;
  if (!RecordMap::Global().GetDescriptor(id, &d)) return info.Env().Null();
  return DescriptorObject(info.Env(), id, d);
}

// acquire(instrumentId, labelParts: string[], out: Float64Array(>=4)[, cardinalityLimit[,
//         releaseRecordId]]) (releaseRecordId != 0: drops one of this thread's references first)
//   -> boolean; out <- [recordId, slab, offset, newCell, overflow (if out has 5 slots),
//                       stalePending (if 6: this thread has stale records to drain)]
Napi::Value Acquire(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 3, "acquire");
  EnvState* st = State(env);
  uint32_t instrumentId = ArgU32(info, 0, "instrumentId");
  Napi::Array arr = LabelPartsArray(env, info[1]);
  if (!IsTypedArrayOf(info[2], napi_float64_array) || info[2].As<Napi::Float64Array>().ElementLength() < 4) {
    ThrowType(env, "out must be a Float64Array of length >= 4");
  }
  std::vector<std::string> parts = LabelParts(env, arr);
  // A getter in labelParts (or on Array.prototype, for a hole) may have detached or
  // shrunk out's buffer (a transfer, ArrayBuffer.prototype.resize): check again, now
  // that no JS runs before the writes below, and before a reference is taken.
  Napi::Float64Array out = info[2].As<Napi::Float64Array>();
  if (out.ElementLength() < 4 || out.Data() == nullptr) {
    ThrowType(env, "out was detached or shrunk while labelParts were read");
  }
  uint32_t limit = 0;
  if (info.Length() > 3 && !info[3].IsUndefined()) limit = ArgU32(info, 3, "cardinalityLimit");
  uint64_t releaseId = 0;
  if (info.Length() > 4 && !info[4].IsUndefined()) releaseId = ArgId(info, 4, "releaseRecordId");
  // Every argument is checked: from here on nothing throws, so the release happens
  // exactly when the call returns normally.
  if (releaseId != 0) RecordMap::Global().Release(releaseId, st->arenaId);
  Acquired a;
  if (!RecordMap::Global().Acquire(st->arenaId, instrumentId, EncodeLabelKey(parts), NowMs(), &a, limit)) {
    return Napi::Boolean::New(env, false);
  }
  out[0] = static_cast<double>(a.recordId);
  out[1] = a.slab;
  out[2] = a.offset;
  out[3] = a.newCell ? 1 : 0;
  if (out.ElementLength() > 4) out[4] = a.overflow ? 1 : 0;
  if (out.ElementLength() > 5) out[5] = a.stalePending ? 1 : 0;
  return Napi::Boolean::New(env, true);
}

// release(recordId) -> boolean (drops one reference this thread holds)
Napi::Value Release(const Napi::CallbackInfo& info) {
  CheckArity(info, 1, "release");
  EnvState* st = State(info.Env());
  return Napi::Boolean::New(info.Env(), RecordMap::Global().Release(ArgId(info, 0, "recordId"), st->arenaId));
}

// releaseMany(recordIds: Float64Array) -> number released (release() of each, under one
// lock: a thread giving back the cached references a stale-queue drain named).
Napi::Value ReleaseMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 1, "releaseMany");
  if (!IsTypedArrayOf(info[0], napi_float64_array)) ThrowType(env, "recordIds must be a Float64Array");
  Napi::Float64Array a = info[0].As<Napi::Float64Array>();
  std::vector<uint64_t> ids;
  ids.reserve(a.ElementLength());
  for (size_t i = 0; i < a.ElementLength(); i++) {
    const double d = a[i];
    if (!IsSafeId(d)) ThrowType(env, "recordIds must hold safe non-negative integers");
    ids.push_back(static_cast<uint64_t>(d));
  }
  EnvState* st = State(env);
  return Napi::Number::New(env, static_cast<double>(RecordMap::Global().ReleaseMany(ids, st->arenaId)));
}

// drainStale() -> Float64Array of record ids: records a reclaiming collection (in any
// thread) saw idle while this thread referenced them. The caller drops its cached
// references among them (RecordMap::DrainStale).
Napi::Value DrainStale(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* st = State(env);
  std::vector<uint64_t> ids;
  RecordMap::Global().DrainStale(st->arenaId, &ids);
  return IdsArray(env, ids);
}

// exemplarCell(recordId, out: Float64Array(>=3)) -> 1, out <- [slab, offset, slots]:
// this thread's exemplar cell of the record (RecordMap::ExemplarCell); 0 if the record is
// unknown or its instrument keeps no exemplars; -1 if its shared segment has no room.
Napi::Value ExemplarCell(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 2, "exemplarCell");
  EnvState* st = State(env);
  uint64_t id = ArgId(info, 0, "recordId");
  if (!IsTypedArrayOf(info[1], napi_float64_array) || info[1].As<Napi::Float64Array>().ElementLength() < 3) {
    ThrowType(env, "out must be a Float64Array of length >= 3");
  }
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  if (out.Data() == nullptr) ThrowType(env, "out was detached");
  uint32_t slab = 0, offset = 0, slots = 0;
  bool noRoom = false;
  if (!RecordMap::Global().ExemplarCell(st->arenaId, id, &slab, &offset, &slots, &noRoom)) {
    return Napi::Number::New(env, noRoom ? -1 : 0);
  }
  out[0] = slab;
  out[1] = offset;
  out[2] = slots;
  return Napi::Number::New(env, 1);
}

// removeSeries(instrumentId, labelParts) -> id of the removed record, 0 if none
// (RecordMap::Remove).
Napi::Value RemoveSeries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 2, "removeSeries");
  uint32_t instrumentId = ArgU32(info, 0, "instrumentId");
  std::vector<std::string> parts = LabelParts(env, LabelPartsArray(env, info[1]));
  return Napi::Number::New(env, static_cast<double>(RecordMap::Global().Remove(instrumentId, EncodeLabelKey(parts))));
}

// clearSeries(instrumentId) -> Float64Array of the removed records' ids (RecordMap::RemoveAll).
Napi::Value ClearSeries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 1, "clearSeries");
  uint32_t instrumentId = ArgU32(info, 0, "instrumentId");
  std::vector<uint64_t> ids;
  RecordMap::Global().RemoveAll(instrumentId, &ids);
  return IdsArray(env, ids);
}

// slab(index) -> ArrayBuffer over this thread's slab memory (external; owned natively,
// valid for the life of this environment).
Napi::Value Slab(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 1, "slab");
  EnvState* st = State(env);
  uint32_t index = ArgU32(info, 0, "slab index");
  double* data = nullptr;
  size_t doubles = 0;
  if (!RecordMap::Global().SlabMemory(st->arenaId, index, &data, &doubles)) {
    throw Napi::RangeError::New(env, "hotmeter native: no such slab");
  }
  return Napi::ArrayBuffer::New(env, data, doubles * sizeof(double));
}

namespace {

// The options of collect() and collectAsync() (same arguments).
CollectOptions CollectArgs(const Napi::CallbackInfo& info, const char* name) {
  Napi::Env env = info.Env();
  CheckArity(info, 2, name);
  CollectOptions opts;
  opts.domain = ArgDomain(info, 0);
  opts.reclaim = ArgBool(info, 1, "reclaim");
  opts.nowMs = NowMs();
  if (info.Length() > 2 && !info[2].IsUndefined()) opts.reclaimBefore = ArgId(info, 2, "reclaimBefore");
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    opts.readerEpoch = ArgId(info, 3, "readerEpoch");
    uint32_t mode = ArgU32(info, 4, "mode");
    if (mode > 2) throw Napi::TypeError::New(env, "hotmeter native: collect mode must be 0, 1 or 2");
    opts.changedOnly = mode != 0;
    opts.idleIds = mode == 1;
  }
  if (info.Length() > 5 && !info[5].IsUndefined()) opts.staleBefore = ArgId(info, 5, "staleBefore");
  return opts;
}

// The pass of collectAsync on a libuv pool thread. JS threads keep writing their cells
// meanwhile, as worker threads do during any pass (each thread writes only its own cells;
// a pass reads them under the map's lock, which a JS thread's cold path may wait for).
class CollectWorker : public Napi::AsyncWorker {
 public:
  CollectWorker(Napi::Env env, CollectOptions opts)
      : Napi::AsyncWorker(env, "hotmeter.collect"), deferred_(Napi::Promise::Deferred::New(env)), opts_(opts) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      RecordMap::Global().Collect(opts_, &out_);
    } catch (const std::exception& e) {
      SetError(std::string("hotmeter native: collect failed: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (out_.empty()) {
      deferred_.Resolve(Napi::Float64Array::New(env, 0));
      return;
    }
    // The output is handed over, not copied (a first collection of many records is tens
    // of MB: a copy, and the zeroing of a new buffer, held the event loop). The vector
    // moves to the heap; the ArrayBuffer's finalizer frees it, on this thread, once JS
    // no longer references the array.
    auto* owned = new std::vector<double>(std::move(out_));
    const size_t length = owned->size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, owned->data(), length * sizeof(double),
                                                   [](Napi::Env, void*, std::vector<double>* v) { delete v; }, owned);
    deferred_.Resolve(Napi::Float64Array::New(env, length, buf, 0));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  CollectOptions opts_;
  std::vector<double> out_;
};

// The pass of collectStream on a libuv pool thread: as CollectWorker, but the records are
// handed to JS in parts while the pass goes on (onPart, on the JS thread, in order and all
// before the promise settles), so JS converts them while the pass reads the rest.
// A part travels as a heap vector: made on the pool thread, handed to JS without a copy as
// an external ArrayBuffer whose finalizer frees it (a copy per part was V8 memory that made
// a first collection's garbage collections longer).
using StreamPart = std::vector<double>*;

class CollectStreamWorker : public Napi::AsyncProgressQueueWorker<StreamPart> {
 public:
  CollectStreamWorker(Napi::Function onPart, CollectOptions opts, size_t every)
      : Napi::AsyncProgressQueueWorker<StreamPart>(onPart, "hotmeter.collectStream"),
        deferred_(Napi::Promise::Deferred::New(onPart.Env())),
        opts_(std::move(opts)),
        every_(every) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      // Only this pool thread touches sent_ and out_ until OnOK.
      size_t sent = 3;  // after the header
      opts_.progressEvery = every_;
      opts_.progress = [&](const std::vector<double>& out, size_t end) {
        if (end > sent) {
          StreamPart part = new std::vector<double>(out.begin() + static_cast<std::ptrdiff_t>(sent), out.begin() + static_cast<std::ptrdiff_t>(end));
          progress.Send(&part, 1);  // OnProgress owns it from here
        }
        sent = end;
      };
      std::vector<double> out;
      RecordMap::Global().Collect(opts_, &out);
      opts_.progress = nullptr;
      // [epoch, count, reclaimedCount, reclaimed..., the records not sent yet]
      const size_t reclaimed = static_cast<size_t>(out[2]);
      const size_t recordsEnd = out.size() - reclaimed;
      final_.reserve(3 + reclaimed + (recordsEnd - sent));
      final_.insert(final_.end(), out.begin(), out.begin() + 3);
      final_.insert(final_.end(), out.begin() + recordsEnd, out.end());
      final_.insert(final_.end(), out.begin() + sent, out.begin() + recordsEnd);
    } catch (const std::exception& e) {
      SetError(std::string("hotmeter native: collect failed: ") + e.what());
    }
  }

  void OnProgress(const StreamPart* parts, size_t count) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t k = 0; k < count; k++) {
      Napi::Float64Array part = Wrap(env, parts[k]);
      try {
        Callback().Call({part});
      } catch (const Napi::Error& e) {
        // onPart threw: the pass goes on; the promise rejects with the first such error.
        if (partError_.IsEmpty()) partError_ = Napi::Persistent(e.Value());
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!partError_.IsEmpty()) {
      deferred_.Reject(partError_.Value());
      return;
    }
    deferred_.Resolve(Wrap(env, new std::vector<double>(std::move(final_))));
  }

  // A Float64Array over `v` (never empty: ArrayBuffers of no bytes may not be external);
  // its finalizer deletes `v`.
  static Napi::Float64Array Wrap(Napi::Env env, std::vector<double>* v) {
    if (v->empty()) {
      delete v;
      return Napi::Float64Array::New(env, 0);
    }
    const size_t n = v->size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, v->data(), n * sizeof(double), [](Napi::Env, void*, std::vector<double>* p) { delete p; }, v);
    return Napi::Float64Array::New(env, n, buf, 0);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  CollectOptions opts_;
  size_t every_;
  std::vector<double> final_;
  Napi::ObjectReference partError_;
};

}  // namespace

// collectStream(domain, reclaim, reclaimBefore, readerEpoch, mode (1 or 2), staleBefore, onPart, every)
//   -> Promise<Float64Array>: as collectAsync in mode 1 or 2, the records handed to
//   onPart(Float64Array) every `every` records while the pass goes on; the promise then gives
//   [epoch, count, reclaimedCount, reclaimed ids..., the records not handed on yet], count
//   counting every record (parts included).
Napi::Value CollectStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 8, "collectStream");
  CollectOptions opts = CollectArgs(info, "collectStream");
  if (!opts.changedOnly) throw Napi::TypeError::New(env, "hotmeter native: collectStream mode must be 1 or 2");
  if (!info[6].IsFunction()) throw Napi::TypeError::New(env, "hotmeter native: collectStream onPart must be a function");
  const uint32_t every = ArgU32(info, 7, "every");
  if (every == 0) throw Napi::TypeError::New(env, "hotmeter native: collectStream every must be >= 1");
  auto* w = new CollectStreamWorker(info[6].As<Napi::Function>(), std::move(opts), every);  // deletes itself
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// collect(domain, reclaim: boolean[, reclaimBefore: epoch[, readerEpoch: epoch, mode[, staleBefore: epoch]]])
//   -> Float64Array (layout: RecordMap::Collect). mode 1: changedOnly with idle ids;
//   mode 2: changedOnly without them (CollectOptions).
Napi::Value Collect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CollectOptions opts = CollectArgs(info, "collect");
  std::vector<double> out;
  RecordMap::Global().Collect(opts, &out);
  Napi::Float64Array arr = Napi::Float64Array::New(env, out.size());
  if (!out.empty()) std::memcpy(arr.Data(), out.data(), out.size() * sizeof(double));
  return arr;
}

// collectAsync(same arguments as collect) -> Promise<Float64Array>: the pass runs on the
// libuv pool; the event loop only copies its output.
Napi::Value CollectAsync(const Napi::CallbackInfo& info) {
  CollectOptions opts = CollectArgs(info, "collectAsync");
  auto* w = new CollectWorker(info.Env(), opts);  // deletes itself after OnOK/OnError
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// recordInfo(recordId) -> [instrumentId, labelParts] | null
Napi::Value RecordInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 1, "recordInfo");
  uint32_t instrumentId = 0;
  std::string key;
  if (!RecordMap::Global().RecordInfo(ArgId(info, 0, "recordId"), &instrumentId, &key)) {
    return env.Null();
  }
  std::vector<std::string> parts = DecodeLabelKey(key);
  Napi::Array labels = Napi::Array::New(env, parts.size());
  for (size_t i = 0; i < parts.size(); i++) labels.Set(i, Napi::String::New(env, parts[i]));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, instrumentId);
  out.Set(1u, labels);
  return out;
}

// recordLabels(recordIds: Float64Array) -> string: JSON of an array holding each record's
// label parts (as recordInfo gives them; null for an unknown record), or, for a record
// whose label set an earlier record of the call has (another instrument's record of the
// same attributes), that record's index: one decoded object serves both. Under one lock.
// One JSON string is much cheaper to hand over than an array of arrays of strings.
Napi::Value RecordLabels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArity(info, 1, "recordLabels");
  if (!IsTypedArrayOf(info[0], napi_float64_array)) ThrowType(env, "recordIds must be a Float64Array");
  Napi::Float64Array arr = info[0].As<Napi::Float64Array>();
  std::vector<uint64_t> ids(arr.ElementLength());
  for (size_t i = 0; i < ids.size(); i++) {
    double d = arr[i];
    if (!IsSafeId(d)) ThrowType(env, "recordIds must be safe non-negative integers");
    ids[i] = static_cast<uint64_t>(d);
  }
  std::vector<std::string> keys;
  std::vector<bool> found;
  std::vector<int64_t> same;
  RecordMap::Global().RecordKeys(ids, &keys, &found, &same);
  std::string json = "[";
  for (size_t i = 0; i < ids.size(); i++) {
    if (i > 0) json.push_back(',');
    if (!found[i]) {
      json.append("null");
      continue;
    }
    if (same[i] >= 0) {
      json.append(std::to_string(same[i]));
      continue;
    }
    json.push_back('[');
    std::vector<std::string> parts = DecodeLabelKey(keys[i]);
    for (size_t k = 0; k < parts.size(); k++) {
      if (k > 0) json.push_back(',');
      json.push_back('"');
      for (unsigned char c : parts[k]) {
        if (c == '"' || c == '\\') {
          json.push_back('\\');
          json.push_back(static_cast<char>(c));
        } else if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          json.append("\\u00");
          json.push_back(hex[c >> 4]);
          json.push_back(hex[c & 15]);
        } else {
          json.push_back(static_cast<char>(c));
        }
      }
      json.push_back('"');
    }
    json.push_back(']');
  }
  json.push_back(']');
  return Napi::String::New(env, json);
}

// stats() -> { records, instruments, arenaBytes, arenaId, pooledOutputBlocks, reusedOutputBlocks,
//             lentOutputChunks, labelSets, retiredLabelSets, stateReads }
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("records", static_cast<double>(RecordMap::Global().RecordCount()));
  o.Set("instruments", static_cast<double>(RecordMap::Global().InstrumentCount()));
  o.Set("arenaBytes", static_cast<double>(RecordMap::Global().ArenaBytes()));
  o.Set("arenaId", ArenaIdOrZero(env));
  o.Set("pooledOutputBlocks", static_cast<double>(prometheus::OutputPool::Global().pooledBlocks()));
  o.Set("reusedOutputBlocks", static_cast<double>(prometheus::OutputPool::Global().reusedBlocks()));
  o.Set("lentOutputChunks", static_cast<double>(prometheus::OutputPool::Global().lentChunks()));
  o.Set("labelSets", static_cast<double>(RecordMap::Global().LabelSetCount()));
  o.Set("retiredLabelSets", static_cast<double>(RecordMap::Global().RetiredLabelSets()));
  o.Set("stateReads", static_cast<double>(RecordMap::Global().StateReads()));
  return o;
}

}  // namespace hotmeter::js
