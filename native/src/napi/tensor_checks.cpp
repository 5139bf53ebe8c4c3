// Cheap checks on a tensor's values, for the sampler's per-step guard.
#include "common/errors.h"
#include "napi/tensor.h"

namespace tg {

// One fused reduction; on CUDA, reading the answer waits for the device.
Napi::Value TensorWrap::AllFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    if (!at::isFloatingType(self.scalar_type()) && !at::isComplexType(self.scalar_type())) return Napi::Boolean::New(env, true);
    return Napi::Boolean::New(env, at::isfinite(self).all().item<bool>());
  });
}

}  // namespace tg
