"""A plain DDIM sampler (eta = 0 by default) for exported discrete-VP models,
with classifier-free guidance and an optional second (guide) model.

The guided prediction, in the design's form (eps space; the same as x0 space
for a linear combination at one x and t):

    eps = eps(c) + (cfg - 1) * (eps(c) - eps(null))
                 + (w - 1)   * (eps(c) - eps_guide(c))

cfg = 1 and no guide is the plain conditional model. With cfg = 1 the second
term is the autoguidance / SIMS term D_guide + w (D_main - D_guide).
"""

from typing import Dict, Optional

import numpy as np
import torch

import vp_schedule


def timesteps(n: int, total: int) -> torch.Tensor:
    """n decreasing integer timesteps from total-1 down to 0, evenly spaced."""
    ts = np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))[::-1]
    return torch.from_numpy(ts.copy())


def eps_and_x0(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, prediction: str):
    """(eps, x0) from a model output, for alpha_bar a (scalar tensor)."""
    sa, s1 = a.sqrt(), (1 - a).sqrt()
    if prediction == "eps":
        return out, (x - s1 * out) / sa
    if prediction == "x0":
        return (x - sa * out) / s1, out
    if prediction == "v":
        return s1 * x + sa * out, sa * x - s1 * out
    raise ValueError(f"DDIM here supports eps, x0 and v models, not {prediction!r}")


class Denoiser:
    """Calls an exported model (torch.jit.load) by its card."""

    def __init__(self, module, card: Dict):
        if card.get("schedule", {}).get("kind") != "discrete":
            raise ValueError("this sampler handles discrete-schedule models only")
        self.module = module
        self.card = card
        self.abar = vp_schedule.alphas_cumprod(card["schedule"]).to(torch.float32)
        cond = card.get("conditioning", {"kind": "none"})
        self.null_label = cond.get("nullLabel") if cond.get("kind") == "class" else None

    def __call__(self, x: torch.Tensor, t: int, labels: torch.Tensor) -> torch.Tensor:
        """Model output converted to eps."""
        tt = torch.full((x.shape[0],), float(t))
        if self.null_label is None:
            out = self.module(x, tt)
        else:
            out = self.module(x, tt, labels)
        return eps_and_x0(out, x, self.abar[t], self.card["prediction"])[0]


@torch.no_grad()
def sample(
    model: Denoiser,
    labels: torch.Tensor,
    steps: int = 50,
    cfg: float = 1.0,
    guide: Optional[Denoiser] = None,
    guide_scale: float = 1.0,
    eta: float = 0.0,
    generator: Optional[torch.Generator] = None,
    clip: bool = True,
) -> torch.Tensor:
    """Samples [N, *sampleShape] in [-1, 1] (clipped) for the given labels."""
    n = labels.shape[0]
    shape = [n] + list(model.card["sampleShape"])
    x = torch.randn(shape, generator=generator)
    abar = model.abar
    ts = timesteps(steps, abar.shape[0])
    use_cfg = cfg != 1.0 and model.null_label is not None
    for i, t in enumerate(ts.tolist()):
        if use_cfg:
            null = torch.full_like(labels, model.null_label)
            both = model(torch.cat([x, x]), t, torch.cat([labels, null]))
            e_c, e_u = both[:n], both[n:]
            eps = e_c + (cfg - 1.0) * (e_c - e_u)
        else:
            e_c = model(x, t, labels)
            eps = e_c
        if guide is not None and guide_scale != 1.0:
            eps = eps + (guide_scale - 1.0) * (e_c - guide(x, t, labels))
        a = abar[t]
        a_prev = abar[int(ts[i + 1])] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and i + 1 < len(ts):
            x = x + sigma * torch.randn(shape, generator=generator)
    return x.clamp(-1.0, 1.0)
