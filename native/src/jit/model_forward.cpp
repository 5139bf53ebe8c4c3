#include "jit/model_forward.h"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <exception>
#include <mutex>
#include <new>

#include "common/errors.h"
#include "ops/autocast.h"

namespace tg {

namespace {

// Moves a tensor (also inside lists and tuples) to `device`, and a floating
// one to `dtype`.
void Place(c10::IValue& value, const at::Device& device, at::ScalarType dtype) {
  if (value.isTensor()) {
    at::Tensor tensor = value.toTensor();
    at::ScalarType target = at::isFloatingType(tensor.scalar_type()) ? dtype : tensor.scalar_type();
    if (tensor.device() != device || tensor.scalar_type() != target) value = tensor.to(device, target);
  } else if (value.isList()) {
    c10::List<c10::IValue> list = value.toList();
    for (size_t i = 0; i < list.size(); ++i) {
      c10::IValue item = list.get(i);
      Place(item, device, dtype);
      list.set(i, item);
    }
  } else if (value.isTuple()) {
    std::vector<c10::IValue> items = value.toTupleRef().elements().vec();
    for (auto& item : items) Place(item, device, dtype);
    value = c10::ivalue::Tuple::create(std::move(items));
  }
}

// Moves every input as Place does.
void PlaceInputs(std::vector<c10::IValue>& inputs, const at::Device& device, at::ScalarType dtype) {
  for (auto& input : inputs) Place(input, device, dtype);
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

// A failed forward as a typed error: out of memory, an input of the wrong
// shape, or the model's own failure, each with the interpreter's summary.
// The interpreter rethrows kernel failures as std::runtime_error with its
// TorchScript traceback; kernels throw c10::Error.
[[noreturn]] void ThrowForwardError(const std::string& name, const std::vector<c10::IValue>& inputs,
                                    const std::exception& e) {
  auto* c10Error = dynamic_cast<const c10::Error*>(&e);
  std::string message = c10Error ? c10Error->what_without_backtrace() : e.what();
  if (message.find("out of memory") != std::string::npos ||
      message.find("can't allocate memory") != std::string::npos) {
    throw Error(code::kOutOfMemory, name + " ran out of memory on inputs of shapes " + ShapesOf(inputs) +
                                        ". Fix: use a smaller batch.\n" + ErrorSummary(message));
  }
  std::string summary = ErrorSummary(message);
  if (LooksLikeShapeError(summary)) {
    throw Error(code::kInputShape, name + " failed on inputs of shapes " + ShapesOf(inputs) + ": " +
                                       Sentence(summary) + " Fix: pass inputs of the shapes the model "
                                                           "expects (see the model card's sampleShape).\n" +
                                       message);
  }
  throw Error(code::kForwardFailed, name + " failed: " + summary + "\n" + message);
}

// Calls the method, or forward's copy without hook ops when the plan has
// nothing to do, and keeps the graph that ran.
c10::IValue CallMethod(ModelState& state, const std::string& name, std::vector<c10::IValue>& inputs,
                       const HookPlan* plan) {
  try {
    // No plan, or one with nothing to do (the guided denoiser's
    // unhooked branches): forward without the hook ops (model_state.h).
    const bool plain = (!plan || !plan->Acts()) && name == "forward" && !state.plainForward.empty();
    c10::IValue output = state.module.get_method(plain ? state.plainForward : name)(inputs);
    if (plain) state.plainForwardCount.fetch_add(1);
    // Thread-local in libtorch: read it on the thread that ran the forward.
    if (std::shared_ptr<torch::jit::Graph> graph = torch::jit::lastExecutedOptimizedGraph()) {
      std::lock_guard<std::mutex> lock(state.lastGraphMutex);
      state.lastGraph = std::move(graph);
    }
    return output;
  } catch (const c10::OutOfMemoryError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    ThrowForwardError(name, inputs, e);
  }
}

}  // namespace

c10::IValue RunMethod(ModelState& state, const std::string& name, std::vector<c10::IValue>& inputs, HookPlan* plan,
                      const std::optional<Preconditioning>& preconditioning) {
  c10::InferenceMode guard;
  ScopedHookPlan scopedPlan(plan);
  AutocastScope autocast(state.device, state.dtype);
  at::Tensor x;  // the unscaled first input, for D = c_skip · x + c_out · F
  if (preconditioning) x = PrepareInputs(*preconditioning, inputs);
  PlaceInputs(inputs, state.device, state.dtype);
  c10::IValue output = CallMethod(state, name, inputs, plan);
  state.forwardCount.fetch_add(1);
  inputs.clear();  // drop input references on the pool thread
  if (preconditioning) output = Denoised(*preconditioning, x, output);
  return output;
}

}  // namespace tg
