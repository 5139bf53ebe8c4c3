"""Class-conditional ADM-style UNet for 1x28x28 images (Fashion-MNIST).

Same building blocks and module layout as models/fixtures/make_fixtures.py
(tiny-unet), with configurable widths, so that one class makes the main model
and the weak autoguidance guide:

    input_conv                      28x28, c0
    down  = ModuleList  ResBlock / Downsample / AttentionBlock, flat
    mid   = MidBlock(res1, attn, res2)          7x7
    up    = ModuleList  ResBlock / AttentionBlock / Upsample, flat
    out   = GroupNorm, SiLU, Conv2d(c0 -> 1)
    time_embed   = TimeEmbed (sinusoidal + MLP)   -- card field timeEmbedding
    label_embed  = nn.Embedding(11, emb); label 10 is the null label

Self-attention sits at 14x14 and 7x7 (the two coarsest resolutions), written
out as softmax(q @ k^T * scale) @ v so the package's attention pass finds it
(module paths such as `down.4`, `mid.attn`, `up.1`).

forward(x [N,1,28,28] f32, t [N] f32 in 0..999, label [N] i64 in 0..10)
returns the predicted noise eps, [N,1,28,28].
"""

import math
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

NUM_CLASSES = 10
NULL_LABEL = 10

# Named presets. Sized for training on ONE CPU thread (see models/README.md
# for the measured seconds per step). The weak guide has ~45 % of the main
# model's parameters.
PRESETS: Dict[str, Dict] = {
    "main": {"base": 24, "mults": [1, 2, 2], "num_res_blocks": 1, "heads": 2, "groups": 8},
    "weak": {"base": 16, "mults": [1, 2, 2], "num_res_blocks": 1, "heads": 2, "groups": 8},
    # Smoke tests only.
    "tiny": {"base": 8, "mults": [1, 2, 2], "num_res_blocks": 1, "heads": 2, "groups": 4},
}


def zero_(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of (float) timesteps."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.max_period = max_period

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(self.max_period)
            * torch.arange(half, dtype=torch.float32, device=t.device)
            / float(half)
        )
        args = t.to(torch.float32)[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbed(nn.Module):
    """Sinusoidal embedding followed by an MLP (module path: time_embed)."""

    def __init__(self, freq_dim: int, emb_dim: int):
        super().__init__()
        self.sinusoidal = SinusoidalEmbedding(freq_dim)
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.sinusoidal(t))


class ResBlock(nn.Module):
    """ADM-style residual block; adds the (time + label) embedding via a Linear."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        if in_ch != out_ch:
            self.skip = nn.Conv2d(in_ch, out_ch, 1)
        else:
            self.skip = nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Explicit multi-head self-attention over spatial positions.

    GroupNorm -> 1x1 conv to q,k,v -> [N, heads, HW, d] ->
    softmax(q @ k^T * scale) @ v -> back to [N, C, H, W] -> 1x1 proj -> residual.
    """

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        assert channels % heads == 0
        self.channels = channels
        self.heads = heads
        self.head_dim = channels // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        n, c, hh, ww = x.shape
        hw = hh * ww
        qkv = self.qkv(self.norm(x))  # [N, 3C, H, W]
        qkv = qkv.reshape(n, 3, self.heads, self.head_dim, hw)
        q = qkv[:, 0].transpose(-1, -2)  # [N, heads, HW, d]
        k = qkv[:, 1].transpose(-1, -2)
        v = qkv[:, 2].transpose(-1, -2)
        w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)  # [N, heads, HW, HW]
        h = w @ v  # [N, heads, HW, d]
        h = h.transpose(-1, -2).reshape(n, c, hh, ww)
        return x + self.proj(h)


