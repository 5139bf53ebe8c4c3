// Per-environment state (the main thread and each worker_thread that loads
// the addon get their own), stored with Napi::Env::SetInstanceData.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>

#include "runtime/completion_channel.h"

namespace tg {

struct InstanceData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference modelClass;

  // Torch threads hand finished jobs back to this environment's JS thread.
  std::shared_ptr<CompletionChannel> completions;
  // Jobs whose promise is still pending (abandoned ones no longer count).
  int pendingJobs = 0;

  // Where settled jobs' time went (promise_worker.cpp; read by jobTimes()).
  // Only the main thread touches it, so it needs no lock.
  struct JobTimes {
    int64_t jobs = 0;
    int64_t queueNs = 0;   // submitted -> a torch thread starts it
    int64_t workNs = 0;    // running on the torch thread
    int64_t notifyNs = 0;  // finished -> the main thread picks it up
    int64_t settleNs = 0;  // building the result and settling the promise
  } jobTimes;

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
