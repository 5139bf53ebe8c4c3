// Per-environment state (the main thread and each worker_thread that loads
// the addon get their own), stored with Napi::Env::SetInstanceData.
#pragma once

#include <napi.h>

namespace tg {

struct InstanceData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference modelClass;

  // Creates the data for `env` on first use.
  static InstanceData& Get(Napi::Env env) {
    InstanceData* data = env.GetInstanceData<InstanceData>();
    if (data == nullptr) {
      data = new InstanceData();
      env.SetInstanceData(data);
    }
    return *data;
  }
  static InstanceData* Find(Napi::Env env) { return env.GetInstanceData<InstanceData>(); }
};

}  // namespace tg
