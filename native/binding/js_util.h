// The binding's shared argument checks and conversions. Every check that fails throws a
// JS TypeError whose message starts with "hotmeter native: " (the tests match on them).
#pragma once
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hotmeter::js {

constexpr size_t kMaxStringBytes = 64 * 1024;  // per string argument, label key or value
constexpr size_t kMaxLabelParts = 2 * 1024;    // 1024 attributes
constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, "hotmeter native: " + msg);
}

// Wall-clock milliseconds since the epoch (CollectOptions::nowMs, a record's start time).
inline double NowMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(system_clock::now().time_since_epoch()).count();
}

// Whether d is an integer in [0, 2^53 - 1] (a record id, an epoch).
inline bool IsSafeId(double d) { return d >= 0 && d <= kMaxSafeInteger && std::floor(d) == d; }

inline bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

inline void CheckArity(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() < n) {
    ThrowType(info.Env(), std::string(fn) + " expects " + std::to_string(n) + " argument(s)");
  }
}

// A safe non-negative integer (record id, epoch).
inline uint64_t ToId(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) ThrowType(env, std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!IsSafeId(d)) ThrowType(env, std::string(what) + " must be a safe non-negative integer");
  return static_cast<uint64_t>(d);
}

inline uint64_t ArgId(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return ToId(info.Env(), info[i], what);
}

// An integer in [0, 2^32) (instrument, domain, slab index, enum values).
inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) ThrowType(info.Env(), std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || std::floor(d) != d) {
    ThrowType(info.Env(), std::string(what) + " must be an integer in [0, 2^32)");
  }
  return static_cast<uint32_t>(d);
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsBoolean()) ThrowType(info.Env(), std::string(what) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// A domain id from registerDomain (0 is never one).
inline uint32_t ArgDomain(const Napi::CallbackInfo& info, size_t i) {
  const uint32_t domain = ArgU32(info, i, "domain");
  if (domain == 0) ThrowType(info.Env(), "domain must come from registerDomain");
  return domain;
}

// Whether v can be an options object (not an array, typed array or function).
inline bool IsOptionsObject(const Napi::Value& v) {
  return v.IsObject() && !v.IsArray() && !v.IsTypedArray() && !v.IsFunction();
}

// A string of at most kMaxStringBytes UTF-8 bytes.
inline std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) ThrowType(info.Env(), std::string(what) + " must be a string");
  // Lone surrogates become U+FFFD here: label text is valid UTF-8 from this point on.
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.size() > kMaxStringBytes) ThrowType(info.Env(), std::string(what) + " is too long");
  return s;
}

// labelParts, first step: an array of key/value pairs, at most kMaxLabelParts entries
// (its elements are not read: reading them may run JS getters).
inline Napi::Array LabelPartsArray(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) ThrowType(env, "labelParts must be an array of strings");
  Napi::Array arr = v.As<Napi::Array>();
  const uint32_t n = arr.Length();
  if (n % 2 != 0) ThrowType(env, "labelParts must hold key/value pairs");
  if (n > kMaxLabelParts) ThrowType(env, "too many labels");
  return arr;
}

// labelParts, second step: its strings (as UTF-8, each at most kMaxStringBytes).
inline std::vector<std::string> LabelParts(Napi::Env env, const Napi::Array& arr) {
  const uint32_t n = arr.Length();
  std::vector<std::string> parts;
  parts.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) ThrowType(env, "labelParts must be an array of strings");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.size() > kMaxStringBytes) ThrowType(env, "label key or value is too long");
    parts.push_back(std::move(s));
  }
  return parts;
}

// Record ids as a Float64Array (exact: ids stay below 2^53).
inline Napi::Float64Array IdsArray(Napi::Env env, const std::vector<uint64_t>& ids) {
  Napi::Float64Array a = Napi::Float64Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) a[i] = static_cast<double>(ids[i]);
  return a;
}

}  // namespace hotmeter::js
