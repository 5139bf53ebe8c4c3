#include "model.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/import.h>

#include "archive_checks.h"
#include "archive_file.h"
#include "device.h"
#include "autocast.h"
#include "dtype.h"
#include "errors.h"
#include "extra_records.h"
#include "hook_plan.h"
#include "hook_plan_js.h"
#include "instance_data.h"
#include "ivalue_convert.h"
#include "js_convert.h"
#include "model_scan.h"
#include "preconditioning.h"
#include "promise_worker.h"
#include "tensor.h"

namespace tg {

namespace {

std::atomic<int64_t> g_liveModels{0};

constexpr const char* kCardFile = "model.json";
// A version 2 card's null conditions (model-card.ts, namedInputSchema).
constexpr const char* kNullsFolder = "nulls/";

// How far a load may trust the file, and the memory it may take.
struct LoadLimits {
  bool trusted = false;
  uint64_t maxBytes = UINT64_MAX;
};

// TorchScript errors carry the interpreter's traceback; the last
// "SomethingError: ..." line is what went wrong.
std::string Summary(const std::string& message) {
  std::string summary;
  size_t start = 0;
  while (start < message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string::npos) end = message.size();
    std::string line = message.substr(start, end - start);
    size_t colon = line.find("Error: ");
    if (colon != std::string::npos && colon < 40 && line.find(' ') > colon) summary = line.substr(colon + 7);
    start = end + 1;
  }
  if (summary.empty()) summary = message.substr(0, message.find('\n'));
  return summary;
}

// Ends `text` with a full stop, for messages that go on after it.
std::string Sentence(const std::string& text) {
  return !text.empty() && text.back() != '.' ? text + "." : text;
}

std::string ShapesOf(const std::vector<c10::IValue>& inputs) {
  std::string text;
  for (const auto& input : inputs) {
    if (!text.empty()) text += ", ";
    text += input.isTensor() ? c10::str(input.toTensor().sizes()) : input.tagKind();
  }
  return text;
}

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

void LoadInto(ModelState& state, const std::string& path, at::Device device, at::ScalarType dtype, bool hooks,
              const LoadLimits& limits) {
  // Sizes, truncation and load-time code are checked before libtorch reads
  // the archive, and the graphs before any of their code runs (the pass,
  // freezing's folding, the probe): archive_checks.h, model_scan.h.
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
                    Summary(c10Error ? c10Error->what_without_backtrace() : e.what()) +
                    "). Fix: export the model with torch.jit.script (or trace) and torch.jit.save; a state_dict or a "
                    "torch.save(model) pickle cannot be loaded.");
  }
  if (!limits.trusted) ScanModule(state.module, path);
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
  for (const auto& parameter : state.module.parameters()) {
    state.parameterCount += parameter.numel();
    state.parameterBytes += parameter.numel() * static_cast<int64_t>(parameter.element_size());
  }
  for (const auto& buffer : state.module.buffers()) {
    state.parameterBytes += buffer.numel() * static_cast<int64_t>(buffer.element_size());
  }

  if (!state.module.find_method("forward")) {
    throw Error(code::kMethodNotFound, "'" + path + "' has no forward method. Fix: export a module whose forward "
                                                   "is the denoiser.");
  }
  // Hooks go in before freezing: the pass needs the module tree to name the
  // sites. A model the pass cannot handle still loads, without sites (hook
  // ops it inserted before failing return their input: no plan can name them).
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
  // Freezing folds parameters into the graph and inlines submodule calls.
  // Keep every exported method.
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
  if (reportedBytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(Env(), -reportedBytes_);
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
        env, [state, path, device, dtype, hooks, limits]() { LoadInto(*state, path, device, dtype, hooks, limits); },
        [state](Napi::Env env) -> Napi::Value {
          return InstanceData::Get(env).modelClass.New({Napi::External<std::shared_ptr<ModelState>>::New(
              env, const_cast<std::shared_ptr<ModelState>*>(&state))});
        },
        signal);
  });
}

