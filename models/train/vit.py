"""A small Vision Transformer for 1x28x28 images (DINO-style attention maps).

Patches of 4x4 (a 7x7 grid), a class token, learned position embeddings,
pre-norm blocks `x + attn(norm1(x))`, `x + ff(norm2(x))` with attention
written out (softmax(q k^T / sqrt(d)) v), so the package's graph pass can
capture its maps. forward(x) -> logits; features(x) -> the normalised class
token. Inputs: [N, 1, 28, 28] in [-1, 1], like the denoisers' samples.

Used by models/train/train_vit.py (the trained mask model for SAG's
ablation) and models/fixtures/make_transformer_fixtures.py (random weights).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [N, heads, T, d]
        w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        h = (w @ v).transpose(1, 2).reshape(n, t, d)
        return self.proj(h)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, patch: int = 4, classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, patch, stride=patch)
        tokens = (28 // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def tokens(self, x: Tensor) -> Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2)  # [N, 49, dim]
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    @torch.jit.export
    def features(self, x: Tensor) -> Tensor:
        return F.normalize(self.tokens(x)[:, 0], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.tokens(x)[:, 0])
