#include "napi/file_lock_js.h"

#include "io/file_lock.h"
#include "napi/js_convert.h"
#include "runtime/js_errors.h"

namespace tg {

Napi::Value TryLockFileJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const LockAttempt attempt = TryLockFile(ToString(info.Length() > 0 ? info[0] : env.Undefined(), "path"));
    if (attempt.id > 0) return Napi::Number::New(env, static_cast<double>(attempt.id));
    Napi::Object held = Napi::Object::New(env);
    held.Set("heldBy", attempt.heldBy);
    return held;
  });
}

Napi::Value UnlockFileJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    UnlockFile(ToInt64(info.Length() > 0 ? info[0] : env.Undefined(), "id"));
    return env.Undefined();
  });
}

}  // namespace tg
