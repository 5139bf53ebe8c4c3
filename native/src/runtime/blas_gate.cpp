#include "runtime/blas_gate.h"

#include <condition_variable>
#include <mutex>

#include "runtime/blas_threads.h"

namespace tg {

namespace {

struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  int inside = 0;       // tasks between entering and leaving
  bool closed = false;  // a task is waiting for, or has, the BLAS alone
};

// Never destroyed: torch threads may pass it while the process exits.
Gate& Instance() {
  static Gate* gate = new Gate();
  return *gate;
}

// Reopens the gate and counts the caller inside again, however `call` ended.
class Reopen {
 public:
  explicit Reopen(Gate& gate) : gate_(gate) {}
  ~Reopen() {
    {
      std::lock_guard<std::mutex> lock(gate_.mutex);
      gate_.closed = false;
      ++gate_.inside;
    }
    gate_.changed.notify_all();
  }

 private:
  Gate& gate_;
};

}  // namespace

BlasGateScope::BlasGateScope() {
  Gate& gate = Instance();
  std::unique_lock<std::mutex> lock(gate.mutex);
  gate.changed.wait(lock, [&] { return !gate.closed; });
  ++gate.inside;
}

BlasGateScope::~BlasGateScope() {
  Gate& gate = Instance();
  {
    std::lock_guard<std::mutex> lock(gate.mutex);
    --gate.inside;
  }
  gate.changed.notify_all();
}

bool WithEveryBlasThread(const std::function<void()>& call, std::chrono::milliseconds wait) {
  const int whole = BlasThreadBudget();
  if (whole <= BlasThreadsPerJob()) {
    call();
    return false;
  }
  Gate& gate = Instance();
  std::unique_lock<std::mutex> lock(gate.mutex);
  // Another task may be closing it (two statistics jobs at once): wait for it.
  if (!gate.changed.wait_for(lock, wait, [&] { return !gate.closed; })) {
    lock.unlock();
    call();
    return false;
  }
  gate.closed = true;
  --gate.inside;  // the caller itself
  Reopen reopen(gate);
  if (!gate.changed.wait_for(lock, wait, [&] { return gate.inside == 0; })) {
    lock.unlock();
    call();
    return false;
  }
  lock.unlock();
  BlasThreadOverride raised(whole);
  call();
  return true;
}

}  // namespace tg
