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

// Registers the exit handler once per process. Must run after libtorch's own
// static initialisation (i.e. from the addon's init), so that the handler runs
// before libtorch's static destructors: atexit handlers and static destructors
// run in the reverse order of their registration.
void InstallExitGuard();

}  // namespace tg
