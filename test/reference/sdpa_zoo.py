#!/usr/bin/env python3
"""The sdpa-zoo fixture, and an eager reference for the hook actions on it.

Usage:
    python3 test/reference/sdpa_zoo.py make OUT.pt
    python3 test/reference/sdpa_zoo.py reference MODEL.pt SPEC.json OUT.bin

sdpa-zoo: forward(x [N,1,8,16], t [N], label [N]) -> [N,1,8,16], attention
written with the fused aten::scaled_dot_product_attention (SDPA) four ways, in
a ModuleList loop on an 8x16 grid:
    blocks.0  heads kept apart [N, H, L, d], an explicit scale
    blocks.1  heads folded into the batch axis [N*H, L, d], an additive
              per-query bias mask [L, L] (a relative-position bias)
    blocks.2  cross-attention to 5 context tokens
    blocks.3  heads apart, is_causal=True
It is built here, not committed: SDPA exists from torch 2.0, and this script
runs on whatever torch the test machine has. On torch 1.x (Debian's 1.13) it
first registers a math version of the op under the same schema (as the addon
does in libtorch 1.x, native/src/ops/sdpa.h), so the same model scripts and runs.

reference: rebuilds the model with MODEL.pt's weights and perturbs the chosen
block's attention explicitly, with no SDPA call at all (softmax(q k^T * scale
+ mask) v written out), for the samples [start, start + length):
identity makes each query's output its own value; blur blurs the *queries*
over the 8x16 grid (SEG's kernel, reflect padding; sigma = inf: the mean
query); capture writes the head-averaged probabilities to OUT.bin.captures.
SPEC.json: {"x": file, "t": file, "label": file, "batch": B, "block": i,
            "start": s, "length": n, "action": ..., "sigma": ...}
"""
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_hooks import blur_grid  # noqa: E402

CHANNELS, HEADS, HEIGHT, WIDTH, CONTEXT = 8, 2, 8, 16, 5
HEAD_DIM = CHANNELS // HEADS
CARD = {
    "name": "sdpa-zoo",
    "version": "0",
    "prediction": "eps",
    "schedule": {"kind": "discrete", "betas": "linear", "betaStart": 0.0001, "betaEnd": 0.02, "timesteps": 1000},
    "sampleShape": [1, HEIGHT, WIDTH],
    "conditioning": {"kind": "class", "numClasses": 10, "nullLabel": 10},
    "notes": "Random weights: attention through scaled_dot_product_attention four ways, 8x16 grid.",
}


def register_polyfill() -> None:
    """torch 1.x: define aten::scaled_dot_product_attention (2.1's schema) as math."""
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        return
    lib = torch._C._dispatch_library("FRAGMENT", "aten", "", __file__, 0)
    lib.define(
        "scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, "
        "float dropout_p=0.0, bool is_causal=False, *, float? scale=None) -> Tensor"
    )

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        return attention(q, k, v, attn_mask, is_causal, scale)[0]

    lib.impl("scaled_dot_product_attention", "CompositeImplicitAutograd", sdpa)
    register_polyfill.lib = lib  # keep the registration alive


def attention(q, k, v, mask, causal, scale):
    """softmax(q k^T * scale + mask) v, written out; returns (output, probabilities)."""
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    logits = (q @ k.transpose(-1, -2)) * s
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        logits = logits.masked_fill(~keep, float("-inf"))
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    probs = logits.softmax(dim=-1)
    return probs @ v, probs


