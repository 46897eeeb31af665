// JS-facing functions over RecordMap::Global(). Each validates its arguments and throws
// a TypeError (never crashes) when they are wrong.
#pragma once
#include <napi.h>

namespace hotmeter::js {

Napi::Value RegisterDomain(const Napi::CallbackInfo& info);
Napi::Value ReleaseDomain(const Napi::CallbackInfo& info);
Napi::Value SharedStats(const Napi::CallbackInfo& info);
Napi::Value PushLeader(const Napi::CallbackInfo& info);
Napi::Value CleanupProcessShared(const Napi::CallbackInfo& info);
Napi::Value RegisterInstrument(const Napi::CallbackInfo& info);
Napi::Value Descriptor(const Napi::CallbackInfo& info);
Napi::Value Acquire(const Napi::CallbackInfo& info);
Napi::Value Release(const Napi::CallbackInfo& info);
Napi::Value ReleaseMany(const Napi::CallbackInfo& info);
Napi::Value DrainStale(const Napi::CallbackInfo& info);
Napi::Value ExemplarCell(const Napi::CallbackInfo& info);
Napi::Value RemoveSeries(const Napi::CallbackInfo& info);
Napi::Value ClearSeries(const Napi::CallbackInfo& info);
Napi::Value Slab(const Napi::CallbackInfo& info);
Napi::Value Collect(const Napi::CallbackInfo& info);
Napi::Value CollectAsync(const Napi::CallbackInfo& info);
Napi::Value CollectStream(const Napi::CallbackInfo& info);
Napi::Value RecordInfo(const Napi::CallbackInfo& info);
Napi::Value RecordLabels(const Napi::CallbackInfo& info);
Napi::Value Stats(const Napi::CallbackInfo& info);

}  // namespace hotmeter::js
