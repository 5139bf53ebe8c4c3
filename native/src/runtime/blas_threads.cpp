#include "runtime/blas_threads.h"

#include <algorithm>
#include <mutex>

#include "runtime/blas_info.h"

namespace tg {

namespace {

struct Policy {
  std::mutex mutex;
  int setting = -1;  // -1 leave alone, 0 auto, n > 0 fixed
  int budget = 1;
  int jobs = 1;
};

// Never destroyed, like the BLAS facts: read from torch threads at any time.
Policy& State() {
  static Policy* policy = new Policy();
  return *policy;
}

// OpenBLAS's own pthreads pool is the one BLAS whose count matters apart from
// torch's: its threads are not torch's OpenMP team, and one count serves every
// calling thread.
bool Settable() {
  const BlasApi& api = Blas();
  return api.openblasSetNumThreads != nullptr && api.openblasGetNumThreads != nullptr && api.threading == "pthreads";
}

// The count the policy asks for; the caller holds the mutex.
int Wanted(const Policy& policy) { return policy.setting > 0 ? policy.setting : std::max(1, policy.budget / policy.jobs); }

}  // namespace

void ConfigureBlasThreads(int setting, int budget, int jobs) {
  Policy& policy = State();
  std::lock_guard<std::mutex> lock(policy.mutex);
  policy.setting = setting;
  if (budget >= 1) policy.budget = budget;
  if (jobs >= 1) policy.jobs = jobs;
  if (!Settable() || policy.setting < 0) return;
  int want = Wanted(policy);
  const BlasApi& api = Blas();
  // Read back rather than cached: anything else in the process may set it too.
  if (api.openblasGetNumThreads() != want) api.openblasSetNumThreads(want);
}

int BlasThreadBudget() {
  if (!Settable()) return 0;
  Policy& policy = State();
  std::lock_guard<std::mutex> lock(policy.mutex);
  return policy.setting == 0 ? policy.budget : 0;
}

int BlasThreadsPerJob() {
  if (!Settable()) return 0;
  Policy& policy = State();
  std::lock_guard<std::mutex> lock(policy.mutex);
  return policy.setting < 0 ? 0 : Wanted(policy);
}

BlasThreadOverride::BlasThreadOverride(int threads) {
  if (Settable() && threads >= 1) Blas().openblasSetNumThreads(threads);
}

BlasThreadOverride::~BlasThreadOverride() {
  if (!Settable()) return;
  Policy& policy = State();
  std::lock_guard<std::mutex> lock(policy.mutex);
  if (policy.setting >= 0) Blas().openblasSetNumThreads(Wanted(policy));
}

std::string BlasThreadControl() {
  const BlasApi& api = Blas();
  if (Settable()) {
    Policy& policy = State();
    std::lock_guard<std::mutex> lock(policy.mutex);
    return policy.setting < 0 ? "external" : policy.setting == 0 ? "auto" : "fixed";
  }
  if (api.name == "mkl" || (api.name == "openblas" && api.threading == "openmp")) return "intra-op";
  return "none";
}

}  // namespace tg
