// Counts native jobs running on pool threads, so that process exit can wait
// for them before libtorch's static destructors run (see inflight.cpp).
#pragma once

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

// Stops the torch threads from starting queued jobs and waits (at most 60 s)
// for the running ones. The JS side calls it from process.on('exit') on the
// main thread, before any C++ static destructor runs. Idempotent.
void PrepareExit();

// A fallback for exits that bypass JS: registers PrepareExit with atexit once
// per process. It runs before the static destructors registered before it,
// but not before lazily constructed statics of libraries first used later
// (oneDNN's, for example), which is why the JS hook above is the main path.
// Call it from the addon's init, after libtorch's own static initialisation:
// atexit handlers and static destructors run in the reverse order of their
// registration.
void InstallExitGuard();

}  // namespace tg
