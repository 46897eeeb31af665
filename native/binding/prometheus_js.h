// JS-facing Prometheus serialization over RecordMap::Global(): arguments are checked
// (TypeError when wrong); the work runs off the JS thread (Napi::AsyncWorker).
#pragma once
#include <napi.h>

namespace hotmeter::js {

Napi::Value SerializePrometheus(const Napi::CallbackInfo& info);
Napi::Value ReleaseOutput(const Napi::CallbackInfo& info);
Napi::Value OpenPrometheusStream(const Napi::CallbackInfo& info);
Napi::Value ReadPrometheusStream(const Napi::CallbackInfo& info);
Napi::Value ClosePrometheusStream(const Napi::CallbackInfo& info);

}  // namespace hotmeter::js
