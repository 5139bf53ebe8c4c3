// A forward's hook plan from its JS form (src/model.ts builds it):
//
//   { batch, probe?, entries?: [{ site, start, length, action, sigma?, gridHeight?, gridWidth? }],
//     modules?: [{ site, start, length, action: 'noise' | 'skip', scale?, seed? }],
//     preconditioning?: { inputScale, time, skip, out } }
//
// Checked here, on the main thread, so a bad plan fails before the forward is
// queued.
#pragma once

#include <napi.h>

#include <memory>
#include <optional>
#include <vector>

#include "jit/attention_pass.h"
#include "jit/module_pass.h"
#include "ops/hook_plan.h"
#include "ops/preconditioning.h"

namespace tg {

// Null when `value` is not an object (a forward without a plan).
std::shared_ptr<HookPlan> ParseHookPlan(const Napi::Value& value, const std::vector<AttentionSite>& attentionSites,
                                        const std::vector<ModuleSite>& moduleSites);

// From the plan object's `preconditioning` field: { inputScale, time, skip,
// out }, all finite numbers; nullopt when the field is absent.
std::optional<Preconditioning> ParsePreconditioning(const Napi::Value& plan);

// The plan's `intraOpThreads`: the OpenMP threads this one forward may use
// (a chunk of a split batch), or 0 when absent (the process-wide count).
int ParseIntraOpThreads(const Napi::Value& plan);

}  // namespace tg
