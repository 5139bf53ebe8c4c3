// Model: a JS handle to a loaded, frozen TorchScript module.
//
// The module lives in a shared ModelState (jit/model_state.h). The JS handle
// owns one reference, every forward in flight owns another: dispose() (or a
// GC) during a forward frees nothing until that forward is done. Loading is
// jit/model_load.h, a forward jit/model_forward.h; this class checks JS
// arguments and converts results (model.cpp, and model_call.cpp for call()).
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <memory>

#include "jit/model_state.h"

namespace tg {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static int64_t LiveCount();

  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

 private:
  // load(path, { device, dtype, attentionHooks, trust, memoryLimit, signal }) -> Promise<Model>
  static Napi::Value Load(const Napi::CallbackInfo& info);

  // call(method, inputs[], plan?, signal?) -> Promise<output>, or with a plan
  // Promise<{ output, captures: [site, Tensor][], shapes: [site, number[]][],
  //           moduleShapes: [site, output number[], input number[]][] }>
  Napi::Value Call(const Napi::CallbackInfo& info);
  Napi::Value Describe(const Napi::CallbackInfo& info);
  Napi::Value Card(const Napi::CallbackInfo& info);
  Napi::Value AttentionSites(const Napi::CallbackInfo& info);
  Napi::Value ModuleSites(const Napi::CallbackInfo& info);
  Napi::Value AttentionCandidates(const Napi::CallbackInfo& info);
  // extraRecord(name) -> Buffer | null: a record under the archive's extra/nulls/.
  Napi::Value ExtraRecord(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value ForwardCount(const Napi::CallbackInfo& info);
  Napi::Value PlainForwardCount(const Napi::CallbackInfo& info);
  Napi::Value LastForwardThreads(const Napi::CallbackInfo& info);
  // lastOptimizedGraph() -> string | null
  Napi::Value LastOptimizedGraph(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  const std::shared_ptr<ModelState>& Checked() const;
  void Release();

  std::shared_ptr<ModelState> state_;
  int64_t reportedBytes_ = 0;
};

}  // namespace tg
