#include "graph_paths.h"

namespace tg {

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

}  // namespace tg
