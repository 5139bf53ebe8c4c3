// The torch threads: a few long-lived threads that run every libtorch job
// (loads, forwards, copies to JS), instead of libuv's pool.
//
// Why not the libuv pool: a forward that lands on a different pool thread
// each call gets a different OpenMP team each time (one team per calling
// thread, all spinning), and the pool is shared with file-system and DNS
// work. Here an idle thread is reused last-in first-out, so sequential
// forwards always run on the same thread and the same warm team.
//
// A task whose caller gave up on it (an AbortSignal fired while it ran) can
// be abandoned: it keeps its thread until it returns, but no longer counts
// against the limit, so a replacement thread serves the queue. Replacements
// are capped (kMaxReplacementsPerThread per configured thread); once every
// thread the cap allows is held by an abandoned task, new tasks are refused
// with ERR_THREADS_STUCK instead of waiting forever.
#pragma once

#include <functional>
#include <memory>

namespace tg {

// Starts at most `threads` torch threads (created on demand). Only the first
// call in the process counts.
void ConfigureExecutor(int threads);
int ExecutorThreads();
// Torch threads started so far and still alive (they start on demand, up to
// the limit, plus replacements for abandoned tasks).
int ExecutorThreadsStarted();

// From now on, tasks not yet started never start (called at process exit,
// so that only the jobs already running need to be waited for).
void StopExecutor();

// Where a submitted task is; shared between the executor and the submitter.
struct TaskState;
using TaskHandle = std::shared_ptr<TaskState>;

// Runs `run` on a torch thread, then `done` on the same thread once that
// thread counts as idle again (so `done` may announce the result). Neither
// may throw. Throws tg::Error (ERR_THREADS_STUCK) when every thread the
// executor may start is held by an abandoned task.
TaskHandle SubmitToExecutor(std::function<void()> run, std::function<void()> done);

enum class Abandoned {
  kRemoved,   // it was still queued: it is gone, and neither `run` nor `done` will be called
  kRunning,   // it runs on; `done` is still called when it returns
  kFinished,  // it had already finished (`done` was or is being called)
};

// The submitter no longer waits for the task (see the header comment).
Abandoned AbandonTask(const TaskHandle& task);

}  // namespace tg
