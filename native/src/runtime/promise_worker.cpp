#include "runtime/promise_worker.h"

#include <chrono>
#include <memory>

#include "runtime/executor.h"
#include "runtime/inflight.h"
#include "runtime/instance_data.h"
#include "runtime/js_errors.h"

namespace tg {

namespace {

using Clock = std::chrono::steady_clock;

int64_t Nanoseconds(Clock::duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

}  // namespace

struct Job {
  Napi::Promise::Deferred deferred;
  PromiseWorker::Work work;
  PromiseWorker::Settle settle;
  bool failed = false;
  ErrorInfo error;
  std::shared_ptr<CompletionChannel> completions;
  TaskHandle task;
  // The AbortSignal and our listener on it (JS thread only). Raw references:
  // a job freed on a torch thread after its environment is gone must not
  // call into Node-API, so they are released explicitly (DetachSignal).
  napi_ref signal = nullptr;
  napi_ref listener = nullptr;
  // The promise was rejected by the signal: the result is dropped unseen.
  bool abandoned = false;
  // Set with `abandoned`, for work that checks it between steps (may be null).
  std::shared_ptr<std::atomic<bool>> stop;
  // Written on the torch thread before the job is handed back (the
  // completion queue's lock orders them before SettleJob reads them).
  Clock::time_point submitted = Clock::now();
  Clock::time_point started;
  Clock::time_point finished;
};

namespace {

// Removes the abort listener and frees both references (JS thread).
void DetachSignal(Napi::Env env, Job* job) {
  if (job->signal == nullptr) return;
  napi_value signal = nullptr;
  napi_value listener = nullptr;
  if (napi_get_reference_value(env, job->signal, &signal) == napi_ok && signal != nullptr &&
      napi_get_reference_value(env, job->listener, &listener) == napi_ok && listener != nullptr) {
    Napi::Object target(env, signal);
    Napi::Value remove = target.Get("removeEventListener");
    if (remove.IsFunction()) remove.As<Napi::Function>().Call(target, {Napi::String::New(env, "abort"), Napi::Value(env, listener)});
  }
  napi_delete_reference(env, job->signal);
  napi_delete_reference(env, job->listener);
  job->signal = nullptr;
  job->listener = nullptr;
}

// The promise no longer keeps the loop alive (JS thread).
void ReleasePending(Napi::Env env) {
  InstanceData& data = InstanceData::Get(env);
  if (--data.pendingJobs == 0) data.completions->Unref(env);
}

// The signal fired: reject now, drop the job if it has not started.
void OnAbort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* job = static_cast<Job*>(info.Data());
  if (job->abandoned) return;
  job->abandoned = true;
  if (job->stop) job->stop->store(true);
  napi_value signalValue = nullptr;
  napi_get_reference_value(env, job->signal, &signalValue);
  Napi::Error error = MakeError(env, {code::kAborted,
                                      "the operation was aborted through its AbortSignal. A native job that was already "
                                      "running (a forward cannot be interrupted) finishes in the background on its torch "
                                      "thread and its result is dropped."});
  if (signalValue != nullptr) error.Value().Set("cause", Napi::Object(env, signalValue).Get("reason"));
  DetachSignal(env, job);
  ReleasePending(env);
  job->deferred.Reject(error.Value());
  if (AbandonTask(job->task) == Abandoned::kRemoved) delete job;  // never ran, never will
}

}  // namespace

namespace {

void Settle(Napi::Env env, Job* job) {
  InstanceData& data = InstanceData::Get(env);
  DetachSignal(env, job);
  ReleasePending(env);
  const Clock::time_point picked = Clock::now();
  {
    Napi::HandleScope scope(env);
    if (job->failed) {
      job->deferred.Reject(MakeError(env, job->error).Value());
    } else {
      try {
        job->deferred.Resolve(job->settle(env));
      } catch (const Napi::Error& e) {
        job->deferred.Reject(e.Value());
      } catch (...) {
        job->deferred.Reject(MakeError(env, DescribeException(std::current_exception())).Value());
      }
    }
  }
  InstanceData::JobTimes& times = data.jobTimes;
  times.jobs += 1;
  times.queueNs += Nanoseconds(job->started - job->submitted);
  times.workNs += Nanoseconds(job->finished - job->started);
  times.notifyNs += Nanoseconds(picked - job->finished);
  times.settleNs += Nanoseconds(Clock::now() - picked);
}

}  // namespace

// On the JS thread, once the job's work is done. `env` is null when the
// environment is shutting down: then only free the job.
void SettleJob(Napi::Env env, Napi::Function, void*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  if (job->abandoned) return;  // rejected when its signal fired; the result is dropped here
  try {
    Settle(env, job);
  } catch (...) {
    // Only while a worker's environment is torn down (worker.terminate()):
    // results still queued are delivered when JS can no longer run, and the
    // Node-API calls that settle the promise fail. Nobody can see the
    // promise then; an exception escaping here would abort the process.
  }
}

Napi::Value JobTimesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InstanceData& data = InstanceData::Get(env);
  const InstanceData::JobTimes& times = data.jobTimes;
  Napi::Object result = Napi::Object::New(env);
  result.Set("jobs", static_cast<double>(times.jobs));
  result.Set("queueMs", static_cast<double>(times.queueNs) / 1e6);
  result.Set("workMs", static_cast<double>(times.workNs) / 1e6);
  result.Set("notifyMs", static_cast<double>(times.notifyNs) / 1e6);
  result.Set("settleMs", static_cast<double>(times.settleNs) / 1e6);
  if (info.Length() > 0 && info[0].ToBoolean()) data.jobTimes = {};
  return result;
}

