#include "napi/model.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/import.h>

#include "io/archive_checks.h"
#include "io/archive_file.h"
#include "jit/model_load.h"
#include "jit/model_scan.h"
#include "napi/hook_plan_js.h"
#include "napi/ivalue_convert.h"
#include "napi/js_convert.h"
#include "napi/tensor.h"
#include "ops/autocast.h"
#include "ops/hook_plan.h"
#include "ops/preconditioning.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/instance_data.h"
#include "runtime/external_memory.h"
#include "runtime/js_errors.h"
#include "runtime/promise_worker.h"

namespace tg {

namespace {

std::atomic<int64_t> g_liveModels{0};

}  // namespace

int64_t ModelWrap::LiveCount() { return g_liveModels.load(); }

Napi::Function ModelWrap::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Model",
                                    {
                                        StaticMethod<&ModelWrap::Load>("load"),
                                        InstanceMethod<&ModelWrap::Call>("call"),
                                        InstanceMethod<&ModelWrap::Describe>("describe"),
                                        InstanceAccessor<&ModelWrap::Card>("card"),
                                        InstanceAccessor<&ModelWrap::AttentionSites>("attentionSites"),
                                        InstanceAccessor<&ModelWrap::ModuleSites>("moduleSites"),
                                        InstanceAccessor<&ModelWrap::AttentionCandidates>("attentionCandidates"),
                                        InstanceMethod<&ModelWrap::ExtraRecord>("extraRecord"),
                                        InstanceAccessor<&ModelWrap::Device>("device"),
                                        InstanceAccessor<&ModelWrap::Dtype>("dtype"),
                                        InstanceAccessor<&ModelWrap::ForwardCount>("forwardCount"),
                                        InstanceAccessor<&ModelWrap::PlainForwardCount>("plainForwardCount"),
                                        InstanceAccessor<&ModelWrap::LastForwardThreads>("lastForwardThreads"),
                                        InstanceMethod<&ModelWrap::LastOptimizedGraph>("lastOptimizedGraph"),
                                        InstanceAccessor<&ModelWrap::Disposed>("disposed"),
                                        InstanceMethod<&ModelWrap::Dispose>("dispose"),
                                    });
  InstanceData::Get(env).modelClass = Napi::Persistent(ctor);
  return ctor;
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeError(info.Env(), {code::kInvalidArgument, "Model has no public constructor. Use loadModel()."});
  }
  state_ = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
  if (state_->device.is_cpu()) {
    reportedBytes_ = state_->parameterBytes;
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reportedBytes_);
  }
  ++g_liveModels;
}

ModelWrap::~ModelWrap() { Release(); }

void ModelWrap::Release() {
  if (!state_) return;
  state_.reset();
  --g_liveModels;
  ReleaseExternalMemory(Env(), reportedBytes_);
  reportedBytes_ = 0;
}

const std::shared_ptr<ModelState>& ModelWrap::Checked() const {
  if (!state_) {
    throw Error(code::kDisposed, "this Model was disposed and can no longer be used. Fix: load it again.");
  }
  return state_;
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::string path = ToString(info.Length() > 0 ? info[0] : env.Undefined(), "path");
    Napi::Value options = info.Length() > 1 ? info[1] : env.Undefined();
    // Device and dtype are checked here, on the main thread, so that a bad
    // name fails before any file is read.
    at::Device device = ParseDevice(OptionalString(options, "device", "auto"));
    at::ScalarType dtype = DtypeByName(OptionalString(options, "dtype", "float32")).scalarType;
    if (!at::isFloatingType(dtype)) {
      throw Error(code::kInvalidArgument, "a model's dtype must be float32, float16, bfloat16 or float64.");
    }
    bool hooks = !(options.IsObject() && options.As<Napi::Object>().Get("attentionHooks").StrictEquals(Napi::Boolean::New(env, false)));
    LoadLimits limits;
    Napi::Value signal = env.Undefined();
    if (options.IsObject()) {
      Napi::Object object = options.As<Napi::Object>();
      limits.trusted = object.Get("trust").StrictEquals(Napi::String::New(env, "full"));
      if (object.Get("memoryLimit").IsNumber()) {
        const double bytes = object.Get("memoryLimit").As<Napi::Number>().DoubleValue();
        if (bytes > 0 && bytes < 1.8e19) limits.maxBytes = static_cast<uint64_t>(bytes);
      }
      signal = object.Get("signal");
    }
    auto state = std::make_shared<ModelState>();
    return PromiseWorker::Start(
        env, [state, path, device, dtype, hooks, limits]() { LoadModel(*state, path, device, dtype, hooks, limits); },
        [state](Napi::Env env) -> Napi::Value {
          return InstanceData::Get(env).modelClass.New({Napi::External<std::shared_ptr<ModelState>>::New(
              env, const_cast<std::shared_ptr<ModelState>*>(&state))});
        },
        signal);
  });
}

