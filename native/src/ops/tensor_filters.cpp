#include "ops/tensor_filters.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.h"

namespace tg {

namespace {

// A normalised 1-D Gaussian of odd length `size`.
at::Tensor GaussianKernel1d(int64_t size, double sigma, const at::TensorOptions& options) {
  at::Tensor x = at::arange(size, options.dtype(at::kDouble)) - static_cast<double>(size - 1) / 2.0;
  at::Tensor kernel = at::exp(-(x * x) / (2.0 * sigma * sigma));
  return (kernel / kernel.sum()).to(options.dtype());
}

}  // namespace

void RequireImageBatch(const at::Tensor& images, const char* op) {
  if (images.dim() != 4) {
    throw Error(code::kInvalidArgument, std::string(op) + " needs an image batch [N, C, H, W]; got shape " +
                                            c10::str(images.sizes()) + ".");
  }
  if (!at::isFloatingType(images.scalar_type())) {
    throw Error(code::kInvalidArgument, std::string(op) + " needs a floating tensor; got " +
                                            std::string(c10::toString(images.scalar_type())) + ".");
  }
}

at::Tensor GaussianBlur(const at::Tensor& images, int64_t size, double sigma, const char* op) {
  RequireImageBatch(images, op);
  int64_t height = images.size(2), width = images.size(3);
  if (size < 1 || size % 2 == 0 || size / 2 >= std::min(height, width)) {
    throw Error(code::kInvalidArgument, std::string(op) + ": kernelSize must be odd and its half below the image side (" +
                                            std::to_string(height) + "x" + std::to_string(width) + "); got " +
                                            std::to_string(size) + ".");
  }
  if (!(sigma > 0) || !std::isfinite(sigma)) {
    throw Error(code::kInvalidArgument, std::string(op) + ": sigma must be a positive finite number.");
  }
  int64_t channels = images.size(1);
  at::Tensor kernel = GaussianKernel1d(size, sigma, images.options());
  at::Tensor horizontal = kernel.view({1, 1, 1, size}).expand({channels, 1, 1, size});
  at::Tensor vertical = kernel.view({1, 1, size, 1}).expand({channels, 1, size, 1});
  int64_t pad = size / 2;
  at::Tensor padded = at::reflection_pad2d(images, {pad, pad, pad, pad});
  // `{}` (no bias) converts to c10::optional on libtorch 1.x and std::optional on 2.x.
  at::Tensor out = at::conv2d(padded, horizontal, {}, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
  out = at::conv2d(out, vertical, {}, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
  return out;
}

at::Tensor LowPass(const at::Tensor& images, double cutoff, const char* op) {
  RequireImageBatch(images, op);
  if (!(cutoff > 0) || cutoff > 1) throw Error(code::kInvalidArgument, std::string(op) + ": cutoff must be in (0, 1].");
  at::Tensor x = images.to(at::kFloat);
  at::Tensor spectrum = at::fft_fft2(x);
  auto options = x.options();
  at::Tensor fy = at::fft_fftfreq(images.size(2), 1.0, options) * 2.0;  // -1..1, 1 = Nyquist
  at::Tensor fx = at::fft_fftfreq(images.size(3), 1.0, options) * 2.0;
  at::Tensor radius = at::sqrt(fy.view({-1, 1}).pow(2) + fx.view({1, -1}).pow(2));
  at::Tensor keep = (radius <= cutoff).to(at::kFloat);
  at::Tensor out = at::real(at::fft_ifft2(spectrum * keep));
  return out.to(images.scalar_type());
}

}  // namespace tg
