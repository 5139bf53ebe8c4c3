#!/usr/bin/env python3
"""Guided Euler sampling in Python, written the way users write it today.

Usage:
  sample_loop.py --model M.pt [--guide G.pt] --strategy NAME --batch N
                 --sigmas JSON (--runs R | --serve) --threads T --device cpu|cuda [--seed S]

Prints one JSON line {"times_ms": [...], "peak_bytes": ...}: the wall time of
each whole sampling run (after one untimed warm-up run), ending with the
images copied to the host, as the Node side does. With --serve it stays up
after the warm-up and times one run per "run" line on stdin (benchmarks/speed.ts
alternates run by run with its own that way), answering {"ms", "forward_ms",
"forwards"}: the run's wall time, and the time spent inside its model calls.

Strategies (the same settings as benchmarks/speed.ts):
  none          D(c)
  cfg           D(∅) + 3 (D(c) − D(∅))                       one 2N forward
  pag           D(c) + 3 (D(c) − D_pag(c))                   one 2N forward
  seg           D(c) + 3 (D(c) − D_seg(c)), σ = 10             one 2N forward
  cfg+pag       cfg + 3 (D(c) − D_pag(c))                    one 3N forward
  autoguidance  D_guide(c) + 2 (D(c) − D_guide(c))           two N forwards
  sag           D(c) + 0.75 ((D(c) − x) − (D(c; x̃) − x̃))     two dependent N forwards:
                x̃ = x0 blurred (9, σ 1) where the head-averaged self-attention
                of mid.attn, summed over queries, exceeds 1 (nearest-upsampled),
                re-noised with the model's own noise: diffusers'
                StableDiffusionSAGPipeline.sag_masking without CFG

Which Python runs: `none`, `cfg` and `autoguidance` run the TorchScript file
itself (torch.jit.load, then frozen: the faster of plain and frozen on our
runs), or with --eager the eager module with the file's weights. PAG and SEG need the attention perturbed and SAG its probabilities
captured, which TorchScript cannot do from Python, so they run the eager module from models/train/unet.py with the
TorchScript file's weights and its attention patched per batch slice, the way
diffusers' attention processors do it (only `mid.attn`, the package's default
site).
"""
import argparse
import resource
import json
import math
import os
import sys
import time
import types

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "train"))

NULL_LABEL = 10
SEG_SIGMA = 10.0


def vp_sigmas(timesteps=1000, beta_start=1e-4, beta_end=0.02):
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    alphas = torch.cumprod(1 - betas, 0)
    return ((1 - alphas) / alphas).sqrt()


