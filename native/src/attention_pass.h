// The attention pass: finds every attention site in a module's forward
// (softmax attention written out, and fused aten::scaled_dot_product_attention)
// and wraps it in hook ops, so that a forward can swap, blur or capture
// attention per batch slice (TorchScript has no forward hooks).
//
// Runs on the unfrozen module, before torch::jit::freeze:
//   1. walks forward and every method it calls, in program order, naming each
//      site by the module path its GetAttr chain reaches (`down.3`, `mid.attn`;
//      ModuleList and ModuleDict elements keep their container's name, which
//      an inlined call stack loses), with `#1`, `#2` for further sites in one
//      module;
//   2. inlines forward in place (the same program order; module_pass.h, which
//      also wraps module outputs in guidance::module_out), pairs the k-th
//      candidate with the k-th named site, and inserts
//      guidance::attn_logits before and guidance::attn_probs after a
//      softmax, guidance::attn_sdpa after an SDPA node (hook_ops.cpp).
// A softmax counts as attention when its result is the left operand of a
// matmul, bmm or einsum (through dropout or a dtype cast); every SDPA does.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "module_pass.h"

namespace tg {

struct AttentionSite {
  int64_t id = 0;
  std::string path;  // module path, as named_modules() names it
  std::string kind;  // "softmax" or "sdpa"
};

struct HookSites {
  std::vector<AttentionSite> attention;
  std::vector<ModuleSite> modules;
};

// `timeEmbedding`: the model card's module path of the time embedding ("" if
// none); its output is tagged whatever its class.
HookSites InsertHooks(torch::jit::Module& module, const std::string& timeEmbedding);

// A copy of `graph` with every hook op this addon inserted taken out (each
// one's uses go to its first input), for forwards that carry no plan: a
// hook op that returns its input still costs a dispatch and splits the
// fusion groups around it, which shows on a launch-bound GPU. The copy shares
// the graph's constant tensors (frozen weights), so it costs no memory.
std::shared_ptr<torch::jit::Graph> WithoutHookOps(torch::jit::Graph& graph);

}  // namespace tg
