#include "napi/runtime_js.h"

#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <dlfcn.h>
#include <torch/version.h>

#include <mutex>
#include <string>

#ifdef TORCH_GUIDANCE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "napi/js_convert.h"
#include "napi/model.h"
#include "napi/tensor.h"
#include "ops/hook_plan.h"
#include "runtime/blas_threads.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/inflight.h"
#include "runtime/js_errors.h"
#include "runtime/promise_worker.h"

namespace tg {

namespace {

// The file that provides libtorch's CPU kernels in this process: what the
// dynamic loader really resolved, which the JS loader compares with the
// library the addon was built against.
std::string LoadedLibtorchPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&at::globalContext), &info) != 0 && info.dli_fname != nullptr) {
    return info.dli_fname;
  }
  return "";
}

int OptionalInt(const Napi::Value& options, const char* key) {
  if (!options.IsObject()) return 0;
  Napi::Value value = options.As<Napi::Object>().Get(key);
  if (value.IsUndefined()) return 0;
  int64_t number = ToInt64(value, key);
  if (number < 0 || number > 4096) throw Error(code::kInvalidArgument, std::string(key) + " must be in 0..4096.");
  return static_cast<int>(number);
}

}  // namespace

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Value options = info.Length() > 0 ? info[0] : env.Undefined();
    if (options.IsObject() && options.As<Napi::Object>().Get("errorClass").IsFunction()) {
      SetErrorClass(env, options.As<Napi::Object>().Get("errorClass").As<Napi::Function>());
    }
    int intraOp = OptionalInt(options, "intraOpThreads");
    int interOp = OptionalInt(options, "interOpThreads");
    int jobThreads = OptionalInt(options, "jobThreads");
    int blasThreads = options.IsObject() ? BlasSetting(options.As<Napi::Object>().Get("blasThreads")) : -1;
    int64_t exitWaitMs = -1;
    if (options.IsObject() && !options.As<Napi::Object>().Get("exitWaitMs").IsUndefined()) {
      exitWaitMs = ToInt64(options.As<Napi::Object>().Get("exitWaitMs"), "exitWaitMs");
      if (exitWaitMs < 0 || exitWaitMs > 3'600'000) throw Error(code::kInvalidArgument, "exitWaitMs must be in 0..3600000.");
    }
    PromiseWorker::InitEnv(env);
    static std::once_flag once;
    std::call_once(once, [&] {
      if (intraOp > 0) at::set_num_threads(intraOp);
      // Inter-op threads can be set only before the pool starts; a second
      // addon instance in the same process keeps the first setting.
      if (interOp > 0) {
        try {
          at::set_num_interop_threads(interOp);
        } catch (const c10::Error&) {
        }
      }
      ConfigureExecutor(jobThreads);
      // After set_num_threads and the executor: the BLAS budget of one job is
      // its intra-op count, shared by the jobs that can run at once.
      ConfigureBlasThreads(blasThreads, at::get_num_threads(), ExecutorThreads());
      if (exitWaitMs >= 0) SetExitWait(exitWaitMs);
      HookNamespace();  // registers the hook ops
      InstallExitGuard();
    });
    return RuntimeInfo(info);
  });
}

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    Napi::Object result = Napi::Object::New(env);
    result.Set("torchVersion", TORCH_VERSION);
    result.Set("torchSource", TORCH_GUIDANCE_TORCH_SOURCE);
    result.Set("libtorchPath", LoadedLibtorchPath());
#ifdef TORCH_GUIDANCE_WITH_CUDA
    result.Set("builtWithCuda", true);
#else
    result.Set("builtWithCuda", false);
#endif
    int count = CudaDeviceCount();
    result.Set("cudaAvailable", count > 0);
    Napi::Array devices = Napi::Array::New(env);
    for (int i = 0; i < count; ++i) {
      Napi::Object device = Napi::Object::New(env);
      device.Set("name", "cuda:" + std::to_string(i));
#ifdef TORCH_GUIDANCE_WITH_CUDA
      const cudaDeviceProp* props = at::cuda::getDeviceProperties(i);
      device.Set("model", props->name);
      device.Set("totalMemory", static_cast<double>(props->totalGlobalMem));
      device.Set("computeCapability", std::to_string(props->major) + "." + std::to_string(props->minor));
#endif
      devices.Set(static_cast<uint32_t>(i), device);
    }
    result.Set("cudaDevices", devices);
    result.Set("intraOpThreads", at::get_num_threads());
    result.Set("interOpThreads", at::get_num_interop_threads());
    result.Set("jobThreads", ExecutorThreads());
    result.Set("exitWaitMs", static_cast<double>(ExitWaitMs()));
    result.Set("parallelInfo", at::get_parallel_info());
    result.Set("blas", BlasInfoObject(env));
    result.Set("hookNamespace", HookNamespace());
    return result;
  });
}

Napi::Value PrepareExitJs(const Napi::CallbackInfo& info) {
  const int exitCode = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  PrepareExit(exitCode);
  return info.Env().Undefined();
}

Napi::Value LiveHandles(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("tensors", static_cast<double>(TensorWrap::LiveCount()));
  result.Set("models", static_cast<double>(ModelWrap::LiveCount()));
  result.Set("jobs", InflightCount());
  result.Set("torchThreads", ExecutorThreadsStarted());
  return result;
}

}  // namespace tg
