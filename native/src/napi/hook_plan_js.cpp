#include "napi/hook_plan_js.h"

#include <cmath>
#include <string>

#include "common/errors.h"
#include "napi/js_convert.h"

namespace tg {

namespace {

HookAction ParseAction(const std::string& name) {
  if (name == "identity") return HookAction::kIdentity;
  if (name == "blur") return HookAction::kBlur;
  if (name == "capture") return HookAction::kCapture;
  throw Error(code::kInvalidArgument, "unknown hook action '" + name + "'. Use identity, blur or capture.");
}

ModuleAction ParseModuleAction(const std::string& name) {
  if (name == "noise") return ModuleAction::kNoise;
  if (name == "skip") return ModuleAction::kSkip;
  if (name == "dropout") return ModuleAction::kDropout;
  throw Error(code::kInvalidArgument, "unknown module hook action '" + name + "'. Use noise, skip or dropout.");
}

Napi::Array EntryList(const Napi::Object& plan, const char* key) {
  Napi::Value list = plan.Get(key);
  if (list.IsUndefined()) return Napi::Array::New(plan.Env());
  if (!list.IsArray()) throw Error(code::kInvalidArgument, std::string("plan.") + key + " must be an array.");
  return list.As<Napi::Array>();
}

Napi::Object EntryAt(const Napi::Array& list, uint32_t i, const char* key) {
  if (!list.Get(i).IsObject()) throw Error(code::kInvalidArgument, std::string("plan.") + key + "[i] must be an object.");
  return list.Get(i).As<Napi::Object>();
}

void CheckSlice(int64_t start, int64_t length, int64_t batch) {
  if (start < 0 || length < 1 || start + length > batch) {
    throw Error(code::kInvalidArgument, "plan entry slice [" + std::to_string(start) + ", " +
                                            std::to_string(start + length) + ") is outside the batch of " +
                                            std::to_string(batch) + ".");
  }
}

void CheckSite(int64_t site, size_t count, const char* what) {
  if (site < 0 || site >= static_cast<int64_t>(count)) {
    throw Error(code::kInvalidArgument, "plan entry site " + std::to_string(site) + " does not exist (the model has " +
                                            std::to_string(count) + " " + what + ").");
  }
}

HookEntry ParseAttentionEntry(const Napi::Object& item, const std::vector<AttentionSite>& sites, int64_t batch) {
  HookEntry entry;
  entry.site = ToInt64(item.Get("site"), "plan entry site");
  entry.start = ToInt64(item.Get("start"), "plan entry start");
  entry.length = ToInt64(item.Get("length"), "plan entry length");
  entry.action = ParseAction(ToString(item.Get("action"), "plan entry action"));
  CheckSite(entry.site, sites.size(), "attention sites");
  CheckSlice(entry.start, entry.length, batch);
  entry.axis = sites[static_cast<size_t>(entry.site)].axis;
  if (entry.action == HookAction::kBlur) {
    entry.sigma = ToDouble(item.Get("sigma"), "plan entry sigma");
    entry.gridHeight = ToInt64(item.Get("gridHeight"), "plan entry gridHeight");
    entry.gridWidth = ToInt64(item.Get("gridWidth"), "plan entry gridWidth");
    if (!(entry.sigma > 0)) throw Error(code::kInvalidArgument, "blur sigma must be positive (or Infinity).");
  }
  return entry;
}

// The seed of a noise or dropout entry: one (the slice's random tensor as
// one randn or rand draw), or an array with one per sample of the slice.
void ParseSeeds(const Napi::Value& seed, ModuleHookEntry& entry) {
  entry.perSampleSeeds = seed.IsArray();
  if (!entry.perSampleSeeds) {
    entry.seeds.push_back(ToSeed(seed, "module entry seed"));
    return;
  }
  Napi::Array seeds = seed.As<Napi::Array>();
  if (static_cast<int64_t>(seeds.Length()) != entry.length) {
    throw Error(code::kInvalidArgument, "a module entry has " + std::to_string(seeds.Length()) + " seeds for a slice of " +
                                            std::to_string(entry.length) + " samples; give one per sample.");
  }
  for (uint32_t i = 0; i < seeds.Length(); ++i) entry.seeds.push_back(ToSeed(seeds.Get(i), "module entry seed[i]"));
}

ModuleHookEntry ParseModuleEntry(const Napi::Object& item, const std::vector<ModuleSite>& sites, int64_t batch) {
  ModuleHookEntry entry;
  entry.site = ToInt64(item.Get("site"), "module entry site");
  entry.start = ToInt64(item.Get("start"), "module entry start");
  entry.length = ToInt64(item.Get("length"), "module entry length");
  entry.action = ParseModuleAction(ToString(item.Get("action"), "module entry action"));
  CheckSite(entry.site, sites.size(), "module sites");
  CheckSlice(entry.start, entry.length, batch);
  const ModuleSite& site = sites[static_cast<size_t>(entry.site)];
  if (entry.action == ModuleAction::kSkip && !site.hasInput) {
    throw Error(code::kInvalidArgument, "skip on module " + site.path + ", whose call has no tensor input to pass on.");
  }
  if (entry.action == ModuleAction::kNoise) {
    entry.scale = ToDouble(item.Get("scale"), "module entry scale");
    if (!(entry.scale >= 0) || std::isinf(entry.scale)) {
      throw Error(code::kInvalidArgument, "noise scale must be a finite number >= 0.");
    }
  }
  if (entry.action == ModuleAction::kDropout) {
    entry.probability = ToDouble(item.Get("p"), "module entry p");
    if (!(entry.probability >= 0 && entry.probability < 1)) {
      throw Error(code::kInvalidArgument, "dropout p must be at least 0 and below 1 (1 is skip).");
    }
  }
  if (entry.action != ModuleAction::kSkip) ParseSeeds(item.Get("seed"), entry);
  return entry;
}

}  // namespace

std::shared_ptr<HookPlan> ParseHookPlan(const Napi::Value& value, const std::vector<AttentionSite>& attentionSites,
                                        const std::vector<ModuleSite>& moduleSites) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  auto plan = std::make_shared<HookPlan>();
  plan->batch = ToInt64(object.Get("batch"), "plan.batch");
  if (plan->batch < 1) throw Error(code::kInvalidArgument, "plan.batch must be at least 1.");
  plan->probe = object.Get("probe").ToBoolean().Value();
  Napi::Array entries = EntryList(object, "entries");
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    plan->entries.push_back(ParseAttentionEntry(EntryAt(entries, i, "entries"), attentionSites, plan->batch));
  }
  Napi::Array modules = EntryList(object, "modules");
  for (uint32_t i = 0; i < modules.Length(); ++i) {
    plan->moduleEntries.push_back(ParseModuleEntry(EntryAt(modules, i, "modules"), moduleSites, plan->batch));
  }
  return plan;
}

