// Tensor methods that compute: elementwise arithmetic, per-sample
// reductions, layout, and the finite check. Each checks its arguments on the
// main thread and returns a new handle (tensor.h).
#include <string>
#include <vector>

#include "napi/js_convert.h"
#include "napi/tensor.h"
#include "ops/tensor_checks.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/js_errors.h"

namespace tg {

namespace {

// The axes a per-sample reduction runs over: all but the batch axis.
std::vector<int64_t> NonBatchDims(const at::Tensor& tensor, const char* op) {
  if (tensor.dim() < 2) {
    throw Error(code::kInvalidArgument, std::string(op) + " needs a batch axis and at least one more; got shape " +
                                            c10::str(tensor.sizes()) + ". Reshape to [N, -1] first.");
  }
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < tensor.dim(); ++d) dims.push_back(d);
  return dims;
}

bool KeepDim(const Napi::CallbackInfo& info) { return info.Length() > 0 && info[0].ToBoolean().Value(); }

}  // namespace

// ---- arithmetic ------------------------------------------------------------

Napi::Value TensorWrap::Binary(const Napi::CallbackInfo& info, const char* name,
                               at::Tensor (*withTensor)(const at::Tensor&, const at::Tensor&),
                               at::Tensor (*withScalar)(const at::Tensor&, const at::Scalar&)) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    if (info.Length() > 0 && info[0].IsNumber()) return Wrap(env, withScalar(self, ToDouble(info[0], name)));
    return Wrap(env, withTensor(self, TensorOf(env, info.Length() > 0 ? info[0] : env.Undefined(),
                                             "the operand (a Tensor or a number)")));
  });
}

Napi::Value TensorWrap::Add(const Napi::CallbackInfo& info) {
  return Binary(info, "add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); },
                [](const at::Tensor& a, const at::Scalar& b) { return at::add(a, b); });
}

Napi::Value TensorWrap::Sub(const Napi::CallbackInfo& info) {
  return Binary(info, "sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); },
                [](const at::Tensor& a, const at::Scalar& b) { return at::sub(a, b); });
}

Napi::Value TensorWrap::Mul(const Napi::CallbackInfo& info) {
  return Binary(info, "mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); },
                [](const at::Tensor& a, const at::Scalar& b) { return at::mul(a, b); });
}

Napi::Value TensorWrap::Div(const Napi::CallbackInfo& info) {
  return Binary(info, "div", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); },
                [](const at::Tensor& a, const at::Scalar& b) { return at::div(a, b); });
}

Napi::Value TensorWrap::Neg(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return Wrap(info.Env(), at::neg(Checked(info.Env()))); });
}

Napi::Value TensorWrap::Sqrt(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return Wrap(info.Env(), at::sqrt(Checked(info.Env()))); });
}

Napi::Value TensorWrap::Lerp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    const at::Tensor& end = TensorOf(env, info.Length() > 0 ? info[0] : env.Undefined(), "lerp: end");
    Napi::Value weight = info.Length() > 1 ? info[1] : env.Undefined();
    if (weight.IsNumber()) return Wrap(env, at::lerp(self, end, ToDouble(weight, "lerp: weight")));
    return Wrap(env, at::lerp(self, end, TensorOf(env, weight, "lerp: weight (a Tensor or a number)")));
  });
}

// ---- per-sample reductions -------------------------------------------------

Napi::Value TensorWrap::MeanPerSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    return Wrap(env, at::mean(self, NonBatchDims(self, "meanPerSample"), KeepDim(info)));
  });
}

Napi::Value TensorWrap::StdPerSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    // Unbiased (N - 1), as torch.std and the guidance-rescale reference use.
    return Wrap(env, at::std(self, NonBatchDims(self, "stdPerSample"), /*unbiased=*/true, KeepDim(info)));
  });
}

Napi::Value TensorWrap::NormPerSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    return Wrap(env, at::norm(self, 2, NonBatchDims(self, "normPerSample"), KeepDim(info)));
  });
}

// ---- layout ----------------------------------------------------------------

Napi::Value TensorWrap::Narrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    if (self.dim() == 0) throw Error(code::kInvalidArgument, "narrow needs a batch axis; this tensor is 0-d.");
    int64_t start = ToInt64(info.Length() > 0 ? info[0] : env.Undefined(), "narrow: start");
    int64_t length = ToInt64(info.Length() > 1 ? info[1] : env.Undefined(), "narrow: length");
    int64_t batch = self.size(0);
    if (start < 0 || length < 0 || start + length > batch) {
      throw Error(code::kInvalidArgument, "narrow(" + std::to_string(start) + ", " + std::to_string(length) +
                                              ") is outside the batch axis of size " + std::to_string(batch) + ".");
    }
    return Wrap(env, self.narrow(0, start, length));
  });
}

Napi::Value TensorWrap::Repeat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    if (self.dim() == 0) throw Error(code::kInvalidArgument, "repeat needs a batch axis; this tensor is 0-d.");
    int64_t times = ToInt64(info.Length() > 0 ? info[0] : env.Undefined(), "repeat: times");
    if (times < 1) throw Error(code::kInvalidArgument, "repeat: times must be at least 1.");
    std::vector<int64_t> repeats(self.dim(), 1);
    repeats[0] = times;
    return Wrap(env, self.repeat(repeats));
  });
}

Napi::Value TensorWrap::Reshape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    std::vector<int64_t> shape = ToShape(info.Length() > 0 ? info[0] : env.Undefined(), "reshape: shape", true);
    int64_t known = 1;
    bool inferred = false;
    for (int64_t size : shape) {
      if (size == -1) inferred = true; else known *= size;
    }
    bool fits = inferred ? (known > 0 && self.numel() % known == 0) : known == self.numel();
    if (!fits) {
      throw Error(code::kInvalidArgument, "cannot reshape " + c10::str(self.sizes()) + " (" +
                                              std::to_string(self.numel()) + " elements) to " + c10::str(shape) + ".");
    }
    return Wrap(env, self.reshape(shape));
  });
}

Napi::Value TensorWrap::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    Napi::Value options = info.Length() > 0 ? info[0] : env.Undefined();
    at::Device device = self.device();
    std::string deviceName = OptionalString(options, "device", "");
    if (!deviceName.empty()) device = ParseDevice(deviceName);
    at::ScalarType dtype = self.scalar_type();
    std::string dtypeName = OptionalString(options, "dtype", "");
    if (!dtypeName.empty()) dtype = DtypeByName(dtypeName).scalarType;
    return Wrap(env, self.to(device, dtype));
  });
}

Napi::Value TensorWrap::Clone(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return Wrap(info.Env(), Checked(info.Env()).clone()); });
}

// ---- checks --------------------------------------------------------------

Napi::Value TensorWrap::AllFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const at::Tensor& self = Checked(env);
    return Napi::Boolean::New(env, tg::AllFinite(self));  // the op, not this method
  });
}

}  // namespace tg
