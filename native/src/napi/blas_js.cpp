// The BLAS facts and thread setting for JS: runtimeInfo().blas, blasInfo()
// and setBlasThreads(setting) (src/blas.ts).
#include <napi.h>

#include "napi/js_convert.h"
#include "napi/runtime_js.h"
#include "runtime/blas_info.h"
#include "runtime/blas_threads.h"
#include "runtime/js_errors.h"

namespace tg {

namespace {

Napi::Value StringOrNull(Napi::Env env, const std::string& text) {
  return text.empty() ? env.Null() : Napi::String::New(env, text);
}

}  // namespace

Napi::Object BlasInfoObject(Napi::Env env) {
  const BlasApi& api = Blas();
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", api.name);
  result.Set("library", StringOrNull(env, api.library));
  int threads = BlasThreadsNow();
  result.Set("threads", threads > 0 ? Napi::Number::New(env, threads) : env.Null());
  result.Set("config", StringOrNull(env, api.config));
  result.Set("threading", StringOrNull(env, api.threading));
  result.Set("control", BlasThreadControl());
  return result;
}

int BlasSetting(const Napi::Value& value) {
  if (value.IsUndefined()) return -1;
  int64_t setting = ToInt64(value, "blasThreads");
  if (setting < -1 || setting > 4096) {
    throw Error(code::kInvalidArgument, "blasThreads must be -1 (leave as set), 0 (auto) or 1..4096.");
  }
  return static_cast<int>(setting);
}

Napi::Value BlasInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value { return BlasInfoObject(env); });
}

Napi::Value SetBlasThreadsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    ConfigureBlasThreads(BlasSetting(info.Length() > 0 ? info[0] : env.Undefined()), 0, 0);
    return BlasInfoObject(env);
  });
}

}  // namespace tg
