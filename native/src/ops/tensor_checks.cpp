#include "ops/tensor_checks.h"

namespace tg {

bool AllFinite(const at::Tensor& tensor) {
  if (!at::isFloatingType(tensor.scalar_type()) && !at::isComplexType(tensor.scalar_type())) return true;
  return at::isfinite(tensor).all().item<bool>();
}

}  // namespace tg
