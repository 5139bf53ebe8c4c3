// How many threads the BLAS may use, so that the torch threads running jobs
// at once (the CPU batch split runs one chunk on each) do not each ask the
// BLAS for every core.
//
// Only an OpenBLAS with its own pthreads pool is set here; its count is
// process-wide. An OpenMP OpenBLAS and MKL already follow the calling
// thread's OpenMP setting (torch's intra-op count); the reference BLAS has one
// thread; BLIS and others are left as their environment set them.
//
// The count is fixed, not adjusted to the jobs running at a given moment:
// OpenBLAS cuts a matrix multiply differently for another thread count, and
// the results differ in the last bits, so a count that followed the running
// jobs would make a forward's result depend on what else runs at the time.
// The package promises the same result for the same call, concurrent or not.
#pragma once

#include <string>

namespace tg {

// setting: 0 = auto, n > 0 = n threads, -1 = leave the BLAS as the environment
// set it (OPENBLAS_NUM_THREADS). Auto gives max(1, budget / jobs): budget is
// the threads one job may use in all (torch's intra-op count), jobs the torch
// threads that can run jobs at once, so that jobs x BLAS threads never pass
// the budget. Callable at any time; a budget or jobs below 1 keeps the value
// set before.
void ConfigureBlasThreads(int setting, int budget, int jobs);

// Who decides the BLAS thread count: "auto", "fixed" or "external" (this
// OpenBLAS is set here, as above), "intra-op" (the BLAS follows torch's
// OpenMP intra-op count), or "none" (this BLAS cannot be set from here).
std::string BlasThreadControl();

// The threads the automatic setting shares out among jobs (torch's intra-op
// count), or 0 when the count is not automatic here (fixed by the user, left
// to the environment, or a BLAS this cannot set).
int BlasThreadBudget();

// The count each job's BLAS calls get now, or 0 when not set here.
int BlasThreadsPerJob();

// Sets the count to `threads` for its lifetime, then back to the policy's.
// Only for a caller that has the BLAS alone (blas_gate.h): every other
// caller would see the changed count.
class BlasThreadOverride {
 public:
  explicit BlasThreadOverride(int threads);
  ~BlasThreadOverride();
  BlasThreadOverride(const BlasThreadOverride&) = delete;
  BlasThreadOverride& operator=(const BlasThreadOverride&) = delete;
};

}  // namespace tg
