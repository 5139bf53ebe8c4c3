// The per-call plan that the hook ops (attention sites and module outputs) read.
//
// A forward sets its plan in a thread-local for the duration of the call
// (ScopedHookPlan), so concurrent forwards with different plans on one model
// never see each other's. With no plan, every hook returns its input.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace tg {

enum class HookAction { kIdentity, kBlur, kCapture };

struct HookEntry {
  int64_t site = 0;
  int64_t start = 0;   // first sample of the slice
  int64_t length = 0;  // samples in the slice
  HookAction action = HookAction::kIdentity;
  double sigma = 0;    // blur only; infinity = the mean query
  int64_t axis = -1;   // the site's softmax axis as written (-1, or a non-negative index checked at run time)
  int64_t gridHeight = 0;  // blur only: the site's query grid
  int64_t gridWidth = 0;
};

// What a probe forward records at each site.
struct SiteShape {
  std::vector<int64_t> logits;  // the softmax input's shape
};

// Module outputs (jit/module_pass.h): add seeded Gaussian noise (time-step
// guidance), replace the output by the module's input (skip-layer guidance),
// or drop elements of the output at random as dropout does (diffusers'
// LayerSkipConfig with dropout below 1).
enum class ModuleAction { kNoise, kSkip, kDropout };

struct ModuleHookEntry {
  int64_t site = 0;
  int64_t start = 0;   // first sample of the slice
  int64_t length = 0;  // samples in the slice
  ModuleAction action = ModuleAction::kNoise;
  double scale = 0;    // noise: the standard deviation added
  double probability = 0;  // dropout: the chance that an element is zeroed
  // noise and dropout: one seed for the slice's random tensor, or one per
  // sample (perSampleSeeds); drawn as randn() and rand() draw them
  // (seeded_noise.h).
  std::vector<uint64_t> seeds;
  bool perSampleSeeds = false;
};

struct ModuleShape {
  std::vector<int64_t> output;
  std::vector<int64_t> input;  // the first tensor argument's shape (the output's when the call has none)
};

struct HookPlan {
  int64_t batch = 0;  // samples in this forward (the hooks' slices count in samples)
  std::vector<HookEntry> entries;
  bool probe = false;
  std::map<int64_t, SiteShape> shapes;       // filled when probe
  std::map<int64_t, at::Tensor> captures;    // filled by capture entries
  std::vector<ModuleHookEntry> moduleEntries;
  std::map<int64_t, ModuleShape> moduleShapes;  // filled when probe

  // Whether any hook op has something to do in this forward; a plan that
  // does not may run the graph without hook ops (jit/model_state.h, plainForward).
  bool Acts() const { return probe || !entries.empty() || !moduleEntries.empty(); }
};

// The plan of the forward running on this thread, or null.
HookPlan* ThreadHookPlan();

// The operator namespace of this addon's hook ops ("guidance", or
// "guidance_N" when another copy of the addon took it); registers them on
// first use.
const std::string& HookNamespace();

class ScopedHookPlan {
 public:
  explicit ScopedHookPlan(HookPlan* plan);
  ~ScopedHookPlan();
  ScopedHookPlan(const ScopedHookPlan&) = delete;
  ScopedHookPlan& operator=(const ScopedHookPlan&) = delete;

 private:
  HookPlan* previous_;
};

}  // namespace tg
