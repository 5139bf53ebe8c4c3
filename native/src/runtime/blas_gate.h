// Lets one job have every BLAS thread for a moment while no other job runs.
//
// The BLAS thread count of an OpenBLAS with its own pthreads pool is
// process-wide, and it is fixed so that a forward's result never depends on
// what else runs (blas_threads.h). A few long LAPACK calls run mostly on one
// thread at that count, though: the eigensolver of the Fréchet distance
// spends 0.7 s of its second at n = 2048 reducing a matrix to tridiagonal
// form. WithEveryBlasThread raises the count for such a call only while no
// other job is inside the gate, so no forward ever sees the raised count.
//
// Every executor task passes the gate (BlasGateScope). A task that wants the
// BLAS alone closes it (new tasks wait at the entrance), waits for the tasks
// inside to leave, and reopens it when done. It waits a bounded time: a
// forward that takes longer, or an abandoned one that never returns, makes
// it run at the usual count instead, never block.
#pragma once

#include <chrono>
#include <functional>

namespace tg {

// Held by every executor task while it runs.
class BlasGateScope {
 public:
  BlasGateScope();
  ~BlasGateScope();
  BlasGateScope(const BlasGateScope&) = delete;
  BlasGateScope& operator=(const BlasGateScope&) = delete;
};

// Runs `call` from inside an executor task. Where this package sets the BLAS
// thread count and a job's share is below the whole budget (blas_threads.h),
// it first waits up to `wait` for every other task to leave, then runs `call`
// with the BLAS at the budget and restores the count. Returns whether it
// did; otherwise `call` ran at the usual count. `call` may throw.
bool WithEveryBlasThread(const std::function<void()>& call,
                         std::chrono::milliseconds wait = std::chrono::milliseconds(1000));

}  // namespace tg
