"""The discrete variance-preserving (DDPM) schedule: linear betas
1e-4 .. 0.02 over 1000 steps, as in the model cards."""

from typing import Dict

import torch

BETA_START = 0.0001
BETA_END = 0.02
TIMESTEPS = 1000


def card_schedule() -> Dict:
    """The card's `schedule` field for this schedule."""
    return {
        "kind": "discrete",
        "betas": "linear",
        "betaStart": BETA_START,
        "betaEnd": BETA_END,
        "timesteps": TIMESTEPS,
    }


def alphas_cumprod(schedule: Dict = None) -> torch.Tensor:
    """alpha_bar_t for t = 0 .. T-1 (float64), from a card's schedule field."""
    s = schedule or card_schedule()
    if s.get("kind") != "discrete" or s.get("betas") != "linear":
        raise ValueError(f"unsupported schedule: {s}")
    betas = torch.linspace(s["betaStart"], s["betaEnd"], s["timesteps"], dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t an int64 [N] index."""
    a = abar[t].to(x0.dtype)[:, None, None, None]
    return a.sqrt() * x0 + (1.0 - a).sqrt() * eps
