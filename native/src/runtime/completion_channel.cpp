#include "runtime/completion_channel.h"

namespace tg {

std::shared_ptr<CompletionChannel> CompletionChannel::Open(Napi::Env env) {
  auto channel = std::make_shared<CompletionChannel>();
  // No JS callback: SettleJob does the work. The channel never keeps the
  // loop alive by itself; Ref() does while jobs are pending.
  channel->completions_ = Completions::New(env, "torch-guidance", 0, 1);
  channel->completions_.Unref(env);
  // Registered after the thread-safe function, so it runs before the
  // function's own cleanup (hooks run in reverse order of registration).
  // The hook holds a reference, so the channel outlives the environment.
  auto* holder = new std::shared_ptr<CompletionChannel>(channel);
  napi_status status = napi_add_env_cleanup_hook(env, &CompletionChannel::Close, holder);
  if (status != napi_ok) {
    delete holder;
    NAPI_THROW_IF_FAILED(env, status, nullptr);
  }
  return channel;
}

void CompletionChannel::Close(void* holder) {
  auto* owned = static_cast<std::shared_ptr<CompletionChannel>*>(holder);
  {
    std::lock_guard<std::mutex> lock((*owned)->mutex_);
    (*owned)->open_ = false;
  }
  delete owned;
}

bool CompletionChannel::Post(Job* job) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Under the lock: the environment cannot close the function mid-call.
  return open_ && completions_.NonBlockingCall(job) == napi_ok;
}

void CompletionChannel::Ref(Napi::Env env) { completions_.Ref(env); }

void CompletionChannel::Unref(Napi::Env env) { completions_.Unref(env); }

}  // namespace tg
