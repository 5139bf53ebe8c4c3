// The module-output hook. Its tensor is batch-major, [B * R, ...] (R = 1 for
// the usual [B, ...]; heads or tokens folded into the first axis work too),
// and an entry for samples [start, start + length) touches rows
// [start * R, (start + length) * R) only, so other samples are bit-identical.
#include "ops/module_hook_op.h"

#include <c10/util/Exception.h>

#include "ops/hook_plan.h"
#include "ops/seeded_noise.h"

namespace tg {

namespace {

// The slice's random tensor, as randn([length, ...sample shape], seed)
// draws it (rand when `uniform`).
at::Tensor SliceNoise(const ModuleHookEntry& entry, const at::Tensor& slice, bool uniform) {
  std::vector<int64_t> shape{entry.length};
  int64_t rows = slice.size(0) / entry.length;
  if (rows != 1) shape.push_back(rows);
  shape.insert(shape.end(), slice.sizes().begin() + 1, slice.sizes().end());
  at::Tensor noise = (uniform ? SeededUniform : SeededNoise)(entry.seeds, entry.perSampleSeeds, shape).reshape(slice.sizes());
  if (slice.is_cuda()) {
    // From pinned memory without blocking, as Tensor uploads do (napi/tensor.cpp):
    // a pageable copy would make this thread wait for the GPU mid-forward.
    noise = noise.pin_memory().to(slice.device(), noise.scalar_type(), /*non_blocking=*/true);
  }
  return noise.to(slice.options());
}

}  // namespace

at::Tensor ModuleOut(const at::Tensor& x, const at::Tensor& input, int64_t site) {
  HookPlan* plan = ThreadHookPlan();
  if (plan == nullptr) return x;
  if (plan->probe) {
    ModuleShape& shape = plan->moduleShapes[site];
    shape.output = x.sizes().vec();
    shape.input = input.sizes().vec();
  }
  at::Tensor result = x;
  bool copied = false;
  for (const ModuleHookEntry& entry : plan->moduleEntries) {
    if (entry.site != site) continue;
    TORCH_CHECK(x.dim() >= 1 && x.size(0) % plan->batch == 0, "module output of shape ", x.sizes(),
                " has no batch axis of a multiple of ", plan->batch);
    int64_t rows = x.size(0) / plan->batch;
    if (!copied) {
      // Never write into `x`: other ops may hold it.
      result = x.clone(at::MemoryFormat::Contiguous);
      copied = true;
    }
    at::Tensor slice = result.narrow(0, entry.start * rows, entry.length * rows);
    if (entry.action == ModuleAction::kNoise) {
      slice.add_(SliceNoise(entry, slice, /*uniform=*/false), entry.scale);
    } else if (entry.action == ModuleAction::kDropout) {
      // As torch's dropout in training: an element is zeroed where its
      // uniform draw u < p, the rest scaled by 1 / (1 - p).
      at::Tensor keep = SliceNoise(entry, slice, /*uniform=*/true).ge(entry.probability);
      slice.mul_(keep.to(slice.scalar_type()).div_(1 - entry.probability));
    } else {
      // (A call without a tensor argument passes `x` as `input`; ParsePlan
      // refuses skip on such sites.)
      TORCH_CHECK(input.sizes() == x.sizes(), "skip: the module's output has shape ", x.sizes(), " but its input ",
                  input.sizes(), "; only a block whose output has its input's shape can be skipped");
      slice.copy_(input.narrow(0, entry.start * rows, entry.length * rows));
    }
  }
  return result;
}

}  // namespace tg
