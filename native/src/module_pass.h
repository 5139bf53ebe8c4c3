// The module pass: inlines forward's calls and tags module outputs.
//
// torch::jit::Inline erases module boundaries. This pass inlines the calls of
// a graph itself, one call at a time in program order, from each callee's
// unoptimised graph (so the order and the set of nodes are exactly what the
// attention pass walked), and before inlining a call to a submodule's forward
// it wraps the call's result in `<ns>::module_out(out, input, id)`. That op
// (module_hook_op.cpp) returns `out` unless the thread's plan asks to add
// noise to it (time-step guidance) or to replace it by `input`, the call's
// first tensor argument (skip-layer guidance), for a batch slice.
//
// Only calls worth hooking are tagged, so a forward without a plan stays as
// fast as the original: the module at the card's timeEmbedding path, and
// every call of a module defined outside torch.nn that returns one tensor and
// takes at least one (the blocks a model is built from). torch.nn's own
// layers (Linear, Conv2d, GroupNorm, Sequential, ...) are not tagged: a single
// layer is not a block one skips, and the model's own classes wrap them.
// Whether a tagged block can really be skipped (its output has its input's
// shape) is known after the probe forward.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

namespace tg {

struct ModuleSite {
  int64_t id = 0;
  std::string path;       // as named_modules() names it; `#1` for a second call
  bool hasInput = false;  // the call has a tensor argument (skip needs one)
};

// Inlines every prim::CallMethod / prim::CallFunction of `graph` (whose first
// input is the module's `self`) in place and returns the tagged module calls.
std::vector<ModuleSite> InlineWithModuleHooks(torch::jit::Graph& graph, const std::string& timeEmbedding);

}  // namespace tg
