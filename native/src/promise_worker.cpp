#include "promise_worker.h"

#include <memory>

#include "errors.h"
#include "executor.h"
#include "inflight.h"
#include "instance_data.h"

namespace tg {

struct Job {
  Napi::Promise::Deferred deferred;
  PromiseWorker::Work work;
  PromiseWorker::Settle settle;
  bool failed = false;
  ErrorInfo error;
  InstanceData::Completions completions;
};

// On the main thread, once the job's work is done. `env` is null when the
// environment is shutting down: then only free the job.
void SettleJob(Napi::Env env, Napi::Function, void*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  InstanceData& data = InstanceData::Get(env);
  if (--data.pendingJobs == 0) data.completions.Unref(env);
  Napi::HandleScope scope(env);
  if (job->failed) {
    job->deferred.Reject(MakeError(env, job->error).Value());
    return;
  }
  try {
    job->deferred.Resolve(job->settle(env));
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
  } catch (...) {
    job->deferred.Reject(MakeError(env, DescribeException(std::current_exception())).Value());
  }
}

void PromiseWorker::InitEnv(Napi::Env env) {
  InstanceData& data = InstanceData::Get(env);
  if (data.hasCompletions) return;
  // No JS callback: SettleJob does the work. The channel never keeps the
  // loop alive by itself; Start() refs it while jobs are pending.
  data.completions = InstanceData::Completions::New(env, "torch-guidance", 0, 1);
  data.completions.Unref(env);
  data.hasCompletions = true;
}

Napi::Promise PromiseWorker::Start(Napi::Env env, Work work, Settle settle) {
  InstanceData& data = InstanceData::Get(env);
  if (!data.hasCompletions) InitEnv(env);
  auto* job = new Job{Napi::Promise::Deferred::New(env), std::move(work), std::move(settle), false, {}, data.completions};
  Napi::Promise promise = job->deferred.Promise();
  if (data.pendingJobs++ == 0) data.completions.Ref(env);
  SubmitToExecutor(
      [job]() {
        InflightScope inflight;
        try {
          job->work();
        } catch (...) {
          job->failed = true;
          job->error = DescribeException(std::current_exception());
        }
      },
      [job]() {
        InflightScope inflight;
        // Fails only while the environment shuts down; then nobody awaits it.
        if (job->completions.NonBlockingCall(job) != napi_ok) delete job;
      });
  return promise;
}

}  // namespace tg
