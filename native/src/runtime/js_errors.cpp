#include "runtime/js_errors.h"

#include "runtime/instance_data.h"

namespace tg {

void SetErrorClass(Napi::Env env, Napi::Function ctor) {
  InstanceData& data = InstanceData::Get(env);
  data.errorClass = Napi::Persistent(ctor);
}

Napi::Error MakeError(Napi::Env env, const ErrorInfo& info) {
  InstanceData* data = InstanceData::Find(env);
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    Napi::Value made = data->errorClass.New({Napi::String::New(env, info.code), Napi::String::New(env, info.message)});
    return Napi::Error(env, made);
  }
  Napi::Error error = Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

}  // namespace tg
