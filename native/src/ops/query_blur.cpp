#include "ops/query_blur.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace tg {

namespace {

// A 1-D Gaussian kernel as the SEG reference makes it: size ceil(6 sigma) + 1
// made odd, clipped for an axis of n to min(k, n - (n mod 2 - 1)).
at::Tensor GaussianKernel(double sigma, int64_t n, const at::TensorOptions& options) {
  int64_t k = static_cast<int64_t>(std::ceil(6 * sigma)) + 1;
  if (k % 2 == 0) k += 1;
  k = std::min(k, n - (n % 2 - 1));
  double half = (k - 1) * 0.5;
  at::Tensor x = at::linspace(-half, half, k, options.dtype(at::kDouble));
  at::Tensor pdf = at::exp(-0.5 * (x / sigma).pow(2));
  return (pdf / pdf.sum()).to(options.dtype());
}

}  // namespace

at::Tensor BlurQueries(const at::Tensor& x, int64_t gridHeight, int64_t gridWidth, double sigma) {
  int64_t m = x.size(0), nq = x.size(1), channels = x.size(2);
  TORCH_CHECK(gridHeight * gridWidth == nq, "blur: the site's grid ", gridHeight, "x", gridWidth, " does not hold its ",
              nq, " queries");
  if (std::isinf(sigma)) return x.mean(1, /*keepdim=*/true).expand({m, nq, channels}).contiguous();
  // [M, Nq, C] -> [M * C, 1, H, W]: each channel over the query grid as an image.
  at::Tensor images = x.permute({0, 2, 1}).reshape({m * channels, 1, gridHeight, gridWidth});
  at::Tensor ky = GaussianKernel(sigma, gridHeight, x.options());
  at::Tensor kx = GaussianKernel(sigma, gridWidth, x.options());
  int64_t py = (ky.size(0) - 1) / 2, px = (kx.size(0) - 1) / 2;
  images = at::reflection_pad2d(images, {px, px, py, py});
  images = at::conv2d(images, ky.view({1, 1, -1, 1}));
  images = at::conv2d(images, kx.view({1, 1, 1, -1}));
  return images.reshape({m, channels, nq}).permute({0, 2, 1});
}

}  // namespace tg
