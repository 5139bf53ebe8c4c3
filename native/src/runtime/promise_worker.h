// A Promise-returning libtorch job.
//
// `work` runs on a torch thread (executor.h; no JS access; it may throw
// anything), then `settle` runs on the main thread and builds the resolved
// value. Failures of either become a rejected TorchGuidanceError. The job
// owns whatever its lambdas capture (shared model state, tensors), so a
// dispose() or a GC while it runs frees nothing under it. While jobs are
// pending, the environment's event loop stays alive, as with libuv work.
//
// With an AbortSignal, the promise rejects with ERR_ABORTED the moment the
// signal fires, even while `work` runs (a forward cannot be interrupted):
// a queued job is dropped unrun; a running one is abandoned to finish in
// the background, its result freed unseen, and no longer keeps the event
// loop alive or a torch thread's place (executor.h). Work that runs in
// steps can end sooner: given a stop flag, the job sets it when the signal
// fires, for `work` to read between steps.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>

namespace tg {

class PromiseWorker {
 public:
  using Work = std::function<void()>;
  using Settle = std::function<Napi::Value(Napi::Env)>;

  // Queues the job and returns its promise. `signal`: an AbortSignal, or
  // undefined. `stop`: set to true when the signal fires (may be null).
  static Napi::Promise Start(Napi::Env env, Work work, Settle settle, Napi::Value signal = Napi::Value(),
                             std::shared_ptr<std::atomic<bool>> stop = nullptr);

  // Creates the environment's completion channel (once, at init).
  static void InitEnv(Napi::Env env);
};

// jobTimes(reset?): where this environment's settled jobs spent their time
// (queue, work, notify, settle, in ms, summed), then zeroes it when `reset`.
Napi::Value JobTimesJs(const Napi::CallbackInfo& info);

}  // namespace tg
