#!/usr/bin/env python3
"""One guided step of the SD-style UNet in Python, written the way users write it.

Usage: sd_step.py --model sd15.pt --guide sd15-guide.pt --decoder sd-vae.pt --threads T --serve

Starts, loads, warms up, prints {"ready": true, "load_ms": ...} and answers
one JSON line per command on stdin:
  forward B          one forward of the frozen TorchScript file at batch B: {"ms"}
  step STRATEGY      one guided denoising step at batch 1 (the same strategies
                     and scales as benchmarks/real-size.ts): {"ms", "forwards"}
  decode             the VAE decoder on one 64x64 latent: {"ms"}
  peaks              {"peak_rss_bytes"}

none, cfg and autoguidance run the TorchScript files (torch.jit.load, then
frozen). PAG, SEG and SAG need the attention perturbed or captured, which
TorchScript cannot do from Python: they run the eager module
(models/architectures/sd_unet.py) with the file's weights and the attn1 of
the mid block patched per batch slice, as diffusers' attention processors do.
"""
import argparse
import json
import math
import os
import resource
import sys
import time
import types

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "architectures"))
import sd_unet  # noqa: E402

MID = "mid_block.attentions.0.transformer_blocks.0.attn1"
LATENT = (4, 64, 64)
SCALING_FACTOR = 0.18215


def sd_sigmas():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    return ((1 - alphas) / alphas).sqrt()


