#include "napi/tensor.h"

#include <atomic>
#include <cstring>
#include <limits>
#include <vector>

#include "napi/js_convert.h"
#include "ops/seeded_noise.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/instance_data.h"
#include "runtime/external_memory.h"
#include "runtime/js_errors.h"
#include "runtime/promise_worker.h"

namespace tg {

namespace {

std::atomic<int64_t> g_liveTensors{0};

// Bytes the V8 heap should know about: only host memory creates pressure
// that the JS garbage collector can relieve.
int64_t HostBytes(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.device().is_cpu()) return 0;
  return static_cast<int64_t>(tensor.numel()) * static_cast<int64_t>(tensor.element_size());
}

at::Device DeviceOption(const Napi::Value& options) {
  return ParseDevice(OptionalString(options, "device", "cpu"));
}

// Reads `seed` from options: one seed for the whole tensor, or one per sample.
std::vector<uint64_t> SeedsOption(const Napi::Value& options, int64_t batch) {
  Napi::Value seed = options.IsObject() ? options.As<Napi::Object>().Get("seed") : Napi::Value();
  if (seed.IsEmpty() || seed.IsUndefined()) {
    throw Error(code::kInvalidArgument,
                "randn needs options.seed (an integer, a BigInt, or an array with one per sample): "
                "noise is always drawn from an explicit generator so runs are reproducible.");
  }
  if (!seed.IsArray()) return {ToSeed(seed, "seed")};
  Napi::Array seeds = seed.As<Napi::Array>();
  if (static_cast<int64_t>(seeds.Length()) != batch) {
    throw Error(code::kInvalidArgument, "seed array has " + std::to_string(seeds.Length()) +
                                            " entries but the batch axis has " + std::to_string(batch) +
                                            "; give one seed per sample.");
  }
  std::vector<uint64_t> result;
  for (uint32_t i = 0; i < seeds.Length(); ++i) result.push_back(ToSeed(seeds.Get(i), "seed[i]"));
  return result;
}

// A host tensor onto `device` (in `dtype`). For CUDA the bytes are staged in
// pinned memory and copied without blocking: a copy from pageable memory
// makes the host wait until the GPU has run every kernel queued before it,
// which serialised the sampling loop (one such copy per forward for the time
// input). The host allocator keeps the pinned block until the copy is done.
at::Tensor HostToDevice(const at::Tensor& host, at::Device device, at::ScalarType dtype) {
  if (!device.is_cuda()) return host.to(device, dtype);
  at::Tensor onDevice = host.pin_memory().to(device, host.scalar_type(), /*non_blocking=*/true);
  return dtype == host.scalar_type() ? onDevice : onDevice.to(dtype);
}

}  // namespace

int64_t TensorWrap::LiveCount() { return g_liveTensors.load(); }

Napi::Function TensorWrap::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(
      env, "Tensor",
      {
          StaticMethod<&TensorWrap::FromArray>("fromArray"),
          StaticMethod<&TensorWrap::Randn>("randn"),
          StaticMethod<&TensorWrap::Full>("full"),
          StaticMethod<&TensorWrap::Cat>("cat"),
          InstanceAccessor<&TensorWrap::Shape>("shape"),
          InstanceAccessor<&TensorWrap::Dtype>("dtype"),
          InstanceAccessor<&TensorWrap::Device>("device"),
          InstanceAccessor<&TensorWrap::Numel>("numel"),
          InstanceAccessor<&TensorWrap::Disposed>("disposed"),
          InstanceMethod<&TensorWrap::Add>("add"),
          InstanceMethod<&TensorWrap::Sub>("sub"),
          InstanceMethod<&TensorWrap::Mul>("mul"),
          InstanceMethod<&TensorWrap::Div>("div"),
          InstanceMethod<&TensorWrap::Neg>("neg"),
          InstanceMethod<&TensorWrap::Sqrt>("sqrt"),
          InstanceMethod<&TensorWrap::Lerp>("lerp"),
          InstanceMethod<&TensorWrap::MeanPerSample>("meanPerSample"),
          InstanceMethod<&TensorWrap::StdPerSample>("stdPerSample"),
          InstanceMethod<&TensorWrap::NormPerSample>("normPerSample"),
          InstanceMethod<&TensorWrap::SumPerSample>("sumPerSample"),
          InstanceMethod<&TensorWrap::AllFinite>("allFinite"),
          InstanceMethod<&TensorWrap::GaussianBlur>("gaussianBlur"),
          InstanceMethod<&TensorWrap::LowPass>("lowPass"),
          InstanceMethod<&TensorWrap::ResizeNearest>("resizeNearest"),
          InstanceMethod<&TensorWrap::GreaterThan>("greaterThan"),
          InstanceMethod<&TensorWrap::Clamp>("clamp"),
          InstanceMethod<&TensorWrap::SumAxis>("sumAxis"),
          InstanceMethod<&TensorWrap::MeanAxis>("meanAxis"),
          InstanceMethod<&TensorWrap::Narrow>("narrow"),
          InstanceMethod<&TensorWrap::Repeat>("repeat"),
          InstanceMethod<&TensorWrap::Reshape>("reshape"),
          InstanceMethod<&TensorWrap::To>("to"),
          InstanceMethod<&TensorWrap::Clone>("clone"),
          InstanceMethod<&TensorWrap::ToArray>("toArray"),
          InstanceMethod<&TensorWrap::Dispose>("dispose"),
      });
  InstanceData::Get(env).tensorClass = Napi::Persistent(ctor);
  return ctor;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeError(info.Env(), {code::kInvalidArgument,
                                 "Tensor has no public constructor. Use tensor(), randn() or cat() from torch-guidance."});
  }
  tensor_ = std::move(*info[0].As<Napi::External<at::Tensor>>().Data());
  reportedBytes_ = HostBytes(tensor_);
  if (reportedBytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reportedBytes_);
  live_ = true;
  ++g_liveTensors;
}

