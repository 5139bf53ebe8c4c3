#include "jit/module_pass.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/constants.h>

#include <algorithm>

#include <map>

#include "jit/graph_paths.h"
#include "ops/hook_plan.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

struct Tagger {
  Value* self;
  const torch::jit::Module& root;
  std::string timeEmbedding;
  std::vector<ModuleSite> sites;
  std::map<std::string, int> perPath;
  int64_t nextGroup = 0;  // OwnerMark groups, one per nn.MultiheadAttention call
};

// torch.nn's own classes (__torch__.torch.nn.modules.conv.Conv2d, possibly
// with a ___torch_mangle_N segment), as opposed to the model's classes.
bool IsTorchNnClass(const c10::ClassTypePtr& type) {
  auto name = type->name();
  return name && name->qualifiedName().rfind("__torch__.torch.nn.", 0) == 0;
}

Value* FirstTensorArgument(Node* call) {
  for (size_t i = 1; i < call->inputs().size(); ++i) {
    if (call->input(i)->type()->cast<c10::TensorType>()) return call->input(i);
  }
  return nullptr;
}

bool IsMultiheadAttention(const c10::ClassTypePtr& type) {
  auto name = type->name();
  return name && IsTorchNnClass(type) && name->name() == "MultiheadAttention";
}

// How a call's output is tagged: not at all, the output itself, or as
// nn.MultiheadAttention's output (batch axis first or second; the first of
// the (output, weights) pair it returns, or alone where a trace kept only it).
enum class TagKind { kNone, kTensor, kMultihead };

// Decides whether and how this call of `module.forward` is tagged (see module_pass.h).
TagKind WorthTagging(Node* call, const c10::ClassTypePtr& type, const std::string& path, const Tagger& tagger) {
  if (call->s(c10::attr::name) != "forward" || call->outputs().size() != 1) return TagKind::kNone;
  const c10::TypePtr& output = call->output()->type();
  if (IsMultiheadAttention(type)) {
    auto tuple = output->cast<c10::TupleType>();
    const bool tensorFirst = tuple && !tuple->elements().empty() && tuple->elements()[0]->cast<c10::TensorType>();
    const bool tagged = (tensorFirst || output->cast<c10::TensorType>()) && FirstTensorArgument(call) != nullptr;
    return tagged ? TagKind::kMultihead : TagKind::kNone;
  }
  if (!output->cast<c10::TensorType>()) return TagKind::kNone;
  if (!tagger.timeEmbedding.empty() && path == tagger.timeEmbedding) return TagKind::kTensor;
  return !IsTorchNnClass(type) && FirstTensorArgument(call) != nullptr ? TagKind::kTensor : TagKind::kNone;
}

// Whether an nn.MultiheadAttention call takes batch-first tensors. A script
// keeps `batch_first` as a class constant (an attribute in some releases); a
// trace keeps neither, only the ops that ran: batch-first inputs show as the
// fused op (which only takes batch-first tensors) or as the explicit path's
// opening transpose of the query to [tokens, batch, embed].
bool MhaBatchFirst(const c10::ClassTypePtr& type, const std::vector<std::string>& names, const Tagger& tagger,
                   torch::jit::GraphFunction& forward) {
  if (type->hasConstant("batch_first")) return type->getConstant("batch_first").toBool();
  c10::intrusive_ptr<c10::ivalue::Object> object = tagger.root._ivalue();
  for (const auto& name : names) object = object->getAttr(name).toObject();
  if (type->hasAttribute("batch_first")) return object->getAttr("batch_first").toBool();
  const auto& graph = forward.graph();
  for (Node* node : graph->nodes()) {
    if (std::string(node->kind().toQualString()) == "aten::_native_multi_head_attention") return true;
  }
  if (graph->inputs().size() < 2) return false;
  for (const torch::jit::Use& use : graph->inputs()[1]->uses()) {
    if (use.user->kind() != c10::aten::transpose) continue;
    auto a = torch::jit::constant_as<int64_t>(use.user->input(1));
    auto b = torch::jit::constant_as<int64_t>(use.user->input(2));
    if (a && b && std::min(*a, *b) == 0 && std::max(*a, *b) == 1) return true;
  }
  return false;
}

ModuleSite NewSite(const std::string& path, bool hasInput, Tagger& tagger) {
  ModuleSite site;
  site.id = static_cast<int64_t>(tagger.sites.size());
  int seen = tagger.perPath[path]++;
  site.path = seen == 0 ? path : path + "#" + std::to_string(seen);
  site.hasInput = hasInput;
  tagger.sites.push_back(site);
  return site;
}

// `<ns>::module_out(out, input, id)`, inserted at the graph's insert point.
Value* InsertModuleOut(Node* call, Value* out, Value* input, int64_t id) {
  static const c10::Symbol kModuleOut = c10::Symbol::fromQualString(HookNamespace() + "::module_out");
  torch::jit::Graph* graph = call->owningGraph();
  Node* hook = graph->insertNode(graph->create(kModuleOut, {out, input, graph->insertConstant(id)}));
  hook->output()->setType(out->type());
  hook->copyMetadata(call);
  return hook->output();
}

// Inserts `module_out(out, input, id)` after `call` and points every later use
// of `out` at its result. With no tensor argument, `out` stands in for the
// input (skip is refused on such sites before any forward).
void Tag(Node* call, const std::string& path, Tagger& tagger) {
  Value* input = FirstTensorArgument(call);
  ModuleSite site = NewSite(path, input != nullptr, tagger);
  torch::jit::WithInsertPoint guard(call->next());
  Value* tagged = InsertModuleOut(call, call->output(), input ? input : call->output(), site.id);
  call->output()->replaceAllUsesAfterNodeWith(tagged->node(), tagged);
}

