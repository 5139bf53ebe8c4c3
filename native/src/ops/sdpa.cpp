#include "ops/sdpa.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <string>

namespace tg {

namespace {

const c10::OperatorHandle& SdpaOp() {
  static const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(SdpaOpName(), "");
  return op;
}

// The polyfill's kernel: what the op computes on its math path.
at::Tensor SdpaMath(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                    const c10::optional<at::Tensor>& mask, double dropout, bool causal, c10::optional<double> scale) {
  at::Tensor probs = SdpaProbabilities(SdpaArgs{query, key, value, mask, causal, scale}).to(query.scalar_type());
  if (dropout > 0) probs = at::dropout(probs, dropout, /*train=*/true);
  return at::matmul(probs, RepeatHeads(value, query));
}

}  // namespace

const char* SdpaOpName() { return "aten::scaled_dot_product_attention"; }

at::Tensor CallSdpa(const SdpaArgs& args) {
  const c10::OperatorHandle& op = SdpaOp();
  torch::jit::Stack stack;
  for (const c10::Argument& argument : op.schema().arguments()) {
    const std::string& name = argument.name();
    if (name == "query") {
      stack.emplace_back(args.query);
    } else if (name == "key") {
      stack.emplace_back(args.key);
    } else if (name == "value") {
      stack.emplace_back(args.value);
    } else if (name == "attn_mask") {
      stack.emplace_back(args.mask ? c10::IValue(*args.mask) : c10::IValue());
    } else if (name == "dropout_p") {
      stack.emplace_back(0.0);
    } else if (name == "is_causal") {
      stack.emplace_back(args.causal);
    } else if (name == "scale") {
      stack.emplace_back(args.scale ? c10::IValue(*args.scale) : c10::IValue());
    } else {
      // enable_gqa and whatever later releases add: their defaults (the
      // hook op repeats grouped key and value heads itself).
      TORCH_CHECK(argument.default_value().has_value(), SdpaOpName(), " has an argument '", name,
                  "' without a default that torch-guidance does not know; please report this libtorch version");
      stack.push_back(*argument.default_value());
    }
  }
  op.callBoxed(&stack);
  return stack.at(0).toTensor();
}

at::Tensor RepeatHeads(const at::Tensor& kv, const at::Tensor& query) {
  if (kv.dim() < 3 || query.dim() < 3) return kv;
  int64_t heads = query.size(-3), groups = kv.size(-3);
  if (groups == heads || groups == 1 || heads % groups != 0) return kv;
  return kv.repeat_interleave(heads / groups, -3);
}

at::Tensor SdpaProbabilities(const SdpaArgs& args) {
  at::Tensor query = args.query.to(at::kFloat);
  at::Tensor key = RepeatHeads(args.key, args.query).to(at::kFloat);
  double scale = args.scale ? *args.scale : 1.0 / std::sqrt(static_cast<double>(query.size(-1)));
  at::Tensor logits = at::matmul(query, key.transpose(-2, -1)) * scale;
  const double negInf = -std::numeric_limits<double>::infinity();
  if (args.causal) {
    at::Tensor keep = at::ones({logits.size(-2), logits.size(-1)}, logits.options().dtype(at::kBool)).tril();
    logits = logits.masked_fill(keep.logical_not(), negInf);
  }
  if (args.mask) {
    const at::Tensor& mask = *args.mask;
    logits = mask.scalar_type() == at::kBool ? logits.masked_fill(mask.logical_not(), negInf) : logits + mask.to(at::kFloat);
  }
  return at::softmax(logits, -1);
}

void RegisterSdpaPolyfill() {
  if (c10::Dispatcher::singleton().findSchema({SdpaOpName(), ""})) return;
  // Never freed: the op must outlive every graph that calls it. The schema is
  // 2.1's, the form TorchScript files exported by 2.1 - 2.4 call.
  auto* library = new torch::Library(torch::Library::FRAGMENT, "aten", c10::nullopt, __FILE__, __LINE__);
  library->def(
      "scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, "
      "float dropout_p=0.0, bool is_causal=False, *, float? scale=None) -> Tensor",
      &SdpaMath);
}

}  // namespace tg
