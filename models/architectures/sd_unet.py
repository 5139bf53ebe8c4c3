"""A Stable Diffusion 1.x/2.x/XL-style latent UNet, written from scratch in plain PyTorch.

The module tree, the parameter names and the forward signature follow what
real exports of diffusers' UNet2DConditionModel have, so that a model built
here is guided, inspected and exported the way a user's real one is:

    conv_in, time_proj, time_embedding.{linear_1, linear_2}
    down_blocks.N.{resnets.M, attentions.M, downsamplers.0}
    down_blocks.N.attentions.M.{norm, proj_in, transformer_blocks.0, proj_out}
    down_blocks.N.attentions.M.transformer_blocks.0.{norm1, attn1, norm2, attn2, norm3, ff}
    mid_block.{resnets.0, attentions.0, resnets.1}
    up_blocks.N.{resnets.M, attentions.M, upsamplers.0}
    conv_norm_out, conv_out
    forward(sample, timestep, encoder_hidden_states[, text_embeds, time_ids]) -> Tensor

Attention is diffusers' classic processor (heads folded into the batch,
baddbmm, float32 softmax, bmm) or, with `sdpa=True` where PyTorch has it,
F.scaled_dot_product_attention as its 2.0 processor does. The feed-forward is
GEGLU. SDXL-style models add the "text_time" embedding: a pooled text
embedding and six size/crop ids (`add_time_proj`, `add_embedding`).

Weights are random: nothing can be downloaded here. See CONFIGS for the
full-size (~860M parameters, SD 1.x) and narrow configurations.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def timestep_embedding(timesteps: Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0) -> Tensor:
    """diffusers' get_timestep_embedding: sinusoidal features of (float) timesteps."""
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - shift)
    args = timesteps.to(torch.float32)[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class Timesteps(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, timesteps: Tensor) -> Tensor:
        return timestep_embedding(timesteps, self.dim)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-5)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        return self.conv_shortcut(x) + h


