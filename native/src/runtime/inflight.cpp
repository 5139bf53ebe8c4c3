#include "runtime/inflight.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "runtime/executor.h"

namespace tg {

namespace {

using Clock = std::chrono::steady_clock;

std::mutex g_mutex;
std::condition_variable g_idle;
int g_running = 0;

// process.exit() (or the end of main) does not wait for the torch threads:
// a forward still inside libtorch would race its static destructors and
// crash. Wait for running jobs, bounded so that a wedged job cannot hang the
// exit forever.
int64_t g_exitWaitMs = 60'000;
std::optional<Clock::time_point> g_exitDeadline;  // set by the first PrepareExit

}  // namespace

void SetExitWait(int64_t milliseconds) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (milliseconds >= 0) g_exitWaitMs = milliseconds;
}

int64_t ExitWaitMs() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_exitWaitMs;
}

void PrepareExit(int exitCode) {
  StopExecutor();
  std::unique_lock<std::mutex> lock(g_mutex);
  if (!g_exitDeadline) g_exitDeadline = Clock::now() + std::chrono::milliseconds(g_exitWaitMs);
  if (g_idle.wait_until(lock, *g_exitDeadline, [] { return g_running == 0; })) return;
  const int stuck = g_running;
  lock.unlock();
  std::fprintf(stderr,
               "torch-guidance: %d native job(s) still running after the exit wait of %lld ms (a forward that "
               "never returns); ending the process without running destructors.\n",
               stuck, static_cast<long long>(g_exitWaitMs));
  std::fflush(nullptr);
  _exit(exitCode);
}

namespace {

// atexit knows no exit status; a clean exit has already passed the JS hook
// (nothing is running, so this returns at once), so a job still running here
// means an exit that went wrong.
void WaitForJobsAtExit() { PrepareExit(EXIT_FAILURE); }

}  // namespace

InflightScope::InflightScope() {
  std::lock_guard<std::mutex> lock(g_mutex);
  ++g_running;
}

InflightScope::~InflightScope() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_running == 0) g_idle.notify_all();
}

int InflightCount() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_running;
}

void InstallExitGuard() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(WaitForJobsAtExit); });
}

}  // namespace tg
