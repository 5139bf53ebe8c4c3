// The hook op after a fused nn.MultiheadAttention
// (aten::_native_multi_head_attention: the op an eval() MultiheadAttention
// runs under no_grad when it can, and the op a trace under no_grad records).
//
// The fused op never materialises the probabilities. The hook takes its
// output and arguments, and recomputes only the planned samples from the
// same projections (identity: each query's output is its own value; blur:
// the queries blurred over the grid; capture: the head-averaged
// probabilities), so the other samples keep the fused op's result bit for bit.
// The op's second output (the weights, when asked for) is not recomputed.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>

namespace tg {

// The op's qualified name.
const char* NativeMhaOpName();

// guidance::attn_mha(out, query, key, value, num_head, qkv_weight, qkv_bias,
// proj_weight, proj_bias, mask, mask_type, site) -> out with the planned
// samples recomputed. Inputs are batch first, [B, L, E].
at::Tensor AttnMha(const at::Tensor& out, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                   int64_t numHeads, const at::Tensor& qkvWeight, const c10::optional<at::Tensor>& qkvBias,
                   const at::Tensor& projWeight, const c10::optional<at::Tensor>& projBias,
                   const c10::optional<at::Tensor>& mask, c10::optional<int64_t> maskType, int64_t site);

}  // namespace tg