void PromiseWorker::InitEnv(Napi::Env env) {
  InstanceData& data = InstanceData::Get(env);
  if (!data.completions) data.completions = CompletionChannel::Open(env);
}

Napi::Promise PromiseWorker::Start(Napi::Env env, Work work, Settle settle, Napi::Value signal,
                                   std::shared_ptr<std::atomic<bool>> stop) {
  InstanceData& data = InstanceData::Get(env);
  if (!data.completions) InitEnv(env);
  const bool withSignal = !signal.IsEmpty() && signal.IsObject();
  if (withSignal && signal.As<Napi::Object>().Get("aborted").ToBoolean()) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    Napi::Error error = MakeError(env, {code::kAborted, "the operation was aborted through its AbortSignal before it started."});
    error.Value().Set("cause", signal.As<Napi::Object>().Get("reason"));
    deferred.Reject(error.Value());
    return deferred.Promise();
  }
  auto job = std::make_unique<Job>(Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(settle)});
  job->completions = data.completions;
  job->stop = std::move(stop);
  Job* raw = job.get();
  raw->task = SubmitToExecutor(
      [raw]() {
        InflightScope inflight;
        raw->started = Clock::now();
        try {
          raw->work();
        } catch (...) {
          raw->failed = true;
          raw->error = DescribeException(std::current_exception());
        }
        raw->finished = Clock::now();
      },
      [raw]() {
        InflightScope inflight;
        // Fails only once the environment is gone; then nobody awaits it.
        if (!raw->completions->Post(raw)) delete raw;
      });
  job.release();  // the executor's callbacks own it now
  Napi::Promise promise = raw->deferred.Promise();
  if (data.pendingJobs++ == 0) data.completions->Ref(env);
  if (withSignal) {
    Napi::Object target = signal.As<Napi::Object>();
    Napi::Function listener = Napi::Function::New(env, OnAbort, "onAbort", raw);
    Napi::Object once = Napi::Object::New(env);
    once.Set("once", true);
    target.Get("addEventListener").As<Napi::Function>().Call(target, {Napi::String::New(env, "abort"), listener, once});
    napi_create_reference(env, target, 1, &raw->signal);
    napi_create_reference(env, listener, 1, &raw->listener);
  }
  return promise;
}

}  // namespace tg
