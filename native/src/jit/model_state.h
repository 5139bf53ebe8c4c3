// A loaded TorchScript model and what the graph pass found in it, shared by
// its JS handle (napi/model.h) and every job in flight on it.
#pragma once

#include <torch/script.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "jit/attention_pass.h"

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
  // The intra-op (OpenMP) threads the last forward ran with on its torch
  // thread (a split batch's chunks run with fewer; runtime/intra_op_threads.h).
  std::atomic<int> lastForwardThreads{0};
  // The graph the last forward executed after libtorch's optimisations
  // (specialised, fused); kept as a pointer (cheap), printed on request.
  std::mutex lastGraphMutex;
  std::shared_ptr<torch::jit::Graph> lastGraph;
};

}  // namespace tg