class Attention(nn.Module):
    """diffusers' Attention with the classic AttnProcessor."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: Optional[int] = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def head_to_batch_dim(self, tensor: Tensor) -> Tensor:
        batch_size, seq_len, dim = tensor.shape
        tensor = tensor.reshape(batch_size, seq_len, self.heads, dim // self.heads)
        return tensor.permute(0, 2, 1, 3).reshape(batch_size * self.heads, seq_len, dim // self.heads)

    def batch_to_head_dim(self, tensor: Tensor) -> Tensor:
        batch_size, seq_len, dim = tensor.shape
        tensor = tensor.reshape(batch_size // self.heads, self.heads, seq_len, dim)
        return tensor.permute(0, 2, 1, 3).reshape(batch_size // self.heads, seq_len, dim * self.heads)

    def get_attention_scores(self, query: Tensor, key: Tensor) -> Tensor:
        dtype = query.dtype
        baddbmm_input = torch.empty(query.shape[0], query.shape[1], key.shape[1], dtype=query.dtype,
                                    device=query.device)
        scores = torch.baddbmm(baddbmm_input, query, key.transpose(-1, -2), beta=0.0, alpha=self.scale)
        return scores.float().softmax(dim=-1).to(dtype)

    def forward(self, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None) -> Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query, key, value = self.to_q(hidden_states), self.to_k(context), self.to_v(context)
        probs = self.get_attention_scores(self.head_to_batch_dim(query), self.head_to_batch_dim(key))
        hidden_states = self.batch_to_head_dim(torch.bmm(probs, self.head_to_batch_dim(value)))
        for layer in self.to_out:
            hidden_states = layer(hidden_states)
        return hidden_states


class AttentionSdpa(Attention):
    """diffusers' Attention with AttnProcessor2_0: F.scaled_dot_product_attention (PyTorch >= 2.0)."""

    def forward(self, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None) -> Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        b, n, _ = hidden_states.shape
        query, key, value = self.to_q(hidden_states), self.to_k(context), self.to_v(context)
        inner = query.shape[-1]
        q = query.view(b, -1, self.heads, inner // self.heads).transpose(1, 2)
        k = key.view(b, -1, self.heads, inner // self.heads).transpose(1, 2)
        v = value.view(b, -1, self.heads, inner // self.heads).transpose(1, 2)
        hidden_states = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, inner)
        for layer in self.to_out:
            hidden_states = layer(hidden_states)
        return hidden_states


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int, sdpa: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        kind = AttentionSdpa if sdpa else Attention
        self.attn1 = kind(dim, heads, dim_head, None)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = kind(dim, heads, dim_head, cross_attention_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), encoder_hidden_states) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    """proj_in (1x1 conv, or linear as SD 2.x/XL), transformer blocks, proj_out, residual."""

    def __init__(self, channels: int, heads: int, cross_attention_dim: int, groups: int, depth: int = 1,
                 use_linear_projection: bool = False, sdpa: bool = False):
        super().__init__()
        dim_head = channels // heads
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        if use_linear_projection:
            self.proj_in = nn.Linear(channels, channels)
            self.proj_out = nn.Linear(channels, channels)
        else:
            self.proj_in = nn.Conv2d(channels, channels, 1)
            self.proj_out = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(channels, heads, dim_head, cross_attention_dim, sdpa) for _ in range(depth)])

    def forward(self, x: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        residual = x
        h = self.norm(x)
        if self.use_linear_projection:
            h = self.proj_in(h.permute(0, 2, 3, 1).reshape(b, hh * ww, c))
        else:
            h = self.proj_in(h).permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        for block in self.transformer_blocks:
            h = block(h, encoder_hidden_states)
        if self.use_linear_projection:
            h = self.proj_out(h).reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        else:
            h = self.proj_out(h.reshape(b, hh, ww, c).permute(0, 3, 1, 2))
        return h + residual


class Downsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D (with attentions) or DownBlock2D (without)."""

    def __init__(self, in_channels: int, out_channels: int, temb: int, layers: int, attention: bool, heads: int,
                 cross_dim: int, groups: int, depth: int, linear_proj: bool, add_downsample: bool, sdpa: bool):
        super().__init__()
        self.has_attention = attention
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb, groups) for i in range(layers)])
        self.attentions = nn.ModuleList(
            [Transformer2DModel(out_channels, heads, cross_dim, groups, depth, linear_proj, sdpa) for _ in range(layers)]
            if attention else [])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)] if add_downsample else [])

    def forward(self, x: Tensor, temb: Tensor, context: Tensor) -> Tuple[Tensor, List[Tensor]]:
        skips: List[Tensor] = []
        if self.has_attention:
            for resnet, attention in zip(self.resnets, self.attentions):
                x = attention(resnet(x, temb), context)
                skips.append(x)
        else:
            for resnet in self.resnets:
                x = resnet(x, temb)
                skips.append(x)
        for down in self.downsamplers:
            x = down(x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D (with attentions) or UpBlock2D (without)."""

    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, temb: int, layers: int,
                 attention: bool, heads: int, cross_dim: int, groups: int, depth: int, linear_proj: bool,
                 add_upsample: bool, sdpa: bool):
        super().__init__()
        self.has_attention = attention
        resnets = []
        for i in range(layers):
            skip = in_channels if i == layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            resnets.append(ResnetBlock2D(resnet_in + skip, out_channels, temb, groups))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(
            [Transformer2DModel(out_channels, heads, cross_dim, groups, depth, linear_proj, sdpa) for _ in range(layers)]
            if attention else [])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)] if add_upsample else [])

    def forward(self, x: Tensor, skips: List[Tensor], temb: Tensor, context: Tensor) -> Tensor:
        if self.has_attention:
            for resnet, attention in zip(self.resnets, self.attentions):
                x = attention(resnet(torch.cat([x, skips.pop()], dim=1), temb), context)
        else:
            for resnet in self.resnets:
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
        for up in self.upsamplers:
            x = up(x)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, channels: int, temb: int, heads: int, cross_dim: int, groups: int, depth: int,
                 linear_proj: bool, sdpa: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, temb, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2DModel(channels, heads, cross_dim, groups, depth, linear_proj, sdpa)])

    def forward(self, x: Tensor, temb: Tensor, context: Tensor) -> Tensor:
        x = self.resnets[0](x, temb)
        for attention in self.attentions:
            x = attention(x, context)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, block_out_channels: List[int], attention_blocks: List[bool], layers_per_block: int = 2,
                 heads: List[int] = (8, 8, 8, 8), cross_attention_dim: int = 768, groups: int = 32,
                 transformer_depth: List[int] = (1, 1, 1, 1), use_linear_projection: bool = False,
                 in_channels: int = 4, sdpa: bool = False):
        super().__init__()
        c0 = block_out_channels[0]
        temb = c0 * 4
        levels = len(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.time_proj = Timesteps(c0)
        self.time_embedding = TimestepEmbedding(c0, temb)
        down = []
        out = c0
        for i in range(levels):
            inp, out = out, block_out_channels[i]
            down.append(DownBlock(inp, out, temb, layers_per_block, attention_blocks[i], heads[i], cross_attention_dim,
                                  groups, transformer_depth[i], use_linear_projection, i < levels - 1, sdpa))
        self.down_blocks = nn.ModuleList(down)
        top = block_out_channels[-1]
        self.mid_block = UNetMidBlock2DCrossAttn(top, temb, heads[-1], cross_attention_dim, groups,
                                                 transformer_depth[-1], use_linear_projection, sdpa)
        up = []
        reversed_channels = list(reversed(block_out_channels))
        reversed_attention = list(reversed(attention_blocks))
        reversed_heads = list(reversed(heads))
        reversed_depth = list(reversed(transformer_depth))
        out = reversed_channels[0]
        for i in range(levels):
            prev, out = out, reversed_channels[i]
            inp = reversed_channels[min(i + 1, levels - 1)]
            up.append(UpBlock(inp, prev, out, temb, layers_per_block + 1, reversed_attention[i], reversed_heads[i],
                              cross_attention_dim, groups, reversed_depth[i], use_linear_projection, i < levels - 1,
                              sdpa))
        self.up_blocks = nn.ModuleList(up)
        self.conv_norm_out = nn.GroupNorm(groups, c0, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(c0, in_channels, 3, padding=1)

    def embed(self, sample: Tensor, timestep: Tensor) -> Tensor:
        timesteps = timestep.reshape(-1).to(sample.device).expand(sample.shape[0])
        return self.time_embedding(self.time_proj(timesteps).to(sample.dtype))

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        return self.unet(sample, self.embed(sample, timestep), encoder_hidden_states)

    def unet(self, sample: Tensor, emb: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        x = self.conv_in(sample)
        skips: List[Tensor] = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, emb, encoder_hidden_states)
            skips.extend(block_skips)
        x = self.mid_block(x, emb, encoder_hidden_states)
        for block in self.up_blocks:
            x = block(x, skips, emb, encoder_hidden_states)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class UNet2DConditionModelXL(UNet2DConditionModel):
    """SDXL's condition set: the "text_time" embedding adds a pooled text embedding
    and six size/crop ids (original size, crop top-left, target size) to the time embedding."""

    def __init__(self, addition_time_embed_dim: int, projection_class_embeddings_input_dim: int, **kwargs):
        super().__init__(**kwargs)
        temb = kwargs["block_out_channels"][0] * 4
        self.add_time_proj = Timesteps(addition_time_embed_dim)
        self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, temb)

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor, text_embeds: Tensor,
                time_ids: Tensor) -> Tensor:
        emb = self.embed(sample, timestep)
        time_embeds = self.add_time_proj(time_ids.flatten()).reshape(time_ids.shape[0], -1)
        emb = emb + self.add_embedding(torch.cat([text_embeds, time_embeds.to(emb.dtype)], dim=-1))
        return self.unet(sample, emb, encoder_hidden_states)


