// The Gaussian blur of attention queries over their 2-D grid (SEG), shared by
// the hook ops of every attention form.
#pragma once

#include <ATen/ATen.h>

namespace tg {

// Blurs the query axis of `x` [M, Nq, C] (logits, or the queries themselves:
// the blur is linear, so blurring the logits q kᵀ blurs the queries) over the
// gridHeight x gridWidth grid, with reflect padding and SEG's kernel size;
// sigma = infinity gives every query the mean.
at::Tensor BlurQueries(const at::Tensor& x, int64_t gridHeight, int64_t gridWidth, double sigma);

}  // namespace tg
