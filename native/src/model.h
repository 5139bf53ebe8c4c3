// Model: a JS handle to a loaded, frozen TorchScript module.
//
// The module lives in a shared ModelState. The JS handle owns one reference,
// every forward in flight owns another: dispose() (or a GC) during a forward
// frees nothing until that forward is done.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attention_pass.h"

namespace tg {

struct ModelState {
  torch::jit::Module module;
  at::Device device = at::Device(at::kCPU);
  at::ScalarType dtype = at::kFloat;
  std::string path;
  std::string card;  // the archive's model.json, empty when absent
  std::map<std::string, std::string> extraRecords;  // extra/nulls/* records, by name relative to extra/
  bool hasCard = false;
  bool frozen = false;
  int64_t parameterCount = 0;
  int64_t parameterBytes = 0;
  std::atomic<int64_t> forwardCount{0};
  std::vector<AttentionSite> sites;  // found by the attention pass, ids = indices
  std::vector<ModuleSite> moduleSites;  // module outputs tagged by the same pass, ids = indices
  std::vector<AttentionCandidate> attentionCandidates;  // every softmax / fused attention op the pass saw
  std::string attentionPassError;    // why the pass was skipped, if it was
  // A method of the frozen module holding forward without the hook ops
  // (attention_pass.h, WithoutHookOps), which forwards with no plan run;
  // empty when the model has no hook ops or could not be frozen.
  std::string plainForward;
  std::atomic<int64_t> plainForwardCount{0};  // forwards that ran it
  // The graph the last forward executed after libtorch's optimisations
  // (specialised, fused); kept as a pointer (cheap), printed on request.
  std::mutex lastGraphMutex;
  std::shared_ptr<torch::jit::Graph> lastGraph;
};

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