# name -> constructor arguments. "sd15" is SD 1.x at full size (about 860M
# parameters); "sd15-narrow" keeps its structure (four levels, attention at
# the top three, 77x768 text context) at a width a test can afford;
# "sdxl-narrow" has SDXL's condition set (text context + pooled embedding +
# size/crop ids), linear projections, attention at the two lower levels and
# two transformer blocks at the lowest.
CONFIGS: Dict[str, dict] = {
    "sd15": dict(block_out_channels=[320, 640, 1280, 1280], attention_blocks=[True, True, True, False],
                 heads=[8, 8, 8, 8], cross_attention_dim=768),
    "sd15-narrow": dict(block_out_channels=[32, 64, 64, 64], attention_blocks=[True, True, True, False],
                        heads=[2, 2, 2, 2], cross_attention_dim=768, groups=8),
    "sdxl-narrow": dict(block_out_channels=[32, 64, 64], attention_blocks=[False, True, True], heads=[2, 2, 2],
                        cross_attention_dim=64, groups=8, transformer_depth=[1, 1, 2], use_linear_projection=True,
                        addition_time_embed_dim=16, projection_class_embeddings_input_dim=48 + 6 * 16),
}

# The condition inputs each configuration takes after (sample, timestep): name -> shape of one sample.
CONDITIONS: Dict[str, Dict[str, List[int]]] = {
    "sd15": {"encoder_hidden_states": [77, 768]},
    "sd15-narrow": {"encoder_hidden_states": [77, 768]},
    "sdxl-narrow": {"encoder_hidden_states": [77, 64], "text_embeds": [48], "time_ids": [6]},
}


def build(name: str, seed: int = 0, sdpa: bool = False) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    config = CONFIGS[name]
    kind = UNet2DConditionModelXL if "addition_time_embed_dim" in config else UNet2DConditionModel
    return kind(**config, sdpa=sdpa).eval()
