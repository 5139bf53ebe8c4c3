// torch-guidance native addon: module registration.
#include <napi.h>

#include "napi/feature_statistics_js.h"
#include "napi/file_lock_js.h"
#include "napi/model.h"
#include "napi/runtime_js.h"
#include "napi/tensor.h"
#include "runtime/promise_worker.h"

namespace tg {

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("Tensor", TensorWrap::Define(env));
  exports.Set("Model", ModelWrap::Define(env));
  exports.Set("init", Napi::Function::New<Init>(env, "init"));
  exports.Set("runtimeInfo", Napi::Function::New<RuntimeInfo>(env, "runtimeInfo"));
  exports.Set("blasInfo", Napi::Function::New<BlasInfoJs>(env, "blasInfo"));
  exports.Set("setBlasThreads", Napi::Function::New<SetBlasThreadsJs>(env, "setBlasThreads"));
  exports.Set("liveHandles", Napi::Function::New<LiveHandles>(env, "liveHandles"));
  exports.Set("cudaMemory", Napi::Function::New<CudaMemory>(env, "cudaMemory"));
  exports.Set("jobTimes", Napi::Function::New<JobTimesJs>(env, "jobTimes"));
  exports.Set("prepareExit", Napi::Function::New<PrepareExitJs>(env, "prepareExit"));
  exports.Set("tryLockFile", Napi::Function::New<TryLockFileJs>(env, "tryLockFile"));
  exports.Set("unlockFile", Napi::Function::New<UnlockFileJs>(env, "unlockFile"));
  exports.Set("featureMoments", Napi::Function::New<FeatureMomentsJs>(env, "featureMoments"));
  exports.Set("frechetDistance", Napi::Function::New<FrechetDistanceJs>(env, "frechetDistance"));
  exports.Set("squaredDistances", Napi::Function::New<SquaredDistancesJs>(env, "squaredDistances"));
  exports.Set("kthNeighbourRadii", Napi::Function::New<KthNeighbourRadiiJs>(env, "kthNeighbourRadii"));
  exports.Set("precisionRecall", Napi::Function::New<PrecisionRecallJs>(env, "precisionRecall"));
  return exports;
}

}  // namespace tg

// NODE_API_MODULE pastes the name into an identifier: it must be unqualified.
static Napi::Object InitTorchGuidance(Napi::Env env, Napi::Object exports) { return tg::InitAddon(env, exports); }

NODE_API_MODULE(torch_guidance, InitTorchGuidance)
