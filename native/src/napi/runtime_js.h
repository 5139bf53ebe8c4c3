// Process-wide runtime facts and settings: libtorch version, CUDA devices,
// thread counts (decided once, at init), live handle counters.
#pragma once

#include <napi.h>

namespace tg {

// init({ errorClass, intraOpThreads, interOpThreads, jobThreads, blasThreads }) -> runtime info.
// Thread counts are applied once per process; later calls (worker_threads)
// only register their error class.
Napi::Value Init(const Napi::CallbackInfo& info);
Napi::Value RuntimeInfo(const Napi::CallbackInfo& info);
// { tensors, models, jobs, torchThreads }: handles alive, native jobs
// running, torch threads started.
Napi::Value LiveHandles(const Napi::CallbackInfo& info);
// cudaMemory(index, resetPeak) -> { allocated, peakAllocated, reserved } | null
// (cuda_memory.cpp).
Napi::Value CudaMemory(const Napi::CallbackInfo& info);
// runtimeInfo().blas: the BLAS libtorch calls and its thread count (blas_js.cpp).
Napi::Object BlasInfoObject(Napi::Env env);
// The blasThreads option: -1 (leave as set; also when undefined), 0 (auto), 1..4096.
int BlasSetting(const Napi::Value& value);
// blasInfo() -> the same object alone (blas_js.cpp).
Napi::Value BlasInfoJs(const Napi::CallbackInfo& info);
// setBlasThreads(setting) -> runtimeInfo().blas after the change (blas_js.cpp).
Napi::Value SetBlasThreadsJs(const Napi::CallbackInfo& info);
// prepareExit(): see PrepareExit in runtime/inflight.h.
// prepareExit(exitCode): see PrepareExit in runtime/inflight.h.
Napi::Value PrepareExitJs(const Napi::CallbackInfo& info);

}  // namespace tg
