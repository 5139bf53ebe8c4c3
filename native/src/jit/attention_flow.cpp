#include "jit/attention_flow.h"

#include <cstring>
#include <unordered_set>

namespace tg {

namespace {

using torch::jit::Node;
using torch::jit::Use;
using torch::jit::Value;

// Long enough for casts, dropout, views and head splits in any order; short
// enough that a softmax far upstream of an unrelated matmul is not taken.
constexpr int kMaxDepth = 12;

bool KindIn(const Node* node, std::initializer_list<const char*> names) {
  const char* kind = node->kind().toQualString();
  for (const char* name : names) {
    if (std::strcmp(kind, name) == 0) return true;
  }
  return false;
}

// Ops whose output (every output) holds the probabilities, rearranged, when
// the probabilities are their input number `offset`.
bool KeepsProbabilities(const Node* node, size_t offset) {
  if (offset == 0 &&
      KindIn(node, {"aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::feature_dropout_",
                    "aten::alpha_dropout", "aten::alpha_dropout_", "aten::feature_alpha_dropout",
                    "aten::feature_alpha_dropout_", "aten::native_dropout", "aten::to", "aten::type_as",
                    "aten::float", "aten::half", "aten::bfloat16", "aten::double", "aten::contiguous",
                    "aten::clone", "aten::detach", "aten::view", "aten::reshape", "aten::view_as",
                    "aten::reshape_as", "aten::flatten", "aten::unflatten", "aten::squeeze", "aten::unsqueeze",
                    "aten::masked_fill", "aten::masked_fill_", "aten::mul_", "aten::chunk", "aten::split",
                    "aten::split_with_sizes", "aten::unsafe_chunk", "aten::unsafe_split", "aten::tensor_split",
                    "aten::unbind", "aten::select", "aten::slice", "aten::narrow", "aten::__getitem__",
                    "prim::ListUnpack", "aten::cat", "aten::stack"})) {
    return true;
  }
  // A mask multiplies either way round.
  return KindIn(node, {"aten::mul"});
}

bool Transposes(const Node* node) {
  return KindIn(node, {"aten::transpose", "aten::permute", "aten::t", "aten::swapaxes", "aten::swapdims",
                       "aten::movedim", "aten::numpy_T", "aten::mT", "aten::adjoint"});
}

// `node` takes the probabilities as input `offset`: is it the product with
// the values? Untransposed probabilities are the left factor (the right one
// of baddbmm's two), transposed ones the right factor.
bool IsProduct(const Node* node, size_t offset, bool transposed) {
  if (KindIn(node, {"aten::matmul", "aten::bmm"})) return offset == (transposed ? 1u : 0u);
  if (KindIn(node, {"aten::baddbmm"})) return offset == (transposed ? 2u : 1u);
  return false;
}

struct Search {
  ProbabilityFlow flow;
  std::unordered_set<const Value*> seen;
  // Whether an op the probabilities do not survive may be looked past, to
  // name it as the reason when a product lies right behind it.
  bool lookPastOneOp = true;

  // Follows `value` (holding the probabilities, transposed or not); true once
  // a product is found.
  bool Follow(Value* value, bool transposed, int depth) {
    if (depth > kMaxDepth || !seen.insert(value).second) return false;
    for (const Use& use : value->uses()) {
      if (FollowUse(use, transposed, depth)) return true;
    }
    return false;
  }

  bool FollowOutputs(Node* node, bool transposed, int depth) {
    for (Value* output : node->outputs()) {
      if (Follow(output, transposed, depth + 1)) return true;
    }
    return false;
  }

  bool FollowUse(const Use& use, bool transposed, int depth) {
    Node* user = use.user;
    if (IsProduct(user, use.offset, transposed)) {
      flow.product = user;
      return true;
    }
    if (user->kind() == c10::prim::ListConstruct) {
      // einsum and cat/stack take the tensors as a list.
      for (const Use& listUse : user->output()->uses()) {
        if (KindIn(listUse.user, {"aten::einsum"})) {
          flow.product = listUse.user;
          return true;
        }
        if (KindIn(listUse.user, {"aten::cat", "aten::stack"}) && FollowOutputs(listUse.user, transposed, depth)) {
          return true;
        }
      }
      return false;
    }
    if (user->kind() == c10::prim::Return) {
      // Out of an If branch: on to the If's output.
      Node* owner = user->owningBlock()->owningNode();
      return owner != nullptr && owner->kind() == c10::prim::If && Follow(owner->output(use.offset), transposed, depth + 1);
    }
    if (user->kind() == c10::prim::TupleConstruct) {
      for (const Use& tupleUse : user->output()->uses()) {
        if (tupleUse.user->kind() == c10::prim::TupleUnpack &&
            Follow(tupleUse.user->output(use.offset), transposed, depth + 1)) {
          return true;
        }
      }
      return false;
    }
    if (KeepsProbabilities(user, use.offset) || (Transposes(user) && use.offset == 0)) {
      return FollowOutputs(user, transposed || Transposes(user), depth);
    }
    // An op the probabilities do not survive as probabilities. When they
    // would reach a product right behind it (softmax -> op -> product, with
    // only the ops above around them), it is why this softmax is left alone.
    if (lookPastOneOp && flow.blocker.empty()) {
      Search behind;
      behind.lookPastOneOp = false;
      if (behind.FollowOutputs(user, transposed, depth)) flow.blocker = user->kind().toQualString();
    }
    return false;
  }
};

}  // namespace

ProbabilityFlow FollowProbabilities(Value* probabilities) {
  Search search;
  search.Follow(probabilities, /*transposed=*/false, 0);
  if (search.flow.product != nullptr) search.flow.blocker.clear();
  return search.flow;
}

}  // namespace tg
