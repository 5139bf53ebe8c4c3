// Counts native jobs running on torch threads, so that process exit can wait
// for them before libtorch's static destructors run (see inflight.cpp).
#pragma once

#include <cstdint>

namespace tg {

// Marks one job as running for its lifetime.
class InflightScope {
 public:
  InflightScope();
  ~InflightScope();
  InflightScope(const InflightScope&) = delete;
  InflightScope& operator=(const InflightScope&) = delete;
};

int InflightCount();

// How long process exit waits, in all, for running jobs (milliseconds; from
// TORCH_GUIDANCE_EXIT_WAIT_MS at init, default 60 s).
void SetExitWait(int64_t milliseconds);
int64_t ExitWaitMs();

// Stops the torch threads from starting queued jobs and waits for the running
// ones, until one deadline set at the first call (the exit wait): the JS
// exit hook and the atexit fallback share it, so an exit never waits longer
// than that in all. A job still running at the deadline (a forward that
// hangs) would be inside libtorch when its static destructors run, so the
// process then ends at once with `exitCode` (_exit: no destructors, no
// further 'exit' listeners). The JS side calls it from process.on('exit') on
// the main thread, before any C++ static destructor runs. Idempotent.
void PrepareExit(int exitCode);

// A fallback for exits that bypass JS: registers PrepareExit with atexit once
// per process. It runs before the static destructors registered before it,
// but not before lazily constructed statics of libraries first used later
// (oneDNN's, for example), which is why the JS hook above is the main path.
// Call it from the addon's init, after libtorch's own static initialisation:
// atexit handlers and static destructors run in the reverse order of their
// registration.
void InstallExitGuard();

}  // namespace tg
