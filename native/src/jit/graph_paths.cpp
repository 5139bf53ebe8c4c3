#include "jit/graph_paths.h"

#include <map>
#include <mutex>

namespace tg {

namespace {

// Scope names are interned symbols; ours carry this marker so that scopes a
// tracer or another pass left on a node are not read as module paths.
const std::string kOwnerMarker = "torch_guidance.owner:";

torch::jit::ScopePtr OwnerScope(const OwnerMark& mark) {
  // Scopes are immutable and shared: one per mark, for the process's lifetime.
  static std::mutex mutex;
  static std::map<std::string, torch::jit::ScopePtr> scopes;
  const std::string name = kOwnerMarker + mark.path + (mark.group >= 0 ? "|" + std::to_string(mark.group) : "");
  std::lock_guard<std::mutex> lock(mutex);
  auto found = scopes.find(name);
  if (found != scopes.end()) return found->second;
  auto scope = c10::make_intrusive<torch::jit::Scope>()->push(c10::Symbol::scope(name));
  scopes.emplace(name, scope);
  return scope;
}

}  // namespace

bool AttrChain(torch::jit::Value* module, torch::jit::Value* self, std::vector<std::string>& names) {
  std::vector<std::string> reversed;
  while (module != self) {
    torch::jit::Node* node = module->node();
    if (node->kind() != c10::prim::GetAttr) return false;
    reversed.push_back(node->s(c10::attr::name));
    module = node->input(0);
  }
  names.assign(reversed.rbegin(), reversed.rend());
  return true;
}

std::string JoinPath(const std::string& prefix, const std::vector<std::string>& names) {
  std::string path = prefix;
  for (const auto& name : names) path += (path.empty() ? "" : ".") + name;
  return path;
}

void SetOwnerMark(torch::jit::Node* node, const OwnerMark& mark) {
  node->setScope(OwnerScope(mark));
  for (torch::jit::Block* block : node->blocks()) {
    for (torch::jit::Node* inner : block->nodes()) SetOwnerMark(inner, mark);
  }
}

OwnerMark GetOwnerMark(torch::jit::Node* node) {
  const torch::jit::ScopePtr& scope = node->scope();
  if (!scope || scope->isRoot()) return {};
  const std::string name = scope->name().toUnqualString();
  if (name.rfind(kOwnerMarker, 0) != 0) return {};
  std::string text = name.substr(kOwnerMarker.size());
  size_t bar = text.rfind('|');  // module paths hold no '|'
  if (bar == std::string::npos) return {text, -1};
  return {text.substr(0, bar), std::stoll(text.substr(bar + 1))};
}

std::string OwnerPath(torch::jit::Node* node) { return GetOwnerMark(node).path; }

std::string CommonPath(const std::string& a, const std::string& b) {
  size_t end = 0;  // the length of the common whole segments
  for (size_t i = 0;; ++i) {
    const bool aEnd = i == a.size() || a[i] == '.';
    const bool bEnd = i == b.size() || b[i] == '.';
    if (aEnd && bEnd) end = i;
    if (i == a.size() || i == b.size() || a[i] != b[i]) break;
  }
  return a.substr(0, end);
}

bool IsPathPrefix(const std::string& prefix, const std::string& path) {
  if (prefix.empty()) return true;
  return path.rfind(prefix, 0) == 0 && (path.size() == prefix.size() || path[prefix.size()] == '.');
}

}  // namespace tg
