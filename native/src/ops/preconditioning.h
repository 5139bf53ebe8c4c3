// A denoiser's preconditioning, applied on the torch thread around a forward
// (Model.run's `preconditioning` option, which the guided denoiser uses):
//
//   F = model(c_in · x, full([N], c_noise), ...rest);   D = c_skip · x + c_out · F
//
// Why here and not as eager ops from JS: each JS tensor op is an N-API call
// on the main thread (argument checks, a handle, a wrapper object) between
// two forwards; four of them per forward cost more than the kernels on a
// launch-bound model (benchmarks/step-profile.ts, "path"). On the torch
// thread they are plain ATen calls, in the order the JS ops ran them, so the
// results are bit for bit the same.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

#include <vector>

namespace tg {

// The four numbers of one forward (napi/hook_plan_js.h reads them from JS).
struct Preconditioning {
  double inputScale = 1;  // c_in
  double time = 0;        // c_noise: the second input, filled per sample
  double skip = 0;        // c_skip
  double out = 1;         // c_out
};

// Before the forward, on the torch thread: returns x (the first input, as
// given) and replaces inputs[0] by c_in · x and inputs[1] by a float tensor
// of N copies of c_noise on x's device (PlaceInputs then casts both).
at::Tensor PrepareInputs(const Preconditioning& p, std::vector<c10::IValue>& inputs);

// After the forward: c_skip · x + c_out · F, as the JS ops computed it.
at::Tensor Denoised(const Preconditioning& p, const at::Tensor& x, const c10::IValue& output);

}  // namespace tg