def seg_kernel(n, sigma):
    k = math.ceil(6 * sigma) + 1
    k = k + 1 if k % 2 == 0 else k
    k = min(k, n - (n % 2 - 1))
    x = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def patched_attention(original):
    """diffusers' Attention.forward, perturbing the batch slice perturb_state = (kind, start, stop)."""

    def forward(self, hidden_states, encoder_hidden_states=None):
        state = self.perturb_state
        if state is None:
            return original(hidden_states, encoder_hidden_states)
        b, n, _ = hidden_states.shape
        h = self.heads
        split = lambda t: t.view(b, -1, h, t.shape[-1] // h).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.to_q(hidden_states)), split(self.to_k(hidden_states)), split(self.to_v(hidden_states))
        if state[0] == "capture":
            probs = torch.softmax(q @ k.transpose(-1, -2) * self.scale, -1)
            self.captured = probs.mean(1)
            out = probs @ v
        else:
            kind, start, stop = state
            parts = []
            if start > 0:
                parts.append(torch.softmax(q[:start] @ k[:start].transpose(-1, -2) * self.scale, -1) @ v[:start])
            if kind == "pag":
                parts.append(v[start:stop])
            else:  # seg, sigma = infinity: every query is the mean query
                qs = q[start:stop].mean(2, keepdim=True).expand_as(q[start:stop])
                parts.append(torch.softmax(qs @ k[start:stop].transpose(-1, -2) * self.scale, -1) @ v[start:stop])
            out = torch.cat(parts, 0)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out[1](self.to_out[0](out))

    return forward


def gaussian_blur_2d(img, kernel_size, sigma):
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = (pdf / pdf.sum()).to(dtype=img.dtype)
    k2 = torch.mm(k1[:, None], k1[None, :]).expand(img.shape[-3], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    return F.conv2d(F.pad(img, [pad, pad, pad, pad], mode="reflect"), k2, groups=img.shape[-3])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--guide", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--serve", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    start = time.perf_counter()
    extra = {"nulls/encoder_hidden_states.f32": ""}
    scripted = torch.jit.load(a.model, _extra_files=extra).eval()
    frozen = torch.jit.freeze(scripted)
    load_ms = (time.perf_counter() - start) * 1000
    null = torch.frombuffer(bytearray(extra["nulls/encoder_hidden_states.f32"]), dtype=torch.float32).reshape(1, 77, 768)
    guide = torch.jit.freeze(torch.jit.load(a.guide).eval())
    decoder = torch.jit.freeze(torch.jit.load(a.decoder).eval())
    eager = sd_unet.build("sd15")
    eager.load_state_dict(scripted.state_dict())
    del scripted
    attn = eager.get_submodule(MID)
    attn.perturb_state = None
    attn.forward = types.MethodType(patched_attention(attn.forward), attn)

    log_sigmas = sd_sigmas().log()
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 77, 768, generator=g)
    sigma = float(sd_sigmas()[-1])  # the first step of a run: sigma_max
    x = torch.randn(1, *LATENT, generator=g) * sigma
    calls = {"forwards": 0}

    def timestep(s):
        ls = math.log(s)
        idx = int(torch.searchsorted(log_sigmas, torch.tensor(ls, dtype=log_sigmas.dtype)).clamp(1, 999))
        lo, hi = log_sigmas[idx - 1].item(), log_sigmas[idx].item()
        w = min(max((lo - ls) / (lo - hi), 0.0), 1.0)
        return (idx - 1) + w

    t_value = timestep(sigma)

    def run(m, xs, ctx, perturb=None):
        if perturb is not None:
            attn.perturb_state = perturb
        c_in = 1 / math.sqrt(sigma * sigma + 1)
        eps = m(xs * c_in, torch.full((xs.shape[0],), t_value), ctx)
        attn.perturb_state = None
        calls["forwards"] += 1
        return xs - sigma * eps

    def step(strategy):
        if strategy == "none":
            return run(frozen, x, context)
        if strategy == "cfg":
            d_u, d_c = run(frozen, torch.cat([x, x]), torch.cat([null, context])).chunk(2)
            return d_u + 7.5 * (d_c - d_u)
        if strategy in ("pag", "seg"):
            d_c, d_p = run(eager, torch.cat([x, x]), torch.cat([context, context]), (strategy, 1, 2)).chunk(2)
            return d_c + 3 * (d_c - d_p)
        if strategy == "cfg+pag":
            d_u, d_c, d_p = run(eager, torch.cat([x, x, x]), torch.cat([null, context, context]), ("pag", 2, 3)).chunk(3)
            return d_u + 7.5 * (d_c - d_u) + 3 * (d_c - d_p)
        if strategy == "autoguidance":
            d_c = run(frozen, x, context)
            d_g = run(guide, x, context)
            return d_g + 2 * (d_c - d_g)
        if strategy == "sag":
            d_c = run(eager, x, context, ("capture", 0, 1))
            probs = attn.captured
            side = int(math.isqrt(probs.shape[-1]))
            mask = (probs.sum(1) > 1.0).to(x.dtype).reshape(1, 1, side, side)
            mask = F.interpolate(mask, x.shape[-2:])
            degraded = gaussian_blur_2d(d_c, 9, 1.0) * mask + d_c * (1 - mask)
            x_t = degraded + (x - d_c)
            d_t = run(eager, x_t, context)
            return d_c + 0.75 * ((d_c - x) - (d_t - x_t))
        raise SystemExit(f"unknown strategy {strategy}")

    def timed(fn):
        calls["forwards"] = 0
        begin = time.perf_counter()
        fn()
        return {"ms": (time.perf_counter() - begin) * 1000, "forwards": calls["forwards"]}

    with torch.inference_mode():
        run(frozen, x, context)  # warm-up: the profiling executor specialises
        print(json.dumps({"ready": True, "load_ms": load_ms}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "forward":
                b = int(command[1])
                xs, ctx = x.repeat(b, 1, 1, 1), context.repeat(b, 1, 1)
                print(json.dumps(timed(lambda: frozen(xs, torch.full((b,), t_value), ctx))), flush=True)
            elif command[0] == "step":
                print(json.dumps(timed(lambda: step(command[1]))), flush=True)
            elif command[0] == "decode":
                print(json.dumps(timed(lambda: decoder(x / SCALING_FACTOR))), flush=True)
            elif command[0] == "peaks":
                print(json.dumps({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)


if __name__ == "__main__":
    main()
