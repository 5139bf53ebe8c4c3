#include "module_pass.h"

#include <torch/csrc/jit/api/function_impl.h>

#include <map>

#include "graph_paths.h"
#include "hook_plan.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

struct Tagger {
  Value* self;
  std::string timeEmbedding;
  std::vector<ModuleSite> sites;
  std::map<std::string, int> perPath;
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

// Decides whether this call of `module.forward` is tagged (see module_pass.h).
bool WorthTagging(Node* call, const c10::ClassTypePtr& type, const std::string& path, const Tagger& tagger) {
  if (call->s(c10::attr::name) != "forward") return false;
  if (call->outputs().size() != 1 || !call->output()->type()->cast<c10::TensorType>()) return false;
  if (!tagger.timeEmbedding.empty() && path == tagger.timeEmbedding) return true;
  return !IsTorchNnClass(type) && FirstTensorArgument(call) != nullptr;
}

// Inserts `module_out(out, input, id)` after `call` and points every later use
// of `out` at its result. With no tensor argument, `out` stands in for the
// input (skip is refused on such sites before any forward).
void Tag(Node* call, const std::string& path, Tagger& tagger) {
  static const c10::Symbol kModuleOut = c10::Symbol::fromQualString(HookNamespace() + "::module_out");
  ModuleSite site;
  site.id = static_cast<int64_t>(tagger.sites.size());
  int seen = tagger.perPath[path]++;
  site.path = seen == 0 ? path : path + "#" + std::to_string(seen);
  Value* input = FirstTensorArgument(call);
  site.hasInput = input != nullptr;

  torch::jit::Graph* graph = call->owningGraph();
  torch::jit::WithInsertPoint guard(call->next());
  Value* id = graph->insertConstant(site.id);
  Node* hook = graph->insertNode(graph->create(kModuleOut, {call->output(), input ? input : call->output(), id}));
  hook->output()->setType(call->output()->type());
  hook->copyMetadata(call);
  call->output()->replaceAllUsesAfterNodeWith(hook, hook->output());
  tagger.sites.push_back(site);
}

// Inlines `call` from `function`'s unoptimised graph and returns the node to
// visit next: the first inlined node, so nested calls are handled in order.
Node* InlineOne(Node* call, torch::jit::GraphFunction& function) {
  Node* before = call->prev();
  torch::jit::inlineCallTo(call, &function, function.graph().get());
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
        if (AttrChain(node->input(0), tagger.self, names) && !names.empty()) {
          std::string path = JoinPath("", names);
          if (WorthTagging(node, type, path, tagger)) Tag(node, path, tagger);
        }
        node = InlineOne(node, *function);
        continue;
      }
    } else if (node->kind() == c10::prim::CallFunction) {
      auto type = node->input(0)->type()->cast<c10::FunctionType>();
      torch::jit::GraphFunction* function = type ? torch::jit::tryToGraphFunction(*type->function()) : nullptr;
      if (function != nullptr) {
        node->removeInput(0);  // the function constant; the callee's inputs are the rest
        node = InlineOne(node, *function);
        continue;
      }
    }
    for (Block* nested : node->blocks()) InlineBlock(nested, tagger);
    node = node->next();
  }
}

}  // namespace

std::vector<ModuleSite> InlineWithModuleHooks(torch::jit::Graph& graph, const std::string& timeEmbedding) {
  Tagger tagger{graph.inputs()[0], timeEmbedding, {}, {}};
  InlineBlock(graph.block(), tagger);
  return tagger.sites;
}

}  // namespace tg
