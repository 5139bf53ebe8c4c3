"""The decoder half of a Stable Diffusion-style VAE (diffusers' AutoencoderKL), written from scratch.

    post_quant_conv, decoder.conv_in, decoder.mid_block.{resnets.0, attentions.0, resnets.1},
    decoder.up_blocks.N.{resnets.M, upsamplers.0}, decoder.conv_norm_out, decoder.conv_out
    forward(z) -> image

`z` is the latent as the denoiser samples it divided by the scaling factor
(0.18215 for SD 1.x; the model card of the denoiser names it); the image
comes out in [-1, 1] (unclamped). The mid-block attention is diffusers'
single-head Attention over the latent grid with a GroupNorm in front and a
residual. Weights are random.
"""
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = self.conv2(self.nonlinearity(self.norm2(h)))
        return self.conv_shortcut(x) + h


class Attention(nn.Module):
    """diffusers' Attention as the VAE uses it: group_norm, one head, residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.scale = channels ** -0.5
        self.group_norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, hidden_states: Tensor) -> Tensor:
        residual = hidden_states
        b, c, hh, ww = hidden_states.shape
        h = self.group_norm(hidden_states).view(b, c, hh * ww).transpose(1, 2)
        query, key, value = self.to_q(h), self.to_k(h), self.to_v(h)
        scores = torch.baddbmm(torch.empty(b, hh * ww, hh * ww, dtype=query.dtype, device=query.device), query,
                               key.transpose(-1, -2), beta=0.0, alpha=self.scale)
        h = torch.bmm(scores.softmax(dim=-1), value)
        for layer in self.to_out:
            h = layer(h)
        return h.transpose(1, 2).reshape(b, c, hh, ww) + residual


class UNetMidBlock2D(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(channels, groups)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        for attention in self.attentions:
            x = attention(x)
        return self.resnets[1](x)


class Upsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, layers: int, groups: int, add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)] if add_upsample else [])

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for up in self.upsamplers:
            x = up(x)
        return x


class Decoder(nn.Module):
    def __init__(self, latent_channels: int, block_out_channels: List[int], layers_per_block: int, groups: int):
        super().__init__()
        channels = list(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(latent_channels, channels[0], 3, padding=1)
        self.mid_block = UNetMidBlock2D(channels[0], groups)
        blocks = []
        out = channels[0]
        for i, width in enumerate(channels):
            blocks.append(UpDecoderBlock2D(out, width, layers_per_block + 1, groups, i < len(channels) - 1))
            out = width
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class VaeDecoder(nn.Module):
    def __init__(self, block_out_channels: List[int], layers_per_block: int = 2, latent_channels: int = 4,
                 groups: int = 32):
        super().__init__()
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.decoder = Decoder(latent_channels, block_out_channels, layers_per_block, groups)

    def forward(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))


# "sd-vae": SD 1.x's decoder (8x upsampling, about 50M parameters);
# "vae-narrow": the same structure at test width.
CONFIGS: Dict[str, dict] = {
    "sd-vae": dict(block_out_channels=[128, 256, 512, 512]),
    "vae-narrow": dict(block_out_channels=[16, 16, 32, 32], layers_per_block=1, groups=8),
}

SCALING_FACTOR = 0.18215


def build(name: str, seed: int = 0) -> VaeDecoder:
    torch.manual_seed(seed)
    return VaeDecoder(**CONFIGS[name]).eval()
