// Autocast around a forward of a reduced-precision model on CUDA.
//
// Converting a module's weights to float16 is not enough for most exported
// models: they build float32 tensors inside forward (a sinusoidal time
// embedding from torch.arange, say) and then multiply them with float16
// weights, which fails. Python users run such models under torch.autocast;
// this is the same thing, per forward and per thread.
#pragma once

#include <ATen/ATen.h>

namespace tg {

class AutocastScope {
 public:
  // Active only for a CUDA device and a float16/bfloat16 dtype; otherwise a no-op.
  AutocastScope(at::Device device, at::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previousEnabled_ = false;
  at::ScalarType previousDtype_ = at::kHalf;
};

}  // namespace tg
