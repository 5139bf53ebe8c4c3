#include "attention_pass.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>

#include <map>

#include "errors.h"
#include "graph_paths.h"
#include "hook_plan.h"
#include "module_pass.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

const c10::Symbol kSoftmax = c10::Symbol::fromQualString("aten::softmax");
const c10::Symbol kSoftmaxInternal = c10::Symbol::fromQualString("aten::_softmax");

bool IsSoftmax(const Node* node) { return node->kind() == kSoftmax || node->kind() == kSoftmaxInternal; }

// Step 1: the module path of every softmax, in the order Inline() will lay
// them out (depth first, in program order, nested blocks in place).
void CollectPaths(Block* block, Value* self, const std::string& prefix, std::vector<std::string>& paths) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectPaths(nested, self, prefix, paths);
    if (IsSoftmax(node)) {
      paths.push_back(prefix);
    } else if (node->kind() == c10::prim::CallMethod) {
      Value* module = node->input(0);
      auto type = module->type()->cast<c10::ClassType>();
      if (!type) continue;
      torch::jit::Function* method = type->findMethod(node->s(c10::attr::name));
      if (method == nullptr) continue;
      std::vector<std::string> names;
      std::string path = AttrChain(module, self, names) ? JoinPath(prefix, names) : prefix + ".?";
      auto graph = torch::jit::toGraphFunction(*method).graph();
      CollectPaths(graph->block(), graph->inputs()[0], path, paths);
    } else if (node->kind() == c10::prim::CallFunction) {
      auto type = node->input(0)->type()->cast<c10::FunctionType>();
      if (!type) continue;
      auto graph = torch::jit::toGraphFunction(*type->function()).graph();
      CollectPaths(graph->block(), nullptr, prefix, paths);
    }
  }
}

void CollectSoftmaxes(Block* block, std::vector<Node*>& nodes) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectSoftmaxes(nested, nodes);
    if (IsSoftmax(node)) nodes.push_back(node);
  }
}

// True when the softmax result (through dropout or casts) is the left
// operand of a product with the values.
bool FeedsAttentionProduct(Value* value, int depth = 0) {
  if (depth > 4) return false;
  for (const auto& use : value->uses()) {
    const std::string kind = use.user->kind().toQualString();
    if ((kind == "aten::matmul" || kind == "aten::bmm" || kind == "aten::baddbmm") && use.offset == (kind == "aten::baddbmm" ? 1 : 0)) {
      return true;
    }
    if (kind == "prim::ListConstruct") {
      // einsum takes its operands as a list.
      for (const auto& listUse : use.user->output()->uses()) {
        if (listUse.user->kind().toQualString() == std::string("aten::einsum")) return true;
      }
    }
    if (kind == "aten::dropout" || kind == "aten::to" || kind == "aten::type_as" || kind == "aten::contiguous") {
      if (FeedsAttentionProduct(use.user->output(), depth + 1)) return true;
    }
  }
  return false;
}

void Wrap(Node* softmax, int64_t site) {
  static const c10::Symbol kLogitsHook = c10::Symbol::fromQualString(HookNamespace() + "::attn_logits");
  static const c10::Symbol kProbsHook = c10::Symbol::fromQualString(HookNamespace() + "::attn_probs");
  torch::jit::Graph* graph = softmax->owningGraph();
  {
    torch::jit::WithInsertPoint guard(softmax);
    Value* id = graph->insertConstant(site);
    Node* hook = graph->insertNode(graph->create(kLogitsHook, {softmax->input(0), id}));
    hook->output()->setType(softmax->input(0)->type());
    hook->copyMetadata(softmax);
    softmax->replaceInput(0, hook->output());
  }
  {
    torch::jit::WithInsertPoint guard(softmax->next());
    Value* id = graph->insertConstant(site);
    Node* hook = graph->insertNode(graph->create(kProbsHook, {softmax->output(), id}));
    hook->output()->setType(softmax->output()->type());
    hook->copyMetadata(softmax);
    softmax->output()->replaceAllUsesAfterNodeWith(hook, hook->output());
  }
}

}  // namespace

HookSites InsertHooks(torch::jit::Module& module, const std::string& timeEmbedding) {
  auto method = module.find_method("forward");
  if (!method) return {};
  std::shared_ptr<torch::jit::Graph> graph = toGraphFunction(method->function()).graph();

  HookSites result;
  std::vector<std::string> paths;
  CollectPaths(graph->block(), graph->inputs()[0], "", paths);
  // Inlines from the same unoptimised graphs CollectPaths walked, so the k-th
  // softmax below is the k-th one named above; tags module outputs on the way.
  result.modules = InlineWithModuleHooks(*graph, timeEmbedding);
  std::vector<Node*> softmaxes;
  CollectSoftmaxes(graph->block(), softmaxes);
  if (softmaxes.size() != paths.size()) {
    throw Error(code::kNative, "attention pass: found " + std::to_string(paths.size()) + " softmax calls but " +
                                   std::to_string(softmaxes.size()) + " after inlining; please report this model.");
  }

  std::vector<AttentionSite>& sites = result.attention;
  std::map<std::string, int> perPath;
  for (size_t i = 0; i < softmaxes.size(); ++i) {
    if (!FeedsAttentionProduct(softmaxes[i]->output())) continue;
    AttentionSite site;
    site.id = static_cast<int64_t>(sites.size());
    int seen = perPath[paths[i]]++;
    site.path = seen == 0 ? paths[i] : paths[i] + "#" + std::to_string(seen);
    site.kind = "softmax";
    Wrap(softmaxes[i], site.id);
    sites.push_back(site);
  }
  return result;
}

}  // namespace tg
