#!/usr/bin/env python3
"""Eager reference for the attention actions on the attn-zoo fixture.

Usage: /usr/bin/python3 test/reference/attn_zoo_reference.py SPEC.json OUT.bin
SPEC.json: {"x": file [B,1,8,16] f32, "t": file [B] f32, "label": file [B] i64,
            "batch": B, "block": 0 | 1, "start": s, "length": n,
            "action": "identity" | "blur" | "capture", "sigma": 2.0}

Rebuilds AttnZoo (models/fixtures/make_fixtures.py) with the weights of
attn-zoo.pt and rewrites the chosen block's forward, per attention style and
independently of the hook ops, so that for the samples [start, start+length):
identity makes each query's output its own value; blur blurs the *queries*
over the 8x16 grid (SEG's kernel, reflect padding: attention_hooks.py's
blur_grid); capture records the head-averaged probabilities, written to
OUT.bin.captures.
"""
import json
import os
import sys
import types

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "fixtures"))
import make_fixtures as fx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_hooks import blur_grid  # noqa: E402

CAPTURES = []


def blur_rows(q, rows, hh, ww, sigma, channels_first):
    """q [B*heads, N, d] (or [B*heads, d, N] when channels_first): blur the rows' queries over the grid."""
    q = q.clone()
    sel = q[rows]
    grid = sel if channels_first else sel.transpose(1, 2)  # [n, d, N]
    blurred = blur_grid(grid.reshape(grid.shape[0], grid.shape[1], hh, ww), sigma).reshape(grid.shape)
    q[rows] = blurred if channels_first else blurred.transpose(1, 2)
    return q


def bmm_patch(rows, action, sigma):
    def forward(self, x, context):
        b, c, hh, ww = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = (self.split_heads(f(tokens)) for f in (self.to_q, self.to_k, self.to_v))
        if action == "blur":
            q = blur_rows(q, rows, hh, ww, sigma, channels_first=False)
        probs = (torch.bmm(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        if action == "identity":
            probs[rows] = torch.eye(hh * ww)  # heads are folded into the batch axis, batch-major
        if action == "capture":
            CAPTURES.append(probs[rows].reshape(-1, self.heads, hh * ww, hh * ww).mean(1))
        h = torch.bmm(probs, v).reshape(b, self.heads, hh * ww, self.head_dim).permute(0, 2, 1, 3).reshape(b, hh * ww, c)
        return x + self.to_out(h).transpose(1, 2).reshape(b, c, hh, ww)
    return forward


def einsum_patch(rows, action, sigma):
    def forward(self, x, context):
        b, c, hh, ww = x.shape
        qkv = self.qkv(x.reshape(b, c, hh * ww)).reshape(b * self.heads, 3 * c // self.heads, hh * ww)
        q, k, v = qkv.split(c // self.heads, dim=1)
        if action == "blur":
            q = blur_rows(q, rows, hh, ww, sigma, channels_first=True)
        scale = 1.0 / (c // self.heads) ** 0.25
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
        if action == "identity":
            weight[rows] = torch.eye(hh * ww)
        if action == "capture":
            CAPTURES.append(weight[rows].reshape(-1, self.heads, hh * ww, hh * ww).mean(1))
        a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, hh * ww)
        return x + self.proj(a).reshape(b, c, hh, ww)
    return forward


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    b = spec["batch"]
    x = torch.from_numpy(np.fromfile(spec["x"], dtype="<f4").reshape(b, 1, 8, 16).copy())
    t = torch.from_numpy(np.fromfile(spec["t"], dtype="<f4").copy())
    label = torch.from_numpy(np.fromfile(spec["label"], dtype="<i8").copy())
    model = fx.AttnZoo()
    model.load_state_dict(torch.jit.load(os.path.join(ROOT, "models", "fixtures", "attn-zoo.pt")).state_dict())
    model.eval()
    block = model.blocks[spec["block"]]
    heads = block.heads
    rows = slice(spec["start"] * heads, (spec["start"] + spec["length"]) * heads)
    patch = bmm_patch if spec["block"] == 0 else einsum_patch
    block.forward = types.MethodType(patch(rows, spec["action"], float(spec.get("sigma", 0))), block)
    with torch.no_grad():
        model(x, t, label).contiguous().numpy().astype("<f4").tofile(sys.argv[2])
    with open(sys.argv[2] + ".captures", "wb") as f:
        for c in CAPTURES:
            f.write(c.contiguous().numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
