// Module paths from TorchScript graphs, as named_modules() writes them.
//
// Both graph passes (attention sites, module outputs) name what they find by
// the chain of prim::GetAttr nodes that reaches a module value from the
// top-level `self`. A ModuleList or ModuleDict element keeps its container's
// name this way (`down.3`), which an inlined call stack would lose.
//
// While the module pass inlines forward, it marks every inlined node with the
// path of the module whose code it came from (its owner). The mark lives in
// the node's scope, which survives the later simplification passes (nodes
// moved out of folded branches keep it) and graph copies.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

namespace tg {

// The GetAttr names from `self` to `module` ("down", "3"), or false when the
// module value does not come from `self` through attributes.
bool AttrChain(torch::jit::Value* module, torch::jit::Value* self, std::vector<std::string>& names);

// `prefix` and `names` joined with dots ("" + {"mid", "attn"} -> "mid.attn").
std::string JoinPath(const std::string& prefix, const std::vector<std::string>& names);

// Whose code a node is: the module's path, and for the code of one call of a
// module that holds exactly one attention whichever way it runs
// (nn.MultiheadAttention: a fused path and an explicit one), a group number
// shared by that call's nodes, so that the attention pass takes its
// candidates for alternatives of one site.
struct OwnerMark {
  std::string path;
  int64_t group = -1;
};

// Marks `node` and every node in its blocks.
void SetOwnerMark(torch::jit::Node* node, const OwnerMark& mark);

// The mark of `node`; path "" (the top-level module) when unmarked.
OwnerMark GetOwnerMark(torch::jit::Node* node);

// GetOwnerMark(node).path
std::string OwnerPath(torch::jit::Node* node);

// The longest common module path of two paths, by whole segments
// ("blocks.0.attn.softmax", "blocks.0.attn" -> "blocks.0.attn").
std::string CommonPath(const std::string& a, const std::string& b);

// Whether `prefix` is `path` or one of its ancestors ("blocks.1" is not an
// ancestor of "blocks.10").
bool IsPathPrefix(const std::string& prefix, const std::string& path);

}  // namespace tg
