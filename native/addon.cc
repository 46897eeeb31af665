// Module registration only: each environment (main thread or worker) gets its own
// arena in the process-wide RecordMap, retired when the environment is torn down.
#include <napi.h>

#include "binding/env_state.h"
#include "binding/prometheus_js.h"
#include "binding/record_map_js.h"
#include "core/record_map.h"

namespace {

void RetireEnv(hotmeter::EnvState* st) {
  if (st->retired) return;
  st->retired = true;
  hotmeter::RecordMap::Global().RetireArena(st->arenaId);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* st = new hotmeter::EnvState();
  st->arenaId = hotmeter::RecordMap::Global().RegisterArena();
  env.SetInstanceData<hotmeter::EnvState>(st);  // deleted by the env at teardown
  env.AddCleanupHook(RetireEnv, st);             // runs before instance data is freed

  using namespace hotmeter::js;
  exports.Set("registerDomain", Napi::Function::New(env, RegisterDomain, "registerDomain"));
  exports.Set("releaseDomain", Napi::Function::New(env, ReleaseDomain, "releaseDomain"));
  exports.Set("sharedStats", Napi::Function::New(env, SharedStats, "sharedStats"));
  exports.Set("pushLeader", Napi::Function::New(env, PushLeader, "pushLeader"));
  exports.Set("cleanupProcessShared", Napi::Function::New(env, CleanupProcessShared, "cleanupProcessShared"));
  exports.Set("registerInstrument", Napi::Function::New(env, RegisterInstrument, "registerInstrument"));
  exports.Set("descriptor", Napi::Function::New(env, Descriptor, "descriptor"));
  exports.Set("acquire", Napi::Function::New(env, Acquire, "acquire"));
  exports.Set("release", Napi::Function::New(env, Release, "release"));
  exports.Set("releaseMany", Napi::Function::New(env, ReleaseMany, "releaseMany"));
  exports.Set("drainStale", Napi::Function::New(env, DrainStale, "drainStale"));
  exports.Set("exemplarCell", Napi::Function::New(env, ExemplarCell, "exemplarCell"));
  exports.Set("removeSeries", Napi::Function::New(env, RemoveSeries, "removeSeries"));
  exports.Set("clearSeries", Napi::Function::New(env, ClearSeries, "clearSeries"));
  exports.Set("slab", Napi::Function::New(env, Slab, "slab"));
  exports.Set("collect", Napi::Function::New(env, Collect, "collect"));
  exports.Set("collectAsync", Napi::Function::New(env, CollectAsync, "collectAsync"));
  exports.Set("collectStream", Napi::Function::New(env, CollectStream, "collectStream"));
  exports.Set("recordInfo", Napi::Function::New(env, RecordInfo, "recordInfo"));
  exports.Set("recordLabels", Napi::Function::New(env, RecordLabels, "recordLabels"));
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("serializePrometheus", Napi::Function::New(env, SerializePrometheus, "serializePrometheus"));
  exports.Set("releaseOutput", Napi::Function::New(env, ReleaseOutput, "releaseOutput"));
  exports.Set("openPrometheusStream", Napi::Function::New(env, OpenPrometheusStream, "openPrometheusStream"));
  exports.Set("readPrometheusStream", Napi::Function::New(env, ReadPrometheusStream, "readPrometheusStream"));
  exports.Set("closePrometheusStream", Napi::Function::New(env, ClosePrometheusStream, "closePrometheusStream"));
  return exports;
}

}  // namespace

NODE_API_MODULE(hotmeter, Init)
