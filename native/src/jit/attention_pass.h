// The attention pass: finds every attention site in a module's forward and
// wraps it in hook ops, so that a forward can swap, blur or capture attention
// per batch slice (TorchScript has no forward hooks).
//
// Runs on the unfrozen module, before torch::jit::freeze:
//   1. inlines forward in place, tagging module outputs on the way and
//      marking every node with the module whose code it is (module_pass.h);
//   2. simplifies the graph as an eval() forward runs it (graph_simplify.h):
//      the branches of scripted library code on `training`, `dtype is None`
//      and the like are folded away;
//   3. takes as attention every softmax whose probabilities reach a product
//      with the values (attention_flow.h), every fused
//      aten::scaled_dot_product_attention and every fused nn.MultiheadAttention
//      (aten::_native_multi_head_attention), and wraps each:
//      guidance::attn_logits before and guidance::attn_probs after a softmax,
//      guidance::attn_sdpa and guidance::attn_mha after the fused ops
//      (ops/hook_ops.cpp, ops/mha_hook.h).
// A site is named by the innermost module whose code holds both the softmax
// and the product (`blocks.3.attn`, also when the softmax is an nn.Softmax
// child or a free function), or that calls the fused op; `#1`, `#2` for
// further sites in one module. Sites in different branches of one If (the
// fused and the explicit path of nn.MultiheadAttention) are alternatives of
// one site: one name, one id.
//
// Every softmax and fused attention op the pass saw is reported, with the
// reason for those it left alone, so a selector never perturbs part of a
// model's attention without saying so.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "jit/module_pass.h"

namespace tg {

struct AttentionSite {
  int64_t id = 0;
  std::string path;  // module path, as named_modules() names it
  std::string kind;  // "softmax", "sdpa" or "mha"
  int64_t axis = -1;  // a softmax's axis as written: -1, or an index the hook ops check
};

// A softmax or fused attention op the pass saw, hooked or not.
struct AttentionCandidate {
  std::string path;    // the site's name when hooked, else the module whose code it is
  std::string op;      // "aten::softmax", "aten::_native_multi_head_attention", ...
  int64_t site = -1;   // the site it belongs to, when hooked
  std::string reason;  // why it was left alone, when not hooked
  // Not hooked, but attention all the same (an op the pass does not follow
  // sits between softmax and product, or a fused op without a hook): a
  // selector that reaches it must not pass silently.
  bool attention = false;
};

struct HookSites {
  std::vector<AttentionSite> attention;
  std::vector<ModuleSite> modules;
  std::vector<AttentionCandidate> candidates;  // in program order
};

// `timeEmbedding`: the model card's module path of the time embedding ("" if
// none); its output is tagged whatever its class. `module` must be in eval().
HookSites InsertHooks(torch::jit::Module& module, const std::string& timeEmbedding);

// A copy of `graph` with every hook op this addon inserted taken out (each
// one's uses go to its first input), for forwards that carry no plan: a
// hook op that returns its input still costs a dispatch and splits the
// fusion groups around it, which shows on a launch-bound GPU. The copy shares
// the graph's constant tensors (frozen weights), so it costs no memory.
std::shared_ptr<torch::jit::Graph> WithoutHookOps(torch::jit::Graph& graph);

}  // namespace tg
