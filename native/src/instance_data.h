// Per-environment state (the main thread and each worker_thread that loads
// the addon get their own), stored with Napi::Env::SetInstanceData.
#pragma once

#include <napi.h>

namespace tg {

struct Job;
void SettleJob(Napi::Env env, Napi::Function callback, void* context, Job* job);

struct InstanceData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference modelClass;

  // Torch threads hand finished jobs back to this environment's main thread.
  using Completions = Napi::TypedThreadSafeFunction<void, Job, SettleJob>;
  Completions completions;
  bool hasCompletions = false;
  int pendingJobs = 0;

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
