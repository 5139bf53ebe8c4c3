// guidance::module_out(x, input, site): the hook on a module's output that
// the module pass (jit/module_pass.h) inserts. Registered in hook_ops.cpp.
#pragma once

#include <ATen/ATen.h>

namespace tg {

// Returns `x` unless the thread's plan has entries for `site`; then a copy of
// `x` whose planned slices have noise added, elements dropped, or are
// replaced by `input`.
at::Tensor ModuleOut(const at::Tensor& x, const at::Tensor& input, int64_t site);

}  // namespace tg
