#include "jit/graph_simplify.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <set>
#include <string>
#include <vector>

#include "jit/graph_paths.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;

// Attribute values folded into the graph: immutable scalars only. Tensors stay
// attributes (freezing folds them later, with its own alias analysis), lists
// and dicts may be mutated in place without a prim::SetAttr.
bool Foldable(const c10::IValue& value) {
  if (value.isBool() || value.isInt() || value.isDouble() || value.isString() || value.isNone()) return true;
  if (!value.isTuple()) return false;
  for (const c10::IValue& element : value.toTupleRef().elements()) {
    if (!Foldable(element)) return false;
  }
  return true;
}

void CollectAssignedNames(Block* block, std::set<std::string>& names) {
  for (Node* node : block->nodes()) {
    if (node->kind() == c10::prim::SetAttr) names.insert(node->s(c10::attr::name));
    for (Block* nested : node->blocks()) CollectAssignedNames(nested, names);
  }
}

// The attribute a prim::GetAttr node reads, when the object is a module
// reached from `self` by attributes.
c10::optional<c10::IValue> AttributeValue(Node* get, torch::jit::Value* self, const torch::jit::Module& root) {
  std::vector<std::string> names;
  if (!AttrChain(get->input(0), self, names)) return c10::nullopt;
  c10::intrusive_ptr<c10::ivalue::Object> object = root._ivalue();
  for (const auto& name : names) {
    if (!object->type()->hasAttribute(name)) return c10::nullopt;
    c10::IValue child = object->getAttr(name);
    if (!child.isObject()) return c10::nullopt;
    object = child.toObject();
  }
  const std::string& attribute = get->s(c10::attr::name);
  if (!object->type()->hasAttribute(attribute)) return c10::nullopt;
  return object->getAttr(attribute);
}

void FoldAttributes(Block* block, torch::jit::Value* self, const torch::jit::Module& root,
                    const std::set<std::string>& assigned) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) FoldAttributes(nested, self, root, assigned);
    if (node->kind() != c10::prim::GetAttr || assigned.count(node->s(c10::attr::name))) continue;
    c10::optional<c10::IValue> value = AttributeValue(node, self, root);
    if (!value || !Foldable(*value)) continue;
    torch::jit::WithInsertPoint guard(node);
    c10::optional<torch::jit::Value*> constant = torch::jit::tryInsertConstant(*node->owningGraph(), *value);
    if (constant) node->output()->replaceAllUsesWith(*constant);
  }
}

}  // namespace

void SimplifyForEval(std::shared_ptr<torch::jit::Graph>& graph, const torch::jit::Module& root) {
  std::set<std::string> assigned;
  CollectAssignedNames(graph->block(), assigned);
  FoldAttributes(graph->block(), graph->inputs()[0], root, assigned);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
}

}  // namespace tg