TensorWrap::~TensorWrap() { Release(); }

void TensorWrap::Release() {
  if (!live_) return;
  live_ = false;
  --g_liveTensors;
  tensor_.reset();
  ReleaseExternalMemory(Env(), reportedBytes_);
  reportedBytes_ = 0;
}

Napi::Object TensorWrap::Wrap(Napi::Env env, at::Tensor tensor) {
  InstanceData& data = InstanceData::Get(env);
  return data.tensorClass.New({Napi::External<at::Tensor>::New(env, &tensor)});
}

bool TensorWrap::IsTensor(Napi::Env env, const Napi::Value& value) {
  InstanceData* data = InstanceData::Find(env);
  return data != nullptr && value.IsObject() && value.As<Napi::Object>().InstanceOf(data->tensorClass.Value());
}

const at::Tensor& TensorWrap::TensorOf(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!IsTensor(env, value)) throw Error(code::kInvalidArgument, std::string(what) + " must be a Tensor.");
  return ObjectWrap<TensorWrap>::Unwrap(value.As<Napi::Object>())->Checked(env);
}

const at::Tensor& TensorWrap::Checked(Napi::Env) const {
  if (!live_) {
    throw Error(code::kDisposed, "this Tensor was disposed and can no longer be used. "
                                 "Fix: keep the handle until its last use, then dispose() it.");
  }
  return tensor_;
}

// ---- factories -------------------------------------------------------------

Napi::Value TensorWrap::FromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray()) {
      throw Error(code::kInvalidArgument, "tensor(data, shape, options?) needs a TypedArray and a shape.");
    }
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = ToShape(info[1], "shape");
    Napi::Value options = info.Length() > 2 ? info[2] : env.Undefined();
    const DtypeEntry& natural = DtypeForArray(array.TypedArrayType());
    const DtypeEntry& dtype = DtypeByName(OptionalString(options, "dtype", natural.name));
    if (dtype.arrayType != array.TypedArrayType()) {
      throw Error(code::kInvalidArgument, std::string("dtype ") + dtype.name + " needs its data in a " +
                                              (dtype.arrayType == napi_uint16_array ? "Uint16Array"
                                               : dtype.arrayType == napi_uint8_array ? "Uint8Array"
                                                                                     : "matching TypedArray") +
                                              " (see the dtype table in the README).");
    }
    int64_t count = 1;
    for (int64_t size : shape) {
      if (size != 0 && count > std::numeric_limits<int64_t>::max() / size) {
        throw Error(code::kInvalidArgument, "shape " + c10::str(shape) + " is too large.");
      }
      count *= size;
    }
    if (count != static_cast<int64_t>(array.ElementLength())) {
      throw Error(code::kInvalidArgument, "shape " + c10::str(shape) + " holds " + std::to_string(count) +
                                              " elements but the data has " + std::to_string(array.ElementLength()) +
                                              ".");
    }
    at::Device device = DeviceOption(options);
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(dtype.scalarType));
    // The data pointer straight from the view: a SharedArrayBuffer behind it
    // is no ArrayBuffer to Node-API (array.ArrayBuffer() fails), but its
    // bytes copy the same.
    void* data = nullptr;
    napi_status status = napi_get_typedarray_info(env, array, nullptr, nullptr, &data, nullptr, nullptr);
    if (status != napi_ok || (data == nullptr && count > 0)) {
      throw Error(code::kInvalidArgument, "tensor(data, shape): the TypedArray's memory cannot be read (a detached buffer?).");
    }
    if (count > 0) std::memcpy(tensor.data_ptr(), data, array.ByteLength());
    return Wrap(env, device.is_cpu() ? tensor : HostToDevice(tensor, device, tensor.scalar_type()));
  });
}

