// Cheap checks on a tensor's values, for the sampler's per-step guard.
#pragma once

#include <ATen/ATen.h>

namespace tg {

// No NaN or infinity anywhere (always true for integer tensors). One fused
// reduction; on CUDA, reading the answer waits for the device.
bool AllFinite(const at::Tensor& tensor);

}  // namespace tg
