// Process-wide runtime facts and settings: libtorch version, CUDA devices,
// thread counts (decided once, at init), live handle counters.
#pragma once

#include <napi.h>

namespace tg {

// init({ errorClass, intraOpThreads, interOpThreads }) -> runtime info.
// Thread counts are applied once per process; later calls (worker_threads)
// only register their error class.
Napi::Value Init(const Napi::CallbackInfo& info);
Napi::Value RuntimeInfo(const Napi::CallbackInfo& info);
// { tensors, models, jobs }: handles alive and native jobs running.
Napi::Value LiveHandles(const Napi::CallbackInfo& info);

}  // namespace tg
