#include "napi/feature_statistics_js.h"

#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "napi/js_convert.h"
#include "ops/feature_statistics.h"
#include "runtime/blas_gate.h"
#include "runtime/js_errors.h"
#include "runtime/promise_worker.h"

namespace tg {

namespace {

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i] : info.Env().Undefined();
}

Napi::Value Field(const Napi::Value& object, const char* key) {
  if (!object.IsObject()) return object.Env().Undefined();
  return object.As<Napi::Object>().Get(key);
}

[[noreturn]] void Invalid(const std::string& message) { throw Error(code::kInvalidArgument, message); }

int64_t Elements(const std::vector<int64_t>& shape, const std::string& what) {
  int64_t count = 1;
  for (int64_t size : shape) {
    if (size < 0) Invalid(what + ": sizes must be non-negative; got " + c10::str(shape) + ".");
    if (size != 0 && count > std::numeric_limits<int64_t>::max() / size) Invalid(what + ": " + c10::str(shape) + " is too large.");
    count *= size;
  }
  return count;
}

// A Float32Array or Float64Array holding exactly `shape`'s values, copied
// into a tensor. Copied, not referenced: the caller may write to the array,
// or transfer its buffer away, while the job runs on another thread.
at::Tensor CopyArray(Napi::Env env, const Napi::Value& value, const std::vector<int64_t>& shape, const std::string& what) {
  if (!value.IsTypedArray()) Invalid(what + " must be a Float32Array or a Float64Array.");
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  at::ScalarType dtype = at::kDouble;
  if (array.TypedArrayType() == napi_float32_array) {
    dtype = at::kFloat;
  } else if (array.TypedArrayType() != napi_float64_array) {
    Invalid(what + " must be a Float32Array or a Float64Array.");
  }
  const int64_t count = Elements(shape, what);
  if (static_cast<int64_t>(array.ElementLength()) != count) {
    Invalid(what + " has " + std::to_string(array.ElementLength()) + " values; " + c10::str(shape) + " needs " +
            std::to_string(count) + ". Fix: give count x dim values, row-major.");
  }
  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(dtype));
  void* data = nullptr;
  napi_status status = napi_get_typedarray_info(env, array, nullptr, nullptr, &data, nullptr, nullptr);
  if (status != napi_ok || (data == nullptr && count > 0)) Invalid(what + ": its memory cannot be read (a detached buffer?).");
  if (count > 0) std::memcpy(tensor.data_ptr(), data, array.ByteLength());
  return tensor;
}

int64_t SizeField(const Napi::Value& object, const char* key, const std::string& what) {
  return ToInt64(Field(object, key), (what + "." + key).c_str());
}

// { data, count, dim } as a [count, dim] tensor.
at::Tensor FeatureMatrixArg(Napi::Env env, const Napi::Value& set, const std::string& what) {
  if (!set.IsObject()) Invalid(what + " must be { data, count, dim }.");
  const int64_t count = SizeField(set, "count", what);
  const int64_t dim = SizeField(set, "dim", what);
  if (dim < 1) Invalid(what + ".dim must be at least 1; got " + std::to_string(dim) + ".");
  return CopyArray(env, Field(set, "data"), {count, dim}, what + ".data");
}

Napi::Float64Array ToFloat64Array(Napi::Env env, const at::Tensor& tensor) {
  at::Tensor values = tensor.to(at::kCPU, at::kDouble).contiguous();
  Napi::Float64Array array = Napi::Float64Array::New(env, static_cast<size_t>(values.numel()));
  if (values.numel() > 0) std::memcpy(array.Data(), values.data_ptr<double>(), values.numel() * sizeof(double));
  return array;
}

int64_t BlockRowsOption(const Napi::Value& options) {
  Napi::Value value = Field(options, "blockRows");
  if (value.IsUndefined()) return 0;
  int64_t rows = ToInt64(value, "blockRows");
  if (rows < 1) Invalid("blockRows must be at least 1; got " + std::to_string(rows) + ".");
  return rows;
}

int64_t KArg(const Napi::Value& value) { return ToInt64(value, "k"); }

// Runs `work` on a torch thread with a stop flag that the options' signal sets.
Napi::Promise Run(Napi::Env env, const Napi::Value& options, std::function<void(const StopFlag*)> work,
                  PromiseWorker::Settle settle) {
  auto stop = std::make_shared<StopFlag>(false);
  return PromiseWorker::Start(
      env, [work = std::move(work), stop]() { work(stop.get()); }, std::move(settle), Field(options, "signal"), stop);
}

}  // namespace

