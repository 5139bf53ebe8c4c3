#include "inflight.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "executor.h"

namespace tg {

namespace {

std::mutex g_mutex;
std::condition_variable g_idle;
int g_running = 0;

// process.exit() (or the end of main) does not wait for libuv pool threads:
// a forward still inside libtorch would race its static destructors and
// crash. Wait for running jobs, bounded so that a wedged job cannot hang the
// exit forever.
constexpr auto kExitWait = std::chrono::seconds(60);

}  // namespace

void PrepareExit() {
  StopExecutor();
  std::unique_lock<std::mutex> lock(g_mutex);
  g_idle.wait_for(lock, kExitWait, [] { return g_running == 0; });
}

namespace {

void WaitForJobsAtExit() { PrepareExit(); }

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
