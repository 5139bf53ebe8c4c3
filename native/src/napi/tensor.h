// Tensor: a JS handle to an at::Tensor.
//
// Handles are immutable: every op returns a new handle, so a tensor read by
// a forward on a pool thread can never change under it. dispose() frees the
// handle's reference at once (idempotent); the GC finalizer is only a
// fallback. CPU bytes are reported to V8 as external memory so the GC sees
// the pressure of handles that are never disposed.
//
// The handle, its factories, properties and copies to JS are in tensor.cpp;
// arithmetic, reductions, layout and checks in tensor_math.cpp; filters in
// tensor_filters_js.cpp.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

namespace tg {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps `tensor` in a new JS Tensor.
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  // True when `value` is a Tensor handle of this environment.
  static bool IsTensor(Napi::Env env, const Napi::Value& value);
  // The tensor behind `value`; throws ERR_INVALID_ARGUMENT for a non-Tensor
  // and ERR_DISPOSED for a disposed one. `what` names the argument.
  static const at::Tensor& TensorOf(Napi::Env env, const Napi::Value& value, const char* what);

  static int64_t LiveCount();

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

 private:
  // Factories.
  static Napi::Value FromArray(const Napi::CallbackInfo& info);
  static Napi::Value Randn(const Napi::CallbackInfo& info);
  // full(shape, value, { dtype, device }): made on the device itself (a fill
  // kernel on CUDA, no host-to-device copy).
  static Napi::Value Full(const Napi::CallbackInfo& info);
  static Napi::Value Cat(const Napi::CallbackInfo& info);

  // Properties.
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  // Elementwise arithmetic with a tensor (broadcasting) or a number.
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Sub(const Napi::CallbackInfo& info);
  Napi::Value Mul(const Napi::CallbackInfo& info);
  Napi::Value Div(const Napi::CallbackInfo& info);
  Napi::Value Neg(const Napi::CallbackInfo& info);
  Napi::Value Sqrt(const Napi::CallbackInfo& info);
  Napi::Value Lerp(const Napi::CallbackInfo& info);

  // Reductions over every axis but the batch axis (0).
  Napi::Value MeanPerSample(const Napi::CallbackInfo& info);
  Napi::Value StdPerSample(const Napi::CallbackInfo& info);
  Napi::Value NormPerSample(const Napi::CallbackInfo& info);

  // Filters, thresholds and axis reductions (tensor_filters_js.cpp).
  Napi::Value GaussianBlur(const Napi::CallbackInfo& info);
  Napi::Value LowPass(const Napi::CallbackInfo& info);
  Napi::Value ResizeNearest(const Napi::CallbackInfo& info);
  Napi::Value GreaterThan(const Napi::CallbackInfo& info);
  Napi::Value Clamp(const Napi::CallbackInfo& info);
  Napi::Value SumAxis(const Napi::CallbackInfo& info);
  Napi::Value MeanAxis(const Napi::CallbackInfo& info);
  Napi::Value SumPerSample(const Napi::CallbackInfo& info);

  // allFinite() -> boolean: no NaN or infinity anywhere (tensor_math.cpp).
  Napi::Value AllFinite(const Napi::CallbackInfo& info);

  // Layout.
  Napi::Value Narrow(const Napi::CallbackInfo& info);
  Napi::Value Repeat(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Clone(const Napi::CallbackInfo& info);

  // Copies to a TypedArray off the main thread.
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const at::Tensor& Checked(Napi::Env env) const;
  Napi::Value Binary(const Napi::CallbackInfo& info, const char* name,
                     at::Tensor (*withTensor)(const at::Tensor&, const at::Tensor&),
                     at::Tensor (*withScalar)(const at::Tensor&, const at::Scalar&));
  void Release();

  at::Tensor tensor_;
  int64_t reportedBytes_ = 0;
  bool live_ = false;
};

}  // namespace tg
