#!/usr/bin/env python3
"""Independent reference for the package's samplers: the same TorchScript
model, sampled in Python with k-diffusion's formulas (written out here from
the papers, not ported from src/).

    samplers.py SPEC.json OUT.bin

SPEC: model, sampler {name, steps, schedule {kind, rho?, spacing?}, eta?,
churn?}, labels (list, null = null label), cfg (0 = unguided, else w in
D(u) + w (D(c) - D(u))), seeds (decimal strings, one per sample), stepSeeds
(per step, one decimal string per sample). Writes the final samples as
float32 to OUT.bin (and an empty OUT.bin.captures).
"""
import json
import math
import sys

import torch

torch.set_grad_enabled(False)


def load(path):
    files = {"model.json": ""}
    module = torch.jit.load(path, map_location="cpu", _extra_files=files)
    module.eval()
    return module, json.loads(files["model.json"])


def vp_sigmas(schedule):
    T = schedule["timesteps"]
    if schedule["betas"] == "linear":
        betas = torch.linspace(schedule["betaStart"], schedule["betaEnd"], T, dtype=torch.float64)
    else:
        betas = torch.linspace(schedule["betaStart"] ** 0.5, schedule["betaEnd"] ** 0.5, T, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def sigma_to_t(sigma, sigmas):
    log_sigmas = sigmas.log()
    log_sigma = math.log(sigma)
    if log_sigma <= log_sigmas[0]:
        return 0.0
    if log_sigma >= log_sigmas[-1]:
        return float(len(sigmas) - 1)
    low = int((log_sigmas <= log_sigma).nonzero().max())
    high = low + 1
    w = (log_sigma - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])
    return float(low + w)


def schedule_sigmas(spec, card, vp):
    kind = spec["kind"]
    n = spec_steps
    if kind == "discrete":
        T = len(vp)
        if spec.get("spacing", "trailing") == "leading":
            ratio = T // n
            ts = [i * ratio for i in range(n - 1, -1, -1)]
        else:
            ts = [round(T - i * T / n) - 1 for i in range(n)]
        return [float(vp[t]) for t in ts] + [0.0]
    if card["schedule"]["kind"] == "edm":
        smin, smax = card["schedule"]["sigmaMin"], card["schedule"]["sigmaMax"]
    else:
        smin, smax = float(vp[0]), float(vp[-1])
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    if kind == "karras":
        rho = spec.get("rho", 7)
        s = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    else:
        s = torch.exp(math.log(smax) + ramp * (math.log(smin) - math.log(smax)))
    return [float(v) for v in s] + [0.0]


class Denoiser:
    """x0 prediction from the model's raw output (Karras et al. 2022, table 1)."""

    def __init__(self, module, card):
        self.module, self.card = module, card
        self.vp = vp_sigmas(card["schedule"]) if card["schedule"]["kind"] == "discrete" else None

    def __call__(self, x, sigma, labels):
        card = self.card
        if card["prediction"] == "edm":
            sd = card["schedule"]["sigmaData"]
            c_in = 1 / math.sqrt(sigma ** 2 + sd ** 2)
            t = math.log(sigma) / 4
        else:
            c_in = 1 / math.sqrt(sigma ** 2 + 1)
            t = sigma_to_t(sigma, self.vp)
        time = torch.full((x.shape[0],), t, dtype=torch.float32)
        args = [x * c_in, time] + ([labels] if card["conditioning"]["kind"] != "none" else [])
        out = self.module(*args)
        p = card["prediction"]
        if p == "eps":
            return x - sigma * out
        if p == "v":
            return x / (sigma ** 2 + 1) - out * sigma / math.sqrt(sigma ** 2 + 1)
        if p == "x0":
            return out
        sd = card["schedule"]["sigmaData"]
        return x * sd ** 2 / (sigma ** 2 + sd ** 2) + out * sigma * sd / math.sqrt(sigma ** 2 + sd ** 2)


def main():
    global spec_steps
    spec = json.load(open(sys.argv[1]))
    out_path = sys.argv[2]
    module, card = load(spec["model"])
    denoise = Denoiser(module, card)
    sampler = spec["sampler"]
    spec_steps = sampler["steps"]
    sigmas = schedule_sigmas(sampler.get("schedule", {"kind": "karras"}), card, denoise.vp)
    shape = card["sampleShape"]
    null = card["conditioning"].get("nullLabel", 0)
    labels = torch.tensor([null if l is None else l for l in spec["labels"]], dtype=torch.int64)
    nulls = torch.full_like(labels, null)
    w = spec["cfg"]

    def D(x, sigma):
        cond = denoise(x, sigma, labels)
        if w == 0:
            return cond
        uncond = denoise(x, sigma, nulls)
        return uncond + w * (cond - uncond)

    def noise(seeds):
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    x = noise(spec["seeds"]) * sigmas[0]
    name = sampler["name"]
    old = None
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        if name in ("euler", "ddim", "euler_ancestral"):
            eta = {"euler": 0.0}.get(name, sampler.get("eta", 0.0 if name == "ddim" else 1.0))
            d0 = D(x, s)
            d = (x - d0) / s
            if s_next == 0:
                x = x + d * (s_next - s)
                continue
            s_up = min(s_next, eta * (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
            s_down = (s_next ** 2 - s_up ** 2) ** 0.5
            x = x + d * (s_down - s)
            if s_up > 0:
                x = x + noise(spec["stepSeeds"][i]) * s_up
        elif name == "heun":
            churn = sampler.get("churn", 0.0)
            gamma = min(churn / n, 2 ** 0.5 - 1) if churn > 0 else 0.0
            s_hat = s * (gamma + 1)
            if gamma > 0:
                x = x + noise(spec["stepSeeds"][i]) * (s_hat ** 2 - s ** 2) ** 0.5
            d = (x - D(x, s_hat)) / s_hat
            dt = s_next - s_hat
            if s_next == 0:
                x = x + d * dt
            else:
                x2 = x + d * dt
                d2 = (x2 - D(x2, s_next)) / s_next
                x = x + (d + d2) / 2 * dt
        elif name == "dpmpp_2m":
            den = D(x, s)
            t, t_next = -math.log(s), (-math.log(s_next) if s_next > 0 else math.inf)
            h = t_next - t
            if s_next == 0:
                x = den
            elif old is None:
                x = (s_next / s) * x - math.expm1(-h) * den
            else:
                h_last = t - (-math.log(sigmas[i - 1]))
                r = h_last / h
                den_d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
                x = (s_next / s) * x - math.expm1(-h) * den_d
            old = den
        else:
            raise SystemExit(f"unknown sampler {name}")
    x.to(torch.float32).contiguous().numpy().tofile(out_path)
    open(out_path + ".captures", "wb").close()


if __name__ == "__main__":
    main()
