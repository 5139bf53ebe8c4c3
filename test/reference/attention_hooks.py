#!/usr/bin/env python3
"""Independent eager reference for the attention hooks (PyTorch, not libtorch).

Usage:
    /usr/bin/python3 test/reference/attention_hooks.py SPEC.json OUT.bin

SPEC.json: {"x": file, "t": file, "label": file, "batch": B,
            "entries": [{"path": "mid.attn", "start": s, "length": n,
                         "action": "identity" | "blur" | "capture", "sigma": 2.0}]}
x, t, label are raw little-endian files: float32 [B,1,28,28], float32 [B], int64 [B].

Rebuilds tiny-unet as eager modules (models/fixtures/make_fixtures.py) with the
weights of models/fixtures/tiny-unet.pt, and replaces each AttentionBlock's
forward with one that perturbs its attention explicitly, the way the methods'
papers write it: PAG sets the probabilities of the slice to the identity;
SEG blurs the slice's *queries* over the spatial grid (SEG's
gaussian_blur_2d, reflect padding, clipped per axis) before the logits are
formed; sigma = inf replaces every query by the mean query; capture keeps the
head-averaged probabilities. Writes the output (float32) to OUT.bin and the
captures, in entry order, to OUT.bin.captures (float32, one after another).
"""
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "fixtures"))
import make_fixtures as fx  # noqa: E402


def gaussian_kernel(sigma: float, n: int) -> torch.Tensor:
    k = math.ceil(6 * sigma) + 1
    k = k + 1 if k % 2 == 0 else k
    k = min(k, n - (n % 2 - 1))
    half = (k - 1) * 0.5
    x = torch.linspace(-half, half, steps=k, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return (pdf / pdf.sum()).float()


def blur_grid(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """img [M, C, H, W]: Gaussian blur over H and W, reflect padding, per channel."""
    m, c, h, w = img.shape
    ky, kx = gaussian_kernel(sigma, h), gaussian_kernel(sigma, w)
    kernel = torch.outer(ky, kx).expand(c, 1, ky.numel(), kx.numel())
    py, px = ky.numel() // 2, kx.numel() // 2
    img = F.pad(img, [px, px, py, py], mode="reflect")
    return F.conv2d(img, kernel, groups=c)


def perturbed_forward(entries, captures):
    def forward(self, x, emb):
        n, c, hh, ww = x.shape
        hw = hh * ww
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, self.head_dim, hw)
        q = qkv[:, 0].transpose(-1, -2).clone()  # [N, heads, HW, d]
        k = qkv[:, 1].transpose(-1, -2)
        v = qkv[:, 2].transpose(-1, -2)
        for e in entries:
            if e["action"] != "blur":
                continue
            s = slice(e["start"], e["start"] + e["length"])
            qs = q[s]  # [n, heads, HW, d]
            if math.isinf(float(e["sigma"])):
                q[s] = qs.mean(dim=2, keepdim=True).expand_as(qs)
            else:
                grid = qs.permute(0, 1, 3, 2).reshape(-1, self.head_dim, hh, ww)  # [n*heads, d, H, W]
                blurred = blur_grid(grid, float(e["sigma"])).reshape(qs.shape[0], self.heads, self.head_dim, hw)
                q[s] = blurred.permute(0, 1, 3, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        for e in entries:
            s = slice(e["start"], e["start"] + e["length"])
            if e["action"] == "identity":
                w = w.clone()
                w[s] = torch.eye(hw).expand_as(w[s])
            elif e["action"] == "capture":
                captures.append(w[s].mean(dim=1))
        h = (w @ v).transpose(-1, -2).reshape(n, c, hh, ww)
        return x + self.proj(h)

    return forward


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    b = spec["batch"]
    x = torch.from_numpy(np.fromfile(spec["x"], dtype="<f4").reshape(b, 1, 28, 28).copy())
    t = torch.from_numpy(np.fromfile(spec["t"], dtype="<f4").copy())
    label = torch.from_numpy(np.fromfile(spec["label"], dtype="<i8").copy())

    model = fx.TinyUNet()
    scripted = torch.jit.load(os.path.join(ROOT, "models", "fixtures", "tiny-unet.pt"), map_location="cpu")
    model.load_state_dict(scripted.state_dict())
    model.eval()
    modules = dict(model.named_modules())
    captures = []
    by_path = {}
    for e in spec["entries"]:
        by_path.setdefault(e["path"], []).append(e)
    for path, entries in by_path.items():
        block = modules[path]
        assert isinstance(block, fx.AttentionBlock), path
        block.forward = types.MethodType(perturbed_forward(entries, captures), block)
    with torch.no_grad():
        out = model(x, t, label)
    out.contiguous().numpy().astype("<f4").tofile(out_path)
    with open(out_path + ".captures", "wb") as f:
        for c in captures:
            f.write(c.contiguous().numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
