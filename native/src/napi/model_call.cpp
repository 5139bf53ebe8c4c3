// Model.call(method, inputs, plan?, signal?): checks the call on the main
// thread, runs it on a torch thread (jit/model_forward.h) and converts the
// output, the captures and the probe's shapes back to JS.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "jit/model_forward.h"
#include "napi/hook_plan_js.h"
#include "napi/ivalue_convert.h"
#include "napi/js_convert.h"
#include "napi/model.h"
#include "napi/tensor.h"
#include "runtime/intra_op_threads.h"
#include "runtime/js_errors.h"
#include "runtime/promise_worker.h"

namespace tg {

namespace {

// The model's method `name` (never the hidden copy of forward); throws
// ERR_METHOD_NOT_FOUND listing the methods the model has.
torch::jit::Method FindMethod(const ModelState& state, const std::string& name) {
  auto method = state.module.find_method(name);
  if (name == state.plainForward) method.reset();  // ours, not the model's
  if (!method) {
    std::string names;
    for (const auto& m : state.module.get_methods()) {
      if (m.name() != state.plainForward) names += (names.empty() ? "" : ", ") + m.name();
    }
    throw Error(code::kMethodNotFound, "the model has no method '" + name + "'. Methods: " + names + ".");
  }
  return *method;
}

// With preconditioning, the caller leaves out the time input, which the torch
// thread fills (jit/model_forward.h): x stands in for it here, so that the
// schema check sees a tensor. Throws unless the method takes (x: Tensor,
// t: Tensor, ...) and x is given.
Napi::Array WithTimePlaceholder(Napi::Env env, const torch::jit::Method& method, const std::string& name,
                                const Napi::Array& jsInputs) {
  const c10::FunctionSchema& schema = method.function().getSchema();
  const auto& args = schema.arguments();  // args[0] is self
  const bool tensors = args.size() >= 3 && args[1].type()->kind() == c10::TypeKind::TensorType &&
                       args[2].type()->kind() == c10::TypeKind::TensorType;
  if (!tensors) {
    throw Error(args.size() < 3 ? code::kInputCount : code::kInputType,
                "a denoiser's " + name + " takes (x: Tensor, t: Tensor, ...) inputs, but this one is " +
                    SignatureOf(schema) + ". Fix: export the model with that signature (models/README.md, "
                                          "\"The model card\"), or call run() without preconditioning.");
  }
  if (jsInputs.Length() < 1) {
    throw Error(code::kInputCount, "preconditioning needs x as the first input. Fix: pass inputs [x, ...rest].");
  }
  Napi::Array withTime = Napi::Array::New(env, jsInputs.Length() + 1);
  withTime.Set(0u, jsInputs.Get(0u));
  withTime.Set(1u, jsInputs.Get(0u));
  for (uint32_t i = 1; i < jsInputs.Length(); ++i) withTime.Set(i + 1, jsInputs.Get(i));
  return withTime;
}

// [site, Tensor][] of the capture entries; the plan lets go of the tensors.
Napi::Array CapturesToJs(Napi::Env env, HookPlan& plan) {
  Napi::Array captures = Napi::Array::New(env);
  for (auto& [site, tensor] : plan.captures) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
    pair.Set(1u, TensorWrap::Wrap(env, tensor));
    captures.Set(captures.Length(), pair);
  }
  plan.captures.clear();
  return captures;
}

// [site, logits shape][] of a probe.
Napi::Array ShapesToJs(Napi::Env env, const HookPlan& plan) {
  Napi::Array shapes = Napi::Array::New(env);
  for (const auto& [site, shape] : plan.shapes) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
    pair.Set(1u, FromShape(env, shape.logits));
    shapes.Set(shapes.Length(), pair);
  }
  return shapes;
}

// [site, output shape, input shape][] of a probe.
Napi::Array ModuleShapesToJs(Napi::Env env, const HookPlan& plan) {
  Napi::Array moduleShapes = Napi::Array::New(env);
  for (const auto& [site, shape] : plan.moduleShapes) {
    Napi::Array triple = Napi::Array::New(env, 3);
    triple.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
    triple.Set(1u, FromShape(env, shape.output));
    triple.Set(2u, FromShape(env, shape.input));
    moduleShapes.Set(moduleShapes.Length(), triple);
  }
  return moduleShapes;
}

// call()'s result: the output alone, or with a plan { output, captures,
// shapes, moduleShapes }. Lets go of the output's references.
Napi::Value CallResultToJs(Napi::Env env, c10::IValue& output, HookPlan* plan) {
  Napi::Value result = OutputToJs(env, output);
  output = c10::IValue();
  if (!plan) return result;
  Napi::Object withHooks = Napi::Object::New(env);
  withHooks.Set("output", result);
  withHooks.Set("captures", CapturesToJs(env, *plan));
  withHooks.Set("shapes", ShapesToJs(env, *plan));
  withHooks.Set("moduleShapes", ModuleShapesToJs(env, *plan));
  return withHooks;
}

}  // namespace

Napi::Value ModelWrap::Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<ModelState> state = Checked();
    std::string name = ToString(info.Length() > 0 ? info[0] : env.Undefined(), "method");
    if (info.Length() < 2 || !info[1].IsArray()) {
      throw Error(code::kInvalidArgument, "call(method, inputs) needs inputs as an array.");
    }
    torch::jit::Method method = FindMethod(*state, name);
    const Napi::Value planValue = info.Length() > 2 ? info[2] : env.Undefined();
    std::optional<Preconditioning> preconditioning = ParsePreconditioning(planValue);
    Napi::Array jsInputs = info[1].As<Napi::Array>();
    if (preconditioning) jsInputs = WithTimePlaceholder(env, method, name, jsInputs);
    auto inputs = std::make_shared<std::vector<c10::IValue>>(InputsFromJs(env, method.function().getSchema(), jsInputs));
    auto output = std::make_shared<c10::IValue>();
    std::shared_ptr<HookPlan> plan = ParseHookPlan(planValue, state->sites, state->moduleSites);
    const int intraOpThreads = ParseIntraOpThreads(planValue);
    return PromiseWorker::Start(
        env,
        [state, name, inputs, output, plan, preconditioning, intraOpThreads]() {
          IntraOpThreadsScope threads(intraOpThreads);
          state->lastForwardThreads.store(at::get_num_threads());
          *output = RunMethod(*state, name, *inputs, plan.get(), preconditioning);
        },
        [output, plan](Napi::Env env) -> Napi::Value { return CallResultToJs(env, *output, plan.get()); },
        info.Length() > 3 ? info[3] : env.Undefined());
  });
}

}  // namespace tg
