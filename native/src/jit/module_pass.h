// The module pass: inlines forward's calls and tags module outputs.
//
// torch::jit::Inline erases module boundaries. This pass inlines the calls of
// a graph itself, one call at a time in program order, from each callee's
// unoptimised graph (so the order and the set of nodes are exactly what the
// attention pass walked), and before inlining a call to a submodule's forward
// it wraps the call's result in `<ns>::module_out(out, input, id)`. That op
// (ops/module_hook_op.cpp) returns `out` unless the thread's plan asks to add
// noise to it (time-step guidance) or to replace it by `input`, the call's
// first tensor argument (skip-layer guidance), for a batch slice.
//
// Only calls worth hooking are tagged, so a forward without a plan stays as
// fast as the original: the module at the card's timeEmbedding path, every
// call of a module defined outside torch.nn that returns one tensor and
// takes at least one (the blocks a model is built from), and
// nn.MultiheadAttention, an attention module in its own right (its output
// tensor, the first of the pair it returns). torch.nn's other layers (Linear,
// Conv2d, GroupNorm, Sequential, ...) are not tagged: a single layer is not a
// block one skips, and the model's own classes wrap them.
//
// Every inlined node is marked with the path of the module whose code it is
// (graph_paths.h, OwnerPath), which names the attention sites.
// Whether a tagged block can really be skipped (its output has its input's
// shape) is known after the probe forward.
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

namespace tg {

struct ModuleSite {
  int64_t id = 0;
  std::string path;       // as named_modules() names it; `#1` for a second call
  bool hasInput = false;  // the call has a tensor argument (skip needs one)
};

// Inlines every prim::CallMethod / prim::CallFunction of `graph` (the forward
// of `root`, whose first input is `self`) in place and returns the tagged
// module calls.
std::vector<ModuleSite> InlineWithModuleHooks(torch::jit::Graph& graph, const torch::jit::Module& root,
                                              const std::string& timeEmbedding);

// After the graph was simplified (dead branches removed): keeps the sites
// whose hook op survived, numbered again in the order they were tagged (ids
// and `#n`).
void RenumberModuleSites(torch::jit::Graph& graph, std::vector<ModuleSite>& sites);

}  // namespace tg
