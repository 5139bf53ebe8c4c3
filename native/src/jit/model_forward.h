// One call of a loaded model's method, on a torch thread: the hook plan, the
// autocast and the preconditioning around it, and its failures as typed
// errors.
#pragma once

#include <ATen/core/ivalue.h>

#include <optional>
#include <string>
#include <vector>

#include "jit/model_state.h"
#include "ops/hook_plan.h"
#include "ops/preconditioning.h"

namespace tg {

// Runs method `name` of `state` on `inputs` (the argument stack without
// self, already checked against the method's schema) and returns its
// output. Sets `plan` (may be null) as the thread's hook plan; with no plan,
// or one with nothing to do, forward runs the copy without hook ops
// (ModelState::plainForward). With `preconditioning`, inputs[0] is x and
// inputs[1] a placeholder for the time, and the result is the denoised
// c_skip · x + c_out · F. Moves the inputs to the model's device and dtype,
// and clears `inputs` once the method has run (their references are dropped
// on the torch thread). Throws ERR_OUT_OF_MEMORY, ERR_INPUT_SHAPE or
// ERR_FORWARD_FAILED with the model's own message.
c10::IValue RunMethod(ModelState& state, const std::string& name, std::vector<c10::IValue>& inputs, HookPlan* plan,
                      const std::optional<Preconditioning>& preconditioning);

}  // namespace tg
