// The attention hook ops, registered as guidance::attn_logits and
// guidance::attn_probs, and the registration of every hook op (with
// guidance::module_out, module_hook_op.cpp). The attention pass
// (jit/attention_pass.cpp) inserts them around every softmax attention site; each
// reads the thread's HookPlan.
//
// Both take the site's tensor of shape [B * R, ..., Nq, Nk] (R rows per
// sample: the heads, whether folded into the batch axis or kept apart), view
// it as [B, R', Nq, Nk] and change only the planned samples' rows.
//
// guidance::attn_sdpa follows a fused aten::scaled_dot_product_attention
// node, which never materialises the probabilities: it takes the op's output
// and inputs, and recomputes only the planned slices (identity: the values;
// blur: the op itself on blurred queries, as SEG blurs them), so the other
// samples keep the op's own result, bit for bit. guidance::attn_mha does the
// same after a fused nn.MultiheadAttention (mha_hook.h).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

#include "common/errors.h"
#include "ops/hook_plan.h"
#include "ops/mha_hook.h"
#include "ops/module_hook_op.h"
#include "ops/query_blur.h"
#include "ops/sdpa.h"

namespace tg {

namespace {

thread_local HookPlan* t_plan = nullptr;

// [B, R, Nq, Nk] view of a site tensor whose first axis is batch-major.
at::Tensor PerSample(const at::Tensor& x, int64_t batch) {
  TORCH_CHECK(x.dim() >= 3, "attention site tensor must have at least 3 dims, got ", x.sizes());
  TORCH_CHECK(x.size(0) % batch == 0, "attention rows ", x.size(0), " are not a multiple of the batch ", batch);
  return x.reshape({batch, -1, x.size(-2), x.size(-1)});
}

// Refuses to perturb a softmax that does not run over the last (keys) axis:
// the hooks read [..., queries, keys].
void CheckAxis(const at::Tensor& x, const HookEntry& entry) {
  TORCH_CHECK(entry.axis == -1 || entry.axis == x.dim() - 1, "the softmax at this attention site runs over axis ",
              entry.axis, " of a ", x.dim(), "-d tensor, not over its last (keys) axis, so its probabilities cannot "
              "be perturbed");
}

at::Tensor AttnLogits(const at::Tensor& x, int64_t site) {
  HookPlan* plan = t_plan;
  if (plan == nullptr) return x;
  if (plan->probe) plan->shapes[site].logits = x.sizes().vec();
  at::Tensor result = x;
  bool copied = false;
  for (const HookEntry& entry : plan->entries) {
    if (entry.site != site || entry.action != HookAction::kBlur) continue;
    CheckAxis(x, entry);
    if (!copied) {
      result = x.clone(at::MemoryFormat::Contiguous);
      copied = true;
    }
    at::Tensor slice = PerSample(result, plan->batch).narrow(0, entry.start, entry.length);
    at::Tensor flat = slice.reshape({-1, slice.size(-2), slice.size(-1)});
    slice.copy_(BlurQueries(flat, entry.gridHeight, entry.gridWidth, entry.sigma).reshape(slice.sizes()));
  }
  return result;
}

at::Tensor AttnProbs(const at::Tensor& x, int64_t site) {
  HookPlan* plan = t_plan;
  if (plan == nullptr) return x;
  at::Tensor result = x;
  bool copied = false;
  for (const HookEntry& entry : plan->entries) {
    if (entry.site != site) continue;
    CheckAxis(x, entry);
    if (entry.action == HookAction::kCapture) {
      // Head-averaged probabilities of the slice: [length, Nq, Nk].
      plan->captures[site] = PerSample(x, plan->batch).narrow(0, entry.start, entry.length).mean(1);
    } else if (entry.action == HookAction::kIdentity) {
      TORCH_CHECK(x.size(-1) == x.size(-2), "identity needs self-attention (Nq == Nk), got ", x.sizes());
      if (!copied) {
        result = x.clone(at::MemoryFormat::Contiguous);
        copied = true;
      }
      at::Tensor slice = PerSample(result, plan->batch).narrow(0, entry.start, entry.length);
      slice.copy_(at::eye(x.size(-1), x.options()).expand_as(slice));
    }
  }
  return result;
}


// Rows [start, start + length) of an SDPA call's batch-major arguments; a key,
// value broadcast over the batch (leading size 1) is kept whole.
SdpaArgs SliceRows(const SdpaArgs& args, int64_t start, int64_t length) {
  auto rows = [&](const at::Tensor& t) { return t.size(0) == args.query.size(0) ? t.narrow(0, start, length) : t; };
  SdpaArgs slice = args;
  slice.query = args.query.narrow(0, start, length);
  slice.key = rows(args.key);
  slice.value = rows(args.value);
  if (args.mask) {
    std::vector<int64_t> logits = args.query.sizes().vec();
    logits.back() = args.key.size(-2);
    // Contiguous: fused kernels may not take a broadcast (stride 0) mask.
    slice.mask = args.mask->expand(logits).narrow(0, start, length).contiguous();
  }
  return slice;
}

at::Tensor AttnSdpa(const at::Tensor& out, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                    const c10::optional<at::Tensor>& mask, bool causal, c10::optional<double> scale, int64_t site) {
  HookPlan* plan = t_plan;
  if (plan == nullptr) return out;
  const int64_t queries = query.size(-2), keys = key.size(-2);
  if (plan->probe) {
    std::vector<int64_t> logits = query.sizes().vec();
    logits.back() = keys;
    plan->shapes[site].logits = logits;
  }
  const SdpaArgs args{query, key, value, mask, causal, scale};
  at::Tensor result = out;
  bool copied = false;
  for (const HookEntry& entry : plan->entries) {
    if (entry.site != site) continue;
    TORCH_CHECK(query.dim() >= 3 && query.size(0) % plan->batch == 0, "attention queries of shape ", query.sizes(),
                " have no batch axis of a multiple of ", plan->batch);
    const int64_t rows = query.size(0) / plan->batch;
    SdpaArgs slice = SliceRows(args, entry.start * rows, entry.length * rows);
    if (entry.action == HookAction::kCapture) {
      plan->captures[site] =
          SdpaProbabilities(slice).reshape({entry.length, -1, queries, keys}).mean(1).to(query.scalar_type());
      continue;
    }
    at::Tensor replacement;
    if (entry.action == HookAction::kIdentity) {
      TORCH_CHECK(queries == keys, "identity needs self-attention (Nq == Nk), got ", queries, " queries and ", keys,
                  " keys");
      replacement = RepeatHeads(slice.value, slice.query);
    } else {
      at::Tensor flat = slice.query.reshape({-1, queries, query.size(-1)});
      slice.query = BlurQueries(flat, entry.gridHeight, entry.gridWidth, entry.sigma).reshape(slice.query.sizes());
      slice.key = RepeatHeads(slice.key, slice.query);
      slice.value = RepeatHeads(slice.value, slice.query);
      replacement = CallSdpa(slice);
    }
    if (!copied) {
      result = out.clone(at::MemoryFormat::Contiguous);
      copied = true;
    }
    at::Tensor target = result.narrow(0, entry.start * rows, entry.length * rows);
    target.copy_(replacement.expand_as(target));
  }
  return result;
}

}  // namespace

HookPlan* ThreadHookPlan() { return t_plan; }

ScopedHookPlan::ScopedHookPlan(HookPlan* plan) : previous_(t_plan) { t_plan = plan; }

ScopedHookPlan::~ScopedHookPlan() { t_plan = previous_; }

namespace {

// Registered at run time, not with a static TORCH_LIBRARY: a second copy of
// the addon in one process (another package's, or a prebuild beside a local
// build) would register the namespace again, which libtorch answers with an
// abort during dlopen. Each copy takes the first free namespace, so each
// copy's graphs call its own kernels, which read its own thread-local plan.
std::string RegisterOnce() {
  for (int attempt = 0;; ++attempt) {
    std::string ns = attempt == 0 ? "guidance" : "guidance_" + std::to_string(attempt);
    if (c10::Dispatcher::singleton().findSchema({ns + "::attn_probs", ""})) continue;
    // Never freed: the ops must outlive every graph that calls them.
    auto* library = new torch::Library(torch::Library::DEF, ns, c10::nullopt, __FILE__, __LINE__);
    // Outputs may alias inputs (a hook with nothing to do returns its input).
    library->def("attn_logits(Tensor(a) x, int site) -> Tensor(a)", &AttnLogits);
    library->def("attn_probs(Tensor(a) x, int site) -> Tensor(a)", &AttnProbs);
    // `input` is only read (copied from), never returned: no alias annotation.
    library->def("module_out(Tensor(a) x, Tensor input, int site) -> Tensor(a)", &ModuleOut);
    library->def(
        "attn_sdpa(Tensor(a) out, Tensor query, Tensor key, Tensor value, Tensor? mask, bool causal, float? scale, "
        "int site) -> Tensor(a)",
        &AttnSdpa);
    library->def(
        "attn_mha(Tensor(a) out, Tensor query, Tensor key, Tensor value, int num_head, Tensor qkv_weight, "
        "Tensor? qkv_bias, Tensor proj_weight, Tensor? proj_bias, Tensor? mask, int? mask_type, int site) -> Tensor(a)",
        &AttnMha);
    RegisterSdpaPolyfill();
    return ns;
  }
}

}  // namespace

const std::string& HookNamespace() {
  static const std::string ns = RegisterOnce();
  return ns;
}

}  // namespace tg
