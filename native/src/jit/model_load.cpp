#include "jit/model_load.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <memory>
#include <vector>

#include "common/errors.h"
#include "io/archive_checks.h"
#include "io/archive_file.h"
#include "io/extra_records.h"
#include "jit/model_scan.h"

namespace tg {

namespace {

constexpr const char* kCardFile = "model.json";
// A version 2 card's null conditions (src/model/model-card.ts, namedInputSchema).
constexpr const char* kNullsFolder = "nulls/";

// A top-level string field of the model card, or "" (the card is checked by
// src/model-card.ts; here only the time embedding's module path is needed,
// before the graph pass, and module paths hold no quotes or escapes).
std::string CardString(const std::string& card, const std::string& key) {
  size_t at = card.find("\"" + key + "\"");
  if (at == std::string::npos) return "";
  at = card.find_first_not_of(" \t\r\n", at + key.size() + 2);
  if (at == std::string::npos || card[at] != ':') return "";
  at = card.find_first_not_of(" \t\r\n", at + 1);
  if (at == std::string::npos || card[at] != '"') return "";
  size_t end = card.find('"', at + 1);
  return end == std::string::npos ? "" : card.substr(at + 1, end - at - 1);
}

// Adds forward without the hook ops as a method of the frozen module, so it
// runs through the same machinery as forward (graph optimisation, profiling
// executor, autocast specialisation) with forward's schema (its defaults).
// The frozen weights are constants shared by both graphs.
void AddPlainForward(ModelState& state) {
  const std::string name = "__torch_guidance_forward_without_hooks";
  torch::jit::Method forward = state.module.get_method("forward");
  auto unit = state.module._ivalue()->compilation_unit();
  c10::QualifiedName qualified(*state.module.type()->name(), name);
  torch::jit::Function* function = unit->create_function(qualified, WithoutHookOps(*forward.graph()));
  torch::jit::toGraphFunction(*function).setSchema(forward.function().getSchema().cloneWithName(name, ""));
  state.module.type()->addMethod(function);
  state.plainForward = name;
}

// Loads the module into state.module and returns the archive's extra records
// that the load asked for (the card and the null conditions).
torch::jit::ExtraFilesMap ReadArchive(ModelState& state, const std::string& path, at::Device device,
                                      const LoadLimits& limits) {
  // Sizes, truncation and load-time code are checked before libtorch reads
  // the archive, and the graphs before any of their code runs (the pass,
  // freezing's folding, the probe): io/archive_checks.h, model_scan.h.
  std::shared_ptr<ArchiveFile> file = ArchiveFile::Open(path);
  CheckArchive(file, limits.maxBytes, limits.trusted);
  torch::jit::ExtraFilesMap extra{{kCardFile, ""}};
  for (const std::string& name : ExtraRecordNames(*file, kNullsFolder)) extra[name] = "";
  try {
    state.module = torch::jit::load(file, device, extra);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // c10::Error, and the std::invalid_argument of a garbled number (stoull).
    auto* c10Error = dynamic_cast<const c10::Error*>(&e);
    throw Error(code::kNotTorchScript,
                "'" + path + "' is not a TorchScript archive (libtorch: " +
                    ErrorSummary(c10Error ? c10Error->what_without_backtrace() : e.what()) +
                    "). Fix: export the model with torch.jit.script (or trace) and torch.jit.save; a state_dict or a "
                    "torch.save(model) pickle cannot be loaded.");
  }
  if (!limits.trusted) ScanModule(state.module, path);
  return extra;
}

void CountParameters(ModelState& state) {
  for (const auto& parameter : state.module.parameters()) {
    state.parameterCount += parameter.numel();
    state.parameterBytes += parameter.numel() * static_cast<int64_t>(parameter.element_size());
  }
  for (const auto& buffer : state.module.buffers()) {
    state.parameterBytes += buffer.numel() * static_cast<int64_t>(buffer.element_size());
  }
}

// Hooks go in before freezing: the pass needs the module tree to name the
// sites. A model the pass cannot handle still loads, without sites (hook
// ops it inserted before failing return their input: no plan can name them).
void InsertHookSites(ModelState& state, bool hooks) {
  try {
    if (hooks) {
      HookSites sites = InsertHooks(state.module, CardString(state.card, "timeEmbedding"));
      state.sites = std::move(sites.attention);
      state.moduleSites = std::move(sites.modules);
      state.attentionCandidates = std::move(sites.candidates);
    }
  } catch (const std::exception& e) {
    state.sites.clear();
    state.moduleSites.clear();
    state.attentionCandidates.clear();
    state.attentionPassError = e.what();
  }
}

// Freezing folds parameters into the graph and inlines submodule calls.
// Keep every exported method.
void Freeze(ModelState& state) {
  std::vector<std::string> preserved;
  for (const auto& method : state.module.get_methods()) {
    if (method.name() != "forward") preserved.push_back(method.name());
  }
  try {
    state.module = torch::jit::freeze(state.module, preserved, /*optimize_numerics=*/true);
    state.frozen = true;
    if (!state.sites.empty() || !state.moduleSites.empty()) {
      try {
        AddPlainForward(state);
      } catch (const std::exception&) {
        state.plainForward.clear();  // forwards without a plan run the hooked graph: correct, a little slower
      }
    }
  } catch (const c10::Error&) {
    // Modules that mutate their own attributes cannot be frozen; they still
    // run, only without the constant folding.
    state.frozen = false;
  }
}

}  // namespace

void LoadModel(ModelState& state, const std::string& path, at::Device device, at::ScalarType dtype, bool hooks,
               const LoadLimits& limits) {
  torch::jit::ExtraFilesMap extra = ReadArchive(state, path, device, limits);
  state.path = path;
  state.device = device;
  state.dtype = dtype;
  state.card = extra[kCardFile];
  state.hasCard = !state.card.empty();
  for (auto& [name, bytes] : extra) {
    if (name != kCardFile) state.extraRecords[name] = std::move(bytes);
  }

  state.module.eval();
  if (dtype != at::kFloat) state.module.to(dtype);
  CountParameters(state);

  if (!state.module.find_method("forward")) {
    throw Error(code::kMethodNotFound, "'" + path + "' has no forward method. Fix: export a module whose forward "
                                                   "is the denoiser.");
  }
  InsertHookSites(state, hooks);
  Freeze(state);
}

}  // namespace tg
