// A Promise-returning job on the libuv thread pool.
//
// `work` runs on a pool thread (no JS access; it may throw anything), then
// `settle` runs on the main thread and builds the resolved value. Failures of
// either become a rejected TorchGuidanceError. The job holds whatever its
// lambdas capture (shared model state, tensors), so a dispose() or a GC while
// it runs frees nothing under it.
#pragma once

#include <ATen/Parallel.h>
#include <napi.h>

#include <functional>
#include <utility>

#include "errors.h"
#include "inflight.h"

namespace tg {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Settle = std::function<Napi::Value(Napi::Env)>;

  // Queues the job and returns its promise.
  static Napi::Promise Start(Napi::Env env, const char* name, Work work, Settle settle) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(settle));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    InflightScope inflight;
    // OpenMP thread counts are per thread: give this pool thread the count
    // chosen at init (at::set_num_threads only set the main thread's).
    at::init_num_threads();
    try {
      work_();
    } catch (...) {
      failed_ = true;
      error_ = DescribeException(std::current_exception());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(MakeError(env, error_).Value());
      return;
    }
    try {
      deferred_.Resolve(settle_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeError(env, DescribeException(std::current_exception())).Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, Settle settle)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), settle_(std::move(settle)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Settle settle_;
  bool failed_ = false;
  ErrorInfo error_;
};

}  // namespace tg
