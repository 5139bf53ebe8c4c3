// Where a softmax's probabilities go: the attention pass hooks a softmax only
// when its result reaches a product with the values.
//
// The probabilities are followed through every op that keeps them attention
// probabilities, in the ways real code writes them: dropout (an eval() no-op),
// dtype casts, contiguous/clone/detach, views and reshapes, transposes and
// permutes, chunk/split/unbind of the heads and their list plumbing, a
// multiplication by a mask, masked_fill, and the branches of an If. The
// product is `probs @ v` as matmul, bmm, baddbmm or einsum, or `v @ probsᵀ`
// after a transpose (SAGAN's bmm(v, attnᵀ)).
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <string>

namespace tg {

struct ProbabilityFlow {
  // The first product with the values the probabilities reach, or null.
  torch::jit::Node* product = nullptr;
  // When there is none: the op that stopped the probabilities on the way to
  // a product further on ("aten::sqrt"), or "" when no product lies beyond
  // any op (the softmax is not attention: a gate, a classifier head).
  std::string blocker;
};

ProbabilityFlow FollowProbabilities(torch::jit::Value* probabilities);

}  // namespace tg