Napi::Value ModelWrap::Describe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto& state = Checked();
    Napi::Object description = Napi::Object::New(env);
    description.Set("path", state->path);
    description.Set("device", DeviceName(state->device));
    description.Set("dtype", DtypeByScalarType(state->dtype).name);
    description.Set("frozen", state->frozen);
    if (!state->attentionPassError.empty()) description.Set("attentionPassError", state->attentionPassError);
    description.Set("parameterCount", static_cast<double>(state->parameterCount));
    description.Set("parameterBytes", static_cast<double>(state->parameterBytes));
    Napi::Array methods = Napi::Array::New(env);
    for (const auto& method : state->module.get_methods()) {
      if (method.name() == state->plainForward) continue;  // ours, not the model's
      const c10::FunctionSchema& schema = method.function().getSchema();
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", method.name());
      entry.Set("signature", SignatureOf(schema));
      Napi::Array inputs = Napi::Array::New(env);
      const auto& args = schema.arguments();
      for (size_t i = 1; i < args.size(); ++i) {
        Napi::Object input = Napi::Object::New(env);
        input.Set("name", args[i].name());
        input.Set("type", args[i].type()->annotation_str());
        input.Set("optional", args[i].default_value().has_value());
        inputs.Set(static_cast<uint32_t>(i - 1), input);
      }
      entry.Set("inputs", inputs);
      const auto& returns = schema.returns();
      entry.Set("output", returns.size() == 1 ? returns[0].type()->annotation_str() : std::string("(...)"));
      methods.Set(methods.Length(), entry);
    }
    description.Set("methods", methods);
    return description;
  });
}

Napi::Value ModelWrap::Card(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    const auto& state = Checked();
    return state->hasCard ? Napi::Value(Napi::String::New(info.Env(), state->card)) : info.Env().Null();
  });
}

Napi::Value ModelWrap::AttentionSites(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto& state = Checked();
    Napi::Array sites = Napi::Array::New(env, state->sites.size());
    for (size_t i = 0; i < state->sites.size(); ++i) {
      Napi::Object site = Napi::Object::New(env);
      site.Set("id", static_cast<double>(state->sites[i].id));
      site.Set("path", state->sites[i].path);
      site.Set("kind", state->sites[i].kind);
      sites.Set(static_cast<uint32_t>(i), site);
    }
    return sites;
  });
}

Napi::Value ModelWrap::ExtraRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto& records = Checked()->extraRecords;
    auto found = records.find(ToString(info.Length() > 0 ? info[0] : env.Undefined(), "name"));
    if (found == records.end()) return env.Null();
    return Napi::Buffer<char>::Copy(env, found->second.data(), found->second.size());
  });
}

Napi::Value ModelWrap::AttentionCandidates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto& candidates = Checked()->attentionCandidates;
    Napi::Array list = Napi::Array::New(env, candidates.size());
    for (size_t i = 0; i < candidates.size(); ++i) {
      const AttentionCandidate& candidate = candidates[i];
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("path", candidate.path);
      entry.Set("op", candidate.op);
      entry.Set("site", candidate.site >= 0 ? Napi::Value(Napi::Number::New(env, static_cast<double>(candidate.site)))
                                            : env.Null());
      entry.Set("reason", candidate.reason.empty() ? env.Null() : Napi::Value(Napi::String::New(env, candidate.reason)));
      entry.Set("attention", candidate.attention);
      list.Set(static_cast<uint32_t>(i), entry);
    }
    return list;
  });
}

Napi::Value ModelWrap::ModuleSites(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const auto& state = Checked();
    Napi::Array sites = Napi::Array::New(env, state->moduleSites.size());
    for (size_t i = 0; i < state->moduleSites.size(); ++i) {
      Napi::Object site = Napi::Object::New(env);
      site.Set("id", static_cast<double>(state->moduleSites[i].id));
      site.Set("path", state->moduleSites[i].path);
      site.Set("hasInput", state->moduleSites[i].hasInput);
      sites.Set(static_cast<uint32_t>(i), site);
    }
    return sites;
  });
}

Napi::Value ModelWrap::Device(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), DeviceName(Checked()->device)); });
}

Napi::Value ModelWrap::Dtype(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), DtypeByScalarType(Checked()->dtype).name);
  });
}

Napi::Value ModelWrap::PlainForwardCount(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(Checked()->plainForwardCount.load()));
  });
}

Napi::Value ModelWrap::LastForwardThreads(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), Checked()->lastForwardThreads.load());
  });
}

Napi::Value ModelWrap::LastOptimizedGraph(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    const std::shared_ptr<ModelState>& state = Checked();
    std::shared_ptr<torch::jit::Graph> graph;
    {
      std::lock_guard<std::mutex> lock(state->lastGraphMutex);
      graph = state->lastGraph;
    }
    if (!graph) return info.Env().Null();
    return Napi::String::New(info.Env(), graph->toString());
  });
}

Napi::Value ModelWrap::ForwardCount(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(Checked()->forwardCount.load()));
  });
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

}  // namespace tg
