#include "ops/preconditioning.h"

#include <cmath>
#include <string>

#include "common/errors.h"

namespace tg {

at::Tensor PrepareInputs(const Preconditioning& p, std::vector<c10::IValue>& inputs) {
  if (inputs.size() < 2 || !inputs[0].isTensor() || !inputs[1].isTensor()) {
    throw Error(code::kInputType, "preconditioning needs a method whose first two inputs are tensors (x and the time).");
  }
  at::Tensor x = inputs[0].toTensor();
  if (x.dim() < 1) throw Error(code::kInputShape, "preconditioning needs x with a batch axis.");
  inputs[0] = at::mul(x, p.inputScale);
  inputs[1] = at::full({x.size(0)}, p.time, at::TensorOptions().dtype(at::kFloat).device(x.device()));
  return x;
}

at::Tensor Denoised(const Preconditioning& p, const at::Tensor& x, const c10::IValue& output) {
  if (!output.isTensor()) {
    throw Error(code::kOutputType, "preconditioning needs a model that returns one tensor, got " +
                                       output.tagKind() + ".");
  }
  at::Tensor scaled = at::mul(output.toTensor(), p.out);
  if (p.skip == 0) return scaled;
  // x · 1 is x exactly: skip the kernel (eps and v models at c_skip = 1 for eps).
  return at::add(p.skip == 1 ? x : at::mul(x, p.skip), scaled);
}

}  // namespace tg