Napi::Value TensorWrap::Randn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::vector<int64_t> shape = ToShape(info[0], "shape");
    Napi::Value options = info.Length() > 1 ? info[1] : env.Undefined();
    const DtypeEntry& dtype = DtypeByName(OptionalString(options, "dtype", "float32"));
    if (!at::isFloatingType(dtype.scalarType)) {
      throw Error(code::kInvalidArgument, std::string("randn needs a floating dtype, got ") + dtype.name + ".");
    }
    at::Device device = DeviceOption(options);
    std::vector<uint64_t> seeds = SeedsOption(options, shape.empty() ? -1 : shape[0]);
    // Noise is drawn on the CPU in float32, then converted and moved: the same
    // seed gives the same noise on every device and in every dtype.
    bool perSample = options.As<Napi::Object>().Get("seed").IsArray();
    at::Tensor noise = SeededNoise(seeds, perSample, shape);
    return Wrap(env, HostToDevice(noise, device, dtype.scalarType));
  });
}

Napi::Value TensorWrap::Full(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::vector<int64_t> shape = ToShape(info[0], "shape");
    if (info.Length() < 2 || !info[1].IsNumber()) {
      throw Error(code::kInvalidArgument, "full(shape, value) needs value as a number.");
    }
    double value = info[1].As<Napi::Number>().DoubleValue();
    Napi::Value options = info.Length() > 2 ? info[2] : env.Undefined();
    const DtypeEntry& dtype = DtypeByName(OptionalString(options, "dtype", "float32"));
    at::Device device = DeviceOption(options);
    return Wrap(env, at::full(shape, value, at::TensorOptions().dtype(dtype.scalarType).device(device)));
  });
}

Napi::Value TensorWrap::Cat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
      throw Error(code::kInvalidArgument, "cat(tensors) needs a non-empty array of Tensors.");
    }
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<at::Tensor> tensors;
    for (uint32_t i = 0; i < list.Length(); ++i) tensors.push_back(TensorOf(env, list.Get(i), "cat: every element"));
    return Wrap(env, at::cat(tensors, 0));
  });
}

// ---- properties ------------------------------------------------------------

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return FromShape(info.Env(), Checked(info.Env()).sizes()); });
}

Napi::Value TensorWrap::Dtype(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), DtypeByScalarType(Checked(info.Env()).scalar_type()).name);
  });
}

Napi::Value TensorWrap::Device(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), DeviceName(Checked(info.Env()).device()));
  });
}

Napi::Value TensorWrap::Numel(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(Checked(info.Env()).numel()));
  });
}

Napi::Value TensorWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !live_); }

// ---- to JS -----------------------------------------------------------------

Napi::Value TensorWrap::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    at::Tensor source = Checked(env);
    const DtypeEntry& dtype = DtypeByScalarType(source.scalar_type());
    auto host = std::make_shared<at::Tensor>();
    return PromiseWorker::Start(
        env,
        [source, host]() { *host = source.to(at::kCPU).contiguous(); },
        [host, &dtype](Napi::Env env) -> Napi::Value {
          size_t bytes = static_cast<size_t>(host->numel()) * host->element_size();
          Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
          if (bytes > 0) std::memcpy(buffer.Data(), host->data_ptr(), bytes);
          napi_value array;
          napi_status status = napi_create_typedarray(env, dtype.arrayType, static_cast<size_t>(host->numel()),
                                                      buffer, 0, &array);
          NAPI_THROW_IF_FAILED(env, status, Napi::Value());
          return Napi::Value(env, array);
        });
  });
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

}  // namespace tg
