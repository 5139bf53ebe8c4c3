#include "jit/attention_pass.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <map>

#include "jit/attention_flow.h"
#include "jit/graph_paths.h"
#include "jit/graph_simplify.h"
#include "jit/module_pass.h"
#include "ops/hook_plan.h"
#include "ops/mha_hook.h"
#include "ops/sdpa.h"

namespace tg {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

enum class Kind { kNone, kSoftmax, kSdpa, kMha, kOtherFused };

Kind KindOf(const Node* node) {
  static const c10::Symbol kSoftmax = c10::Symbol::fromQualString("aten::softmax");
  static const c10::Symbol kSoftmaxInternal = c10::Symbol::fromQualString("aten::_softmax");
  static const c10::Symbol kSdpa = c10::Symbol::fromQualString(SdpaOpName());
  static const c10::Symbol kMha = c10::Symbol::fromQualString(NativeMhaOpName());
  const c10::Symbol kind = node->kind();
  if (kind == kSoftmax || kind == kSoftmaxInternal) {
    // The int-axis overloads (not the named-dimension one).
    return node->inputs().size() >= 2 && node->input(1)->type()->kind() == c10::TypeKind::IntType ? Kind::kSoftmax
                                                                                                   : Kind::kNone;
  }
  if (kind == kSdpa) return Kind::kSdpa;
  if (kind == kMha) return Kind::kMha;
  // Other fused attention kernels (flash and memory-efficient SDPA variants a
  // trace can record on 2.x, the fused transformer layers): seen, not hooked.
  if (!kind.is_aten()) return Kind::kNone;
  const std::string name = kind.toUnqualString();
  const bool fused = name.find("attention") != std::string::npos || name.find("_transformer_encoder_layer") == 0 ||
                     name.find("_transformer_decoder") == 0;
  return fused && name.find("backward") == std::string::npos ? Kind::kOtherFused : Kind::kNone;
}

// What the pass decided for one candidate node.
struct Decision {
  Node* node = nullptr;
  Kind kind = Kind::kNone;
  std::string path;  // the site's module path when hooked, else the owner's
  int64_t axis = -1;
  bool hooked = false;
  std::string reason;
  bool attention = false;
};

Decision DecideSoftmax(Node* softmax) {
  Decision decision{softmax, Kind::kSoftmax, OwnerPath(softmax)};
  ProbabilityFlow flow = FollowProbabilities(softmax->output());
  c10::optional<int64_t> axis = torch::jit::constant_as<int64_t>(softmax->input(1));
  if (flow.product == nullptr) {
    decision.attention = !flow.blocker.empty();
    decision.reason = decision.attention ? "an op the pass does not follow sits between the softmax and the product "
                                           "with the values: " + flow.blocker
                                         : "the softmax result is not multiplied by values (not attention)";
    return decision;
  }
  decision.attention = true;
  if (!axis) {
    decision.reason = "the softmax axis is not a constant";
  } else if (*axis < -1) {
    decision.reason = "the softmax runs over axis " + std::to_string(*axis) + ", not over the last (keys) axis";
  } else {
    decision.hooked = true;
    decision.axis = *axis;
    decision.path = CommonPath(OwnerPath(softmax), OwnerPath(flow.product));
  }
  return decision;
}

Decision Decide(Node* node, Kind kind) {
  switch (kind) {
    case Kind::kSoftmax:
      return DecideSoftmax(node);
    case Kind::kSdpa:
    case Kind::kMha:
      return Decision{node, kind, OwnerPath(node), -1, true, "", true};
    default:
      return Decision{node, kind, OwnerPath(node), -1, false,
                      std::string("a fused attention kernel without a hook: its probabilities cannot be reached. Fix: "
                                  "export this attention written out, or with scaled_dot_product_attention or "
                                  "nn.MultiheadAttention (a trace with grad enabled, or a script, records them)"),
                      true};
  }
}

void CollectDecisions(Block* block, std::vector<Decision>& decisions) {
  for (Node* node : block->nodes()) {
    for (Block* nested : node->blocks()) CollectDecisions(nested, decisions);
    Kind kind = KindOf(node);
    if (kind != Kind::kNone) decisions.push_back(Decide(node, kind));
  }
}

// Names the hooked candidates in program order: `path`, `path#1`, ... per
// module. Alternatives share a name (and a site): the branches of an If count
// from the same number, and the candidates of one call of a one-attention
// module (an OwnerMark group) take the group's name.
struct Naming {
  std::map<std::string, int> seen;
  std::map<int64_t, std::string> groups;
};

void NameSites(Block* block, const std::map<Node*, Decision*>& hooked, Naming& naming,
               std::map<Node*, std::string>& names) {
  for (Node* node : block->nodes()) {
    if (node->kind() == c10::prim::If) {
      std::map<std::string, int> merged = naming.seen;
      const std::map<std::string, int> before = naming.seen;
      for (Block* branch : node->blocks()) {
        naming.seen = before;
        NameSites(branch, hooked, naming, names);
        for (const auto& [path, count] : naming.seen) merged[path] = std::max(merged[path], count);
      }
      naming.seen = std::move(merged);
      continue;
    }
    for (Block* nested : node->blocks()) NameSites(nested, hooked, naming, names);
    auto found = hooked.find(node);
    if (found == hooked.end()) continue;
    const int64_t group = GetOwnerMark(node).group;
    auto named = naming.groups.find(group);
    if (group >= 0 && named != naming.groups.end()) {
      names[node] = named->second;
      continue;
    }
    const std::string& path = found->second->path;
    const int ordinal = naming.seen[path]++;
    names[node] = ordinal == 0 ? path : path + "#" + std::to_string(ordinal);
    if (group >= 0) naming.groups[group] = names[node];
  }
}

Node* InsertHookNode(Node* after, const std::string& op, const std::vector<Value*>& inputs, Value* replaced) {
  const c10::Symbol kind = c10::Symbol::fromQualString(HookNamespace() + "::" + op);
  torch::jit::Graph* graph = after->owningGraph();
  torch::jit::WithInsertPoint guard(after->next());
  Node* hook = graph->insertNode(graph->create(kind, inputs));
  hook->output()->setType(replaced->type());
  hook->copyMetadata(after);
  replaced->replaceAllUsesAfterNodeWith(hook, hook->output());
  return hook;
}

void WrapSoftmax(Node* softmax, int64_t site) {
  static const c10::Symbol kLogitsHook = c10::Symbol::fromQualString(HookNamespace() + "::attn_logits");
  torch::jit::Graph* graph = softmax->owningGraph();
  {
    torch::jit::WithInsertPoint guard(softmax);
    Node* hook = graph->insertNode(graph->create(kLogitsHook, {softmax->input(0), graph->insertConstant(site)}));
    hook->output()->setType(softmax->input(0)->type());
    hook->copyMetadata(softmax);
    softmax->replaceInput(0, hook->output());
  }
  torch::jit::WithInsertPoint guard(softmax->next());
  Value* id = graph->insertConstant(site);
  InsertHookNode(id->node(), "attn_probs", {softmax->output(), id}, softmax->output());
}

// A fused op's argument by name where the node has a schema (positions
// otherwise), or a constant when this libtorch's op lacks it.
Value* Argument(Node* node, const char* name, size_t position, const c10::IValue& absent) {
  const c10::FunctionSchema* schema = node->maybeSchema();
  c10::optional<int> index = schema ? schema->argumentIndexWithName(name) : c10::optional<int>(position);
  if (index && static_cast<size_t>(*index) < node->inputs().size()) return node->input(*index);
  torch::jit::WithInsertPoint guard(node);
  return node->owningGraph()->insertConstant(absent);
}

// guidance::attn_sdpa(out, q, k, v, mask, causal, scale, site) after an SDPA
// node (2.0 has no `scale`: None).
void WrapSdpa(Node* sdpa, int64_t site) {
  std::vector<Value*> inputs{sdpa->output(),
                             Argument(sdpa, "query", 0, c10::IValue()),
                             Argument(sdpa, "key", 1, c10::IValue()),
                             Argument(sdpa, "value", 2, c10::IValue()),
                             Argument(sdpa, "attn_mask", 3, c10::IValue()),
                             Argument(sdpa, "is_causal", 5, c10::IValue(false)),
                             Argument(sdpa, "scale", 6, c10::IValue())};
  torch::jit::WithInsertPoint guard(sdpa->next());
  inputs.push_back(sdpa->owningGraph()->insertConstant(site));
  InsertHookNode(inputs.back()->node(), "attn_sdpa", inputs, sdpa->output());
}

// guidance::attn_mha(out, query, key, value, num_head, qkv_weight, qkv_bias,
// proj_weight, proj_bias, mask, mask_type, site) after a fused
// nn.MultiheadAttention; the op's first output is the attention's.
void WrapMha(Node* mha, int64_t site) {
  std::vector<Value*> inputs{mha->output(0),
                             Argument(mha, "query", 0, c10::IValue()),
                             Argument(mha, "key", 1, c10::IValue()),
                             Argument(mha, "value", 2, c10::IValue()),
                             Argument(mha, "num_head", 4, c10::IValue()),
                             Argument(mha, "qkv_weight", 5, c10::IValue()),
                             Argument(mha, "qkv_bias", 6, c10::IValue()),
                             Argument(mha, "proj_weight", 7, c10::IValue()),
                             Argument(mha, "proj_bias", 8, c10::IValue()),
                             Argument(mha, "mask", 9, c10::IValue()),
                             Argument(mha, "mask_type", 12, c10::IValue())};
  torch::jit::WithInsertPoint guard(mha->next());
  inputs.push_back(mha->owningGraph()->insertConstant(site));
  InsertHookNode(inputs.back()->node(), "attn_mha", inputs, mha->output(0));
}

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kSoftmax:
      return "softmax";
    case Kind::kSdpa:
      return "sdpa";
    case Kind::kMha:
      return "mha";
    default:
      return "fused";
  }
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
  result.modules = InlineWithModuleHooks(*graph, module, timeEmbedding);
  SimplifyForEval(graph, module);
  RenumberModuleSites(*graph, result.modules);

  std::vector<Decision> decisions;
  CollectDecisions(graph->block(), decisions);
  std::map<Node*, Decision*> hooked;
  for (Decision& decision : decisions) {
    if (decision.hooked) hooked[decision.node] = &decision;
  }
  Naming naming;
  std::map<Node*, std::string> names;
  NameSites(graph->block(), hooked, naming, names);

  std::map<std::string, int64_t> siteByName;
  for (Decision& decision : decisions) {
    AttentionCandidate candidate;
    candidate.op = decision.node->kind().toQualString();
    candidate.path = decision.path;
    candidate.reason = decision.reason;
    candidate.attention = decision.attention;
    if (decision.hooked) {
      const std::string& name = names.at(decision.node);
      auto [entry, created] = siteByName.emplace(name, static_cast<int64_t>(result.attention.size()));
      if (created) result.attention.push_back(AttentionSite{entry->second, name, KindName(decision.kind), decision.axis});
      candidate.site = entry->second;
      candidate.path = name;
      if (decision.kind == Kind::kSoftmax) {
        WrapSoftmax(decision.node, entry->second);
      } else if (decision.kind == Kind::kSdpa) {
        WrapSdpa(decision.node, entry->second);
      } else {
        WrapMha(decision.node, entry->second);
      }
    }
    result.candidates.push_back(std::move(candidate));
  }
  return result;
}

}  // namespace tg
