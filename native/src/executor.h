// The torch threads: a few long-lived threads that run every libtorch job
// (loads, forwards, copies to JS), instead of libuv's pool.
//
// Why not the libuv pool: a forward that lands on a different pool thread
// each call gets a different OpenMP team each time (one team per calling
// thread, all spinning), and the pool is shared with file-system and DNS
// work. Here an idle thread is reused last-in first-out, so sequential
// forwards always run on the same thread and the same warm team.
#pragma once

#include <functional>

namespace tg {

// Starts at most `threads` torch threads (created on demand). Only the first
// call in the process counts.
void ConfigureExecutor(int threads);
int ExecutorThreads();
// Torch threads started so far (they start on demand, up to the limit).
int ExecutorThreadsStarted();

// From now on, tasks not yet started never start (called at process exit,
// so that only the jobs already running need to be waited for).
void StopExecutor();

// Runs `run` on a torch thread, then `done` on the same thread once that
// thread counts as idle again (so `done` may announce the result). Neither
// may throw.
void SubmitToExecutor(std::function<void()> run, std::function<void()> done);

}  // namespace tg