std::optional<Preconditioning> ParsePreconditioning(const Napi::Value& plan) {
  if (!plan.IsObject()) return std::nullopt;
  Napi::Value value = plan.As<Napi::Object>().Get("preconditioning");
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  if (!value.IsObject()) throw Error(code::kInvalidArgument, "preconditioning must be an object { inputScale, time, skip, out }.");
  Napi::Object object = value.As<Napi::Object>();
  auto number = [&](const char* key) {
    Napi::Value field = object.Get(key);
    if (!field.IsNumber() || !std::isfinite(field.As<Napi::Number>().DoubleValue())) {
      throw Error(code::kInvalidArgument, std::string("preconditioning.") + key + " must be a finite number.");
    }
    return field.As<Napi::Number>().DoubleValue();
  };
  return Preconditioning{number("inputScale"), number("time"), number("skip"), number("out")};
}

int ParseIntraOpThreads(const Napi::Value& plan) {
  if (!plan.IsObject()) return 0;
  Napi::Value value = plan.As<Napi::Object>().Get("intraOpThreads");
  if (value.IsUndefined() || value.IsNull()) return 0;
  const double threads = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : 0;
  if (!(threads >= 1 && threads <= 4096) || threads != static_cast<double>(static_cast<int>(threads))) {
    throw Error(code::kInvalidArgument, "intraOpThreads must be a whole number from 1 to 4096.");
  }
  return static_cast<int>(threads);
}

}  // namespace tg
