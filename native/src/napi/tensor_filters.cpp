// Tensor ops for guidance strategies and samplers beyond plain arithmetic:
// image filters (SAG's Gaussian blur, the FFT low-pass baseline), nearest
// resizing (attention masks up to the sample size), thresholds, clamps and
// axis reductions. Kept apart from tensor.cpp, which holds the handle itself.
#include <cmath>
#include <optional>
#include <vector>

#include "common/errors.h"
#include "napi/js_convert.h"
#include "napi/tensor.h"

namespace tg {

namespace {

void RequireImageBatch(const at::Tensor& self, const char* op) {
  if (self.dim() != 4) {
    throw Error(code::kInvalidArgument, std::string(op) + " needs an image batch [N, C, H, W]; got shape " +
                                            c10::str(self.sizes()) + ".");
  }
  if (!at::isFloatingType(self.scalar_type())) {
    throw Error(code::kInvalidArgument, std::string(op) + " needs a floating tensor; got " +
                                            std::string(c10::toString(self.scalar_type())) + ".");
  }
}

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i] : info.Env().Undefined();
}

// A normalised 1-D Gaussian of odd length `size`.
at::Tensor GaussianKernel1d(int64_t size, double sigma, const at::TensorOptions& options) {
  at::Tensor x = at::arange(size, options.dtype(at::kDouble)) - static_cast<double>(size - 1) / 2.0;
  at::Tensor kernel = at::exp(-(x * x) / (2.0 * sigma * sigma));
  return (kernel / kernel.sum()).to(options.dtype());
}

int64_t AxisArg(const Napi::CallbackInfo& info, const at::Tensor& self, const char* op) {
  int64_t axis = ToInt64(Arg(info, 0), op);
  int64_t dims = self.dim();
  if (axis < -dims || axis >= dims) {
    throw Error(code::kInvalidArgument, std::string(op) + ": axis " + std::to_string(axis) + " is outside a " +
                                            std::to_string(dims) + "-d tensor.");
  }
  return axis < 0 ? axis + dims : axis;
}

}  // namespace

// Separable Gaussian blur over H and W with reflect padding (torchvision's
// gaussian_blur, which SAG uses). `kernelSize` odd, at most the image side.
Napi::Value TensorWrap::GaussianBlur(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    RequireImageBatch(self, "gaussianBlur");
    int64_t size = ToInt64(Arg(info, 0), "gaussianBlur: kernelSize");
    double sigma = ToDouble(Arg(info, 1), "gaussianBlur: sigma");
    int64_t height = self.size(2), width = self.size(3);
    if (size < 1 || size % 2 == 0 || size / 2 >= std::min(height, width)) {
      throw Error(code::kInvalidArgument, "gaussianBlur: kernelSize must be odd and its half below the image side (" +
                                              std::to_string(height) + "x" + std::to_string(width) + "); got " +
                                              std::to_string(size) + ".");
    }
    if (!(sigma > 0) || !std::isfinite(sigma)) {
      throw Error(code::kInvalidArgument, "gaussianBlur: sigma must be a positive finite number.");
    }
    int64_t channels = self.size(1);
    at::Tensor kernel = GaussianKernel1d(size, sigma, self.options());
    at::Tensor horizontal = kernel.view({1, 1, 1, size}).expand({channels, 1, 1, size});
    at::Tensor vertical = kernel.view({1, 1, size, 1}).expand({channels, 1, size, 1});
    int64_t pad = size / 2;
    at::Tensor padded = at::reflection_pad2d(self, {pad, pad, pad, pad});
    // `{}` (no bias) converts to c10::optional on libtorch 1.x and std::optional on 2.x.
    at::Tensor out = at::conv2d(padded, horizontal, {}, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
    out = at::conv2d(out, vertical, {}, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
    return Wrap(env, out);
  });
}

