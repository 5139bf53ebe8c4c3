// Tensor methods for guidance strategies and samplers beyond plain
// arithmetic: image filters (SAG's Gaussian blur, the FFT low-pass baseline;
// ops/tensor_filters.h), nearest resizing (attention masks up to the sample
// size), thresholds, clamps and axis reductions.
#include <optional>
#include <vector>

#include "napi/js_convert.h"
#include "napi/tensor.h"
#include "ops/tensor_filters.h"
#include "runtime/js_errors.h"

namespace tg {

namespace {

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i] : info.Env().Undefined();
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

// gaussianBlur(kernelSize, sigma) (ops/tensor_filters.h).
Napi::Value TensorWrap::GaussianBlur(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    RequireImageBatch(self, "gaussianBlur");
    int64_t size = ToInt64(Arg(info, 0), "gaussianBlur: kernelSize");
    double sigma = ToDouble(Arg(info, 1), "gaussianBlur: sigma");
    return Wrap(env, tg::GaussianBlur(self, size, sigma, "gaussianBlur"));
  });
}

// lowPass(cutoff) (ops/tensor_filters.h).
Napi::Value TensorWrap::LowPass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    RequireImageBatch(self, "lowPass");
    return Wrap(env, tg::LowPass(self, ToDouble(Arg(info, 0), "lowPass: cutoff"), "lowPass"));
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
