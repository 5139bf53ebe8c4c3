#!/usr/bin/env python3
"""Independent reference for the package's samplers: the same TorchScript
model, sampled in Python with k-diffusion's formulas (written out here from
the papers, not ported from src/).

    samplers.py SPEC.json OUT.bin

SPEC: model, sampler {name, steps, schedule {kind, rho?, spacing?, ...},
eta?, churn?, sNoise?, r?, solverType?, order?}, labels (list, null = null
label), cfg (0 = unguided, else w in D(u) + w (D(c) - D(u))), seeds (decimal
strings, one per sample), stepSeeds and stepSeeds2 (per step, one decimal
string per sample: the step's first and second noise draw). Writes the final
samples as float32 to OUT.bin (and an empty OUT.bin.captures).

The stochastic samplers take their noise from those seeds ("injected"); the
Brownian path of dpmpp_sde is composed here from the step's two draws.
"""
import json
import math
import sys

import numpy as np
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
    if kind != "vp" and card["schedule"]["kind"] == "edm":
        smin, smax = card["schedule"]["sigmaMin"], card["schedule"]["sigmaMax"]
    elif kind != "vp":
        smin, smax = float(vp[0]), float(vp[-1])
    if kind == "vp":
        # k-diffusion's get_sigmas_vp.
        beta_d, beta_min, eps_s = spec.get("betaD", 19.9), spec.get("betaMin", 0.1), spec.get("epsS", 1e-3)
        t = torch.linspace(1, eps_s, n, dtype=torch.float64)
        return [float(v) for v in torch.sqrt(torch.exp(beta_d * t ** 2 / 2 + beta_min * t) - 1)] + [0.0]
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    if kind == "polyexponential":
        # k-diffusion's get_sigmas_polyexponential.
        r = torch.linspace(1, 0, n, dtype=torch.float64) ** spec.get("rho", 1)
        return [float(v) for v in torch.exp(r * (math.log(smax) - math.log(smin)) + math.log(smin))] + [0.0]
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
    n = len(sigmas) - 1
    s_noise = sampler.get("sNoise", 1.0)

    def z(i, second=False):
        return noise(spec["stepSeeds2" if second else "stepSeeds"][i])

    def to_d(x, s, den):
        return (x - den) / s

    def ancestral(s_from, s_to, eta):
        # k-diffusion's get_ancestral_step.
        if not eta:
            return s_to, 0.0
        up = min(s_to, eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
        return (s_to ** 2 - up ** 2) ** 0.5, up

    def churn(x, i, s):
        # EDM's churn (k-diffusion's s_churn, s_tmin, s_tmax, s_noise as churn, churnSigmaMin, churnSigmaMax, churnNoise).
        c = sampler.get("churn", 0.0)
        in_range = sampler.get("churnSigmaMin", 0.0) <= s <= sampler.get("churnSigmaMax", math.inf)
        gamma = min(c / n, 2 ** 0.5 - 1) if c > 0 and in_range else 0.0
        s_hat = s * (gamma + 1)
        if gamma > 0:
            x = x + z(i) * sampler.get("churnNoise", 1.0) * (s_hat ** 2 - s ** 2) ** 0.5
        return x, s_hat

    def lms_coeff(order, t, i, j):
        # k-diffusion integrates the Lagrange basis polynomial with scipy's quad; here the
        # polynomial is expanded (numpy) and integrated exactly.
        poly = np.polynomial.Polynomial([1.0])
        for k in range(order):
            if j != k:
                poly = poly * np.polynomial.Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
        antiderivative = poly.integ()
        return float(antiderivative(t[i + 1]) - antiderivative(t[i]))

    t_fn = lambda sig: -math.log(sig)
    sigma_fn = lambda t: math.exp(-t)
    old, h_last, ds = None, None, []
    den_1, den_2, h_1, h_2 = None, None, None, None
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        if name in ("ddim", "euler_ancestral"):
            eta = sampler.get("eta", 0.0 if name == "ddim" else 1.0)
            d = to_d(x, s, D(x, s))
            s_down, s_up = ancestral(s, s_next, eta) if s_next > 0 else (0.0, 0.0)
            x = x + d * (s_down - s)
            if s_up > 0:
                x = x + z(i) * s_noise * s_up
        elif name == "euler":
            x, s_hat = churn(x, i, s)
            d = to_d(x, s_hat, D(x, s_hat))
            x = x + d * (s_next - s_hat)
        elif name == "heun":
            x, s_hat = churn(x, i, s)
            d = to_d(x, s_hat, D(x, s_hat))
            dt = s_next - s_hat
            if s_next == 0:
                x = x + d * dt
            else:
                x2 = x + d * dt
                d2 = to_d(x2, s_next, D(x2, s_next))
                x = x + (d + d2) / 2 * dt
        elif name == "dpm_2":
            x, s_hat = churn(x, i, s)
            d = to_d(x, s_hat, D(x, s_hat))
            if s_next == 0:
                x = x + d * (s_next - s_hat)
            else:
                s_mid = math.exp((math.log(s_hat) + math.log(s_next)) / 2)
                x2 = x + d * (s_mid - s_hat)
                d2 = to_d(x2, s_mid, D(x2, s_mid))
                x = x + d2 * (s_next - s_hat)
        elif name == "dpm_2_ancestral":
            d = to_d(x, s, D(x, s))
            s_down, s_up = ancestral(s, s_next, sampler.get("eta", 1.0))
            if s_down == 0:
                x = x + d * (s_down - s)
            else:
                s_mid = math.exp((math.log(s) + math.log(s_down)) / 2)
                x2 = x + d * (s_mid - s)
                d2 = to_d(x2, s_mid, D(x2, s_mid))
                x = x + d2 * (s_down - s)
                x = x + z(i) * s_noise * s_up
        elif name == "dpmpp_2s_ancestral":
            den = D(x, s)
            s_down, s_up = ancestral(s, s_next, sampler.get("eta", 1.0))
            if s_down == 0:
                x = x + to_d(x, s, den) * (s_down - s)
            else:
                t, t_next = t_fn(s), t_fn(s_down)
                h = t_next - t
                s_mid = t + h / 2
                x2 = (sigma_fn(s_mid) / sigma_fn(t)) * x - math.expm1(-h / 2) * den
                den2 = D(x2, sigma_fn(s_mid))
                x = (sigma_fn(t_next) / sigma_fn(t)) * x - math.expm1(-h) * den2
            if s_next > 0:
                x = x + z(i) * s_noise * s_up
        elif name == "dpmpp_sde":
            den = D(x, s)
            eta, r = sampler.get("eta", 1.0), sampler.get("r", 0.5)
            if s_next == 0:
                x = x + to_d(x, s, den) * (s_next - s)
            else:
                t, t_next = t_fn(s), t_fn(s_next)
                h = t_next - t
                ss = t + h * r
                fac = 1 / (2 * r)
                # One Brownian path W(sigma) per sample: increments over [sigma_s, sigma] and [sigma_s', sigma_s]
                # from the step's two draws; the normalised increments over [sigma_s, sigma] and [sigma', sigma].
                a, b = z(i), z(i, second=True)
                w_first = a * (s - sigma_fn(ss)) ** 0.5
                w_rest = b * (sigma_fn(ss) - s_next) ** 0.5
                n1 = w_first / (s - sigma_fn(ss)) ** 0.5
                n2 = (w_first + w_rest) / (s - s_next) ** 0.5
                sd, su = ancestral(sigma_fn(t), sigma_fn(ss), eta)
                s_ = t_fn(sd)
                x2 = (sigma_fn(s_) / sigma_fn(t)) * x - math.expm1(t - s_) * den
                x2 = x2 + n1 * s_noise * su
                den2 = D(x2, sigma_fn(ss))
                sd, su = ancestral(sigma_fn(t), sigma_fn(t_next), eta)
                t_next_ = t_fn(sd)
                den_d = (1 - fac) * den + fac * den2
                x = (sigma_fn(t_next_) / sigma_fn(t)) * x - math.expm1(t - t_next_) * den_d
                x = x + n2 * s_noise * su
        elif name == "dpmpp_2m":
            den = D(x, s)
            t, t_next = -math.log(s), (-math.log(s_next) if s_next > 0 else math.inf)
            h = t_next - t
            if s_next == 0:
                x = den
            elif old is None:
                x = (s_next / s) * x - math.expm1(-h) * den
            else:
                h_prev = t - (-math.log(sigmas[i - 1]))
                r = h_prev / h
                den_d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
                x = (s_next / s) * x - math.expm1(-h) * den_d
            old = den
        elif name == "dpmpp_2m_sde":
            den = D(x, s)
            eta = sampler.get("eta", 1.0)
            if s_next == 0:
                x = den
            else:
                h = -math.log(s_next) - (-math.log(s))
                eta_h = eta * h
                x = s_next / s * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * den
                if old is not None:
                    r = h_last / h
                    if sampler.get("solverType", "midpoint") == "heun":
                        x = x + ((-math.expm1(-h - eta_h)) / (-h - eta_h) + 1) * (1 / r) * (den - old)
                    else:
                        x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (den - old)
                if eta:
                    x = x + z(i) * s_next * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
                h_last = h
            old = den
        elif name == "dpmpp_3m_sde":
            den = D(x, s)
            eta = sampler.get("eta", 1.0)
            if s_next == 0:
                x = den
            else:
                h = -math.log(s_next) - (-math.log(s))
                h_eta = h * (eta + 1)
                x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * den
                if h_2 is not None:
                    r0, r1 = h_1 / h, h_2 / h
                    d1_0 = (den - den_1) / r0
                    d1_1 = (den_1 - den_2) / r1
                    d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                    d2 = (d1_0 - d1_1) / (r0 + r1)
                    phi_2 = math.expm1(-h_eta) / h_eta + 1
                    phi_3 = phi_2 / h_eta - 0.5
                    x = x + phi_2 * d1 - phi_3 * d2
                elif h_1 is not None:
                    r = h_1 / h
                    d = (den - den_1) / r
                    phi_2 = math.expm1(-h_eta) / h_eta + 1
                    x = x + phi_2 * d
                if eta:
                    x = x + z(i) * s_next * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise
                h_1, h_2 = h, h_1
            den_1, den_2 = den, den_1
        elif name == "lms":
            order = sampler.get("order", 4)
            den = D(x, s)
            ds.append(to_d(x, s, den))
            if len(ds) > order:
                ds.pop(0)
            cur = min(i + 1, order)
            coeffs = [lms_coeff(cur, sigmas, i, j) for j in range(cur)]
            x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
        else:
            raise SystemExit(f"unknown sampler {name}")
    x.to(torch.float32).contiguous().numpy().tofile(out_path)
    open(out_path + ".captures", "wb").close()


if __name__ == "__main__":
    main()
