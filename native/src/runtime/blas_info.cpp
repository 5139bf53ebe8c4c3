#include "runtime/blas_info.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace tg {

namespace {

// The file an address lies in, as the loader opened it ("" if none).
std::string LoadedName(void* address) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

std::string RealPath(const std::string& path) {
  if (path.empty()) return path;
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A symbol of the already loaded library `file` or of the libraries it
// depends on: Debian's libblas.so.3 of OpenBLAS or BLIS is a thin wrapper
// whose vendor functions live in the library it links (libopenblas.so.0).
void* SymbolNear(const std::string& file, const char* symbol) {
  if (file.empty()) return nullptr;
  void* handle = dlopen(file.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return nullptr;
  void* found = dlsym(handle, symbol);
  dlclose(handle);  // balances the reference RTLD_NOLOAD took; the library stays loaded
  return found;
}

template <typename Fn>
Fn As(void* symbol) {
  return reinterpret_cast<Fn>(symbol);
}

// libtorch's own file: where a BLAS linked statically into it lives.
std::string LibtorchFile() {
  return LoadedName(reinterpret_cast<void*>(&at::globalContext));
}

BlasApi Detect() {
  BlasApi api;
  // dlsym(RTLD_DEFAULT) from this library searches the scopes libtorch's
  // own reference to sgemm_ was bound through, in the same order: the global
  // scope (the executable, LD_PRELOAD) first, then the group the addon and
  // libtorch were loaded in. So this is the sgemm_ libtorch calls.
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  if (sgemm == nullptr) sgemm = dlsym(RTLD_DEFAULT, "cblas_sgemm");
  std::string loaded = LoadedName(sgemm);
  api.library = RealPath(loaded);

  if (at::globalContext().hasMKL()) {
    // PyTorch's own builds link MKL into libtorch_cpu, often with hidden
    // symbols; torch sets MKL's thread count with its intra-op count.
    api.name = "mkl";
    if (api.library.empty()) api.library = RealPath(LibtorchFile());
    void* getMax = dlsym(RTLD_DEFAULT, "MKL_Get_Max_Threads");
    if (getMax == nullptr) getMax = dlsym(RTLD_DEFAULT, "mkl_get_max_threads");
    api.mklGetMaxThreads = As<int (*)()>(getMax);
    if (auto version = As<void (*)(char*, int)>(dlsym(RTLD_DEFAULT, "MKL_Get_Version_String"))) {
      char buffer[256] = {};
      version(buffer, sizeof(buffer) - 1);
      api.config = buffer;
    }
    api.threading = "openmp";
    return api;
  }

  if (void* config = SymbolNear(loaded, "openblas_get_config")) {
    api.name = "openblas";
    const char* text = As<char* (*)()>(config)();
    api.config = text != nullptr ? text : "";
    api.openblasGetNumThreads = As<int (*)()>(SymbolNear(loaded, "openblas_get_num_threads"));
    api.openblasSetNumThreads = As<void (*)(int)>(SymbolNear(loaded, "openblas_set_num_threads"));
    // openblas_get_parallel(): 0 sequential, 1 its own pthreads, 2 OpenMP.
    if (auto parallel = As<int (*)()>(SymbolNear(loaded, "openblas_get_parallel"))) {
      int kind = parallel();
      api.threading = kind == 0 ? "sequential" : kind == 2 ? "openmp" : "pthreads";
    }
    return api;
  }
  if (void* version = SymbolNear(loaded, "bli_info_get_version_str")) {
    api.name = "blis";
    const char* text = As<const char* (*)()>(version)();
    api.config = std::string("BLIS ") + (text != nullptr ? text : "");
    api.bliGetNumThreads = As<long long (*)()>(SymbolNear(loaded, "bli_thread_get_num_threads"));
    return api;
  }
  void* mkl = SymbolNear(loaded, "MKL_Get_Max_Threads");
  if (mkl != nullptr) {
    // MKL as the system's libblas.so.3 (Debian's libmkl-rt alternative).
    api.name = "mkl";
    api.mklGetMaxThreads = As<int (*)()>(mkl);
    return api;
  }
  if (SymbolNear(loaded, "ATL_buildinfo") != nullptr) {
    api.name = "atlas";
    return api;
  }
  // A libblas.so with no vendor interface at all: Netlib's reference BLAS
  // (Debian's libblas3), one thread, no blocking for caches.
  if (BaseName(api.library).rfind("libblas.so", 0) == 0) {
    api.name = "reference";
    api.config = "Netlib reference BLAS";
    api.threading = "sequential";
    return api;
  }
  api.name = "unknown";
  return api;
}

}  // namespace

const BlasApi& Blas() {
  // Never destroyed: a torch job may end (and ask) after static destructors ran.
  static const BlasApi* api = new BlasApi(Detect());
  return *api;
}

int BlasThreadsNow() {
  const BlasApi& api = Blas();
  if (api.name == "reference") return 1;
  if (api.openblasGetNumThreads != nullptr) return api.openblasGetNumThreads();
  if (api.mklGetMaxThreads != nullptr) return api.mklGetMaxThreads();
  // PyTorch keeps MKL's count equal to its intra-op count (at::set_num_threads).
  if (api.name == "mkl") return at::get_num_threads();
  if (api.bliGetNumThreads != nullptr) {
    long long threads = api.bliGetNumThreads();
    return threads > 0 ? static_cast<int>(threads) : 1;  // BLIS: below 1 means "not set", i.e. sequential
  }
  return -1;
}

}  // namespace tg