// Tags nn.MultiheadAttention's output tensor: the call's result, or the
// first of the (output, weights) pair. Its batch axis is the second one unless
// the module is batch_first; the hook op slices the first axis, so it then
// sees the output and the query transposed.
void TagMultihead(Node* call, const std::string& path, bool batchSecond, Tagger& tagger) {
  torch::jit::Graph* graph = call->owningGraph();
  ModuleSite site = NewSite(path, /*hasInput=*/true, tagger);
  torch::jit::WithInsertPoint guard(call->next());
  auto batchFirst = [&](Value* v) { return batchSecond ? graph->insert(c10::aten::transpose, {v, 0, 1}) : v; };
  Value* result = call->output();
  const bool tuple = result->type()->cast<c10::TupleType>() != nullptr;
  std::vector<Value*> elements{result};
  if (tuple) {
    Node* unpack = graph->insertNode(graph->createTupleUnpack(result));
    elements.assign(unpack->outputs().begin(), unpack->outputs().end());
  }
  Value* tagged = InsertModuleOut(call, batchFirst(elements[0]), batchFirst(FirstTensorArgument(call)), site.id);
  elements[0] = batchFirst(tagged);
  Value* replacement = elements[0];
  if (tuple) {
    replacement = graph->insertNode(graph->createTuple(elements))->output();
    replacement->setType(result->type());
  }
  result->replaceAllUsesAfterNodeWith(replacement->node(), replacement);
}

// Inlines `call` from `function`'s unoptimised graph, marks the inlined nodes
// as code of `owner`, and returns the node to visit next: the first inlined
// node, so nested calls are handled in order (and re-marked with their own
// module's path).
Node* InlineOne(Node* call, torch::jit::GraphFunction& function, const OwnerMark& owner) {
  Node* before = call->prev();
  Node* after = call->next();
  torch::jit::inlineCallTo(call, &function, function.graph().get());
  for (Node* node = before->next(); node != after; node = node->next()) SetOwnerMark(node, owner);
  return before->next();
}

void InlineBlock(Block* block, Tagger& tagger) {
  Node* node = block->param_node()->next();
  while (node != block->return_node()) {
    if (node->kind() == c10::prim::CallMethod) {
      auto type = node->input(0)->type()->cast<c10::ClassType>();
      torch::jit::Function* method = type ? type->findMethod(node->s(c10::attr::name)) : nullptr;
      torch::jit::GraphFunction* function = method ? torch::jit::tryToGraphFunction(*method) : nullptr;
      if (function != nullptr) {
        std::vector<std::string> names;
        OwnerMark owner = GetOwnerMark(node);  // a module reached other than by attributes: its caller's code
        if (AttrChain(node->input(0), tagger.self, names) && !names.empty()) {
          owner = {JoinPath("", names), IsMultiheadAttention(type) ? tagger.nextGroup++ : -1};
          switch (WorthTagging(node, type, owner.path, tagger)) {
            case TagKind::kTensor:
              Tag(node, owner.path, tagger);
              break;
            case TagKind::kMultihead:
              TagMultihead(node, owner.path, !MhaBatchFirst(type, names, tagger, *function), tagger);
              break;
            case TagKind::kNone:
              break;
          }
        }
        node = InlineOne(node, *function, owner);
        continue;
      }
    } else if (node->kind() == c10::prim::CallFunction) {
      auto type = node->input(0)->type()->cast<c10::FunctionType>();
      torch::jit::GraphFunction* function = type ? torch::jit::tryToGraphFunction(*type->function()) : nullptr;
      if (function != nullptr) {
        node->removeInput(0);  // the function constant; the callee's inputs are the rest
        node = InlineOne(node, *function, GetOwnerMark(node));
        continue;
      }
    }
    for (Block* nested : node->blocks()) InlineBlock(nested, tagger);
    node = node->next();
  }
}

}  // namespace

namespace {

void CollectModuleOuts(Block* block, std::vector<Node*>& hooks) {
  static const c10::Symbol kModuleOut = c10::Symbol::fromQualString(HookNamespace() + "::module_out");
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectModuleOuts(nested, hooks);
    if (node->kind() == kModuleOut) hooks.push_back(node);
  }
}

}  // namespace

void RenumberModuleSites(torch::jit::Graph& graph, std::vector<ModuleSite>& sites) {
  std::vector<Node*> found;
  CollectModuleOuts(graph.block(), found);
  // In the order the sites were tagged (a block before the blocks inside it).
  std::map<int64_t, Node*> hooks;
  for (Node* hook : found) {
    c10::optional<int64_t> old = torch::jit::constant_as<int64_t>(hook->input(2));
    if (old && *old >= 0 && *old < static_cast<int64_t>(sites.size())) hooks.emplace(*old, hook);
  }
  std::vector<ModuleSite> kept;
  std::map<std::string, int> perPath;
  for (const auto& [old, hook] : hooks) {
    ModuleSite site = sites[static_cast<size_t>(old)];
    std::string path = site.path.substr(0, site.path.find('#'));
    int seen = perPath[path]++;
    site.path = seen == 0 ? path : path + "#" + std::to_string(seen);
    site.id = static_cast<int64_t>(kept.size());
    torch::jit::WithInsertPoint guard(hook);
    hook->replaceInput(2, graph.insertConstant(site.id));
    kept.push_back(site);
  }
  sites = std::move(kept);
}

std::vector<ModuleSite> InlineWithModuleHooks(torch::jit::Graph& graph, const torch::jit::Module& root,
                                              const std::string& timeEmbedding) {
  Tagger tagger{graph.inputs()[0], root, timeEmbedding, {}, {}};
  InlineBlock(graph.block(), tagger);
  return tagger.sites;
}

}  // namespace tg
