#include "runtime/executor.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "runtime/blas_gate.h"

namespace tg {

struct TaskState {
  enum class Phase { kQueued, kRunning, kFinished };
  // Guarded by the executor's mutex.
  Phase phase = Phase::kQueued;
  bool abandoned = false;
};

namespace {

// Replacement threads allowed per configured torch thread, for tasks that
// were abandoned and never return (a hung forward). Each such task pins a
// thread and its memory, so the cap also bounds what hung models can hold.
constexpr int kMaxReplacementsPerThread = 4;

struct Task {
  std::function<void()> run;
  std::function<void()> done;
  TaskHandle state;
};

struct Worker {
  std::condition_variable wake;
  Task task;
  bool hasTask = false;  // a task was handed to this worker directly
  bool parked = false;   // on the idle stack
};

// Process-wide and deliberately never destroyed: its threads may still be
// inside libtorch when the process exits (see inflight.h).
struct Executor {
  std::mutex mutex;
  std::deque<Task> queue;     // tasks waiting for a thread
  std::vector<Worker*> idle;  // a stack: the last to finish is reused first
  int started = 0;            // threads alive
  int limit = 2;
  int abandonedRunning = 0;   // threads held by abandoned tasks still running
  bool configured = false;
  bool stopped = false;  // the process is exiting: start nothing new

  // Threads that may exist now: the limit, plus one per abandoned task up to the cap.
  int Allowed() const { return limit + std::min(abandonedRunning, limit * kMaxReplacementsPerThread); }

  void Park(Worker* worker) {
    if (worker->parked) return;
    idle.push_back(worker);
    worker->parked = true;
  }

  void Unpark(Worker* worker) {
    if (!worker->parked) return;
    idle.erase(std::find(idle.begin(), idle.end(), worker));
    worker->parked = false;
  }

  void StartThread() {
    ++started;
    std::thread([this, worker = new Worker()] { Loop(worker); }).detach();
  }

  void Loop(Worker* worker) {
    // OpenMP thread counts are per thread: apply the count chosen at init.
    at::init_num_threads();
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      Task task;
      if (stopped) {
        // Exiting: park for good; queued tasks are dropped unrun.
        worker->wake.wait(lock, [] { return false; });
      }
      if (worker->hasTask) {
        task = std::move(worker->task);
        worker->hasTask = false;
      } else if (!queue.empty()) {
        Unpark(worker);
        task = std::move(queue.front());
        queue.pop_front();
      } else {
        Park(worker);
        worker->wake.wait(lock, [worker] { return worker->hasTask; });
        continue;
      }
      if (stopped) continue;
      task.state->phase = TaskState::Phase::kRunning;
      lock.unlock();
      {
        BlasGateScope gate;
        task.run();
      }
      lock.lock();
      task.state->phase = TaskState::Phase::kFinished;
      if (task.state->abandoned) --abandonedRunning;
      // A replacement whose stuck task came back: more threads than allowed
      // are alive, so this one ends after announcing its result.
      const bool retire = started > Allowed();
      // Idle before the result is announced: the caller's next task (often
      // issued the moment it sees this one finish) comes back to this thread
      // instead of waking a second one with a cold OpenMP team.
      if (retire) {
        --started;
      } else {
        Park(worker);
      }
      lock.unlock();
      task.done();
      task = Task();  // release what the task captured before waiting again
      if (retire) {
        delete worker;
        return;
      }
      lock.lock();
    }
  }

  TaskHandle Submit(Task task) {
    std::lock_guard<std::mutex> lock(mutex);
    if (idle.empty() && abandonedRunning >= limit + limit * kMaxReplacementsPerThread) {
      throw Error(code::kThreadsStuck,
                  "every torch thread (" + std::to_string(started) +
                      ") is held by a call that was aborted and has not returned (a forward that hangs), so nothing "
                      "more can run. Fix: find the model call that never returns; restart the process to get the "
                      "threads back.");
    }
    task.state = std::make_shared<TaskState>();
    TaskHandle handle = task.state;
    if (!idle.empty()) {
      Worker* worker = idle.back();
      idle.pop_back();
      worker->parked = false;
      worker->task = std::move(task);
      worker->hasTask = true;
      worker->wake.notify_one();
      return handle;
    }
    queue.push_back(std::move(task));
    if (started < Allowed()) StartThread();
    return handle;
  }

  Abandoned Abandon(const TaskHandle& state) {
    Task removed;  // destroyed after the lock is released: its captures may be large
    std::unique_lock<std::mutex> lock(mutex);
    if (state->abandoned) return Abandoned::kRunning;
    switch (state->phase) {
      case TaskState::Phase::kFinished:
        return Abandoned::kFinished;
      case TaskState::Phase::kRunning:
        state->abandoned = true;
        ++abandonedRunning;
        // The stuck thread no longer counts: serve the queue with another.
        if (!queue.empty() && idle.empty() && started < Allowed() && !stopped) StartThread();
        return Abandoned::kRunning;
      case TaskState::Phase::kQueued:
        break;
    }
    // Still queued, or handed to a worker that has not picked it up yet.
    auto at = std::find_if(queue.begin(), queue.end(), [&](const Task& t) { return t.state == state; });
    if (at != queue.end()) {
      removed = std::move(*at);
      queue.erase(at);
      state->abandoned = true;
      state->phase = TaskState::Phase::kFinished;
      lock.unlock();
      return Abandoned::kRemoved;
    }
    // Handed directly to a parked worker that has not woken yet: it will run;
    // treat it as running and abandoned.
    state->abandoned = true;
    ++abandonedRunning;
    return Abandoned::kRunning;
  }
};

Executor& Instance() {
  static Executor* executor = new Executor();
  return *executor;
}

}  // namespace

void ConfigureExecutor(int threads) {
  Executor& executor = Instance();
  std::lock_guard<std::mutex> lock(executor.mutex);
  if (executor.configured || threads < 1) return;
  executor.limit = threads;
  executor.configured = true;
}

int ExecutorThreads() {
  Executor& executor = Instance();
  std::lock_guard<std::mutex> lock(executor.mutex);
  return executor.limit;
}

void StopExecutor() {
  Executor& executor = Instance();
  std::lock_guard<std::mutex> lock(executor.mutex);
  executor.stopped = true;
}

int ExecutorThreadsStarted() {
  Executor& executor = Instance();
  std::lock_guard<std::mutex> lock(executor.mutex);
  return executor.started;
}

TaskHandle SubmitToExecutor(std::function<void()> run, std::function<void()> done) {
  return Instance().Submit(Task{std::move(run), std::move(done), nullptr});
}

Abandoned AbandonTask(const TaskHandle& task) { return Instance().Abandon(task); }

}  // namespace tg
