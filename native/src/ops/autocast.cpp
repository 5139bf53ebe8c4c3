#include "ops/autocast.h"

#include <ATen/autocast_mode.h>

namespace tg {

// libtorch >= 2.4 takes the device type; 1.x and early 2.x have one switch
// per backend. CMake checks which one compiles (TORCH_GUIDANCE_AUTOCAST_BY_DEVICE).
namespace {
#if defined(TORCH_GUIDANCE_AUTOCAST_BY_DEVICE)
bool Enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
void SetEnabled(bool enabled) { at::autocast::set_autocast_enabled(at::kCUDA, enabled); }
at::ScalarType Dtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
void SetDtype(at::ScalarType dtype) { at::autocast::set_autocast_dtype(at::kCUDA, dtype); }
#elif defined(TORCH_GUIDANCE_AUTOCAST_GLOBAL)
bool Enabled() { return at::autocast::is_enabled(); }
void SetEnabled(bool enabled) { at::autocast::set_enabled(enabled); }
at::ScalarType Dtype() { return at::autocast::get_autocast_gpu_dtype(); }
void SetDtype(at::ScalarType dtype) { at::autocast::set_autocast_gpu_dtype(dtype); }
#else
#define TORCH_GUIDANCE_NO_AUTOCAST 1
#endif
}  // namespace

AutocastScope::AutocastScope(at::Device device, at::ScalarType dtype) {
#if defined(TORCH_GUIDANCE_NO_AUTOCAST)
  (void)device;
  (void)dtype;
#else
  if (!device.is_cuda() || (dtype != at::kHalf && dtype != at::kBFloat16)) return;
  active_ = true;
  previousEnabled_ = Enabled();
  previousDtype_ = Dtype();
  SetEnabled(true);
  SetDtype(dtype);
  at::autocast::increment_nesting();
#endif
}

AutocastScope::~AutocastScope() {
#if !defined(TORCH_GUIDANCE_NO_AUTOCAST)
  if (!active_) return;
  // As torch.autocast's __exit__: the cast cache lives until the outermost scope ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(previousEnabled_);
  SetDtype(previousDtype_);
#endif
}

}  // namespace tg