Napi::Value ModelWrap::Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::shared_ptr<ModelState> state = Checked();
    std::string name = ToString(info.Length() > 0 ? info[0] : env.Undefined(), "method");
    if (info.Length() < 2 || !info[1].IsArray()) {
      throw Error(code::kInvalidArgument, "call(method, inputs) needs inputs as an array.");
    }
    auto method = state->module.find_method(name);
    if (name == state->plainForward) method.reset();  // ours, not the model's
    if (!method) {
      std::string names;
      for (const auto& m : state->module.get_methods()) {
        if (m.name() != state->plainForward) names += (names.empty() ? "" : ", ") + m.name();
      }
      throw Error(code::kMethodNotFound, "the model has no method '" + name + "'. Methods: " + names + ".");
    }
    const Napi::Value planValue = info.Length() > 2 ? info[2] : env.Undefined();
    std::optional<Preconditioning> preconditioning = ParsePreconditioning(planValue);
    Napi::Array jsInputs = info[1].As<Napi::Array>();
    if (preconditioning) {
      // The caller leaves out the time input, which the torch thread fills:
      // x stands in for it here, so that the schema check sees a tensor.
      const c10::FunctionSchema& schema = method->function().getSchema();
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
      jsInputs = withTime;
    }
    auto inputs = std::make_shared<std::vector<c10::IValue>>(InputsFromJs(env, method->function().getSchema(), jsInputs));
    auto output = std::make_shared<c10::IValue>();
    std::shared_ptr<HookPlan> plan = ParseHookPlan(planValue, state->sites, state->moduleSites);
    return PromiseWorker::Start(
        env,
        [state, name, inputs, output, plan, preconditioning]() {
          c10::InferenceMode guard;
          ScopedHookPlan scopedPlan(plan.get());
          AutocastScope autocast(state->device, state->dtype);
          at::Tensor x;  // the unscaled first input, for D = c_skip · x + c_out · F
          if (preconditioning) x = PrepareInputs(*preconditioning, *inputs);
          PlaceInputs(*inputs, state->device, state->dtype);
          try {
            // No plan, or one with nothing to do (the guided denoiser's
            // unhooked branches): forward without the hook ops (model.h).
            const bool plain = (!plan || !plan->Acts()) && name == "forward" && !state->plainForward.empty();
            *output = state->module.get_method(plain ? state->plainForward : name)(*inputs);
            if (plain) state->plainForwardCount.fetch_add(1);
            // Thread-local in libtorch: read it on the thread that ran the forward.
            if (std::shared_ptr<torch::jit::Graph> graph = torch::jit::lastExecutedOptimizedGraph()) {
              std::lock_guard<std::mutex> lock(state->lastGraphMutex);
              state->lastGraph = std::move(graph);
            }
          } catch (const c10::OutOfMemoryError&) {
            throw;
          } catch (const std::bad_alloc&) {
            throw;
          } catch (const std::exception& e) {
            // The interpreter rethrows kernel failures as std::runtime_error
            // with its TorchScript traceback; kernels throw c10::Error.
            auto* c10Error = dynamic_cast<const c10::Error*>(&e);
            std::string message = c10Error ? c10Error->what_without_backtrace() : e.what();
            if (message.find("out of memory") != std::string::npos ||
                message.find("can't allocate memory") != std::string::npos) {
              throw Error(code::kOutOfMemory, name + " ran out of memory on inputs of shapes " + ShapesOf(*inputs) +
                                                  ". Fix: use a smaller batch.\n" + Summary(message));
            }
            std::string summary = Summary(message);
            if (LooksLikeShapeError(summary)) {
              throw Error(code::kInputShape, name + " failed on inputs of shapes " + ShapesOf(*inputs) + ": " +
                                                 Sentence(summary) + " Fix: pass inputs of the shapes the model "
                                                                     "expects (see the model card's sampleShape).\n" +
                                                 message);
            }
            throw Error(code::kForwardFailed, name + " failed: " + summary + "\n" + message);
          }
          state->forwardCount.fetch_add(1);
          inputs->clear();  // drop input references on the pool thread
          if (preconditioning) *output = Denoised(*preconditioning, x, *output);
        },
        [output, plan](Napi::Env env) -> Napi::Value {
          Napi::Value result = OutputToJs(env, *output);
          *output = c10::IValue();
          if (!plan) return result;
          Napi::Object withHooks = Napi::Object::New(env);
          withHooks.Set("output", result);
          Napi::Array captures = Napi::Array::New(env);
          for (auto& [site, tensor] : plan->captures) {
            Napi::Array pair = Napi::Array::New(env, 2);
            pair.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
            pair.Set(1u, TensorWrap::Wrap(env, tensor));
            captures.Set(captures.Length(), pair);
          }
          plan->captures.clear();
          withHooks.Set("captures", captures);
          Napi::Array shapes = Napi::Array::New(env);
          for (const auto& [site, shape] : plan->shapes) {
            Napi::Array pair = Napi::Array::New(env, 2);
            pair.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
            pair.Set(1u, FromShape(env, shape.logits));
            shapes.Set(shapes.Length(), pair);
          }
          withHooks.Set("shapes", shapes);
          Napi::Array moduleShapes = Napi::Array::New(env);
          for (const auto& [site, shape] : plan->moduleShapes) {
            Napi::Array triple = Napi::Array::New(env, 3);
            triple.Set(0u, Napi::Number::New(env, static_cast<double>(site)));
            triple.Set(1u, FromShape(env, shape.output));
            triple.Set(2u, FromShape(env, shape.input));
            moduleShapes.Set(moduleShapes.Length(), triple);
          }
          withHooks.Set("moduleShapes", moduleShapes);
          return withHooks;
        },
        info.Length() > 3 ? info[3] : env.Undefined());
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
