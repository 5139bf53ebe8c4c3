// How finished jobs get from the torch threads back to the JS thread of the
// environment that started them (the main thread or a worker_thread).
//
// An environment can go away while its jobs still run: worker.terminate()
// tears a worker's environment down at once, and the thread-safe function
// that carried results back is freed with it. A torch thread that called it
// after that would lock a destroyed mutex (a SIGABRT for the whole process).
// So the thread-safe function sits behind a channel that jobs share: an
// environment cleanup hook closes the channel under its lock before Node
// frees the function, and a job finding the channel closed frees itself on
// its torch thread instead.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>

namespace tg {

struct Job;
void SettleJob(Napi::Env env, Napi::Function callback, void* context, Job* job);

class CompletionChannel {
 public:
  // Opens the channel of `env` (on its JS thread).
  static std::shared_ptr<CompletionChannel> Open(Napi::Env env);

  // From any thread: queues `job` for SettleJob on the environment's JS
  // thread. False when the environment is gone; the caller then owns `job`.
  bool Post(Job* job);

  // While jobs are pending the channel keeps the event loop alive (JS thread only).
  void Ref(Napi::Env env);
  void Unref(Napi::Env env);

 private:
  using Completions = Napi::TypedThreadSafeFunction<void, Job, SettleJob>;
  static void Close(void* holder);

  std::mutex mutex_;
  bool open_ = true;
  Completions completions_;
};

}  // namespace tg
