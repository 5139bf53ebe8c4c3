#include "runtime/intra_op_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace tg {

namespace {

// The OpenMP runtime libtorch calls, found the way libtorch's own references
// were bound (dlsym from this library searches the group it was loaded in,
// where libtorch's libgomp or libiomp lives). Null without OpenMP.
struct OpenMp {
  void (*setNumThreads)(int) = nullptr;
  int (*getMaxThreads)() = nullptr;
};

const OpenMp& Api() {
  static const OpenMp api = [] {
    OpenMp found;
    found.setNumThreads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    found.getMaxThreads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    if (found.setNumThreads == nullptr || found.getMaxThreads == nullptr) found = OpenMp{};
    return found;
  }();
  return api;
}

}  // namespace

IntraOpThreadsScope::IntraOpThreadsScope(int threads) {
  const OpenMp& api = Api();
  if (threads <= 0 || api.setNumThreads == nullptr) return;
  // libtorch applies its process-wide count to a thread the first time the
  // thread asks for it; ask now, so that it does not undo this setting
  // mid-forward.
  at::get_num_threads();
  const int current = api.getMaxThreads();
  if (current == threads) return;
  previous_ = current;
  api.setNumThreads(threads);
}

IntraOpThreadsScope::~IntraOpThreadsScope() {
  if (previous_ > 0) Api().setNumThreads(previous_);
}

}  // namespace tg
