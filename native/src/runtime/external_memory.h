// Telling V8 how much host memory a JS handle holds, so that its GC weighs
// handles by the tensors and parameters behind them.
#pragma once

#include <node_api.h>

#include <cstdint>

namespace tg {

// Gives back `bytes` reported for a handle that is being released. Never
// throws: it runs in destructors, which the GC calls while a worker's
// environment is torn down, when Node-API calls may fail; node-addon-api's
// AdjustExternalMemory throws then, and a throw from a destructor aborts
// the process. The count is the environment's own and dies with it.
inline void ReleaseExternalMemory(napi_env env, int64_t bytes) noexcept {
  if (env == nullptr || bytes <= 0) return;
  int64_t ignored = 0;
  napi_adjust_external_memory(env, -bytes, &ignored);
}

}  // namespace tg
