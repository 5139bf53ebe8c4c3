#include "executor.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace tg {

namespace {

struct Task {
  std::function<void()> run;
  std::function<void()> done;
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
  int started = 0;
  int limit = 2;
  bool configured = false;
  bool stopped = false;  // the process is exiting: start nothing new

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
      lock.unlock();
      task.run();
      lock.lock();
      // Idle before the result is announced: the caller's next task (often
      // issued the moment it sees this one finish) comes back to this thread
      // instead of waking a second one with a cold OpenMP team.
      Park(worker);
      lock.unlock();
      task.done();
      task = Task();  // release what the task captured before waiting again
      lock.lock();
    }
  }

  void Submit(Task task) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!idle.empty()) {
      Worker* worker = idle.back();
      idle.pop_back();
      worker->parked = false;
      worker->task = std::move(task);
      worker->hasTask = true;
      worker->wake.notify_one();
      return;
    }
    queue.push_back(std::move(task));
    if (started < limit) {
      ++started;
      std::thread([this, worker = new Worker()] { Loop(worker); }).detach();
    }
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

void SubmitToExecutor(std::function<void()> run, std::function<void()> done) {
  Instance().Submit(Task{std::move(run), std::move(done)});
}

}  // namespace tg