class HeadsApart(nn.Module):
    """[N, H, L, d] queries, keys and values; an explicit scale; optionally causal."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal
        self.heads, self.head_dim = HEADS, HEAD_DIM
        self.qkv = nn.Linear(CHANNELS, 3 * CHANNELS)
        self.out = nn.Linear(CHANNELS, CHANNELS)

    def project(self, x: Tensor, context: Tensor):
        b, c, hh, ww = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).reshape(b, hh * ww, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def finish(self, x: Tensor, h: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        return x + self.out(h.transpose(1, 2).reshape(b, hh * ww, c)).transpose(1, 2).reshape(b, c, hh, ww)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        q, k, v = self.project(x, context)
        return self.finish(x, torch.ops.aten.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=0.3))


class HeadsFolded(nn.Module):
    """diffusers' classic layout: [N*H, L, d]; an additive [L, L] bias mask."""

    def __init__(self):
        super().__init__()
        self.heads, self.head_dim = HEADS, HEAD_DIM
        self.to_q = nn.Linear(CHANNELS, CHANNELS)
        self.to_k = nn.Linear(CHANNELS, CHANNELS)
        self.to_v = nn.Linear(CHANNELS, CHANNELS)
        self.to_out = nn.Linear(CHANNELS, CHANNELS)
        self.register_buffer("bias", torch.randn(HEIGHT * WIDTH, HEIGHT * WIDTH))

    def split(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3).reshape(b * self.heads, n, self.head_dim)

    def project(self, x: Tensor, context: Tensor):
        tokens = x.flatten(2).transpose(1, 2)
        return self.split(self.to_q(tokens)), self.split(self.to_k(tokens)), self.split(self.to_v(tokens))

    def finish(self, x: Tensor, h: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        h = h.reshape(b, self.heads, hh * ww, self.head_dim).permute(0, 2, 1, 3).reshape(b, hh * ww, c)
        return x + self.to_out(h).transpose(1, 2).reshape(b, c, hh, ww)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        q, k, v = self.project(x, context)
        return self.finish(x, torch.ops.aten.scaled_dot_product_attention(q, k, v, attn_mask=self.bias))


class Cross(nn.Module):
    """Queries from the image, keys and values from the context."""

    def __init__(self):
        super().__init__()
        self.heads, self.head_dim, self.tokens = HEADS, HEAD_DIM, CONTEXT
        self.to_q = nn.Linear(CHANNELS, CHANNELS)
        self.to_kv = nn.Linear(CHANNELS, 2 * CHANNELS)
        self.to_out = nn.Linear(CHANNELS, CHANNELS)

    def project(self, x: Tensor, context: Tensor):
        b, c, hh, ww = x.shape
        q = self.to_q(x.flatten(2).transpose(1, 2)).reshape(b, hh * ww, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.to_kv(context).reshape(b, self.tokens, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def finish(self, x: Tensor, h: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        return x + self.to_out(h.transpose(1, 2).reshape(b, hh * ww, c)).transpose(1, 2).reshape(b, c, hh, ww)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        q, k, v = self.project(x, context)
        return self.finish(x, torch.ops.aten.scaled_dot_product_attention(q, k, v))


class SdpaZoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_conv = nn.Conv2d(1, CHANNELS, 3, padding=1)
        self.label_embed = nn.Embedding(11, CHANNELS)
        self.context = nn.Parameter(torch.randn(1, CONTEXT, CHANNELS))
        self.blocks = nn.ModuleList([HeadsApart(False), HeadsFolded(), Cross(), HeadsApart(True)])
        self.out_conv = nn.Conv2d(CHANNELS, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        h = self.input_conv(x) + self.label_embed(label)[:, :, None, None] + t[:, None, None, None] / 1000.0
        context = self.context.expand(x.shape[0], -1, -1)
        for block in self.blocks:
            h = block(h, context)
        return self.out_conv(h)


# How each block calls the op: (mask, causal, scale).
def call_args(model: SdpaZoo, block: int):
    return [(None, False, 0.3), (model.blocks[1].bias, False, None), (None, False, None), (None, True, 0.3)][block]


def make(out: str) -> None:
    torch.manual_seed(0)
    model = SdpaZoo().eval()
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, out, _extra_files={"model.json": json.dumps(CARD)})


def perturbed(block: int, rows: slice, action: str, sigma: float, captures: list):
    def forward(self, x, context):
        q, k, v = self.project(x, context)
        mask, causal, scale = call_args(MODEL, block)
        if action == "blur":
            q = q.clone()
            qs = q[rows]  # [n, ..., L, d]
            flat = qs.reshape(-1, HEIGHT * WIDTH, HEAD_DIM)
            if math.isinf(sigma):
                flat = flat.mean(dim=1, keepdim=True).expand_as(flat)
            else:
                grid = flat.transpose(1, 2).reshape(-1, HEAD_DIM, HEIGHT, WIDTH)
                flat = blur_grid(grid, sigma).reshape(-1, HEAD_DIM, HEIGHT * WIDTH).transpose(1, 2)
            q[rows] = flat.reshape(qs.shape)
        h, probs = attention(q, k, v, mask, causal, scale)
        if action == "identity":
            h[rows] = v[rows]
        if action == "capture":
            n = rows.stop - rows.start
            captures.append(probs[rows].reshape(n if probs.dim() == 4 else n // HEADS, -1, *probs.shape[-2:]).mean(1))
        return self.finish(x, h)
    return forward


MODEL = None


def reference(model_path: str, spec_path: str, out: str) -> None:
    global MODEL
    spec = json.load(open(spec_path))
    b = spec["batch"]
    x = torch.from_numpy(np.fromfile(spec["x"], dtype="<f4").reshape(b, 1, HEIGHT, WIDTH).copy())
    t = torch.from_numpy(np.fromfile(spec["t"], dtype="<f4").copy())
    label = torch.from_numpy(np.fromfile(spec["label"], dtype="<i8").copy())
    MODEL = SdpaZoo()
    MODEL.load_state_dict(torch.jit.load(model_path).state_dict())
    MODEL.eval()
    block = spec["block"]
    rows_per_sample = HEADS if block == 1 else 1  # blocks.1 folds the heads into the batch axis
    start, length = spec["start"], spec["length"]
    rows = slice(start * rows_per_sample, (start + length) * rows_per_sample)
    captures: list = []
    target = MODEL.blocks[block]
    target.forward = types.MethodType(perturbed(block, rows, spec["action"], float(spec.get("sigma", 0)), captures), target)
    with torch.no_grad():
        MODEL(x, t, label).contiguous().numpy().astype("<f4").tofile(out)
    with open(out + ".captures", "wb") as f:
        for c in captures:
            f.write(c.contiguous().numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    register_polyfill()
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        reference(sys.argv[2], sys.argv[3], sys.argv[4])