Napi::Value FeatureMomentsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Value options = Arg(info, 1);
    const std::string name = OptionalString(options, "name", "the features");
    at::Tensor features = FeatureMatrixArg(env, Arg(info, 0), name);
    auto result = std::make_shared<GaussianMoments>();
    return Run(
        env, options, [features, name, result](const StopFlag* stop) { *result = FeatureMoments(features, name, stop); },
        [result](Napi::Env env) -> Napi::Value {
          Napi::Object moments = Napi::Object::New(env);
          moments.Set("mean", ToFloat64Array(env, result->mean));
          moments.Set("cov", ToFloat64Array(env, result->cov));
          return moments;
        });
  });
}

Napi::Value FrechetDistanceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::vector<at::Tensor> stats;
    for (size_t i = 0; i < 2; ++i) {
      const std::string what = i == 0 ? "the first statistics" : "the second statistics";
      Napi::Value arg = Arg(info, i);
      if (!arg.IsObject()) Invalid(what + " must be { mean, cov, dim }.");
      const int64_t dim = SizeField(arg, "dim", what);
      if (dim < 1) Invalid(what + ".dim must be at least 1; got " + std::to_string(dim) + ".");
      stats.push_back(CopyArray(env, Field(arg, "mean"), {dim}, what + ".mean"));
      stats.push_back(CopyArray(env, Field(arg, "cov"), {dim, dim}, what + ".cov"));
    }
    auto terms = std::make_shared<FrechetTerms>();
    return Run(
        env, Arg(info, 2),
        [stats, terms](const StopFlag*) { 
          *terms = FrechetDistance(stats[0], stats[1], stats[2], stats[3],
                                   [](const std::function<void()>& call) { WithEveryBlasThread(call); });
        },
        [terms](Napi::Env env) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("distance", terms->distance);
          result.Set("meanTerm", terms->meanTerm);
          result.Set("traceCov1", terms->traceCov1);
          result.Set("traceCov2", terms->traceCov2);
          result.Set("traceSqrtProduct", terms->traceSqrtProduct);
          result.Set("method", terms->method);
          return result;
        });
  });
}

Napi::Value SquaredDistancesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    at::Tensor a = FeatureMatrixArg(env, Arg(info, 0), "the first set");
    at::Tensor b = FeatureMatrixArg(env, Arg(info, 1), "the second set");
    auto result = std::make_shared<at::Tensor>();
    return Run(
        env, Arg(info, 2), [a, b, result](const StopFlag*) { *result = SquaredDistances(a, b); },
        [result](Napi::Env env) -> Napi::Value { return ToFloat64Array(env, *result); });
  });
}

Napi::Value KthNeighbourRadiiJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    at::Tensor set = FeatureMatrixArg(env, Arg(info, 0), "the set");
    const int64_t k = KArg(Arg(info, 1));
    Napi::Value options = Arg(info, 2);
    const int64_t blockRows = BlockRowsOption(options);
    auto result = std::make_shared<at::Tensor>();
    return Run(
        env, options, [set, k, blockRows, result](const StopFlag* stop) { *result = KthNeighbourRadii(set, k, blockRows, stop); },
        [result](Napi::Env env) -> Napi::Value { return ToFloat64Array(env, *result); });
  });
}

Napi::Value PrecisionRecallJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    at::Tensor real = FeatureMatrixArg(env, Arg(info, 0), "the real set");
    at::Tensor fake = FeatureMatrixArg(env, Arg(info, 1), "the generated set");
    const int64_t k = KArg(Arg(info, 2));
    Napi::Value options = Arg(info, 3);
    const int64_t blockRows = BlockRowsOption(options);
    at::Tensor realRadii;
    Napi::Value given = Field(options, "realRadii");
    if (!given.IsUndefined() && !given.IsNull()) realRadii = CopyArray(env, given, {real.size(0)}, "realRadii");
    auto counts = std::make_shared<ManifoldCounts>();
    return Run(
        env, options,
        [real, fake, k, realRadii, blockRows, counts](const StopFlag* stop) {
          *counts = PrecisionRecall(real, fake, k, realRadii, blockRows, stop);
        },
        [counts](Napi::Env env) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("precise", static_cast<double>(counts->precise));
          result.Set("recalled", static_cast<double>(counts->recalled));
          result.Set("realRadii", ToFloat64Array(env, counts->realRadii));
          result.Set("fakeRadii", ToFloat64Array(env, counts->fakeRadii));
          return result;
        });
  });
}

}  // namespace tg
