// How many threads the BLAS may use, so that the torch threads running jobs
// at once (the CPU batch split runs one chunk on each) do not each ask the
// BLAS for every core.
//
// Only an OpenBLAS with its own pthreads pool is set here: its count is
// process-wide, so "per calling thread" is reached by following the number of
// jobs running at once. An OpenMP OpenBLAS and MKL already follow the calling
// thread's OpenMP setting (torch's intra-op count); the reference BLAS has one
// thread; BLIS and others are left as their environment set them.
#pragma once

#include <string>

namespace tg {

// setting: 0 = auto (below), n > 0 = always n, -1 = leave the BLAS as the
// environment set it (OPENBLAS_NUM_THREADS). budget: the threads one job may
// use in all (torch's intra-op count); auto gives each of the K jobs
// running at once max(1, budget / K) BLAS threads, so one job alone gets the
// whole budget. Callable at any time; a budget below 1 keeps the current one.
void ConfigureBlasThreads(int setting, int budget);

// Who decides the BLAS thread count: "auto", "fixed" or "external" (this
// OpenBLAS is set here, as above), "intra-op" (the BLAS follows torch's
// OpenMP intra-op count), or "none" (this BLAS cannot be set from here).
std::string BlasThreadControl();

// Held around every torch job (executor.cpp): counts the jobs running at once
// and, in auto mode, gives the BLAS its share before the job starts and back
// after it ends.
class BlasJobScope {
 public:
  BlasJobScope();
  ~BlasJobScope();
  BlasJobScope(const BlasJobScope&) = delete;
  BlasJobScope& operator=(const BlasJobScope&) = delete;
};

}  // namespace tg