// Keeps the spatial frequencies within `cutoff` (a fraction of Nyquist, 0..1]
// of the centre, radially; the SAG paper's frequency-filter baseline.
Napi::Value TensorWrap::LowPass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    RequireImageBatch(self, "lowPass");
    double cutoff = ToDouble(Arg(info, 0), "lowPass: cutoff");
    if (!(cutoff > 0) || cutoff > 1) throw Error(code::kInvalidArgument, "lowPass: cutoff must be in (0, 1].");
    at::Tensor x = self.to(at::kFloat);
    at::Tensor spectrum = at::fft_fft2(x);
    auto options = x.options();
    at::Tensor fy = at::fft_fftfreq(self.size(2), 1.0, options) * 2.0;  // -1..1, 1 = Nyquist
    at::Tensor fx = at::fft_fftfreq(self.size(3), 1.0, options) * 2.0;
    at::Tensor radius = at::sqrt(fy.view({-1, 1}).pow(2) + fx.view({1, -1}).pow(2));
    at::Tensor keep = (radius <= cutoff).to(at::kFloat);
    at::Tensor out = at::real(at::fft_ifft2(spectrum * keep));
    return Wrap(env, out.to(self.scalar_type()));
  });
}

// Nearest-neighbour resize of [N, C, h, w] to [N, C, height, width].
Napi::Value TensorWrap::ResizeNearest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    RequireImageBatch(self, "resizeNearest");
    int64_t height = ToInt64(Arg(info, 0), "resizeNearest: height");
    int64_t width = ToInt64(Arg(info, 1), "resizeNearest: width");
    if (height < 1 || width < 1) throw Error(code::kInvalidArgument, "resizeNearest: sizes must be positive.");
    return Wrap(env, at::upsample_nearest2d(self, {height, width}));
  });
}

// 1 where this > value, else 0, in this tensor's (floating) dtype.
Napi::Value TensorWrap::GreaterThan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    double value = ToDouble(Arg(info, 0), "greaterThan: value");
    at::ScalarType dtype = at::isFloatingType(self.scalar_type()) ? self.scalar_type() : at::kFloat;
    return Wrap(env, at::gt(self, value).to(dtype));
  });
}

// clamp(min, max); either bound may be null.
Napi::Value TensorWrap::Clamp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    // std::optional here and the one-sided ops below: libtorch 1.x takes
    // c10::optional, 2.x std::optional, and neither converts to the other.
    std::optional<double> low, high;
    if (Arg(info, 0).IsNumber()) low = ToDouble(Arg(info, 0), "clamp: min");
    if (Arg(info, 1).IsNumber()) high = ToDouble(Arg(info, 1), "clamp: max");
    if (!low && !high) throw Error(code::kInvalidArgument, "clamp needs a min, a max, or both (null for none).");
    if (low && high) return Wrap(env, at::clamp(self, at::Scalar(*low), at::Scalar(*high)));
    return Wrap(env, low ? at::clamp_min(self, *low) : at::clamp_max(self, *high));
  });
}

Napi::Value TensorWrap::SumAxis(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    int64_t axis = AxisArg(info, self, "sumAxis: axis");
    return Wrap(env, at::sum(self, {axis}, Arg(info, 1).ToBoolean().Value()));
  });
}

Napi::Value TensorWrap::MeanAxis(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    int64_t axis = AxisArg(info, self, "meanAxis: axis");
    return Wrap(env, at::mean(self, {axis}, Arg(info, 1).ToBoolean().Value()));
  });
}

// Sum over every axis but the batch axis (per-sample dot products: a.mul(b).sumPerSample()).
Napi::Value TensorWrap::SumPerSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    if (self.dim() < 2) {
      throw Error(code::kInvalidArgument, "sumPerSample needs a batch axis and at least one more; got shape " +
                                              c10::str(self.sizes()) + ".");
    }
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < self.dim(); ++d) dims.push_back(d);
    return Wrap(env, at::sum(self, dims, Arg(info, 0).ToBoolean().Value()));
  });
}

}  // namespace tg
