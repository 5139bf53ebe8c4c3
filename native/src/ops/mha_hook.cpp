#include "ops/mha_hook.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

#include "ops/hook_plan.h"
#include "ops/query_blur.h"

namespace tg {

namespace {

// [n, T, E] -> [n, H, T, E / H]
at::Tensor SplitHeads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

// The fused op's mask as an additive float mask broadcastable to the slice's
// logits [n, H, L, S]. mask_type 1: a key padding mask [B, S]; 0: an
// attention mask [L, S]. Boolean masks mark the keys to leave out (True),
// as nn.MultiheadAttention defines them.
at::Tensor AdditiveMask(const at::Tensor& mask, int64_t maskType, int64_t start, int64_t length,
                        const at::TensorOptions& options) {
  at::Tensor m;
  if (maskType == 1) {
    TORCH_CHECK(mask.dim() == 2, "a key padding mask must be [batch, keys], got ", mask.sizes());
    m = mask.narrow(0, start, length).view({length, 1, 1, mask.size(1)});
  } else {
    TORCH_CHECK(maskType == 0 && mask.dim() == 2, "hooks on a fused nn.MultiheadAttention support a key padding mask "
                "or a [queries, keys] attention mask, not mask type ", maskType, " of shape ", mask.sizes());
    m = mask.view({1, 1, mask.size(0), mask.size(1)});
  }
  if (m.scalar_type() == at::kBool) {
    return at::zeros(m.sizes(), options).masked_fill(m, -std::numeric_limits<double>::infinity());
  }
  return m.to(options.dtype());
}

}  // namespace

const char* NativeMhaOpName() { return "aten::_native_multi_head_attention"; }

at::Tensor AttnMha(const at::Tensor& out, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                   int64_t numHeads, const at::Tensor& qkvWeight, const c10::optional<at::Tensor>& qkvBias,
                   const at::Tensor& projWeight, const c10::optional<at::Tensor>& projBias,
                   const c10::optional<at::Tensor>& mask, c10::optional<int64_t> maskType, int64_t site) {
  HookPlan* plan = ThreadHookPlan();
  if (plan == nullptr) return out;
  TORCH_CHECK(query.dim() == 3, "attention hooks on a fused nn.MultiheadAttention need batched [batch, tokens, "
              "embed] queries, got ", query.sizes());
  const int64_t queries = query.size(1), keys = key.size(1);
  if (plan->probe) plan->shapes[site].logits = {query.size(0), numHeads, queries, keys};
  at::Tensor result = out;
  bool copied = false;
  for (const HookEntry& entry : plan->entries) {
    if (entry.site != site) continue;
    TORCH_CHECK(query.size(0) == plan->batch, "nn.MultiheadAttention queries of shape ", query.sizes(),
                " do not lead with the batch of ", plan->batch);
    auto rows = [&](const at::Tensor& t) { return t.narrow(0, entry.start, entry.length); };
    std::vector<at::Tensor> w = qkvWeight.chunk(3, 0);
    std::vector<at::Tensor> b = qkvBias ? qkvBias->chunk(3, 0) : std::vector<at::Tensor>(3);
    at::Tensor q = SplitHeads(at::linear(rows(query), w[0], b[0]), numHeads);
    at::Tensor k = SplitHeads(at::linear(rows(key), w[1], b[1]), numHeads);
    at::Tensor v = SplitHeads(at::linear(rows(value), w[2], b[2]), numHeads);
    auto probabilities = [&](const at::Tensor& queriesUsed) {
      at::Tensor logits = at::matmul(queriesUsed, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
      if (mask) logits = logits + AdditiveMask(*mask, maskType.value_or(0), entry.start, entry.length, logits.options());
      return at::softmax(logits, -1);
    };
    if (entry.action == HookAction::kCapture) {
      plan->captures[site] = probabilities(q).mean(1);
      continue;
    }
    at::Tensor heads;
    if (entry.action == HookAction::kIdentity) {
      TORCH_CHECK(queries == keys, "identity needs self-attention (Nq == Nk), got ", queries, " queries and ", keys,
                  " keys");
      heads = v;
    } else {
      at::Tensor flat = q.reshape({-1, queries, q.size(-1)});
      at::Tensor blurred = BlurQueries(flat, entry.gridHeight, entry.gridWidth, entry.sigma).reshape(q.sizes());
      heads = at::matmul(probabilities(blurred), v);
    }
    at::Tensor merged = heads.transpose(1, 2).reshape({entry.length, queries, -1});
    at::Tensor replacement = at::linear(merged, projWeight, projBias.value_or(at::Tensor()));
    if (!copied) {
      result = out.clone(at::MemoryFormat::Contiguous);
      copied = true;
    }
    rows(result).copy_(replacement);
  }
  return result;
}

}  // namespace tg
