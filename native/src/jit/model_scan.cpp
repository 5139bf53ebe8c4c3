#include "jit/model_scan.h"

#include <torch/csrc/jit/api/function_impl.h>

#include <map>
#include <set>

#include "common/errors.h"

namespace tg {

namespace {

// Operator namespaces whose kernels compute on tensors and nothing else.
// `prim` is the TorchScript language itself (control flow, constants,
// containers, attribute access, calls to the module's own code).
const std::set<std::string>& AllowedNamespaces() {
  static const std::set<std::string> allowed = {"aten", "prim", "prims", "quantized", "_quantized", "prepacked"};
  return allowed;
}

// Operators in those namespaces that reach outside the model, and why.
// aten::warn (warnings.warn) is allowed: torch's own modules warn, and it
// only hands a message to libtorch's warning handler.
const std::map<std::string, std::string>& DeniedOperators() {
  static const std::map<std::string, std::string> denied = {
      {"aten::save", "writes a tensor to a file"},
      {"aten::from_file", "maps a file into a tensor"},
      {"prim::Print", "prints to the process's standard output"},
      {"aten::manual_seed", "reseeds the process's global random generator"},
      {"aten::_cufft_set_plan_cache_max_size", "changes a process-wide CUDA setting"},
      {"aten::_cufft_clear_plan_cache", "changes a process-wide CUDA setting"},
      {"prim::rpc_async", "calls another process (torch.distributed.rpc)"},
      {"prim::rpc_sync", "calls another process (torch.distributed.rpc)"},
      {"prim::rpc_remote", "calls another process (torch.distributed.rpc)"},
  };
  return denied;
}

bool IsNativeClass(const c10::TypePtr& type) {
  if (auto cls = type->cast<c10::ClassType>()) {
    return cls->name() && cls->name()->qualifiedName().rfind("__torch__.torch.classes.", 0) == 0;
  }
  for (const c10::TypePtr& contained : type->containedTypes()) {
    if (IsNativeClass(contained)) return true;
  }
  return false;
}

class Scanner {
 public:
  explicit Scanner(std::string path) : path_(std::move(path)) {}

  void Function(torch::jit::Function& function) {
    if (!seen_.insert(&function).second) return;
    torch::jit::GraphFunction* graphFunction = torch::jit::tryToGraphFunction(function);
    if (graphFunction == nullptr) return;  // a builtin: its operators are what the graphs call
    graphFunction->ensure_defined();
    Block(*graphFunction->graph()->block(), function.qualname().qualifiedName());
  }

 private:
  void Block(torch::jit::Block& block, const std::string& where) {
    for (torch::jit::Value* input : block.inputs()) CheckType(input, where);
    for (torch::jit::Node* node : block.nodes()) {
      Node(*node, where);
      for (torch::jit::Block* inner : node->blocks()) Block(*inner, where);
      // prim::fork and friends carry their body as a graph attribute.
      for (torch::jit::Symbol name : node->attributeNames()) {
        if (node->kindOf(name) == torch::jit::AttributeKind::g) {
          Block(*node->g(name)->block(), where);
        } else if (node->kindOf(name) == torch::jit::AttributeKind::gs) {
          for (const auto& graph : node->gs(name)) Block(*graph->block(), where);
        }
      }
    }
  }

  void Node(torch::jit::Node& node, const std::string& where) {
    const std::string kind = node.kind().toQualString();
    const std::string ns = kind.substr(0, kind.find("::"));
    auto denied = DeniedOperators().find(kind);
    if (denied != DeniedOperators().end()) Refuse(kind, denied->second, where);
    if (AllowedNamespaces().count(ns) == 0 && !IsHookNamespace(ns)) {
      Refuse(kind, "is an operator outside the tensor library (namespace '" + ns + "')", where);
    }
    for (torch::jit::Value* output : node.outputs()) CheckType(output, where);
  }

  void CheckType(torch::jit::Value* value, const std::string& where) {
    if (IsNativeClass(value->type())) {
      throw Error(code::kUntrustedModel,
                  "'" + path_ + "' uses the native class " + value->type()->annotation_str() + " (in " + where +
                      "), whose methods are native code that cannot be checked. Fix: load it with loadModel(path, { "
                      "trust: 'full' }) (CLI: --trust) if you trust where the file comes from.");
    }
  }

  // The addon's own hook ops (guidance, or guidance_N beside another copy).
  static bool IsHookNamespace(const std::string& ns) { return ns.rfind("guidance", 0) == 0; }

  [[noreturn]] void Refuse(const std::string& kind, const std::string& what, const std::string& where) {
    throw Error(code::kUntrustedModel,
                "'" + path_ + "' calls " + kind + ", which " + what + " (in " + where +
                    "). A TorchScript file is code, and untrusted files may only compute on tensors. Fix: load it with "
                    "loadModel(path, { trust: 'full' }) (CLI: --trust) if you trust where the file comes from.");
  }

  std::string path_;
  std::set<const torch::jit::Function*> seen_;
};

}  // namespace

void ScanModule(const torch::jit::Module& module, const std::string& path) {
  Scanner scanner(path);
  // Every function and method the archive defined lives in its compilation unit.
  for (torch::jit::Function* function : module._ivalue()->compilation_unit()->get_functions()) scanner.Function(*function);
  // And, in case a type's methods live elsewhere, each module's own.
  for (const torch::jit::Module& submodule : module.modules()) {
    for (torch::jit::Function* method : submodule.type()->methods()) scanner.Function(*method);
  }
}

}  // namespace tg
