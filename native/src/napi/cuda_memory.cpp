// cudaMemory(index, resetPeak) for JS: the CUDA caching allocator's byte
// counts for one device (what PyTorch's torch.cuda.memory_allocated,
// max_memory_allocated and memory_reserved report), or null where this build
// cannot read them (a CPU build, or a libtorch whose allocator header or
// library the build could not use; see CMakeLists.txt).
#include <napi.h>

#ifdef TORCH_GUIDANCE_CUDA_MEMORY_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "napi/runtime_js.h"
#include "runtime/device.h"
#include "runtime/js_errors.h"

namespace tg {

Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    int index = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    bool resetPeak = info.Length() > 1 && info[1].ToBoolean().Value();
    if (index < 0 || index >= CudaDeviceCount()) return env.Null();
#ifdef TORCH_GUIDANCE_CUDA_MEMORY_STATS
    namespace allocator = c10::cuda::CUDACachingAllocator;
    const auto stats = allocator::getDeviceStats(index);
    Napi::Object result = Napi::Object::New(env);
    // Index 0 is StatType::AGGREGATE (all pools) in every release.
    result.Set("allocated", static_cast<double>(stats.allocated_bytes[0].current));
    result.Set("peakAllocated", static_cast<double>(stats.allocated_bytes[0].peak));
    result.Set("reserved", static_cast<double>(stats.reserved_bytes[0].current));
    if (resetPeak) allocator::resetPeakStats(index);
    return result;
#else
    (void)resetPeak;
    return env.Null();
#endif
  });
}

}  // namespace tg
