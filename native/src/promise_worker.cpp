#include "promise_worker.h"

#include <chrono>
#include <memory>

#include "errors.h"
#include "executor.h"
#include "inflight.h"
#include "instance_data.h"

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
  InstanceData::Completions completions;
  // Written on the torch thread before the job is handed back (the
  // completion queue's lock orders them before SettleJob reads them).
  Clock::time_point submitted = Clock::now();
  Clock::time_point started;
  Clock::time_point finished;
};

// On the main thread, once the job's work is done. `env` is null when the
// environment is shutting down: then only free the job.
void SettleJob(Napi::Env env, Napi::Function, void*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;
  InstanceData& data = InstanceData::Get(env);
  if (--data.pendingJobs == 0) data.completions.Unref(env);
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
        job->started = Clock::now();
        try {
          job->work();
        } catch (...) {
          job->failed = true;
          job->error = DescribeException(std::current_exception());
        }
        job->finished = Clock::now();
      },
      [job]() {
        InflightScope inflight;
        // Fails only while the environment shuts down; then nobody awaits it.
        if (job->completions.NonBlockingCall(job) != napi_ok) delete job;
      });
  return promise;
}

}  // namespace tg
