// Which BLAS libtorch's matrix multiplies run on in this process, found from
// the libraries actually loaded rather than from how libtorch was built:
// Debian's libtorch calls whatever libblas.so.3 the alternatives system
// selects, and on a fresh install that is the single-threaded reference BLAS
// (matrix multiplies ~20x slower than OpenBLAS on the same machine).
#pragma once

#include <string>

namespace tg {

// Entry points of the BLAS that libtorch calls, where it has them (null
// otherwise). Looked up once, in the library that provides libtorch's sgemm_
// and the libraries it depends on, so that an OpenBLAS loaded for some other
// reason (say, by LAPACK) is never mistaken for the one libtorch uses.
struct BlasApi {
  // "openblas", "mkl", "blis", "atlas", "reference" or "unknown".
  std::string name;
  // The file that provides sgemm_ (symlinks resolved); libtorch's own file
  // when the BLAS is linked into it (MKL in PyTorch's builds); "" if none.
  std::string library;
  // The vendor's build description (openblas_get_config(), MKL's version
  // string, BLIS's version), or "".
  std::string config;
  // How the BLAS runs in parallel: "pthreads" (a pool of its own, one
  // process-wide thread count), "openmp" (the calling thread's OpenMP team,
  // so it follows torch's intra-op setting), "sequential", or "" (unknown).
  std::string threading;

  int (*openblasGetNumThreads)() = nullptr;
  void (*openblasSetNumThreads)(int) = nullptr;
  int (*mklGetMaxThreads)() = nullptr;
  long long (*bliGetNumThreads)() = nullptr;  // BLIS's dim_t is 64-bit
};

// Detected on first use (thread-safe), then cached: the loaded BLAS cannot
// change while the process runs.
const BlasApi& Blas();

// BLAS threads one matrix multiply started now may use; -1 when the BLAS
// does not say. The reference BLAS is always 1.
int BlasThreadsNow();

}  // namespace tg
