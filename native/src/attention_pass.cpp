#include "attention_pass.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <map>

#include "errors.h"
#include "graph_paths.h"
#include "hook_plan.h"
#include "module_pass.h"
#include "sdpa.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

const c10::Symbol kSoftmax = c10::Symbol::fromQualString("aten::softmax");
const c10::Symbol kSoftmaxInternal = c10::Symbol::fromQualString("aten::_softmax");

bool IsSoftmax(const Node* node) { return node->kind() == kSoftmax || node->kind() == kSoftmaxInternal; }

bool IsSdpa(const Node* node) {
  static const c10::Symbol kSdpa = c10::Symbol::fromQualString(SdpaOpName());
  return node->kind() == kSdpa;
}

// A node that may be an attention site: every SDPA, and softmaxes (which
// FeedsAttentionProduct sorts out later, after inlining).
bool IsCandidate(const Node* node) { return IsSoftmax(node) || IsSdpa(node); }

// Step 1: the module path of every candidate, in the order Inline() will lay
// them out (depth first, in program order, nested blocks in place).
void CollectPaths(Block* block, Value* self, const std::string& prefix, std::vector<std::string>& paths) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectPaths(nested, self, prefix, paths);
    if (IsCandidate(node)) {
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

void CollectCandidates(Block* block, std::vector<Node*>& nodes) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectCandidates(nested, nodes);
    if (IsCandidate(node)) nodes.push_back(node);
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

// Follows an SDPA node with guidance::attn_sdpa(out, q, k, v, mask, causal,
// scale, site), its arguments taken by name where the node has a schema
// (2.0 has no `scale`: None).
void WrapSdpa(Node* sdpa, int64_t site) {
  static const c10::Symbol kSdpaHook = c10::Symbol::fromQualString(HookNamespace() + "::attn_sdpa");
  torch::jit::Graph* graph = sdpa->owningGraph();
  torch::jit::WithInsertPoint guard(sdpa->next());
  const c10::FunctionSchema* schema = sdpa->maybeSchema();
  auto argument = [&](const char* name, size_t position, const c10::IValue& absent) -> Value* {
    c10::optional<int> index = schema ? schema->argumentIndexWithName(name) : c10::optional<int>(position);
    if (index && static_cast<size_t>(*index) < sdpa->inputs().size()) return sdpa->input(*index);
    return graph->insertConstant(absent);
  };
  std::vector<Value*> inputs{sdpa->output(),
                             argument("query", 0, c10::IValue()),
                             argument("key", 1, c10::IValue()),
                             argument("value", 2, c10::IValue()),
                             argument("attn_mask", 3, c10::IValue()),
                             argument("is_causal", 5, c10::IValue(false)),
                             argument("scale", 6, c10::IValue()),
                             graph->insertConstant(site)};
  Node* hook = graph->insertNode(graph->create(kSdpaHook, inputs));
  hook->output()->setType(sdpa->output()->type());
  hook->copyMetadata(sdpa);
  sdpa->output()->replaceAllUsesAfterNodeWith(hook, hook->output());
}

void RemoveHookOps(Block* block, const std::string& prefix) {
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    Node* node = *it;
    ++it;
    for (Block* nested : node->blocks()) RemoveHookOps(nested, prefix);
    if (std::string(node->kind().toQualString()).rfind(prefix, 0) == 0) {
      node->output()->replaceAllUsesWith(node->input(0));
      node->destroy();
    }
  }
}

}  // namespace

std::shared_ptr<torch::jit::Graph> WithoutHookOps(torch::jit::Graph& graph) {
  std::shared_ptr<torch::jit::Graph> copy = graph.copy();
  RemoveHookOps(copy->block(), HookNamespace() + "::");
  torch::jit::EliminateDeadCode(copy);  // the site-id constants
  return copy;
}

HookSites InsertHooks(torch::jit::Module& module, const std::string& timeEmbedding) {
  auto method = module.find_method("forward");
  if (!method) return {};
  std::shared_ptr<torch::jit::Graph> graph = toGraphFunction(method->function()).graph();

  HookSites result;
  std::vector<std::string> paths;
  CollectPaths(graph->block(), graph->inputs()[0], "", paths);
  // Inlines from the same unoptimised graphs CollectPaths walked, so the k-th
  // candidate below is the k-th one named above; tags module outputs on the way.
  result.modules = InlineWithModuleHooks(*graph, timeEmbedding);
  std::vector<Node*> candidates;
  CollectCandidates(graph->block(), candidates);
  if (candidates.size() != paths.size()) {
    throw Error(code::kNative, "attention pass: found " + std::to_string(paths.size()) + " softmax or SDPA calls but " +
                                   std::to_string(candidates.size()) + " after inlining; please report this model.");
  }

  std::vector<AttentionSite>& sites = result.attention;
  std::map<std::string, int> perPath;
  for (size_t i = 0; i < candidates.size(); ++i) {
    Node* node = candidates[i];
    const bool sdpa = IsSdpa(node);
    if (!sdpa && !FeedsAttentionProduct(node->output())) continue;
    AttentionSite site;
    site.id = static_cast<int64_t>(sites.size());
    int seen = perPath[paths[i]]++;
    site.path = seen == 0 ? paths[i] : paths[i] + "#" + std::to_string(seen);
    site.kind = sdpa ? "sdpa" : "softmax";
    if (sdpa) {
      WrapSdpa(node, site.id);
    } else {
      Wrap(node, site.id);
    }
    sites.push_back(site);
  }
  return result;
}

}  // namespace tg
