// Simplifies an inlined forward graph for the attention pass, the way
// freezing an eval() module would, but before freezing (the pass needs the
// module tree to name what it finds).
//
// Scripted library code hides attention behind branches that depend on module
// attributes and arguments: F.dropout and nn.Dropout on `training` and
// `inplace`, F.softmax on `dtype is None`, nn.MultiheadAttention on
// `batch_first`, `dropout` and a dozen more. Folding the attributes a forward
// never assigns into constants, then propagating constants and removing dead
// code, leaves the branch an eval() forward really takes, so that the pass can
// follow the probabilities from a softmax to the product with the values.
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <memory>

namespace tg {

// `graph` is the inlined forward of `root` (its first input is `self`), which
// must be in eval() mode: `training` is folded as the modules hold it.
void SimplifyForEval(std::shared_ptr<torch::jit::Graph>& graph, const torch::jit::Module& root);

}  // namespace tg
