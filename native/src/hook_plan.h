// The per-call plan that the attention hook ops read.
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
  int64_t gridHeight = 0;  // blur only: the site's query grid
  int64_t gridWidth = 0;
};

// What a probe forward records at each site.
struct SiteShape {
  std::vector<int64_t> logits;  // the softmax input's shape
};

struct HookPlan {
  int64_t batch = 0;  // samples in this forward (the hooks' slices count in samples)
  std::vector<HookEntry> entries;
  bool probe = false;
  std::map<int64_t, SiteShape> shapes;       // filled when probe
  std::map<int64_t, at::Tensor> captures;    // filled by capture entries
};

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
