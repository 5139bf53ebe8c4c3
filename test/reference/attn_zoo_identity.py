#!/usr/bin/env python3
"""Eager reference for identity attention (PAG) on the attn-zoo fixture.

Usage: /usr/bin/python3 test/reference/attn_zoo_identity.py SPEC.json OUT.bin
SPEC.json: {"x": file [B,1,8,16] f32, "t": file [B] f32, "label": file [B] i64,
            "batch": B, "block": 0 | 1, "start": s, "length": n}

Rebuilds AttnZoo (models/fixtures/make_fixtures.py) with the weights of
attn-zoo.pt and rewrites the chosen block's forward so that the samples
[start, start + length) attend with the identity: each query's output is its
own value. Written per attention style, independently of the hook ops.
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


def bmm_identity(rows):
    def forward(self, x, context):
        b, c, hh, ww = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = (self.split_heads(f(tokens)) for f in (self.to_q, self.to_k, self.to_v))
        probs = (torch.bmm(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        probs[rows] = torch.eye(hh * ww)  # heads are folded into the batch axis, batch-major
        h = torch.bmm(probs, v).reshape(b, self.heads, hh * ww, self.head_dim).permute(0, 2, 1, 3).reshape(b, hh * ww, c)
        return x + self.to_out(h).transpose(1, 2).reshape(b, c, hh, ww)
    return forward


def einsum_identity(rows):
    def forward(self, x, context):
        b, c, hh, ww = x.shape
        qkv = self.qkv(x.reshape(b, c, hh * ww)).reshape(b * self.heads, 3 * c // self.heads, hh * ww)
        q, k, v = qkv.split(c // self.heads, dim=1)
        scale = 1.0 / (c // self.heads) ** 0.25
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
        weight[rows] = torch.eye(hh * ww)
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
    patch = bmm_identity if spec["block"] == 0 else einsum_identity
    block.forward = types.MethodType(patch(rows), block)
    with torch.no_grad():
        model(x, t, label).contiguous().numpy().astype("<f4").tofile(sys.argv[2])


if __name__ == "__main__":
    main()