class Downsample(nn.Module):
    """Strided 3x3 conv, halves the spatial size (28 -> 14 -> 7)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (7 -> 14 -> 28)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels: int, emb_dim: int, heads: int, groups: int):
        super().__init__()
        self.res1 = ResBlock(channels, channels, emb_dim, groups)
        self.attn = AttentionBlock(channels, heads, groups)
        self.res2 = ResBlock(channels, channels, emb_dim, groups)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res1(x, emb)
        x = self.attn(x, emb)
        return self.res2(x, emb)


class UNet(nn.Module):
    """Class-conditional ADM-style UNet, eps prediction.

    base            channels at 28x28
    mults           channel multipliers per resolution (28, 14, 7)
    num_res_blocks  ResBlocks per resolution on the way down (num_res_blocks+1 up)
    heads, groups   attention heads, GroupNorm groups (divide every width)
    attn_levels     resolution indices with self-attention (default: 14x14, 7x7)
    up_attn_all     attention after every up ResBlock at those levels (ADM); by
                    default only after the last one of each level (cheaper on CPU)
    """

    # Which down blocks push a skip, and which up blocks pop one.
    # Constants so TorchScript can unroll the loops over the ModuleLists.
    __constants__ = ["down_saves", "up_uses"]

    def __init__(
        self,
        base: int = 32,
        mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        heads: int = 4,
        groups: int = 8,
        attn_levels: Sequence[int] = (1, 2),
        up_attn_all: bool = False,
    ):
        super().__init__()
        emb = 4 * base
        widths = [base * m for m in mults]
        for w in widths:
            assert w % groups == 0 and w % heads == 0, (w, groups, heads)
        self.time_embed = TimeEmbed(base, emb)
        self.label_embed = nn.Embedding(NUM_CLASSES + 1, emb)
        self.input_conv = nn.Conv2d(1, base, 3, padding=1)

        down: List[nn.Module] = []
        saves: List[bool] = []
        skip_ch: List[int] = [base]  # input_conv output is the first skip
        ch = base
        for level, w in enumerate(widths):
            for _ in range(num_res_blocks):
                down.append(ResBlock(ch, w, emb, groups))
                saves.append(level not in attn_levels)
                ch = w
                if level in attn_levels:
                    down.append(AttentionBlock(ch, heads, groups))
                    saves.append(True)
                skip_ch.append(ch)
            if level != len(widths) - 1:
                down.append(Downsample(ch))
                saves.append(True)
                skip_ch.append(ch)
        self.down = nn.ModuleList(down)
        self.down_saves = saves

        self.mid = MidBlock(ch, emb, heads, groups)

        up: List[nn.Module] = []
        uses: List[bool] = []
        for level in reversed(range(len(widths))):
            w = widths[level]
            for i in range(num_res_blocks + 1):
                up.append(ResBlock(ch + skip_ch.pop(), w, emb, groups))
                uses.append(True)
                ch = w
                if level in attn_levels and (up_attn_all or i == num_res_blocks):
                    up.append(AttentionBlock(ch, heads, groups))
                    uses.append(False)
            if level != 0:
                up.append(Upsample(ch))
                uses.append(False)
        assert not skip_ch
        self.up = nn.ModuleList(up)
        self.up_uses = uses

        self.out = nn.Sequential(
            nn.GroupNorm(groups, ch),
            nn.SiLU(),
            zero_(nn.Conv2d(ch, 1, 3, padding=1)),
        )

    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        emb = self.time_embed(t) + self.label_embed(label)
        h = self.input_conv(x)
        hs: List[Tensor] = [h]
        i = 0
        for blk in self.down:
            h = blk(h, emb)
            if self.down_saves[i]:
                hs.append(h)
            i += 1
        h = self.mid(h, emb)
        i = 0
        for blk in self.up:
            if self.up_uses[i]:
                h = torch.cat([h, hs.pop()], dim=1)
            h = blk(h, emb)
            i += 1
        return self.out(h)


def build(preset_or_config) -> UNet:
    cfg = PRESETS[preset_or_config] if isinstance(preset_or_config, str) else preset_or_config
    return UNet(**cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
