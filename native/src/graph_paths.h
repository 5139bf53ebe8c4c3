// Module paths from TorchScript graphs, as named_modules() writes them.
//
// Both graph passes (attention sites, module outputs) name what they find by
// the chain of prim::GetAttr nodes that reaches a module value from the
// top-level `self`. A ModuleList or ModuleDict element keeps its container's
// name this way (`down.3`), which an inlined call stack would lose.
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

}  // namespace tg