def seg_kernel(n, sigma, device):
    k = math.ceil(6 * sigma) + 1
    k = k + 1 if k % 2 == 0 else k
    k = min(k, n - (n % 2 - 1))
    x = torch.arange(k, device=device, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def patched_attention(perturb):
    """An AttentionBlock.forward that perturbs the batch slice perturb[0]:perturb[1]."""

    def forward(self, x, emb):
        n, c, hh, ww = x.shape
        hw = hh * ww
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, self.head_dim, hw)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
        state = self.perturb_state
        if state is None:
            h = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1) @ v
        elif state[0] == "capture":  # SAG: keep the head-averaged probabilities, as diffusers' store processor
            probs = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
            self.captured = probs.mean(1)
            h = probs @ v
        else:
            kind, start, stop = state
            parts = []
            if start > 0:
                parts.append(torch.softmax(q[:start] @ k[:start].transpose(-1, -2) * self.scale, -1) @ v[:start])
            if kind == "pag":  # identity attention: the output is the values
                parts.append(v[start:stop])
            else:  # seg: blur the queries over the token grid (reflect padding)
                qs = q[start:stop]
                b, heads, _, d = qs.shape
                grid = qs.permute(0, 1, 3, 2).reshape(b * heads * d, 1, hh, ww)
                ky, kx = seg_kernel(hh, SEG_SIGMA, x.device), seg_kernel(ww, SEG_SIGMA, x.device)
                grid = F.pad(grid, (kx.numel() // 2, kx.numel() // 2, ky.numel() // 2, ky.numel() // 2), mode="reflect")
                grid = F.conv2d(grid, ky.view(1, 1, -1, 1))
                grid = F.conv2d(grid, kx.view(1, 1, 1, -1))
                qs = grid.reshape(b, heads, d, hw).permute(0, 1, 3, 2)
                parts.append(torch.softmax(qs @ k[start:stop].transpose(-1, -2) * self.scale, -1) @ v[start:stop])
            h = torch.cat(parts, 0)
        h = h.transpose(-1, -2).reshape(n, c, hh, ww)
        return x + self.proj(h)

    return forward


def gaussian_blur_2d(img, kernel_size, sigma):
    """diffusers' pipeline_stable_diffusion_sag.gaussian_blur_2d: separable Gaussian, reflect padding."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    k1 = (pdf / pdf.sum()).to(device=img.device, dtype=img.dtype)
    k2 = torch.mm(k1[:, None], k1[None, :]).expand(img.shape[-3], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    return F.conv2d(F.pad(img, [pad, pad, pad, pad], mode="reflect"), k2, groups=img.shape[-3])


def load_scripted(path, device):
    model = torch.jit.load(path, map_location=device).eval()
    return torch.jit.freeze(model)


def load_eager(path, device, preset="main"):
    import unet  # models/train/unet.py

    scripted = torch.jit.load(path, map_location="cpu")
    model = unet.build(preset)
    model.load_state_dict(scripted.state_dict())
    model = model.to(device).eval()
    attn = model.mid.attn
    attn.perturb_state = None
    attn.forward = types.MethodType(patched_attention(None), attn)
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--guide")
    p.add_argument("--strategy", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--sigmas", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--serve", action="store_true", help="time one run per 'run' line on stdin")
    p.add_argument("--eager", action="store_true", help="the eager module for every strategy (models/train/unet.py)")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sigmas = json.loads(a.sigmas)
    n = a.batch
    strategy = a.strategy
    eager = a.eager or strategy in ("pag", "seg", "cfg+pag", "sag")
    model = load_eager(a.model, device) if eager else load_scripted(a.model, device)
    guide = None
    if strategy == "autoguidance":
        guide = load_eager(a.guide, device, "weak") if a.eager else load_scripted(a.guide, device)
    log_sigmas = vp_sigmas().log()
    labels = torch.arange(n, device=device) % 10
    nulls = torch.full((n,), NULL_LABEL, device=device)

    def timestep(sigma):
        # t(σ) by interpolating log σ over the discrete schedule (k-diffusion's sigma_to_t).
        ls = math.log(sigma)
        idx = int(torch.searchsorted(log_sigmas, torch.tensor(ls, dtype=log_sigmas.dtype)).clamp(1, 999))
        lo, hi = log_sigmas[idx - 1].item(), log_sigmas[idx].item()
        w = min(max((lo - ls) / (lo - hi), 0.0), 1.0)
        return (idx - 1) + w

    # Time values per step, computed once on the host (no device sync in the loop).
    t_of = {s: timestep(s) for s in sigmas if s > 0}

    # Time spent inside the model calls of the current run (for step-profile.ts):
    # on CUDA without a sync, that is the time to launch the forward's kernels.
    calls = {"forward_ms": 0.0, "forwards": 0}

    def run_model(m, x, sigma, label, perturb=None):
        c_in = 1 / math.sqrt(sigma * sigma + 1)
        t = torch.full((x.shape[0],), t_of[sigma], device=device)
        if perturb is not None:
            m.mid.attn.perturb_state = perturb
        x_in = x * c_in
        start = time.perf_counter()
        eps = m(x_in, t, label)
        calls["forward_ms"] += (time.perf_counter() - start) * 1000
        calls["forwards"] += 1
        if perturb is not None:
            m.mid.attn.perturb_state = None
        return x - sigma * eps

    def denoise(x, sigma):
        if strategy == "none":
            return run_model(model, x, sigma, labels)
        if strategy == "cfg":
            d = run_model(model, torch.cat([x, x]), sigma, torch.cat([nulls, labels]))
            d_u, d_c = d.chunk(2)
            return d_u + 3 * (d_c - d_u)
        if strategy in ("pag", "seg"):
            d = run_model(model, torch.cat([x, x]), sigma, torch.cat([labels, labels]), (strategy, n, 2 * n))
            d_c, d_p = d.chunk(2)
            return d_c + 3 * (d_c - d_p)
        if strategy == "cfg+pag":
            d = run_model(model, torch.cat([x, x, x]), sigma, torch.cat([nulls, labels, labels]), ("pag", 2 * n, 3 * n))
            d_u, d_c, d_p = d.chunk(3)
            return d_u + 3 * (d_c - d_u) + 3 * (d_c - d_p)
        if strategy == "autoguidance":
            d_c = run_model(model, x, sigma, labels)
            d_g = run_model(guide, x, sigma, labels)
            return d_g + 2 * (d_c - d_g)
        if strategy == "sag":
            d_c = run_model(model, x, sigma, labels, ("capture", 0, n))
            probs = model.mid.attn.captured  # [n, queries, keys]
            side = int(math.isqrt(probs.shape[-1]))  # the 7×7 grid of mid.attn
            mask = (probs.sum(1) > 1.0).to(x.dtype).reshape(n, 1, side, side)
            mask = F.interpolate(mask, x.shape[-2:])  # nearest
            degraded = gaussian_blur_2d(d_c, 9, 1.0) * mask + d_c * (1 - mask)
            x_t = degraded + (x - d_c)  # re-noised with the model's own noise: x − x0 = σ·eps
            d_t = run_model(model, x_t, sigma, labels)
            return d_c + 0.75 * ((d_c - x) - (d_t - x_t))
        raise SystemExit(f"unknown strategy {strategy}")

    def sample():
        g = torch.Generator(device="cpu").manual_seed(a.seed)
        x = torch.randn(n, 1, 28, 28, generator=g).to(device) * sigmas[0]
        for i in range(len(sigmas) - 1):
            d = denoise(x, sigmas[i])
            x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i]) if sigmas[i + 1] > 0 else d
        return x.cpu()

    def timed():
        calls.update(forward_ms=0.0, forwards=0)
        start = time.perf_counter()
        sample()
        return (time.perf_counter() - start) * 1000

    def peaks():
        # The process's peak resident memory (Linux reports KiB): this one
        # strategy's loop, from a fresh interpreter.
        return {
            "peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }

    with torch.inference_mode():
        sample()  # warm-up: the profiling executor specialises, CUDA allocates
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if a.serve:
            # One timed run per "run" line on stdin, so the caller can alternate
            # run by run with its own; "peaks" reports memory; EOF ends it.
            print(json.dumps({"ready": True}), flush=True)
            for line in sys.stdin:
                command = line.strip()
                if command == "run":
                    print(json.dumps({"ms": timed(), **calls}), flush=True)
                elif command == "peaks":
                    print(json.dumps(peaks()), flush=True)
            return
        times = [timed() for _ in range(a.runs)]
    print(json.dumps({"times_ms": times, **peaks()}))


if __name__ == "__main__":
    main()
