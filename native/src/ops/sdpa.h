// aten::scaled_dot_product_attention (SDPA), the fused attention op of
// PyTorch >= 2.0, as the attention pass and its hook op need it.
//
// The hook op recomputes perturbed slices with the op itself, called through
// the dispatcher by argument name: its schema grew between releases (2.1
// added `scale`, 2.5 `enable_gqa`), so a typed call would compile against
// one release only.
//
// libtorch 1.x has no such op. There the addon registers a math version
// under the same schema (see RegisterSdpaPolyfill), so a TorchScript model
// that calls the op loads and runs, and its sites are hooked as on 2.x.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>

namespace tg {

struct SdpaArgs {
  at::Tensor query, key, value;          // [..., L, E], [..., S, E], [..., S, Ev]
  c10::optional<at::Tensor> mask;        // bool (true = attend) or additive, broadcastable to [..., L, S]
  bool causal = false;                   // top-left aligned lower-triangular mask
  c10::optional<double> scale;           // default 1 / sqrt(E)
};

// The op's qualified name.
const char* SdpaOpName();

// Calls the op on these arguments (dropout 0), whatever its schema.
at::Tensor CallSdpa(const SdpaArgs& args);

// The attention probabilities softmax(q k^T * scale + mask) the op uses
// internally, [..., L, S], in float32 (it never materialises them).
at::Tensor SdpaProbabilities(const SdpaArgs& args);

// Keys and values with as many heads as the queries (grouped-query attention
// repeats each key head; a no-op when the counts already agree).
at::Tensor RepeatHeads(const at::Tensor& kv, const at::Tensor& query);

// Registers the math version when this libtorch lacks the op; call once,
// before any model loads.
void RegisterSdpaPolyfill();

}  // namespace tg
