"""The eps-prediction training loop shared by train_diffusion.py (main model,
weak guide) and make_sims.py (fine-tuning on synthetic data).

* loss: MSE between the true and predicted noise, t uniform in 0..999;
* label dropout: a fraction of labels replaced by the null label (10), so the
  model also learns the unconditional prediction (classifier-free guidance);
* AdamW, linear warm-up then cosine decay to lr_min, gradient clipping;
* EMA of the weights (decay warmed up as min(decay, (1+step)/(10+step)));
* data order: one seeded permutation per epoch, a function of (seed, epoch),
  so a resumed run sees exactly the batches an uninterrupted run would;
  noise, timesteps and dropout come from one generator whose state is
  checkpointed;
* a checkpoint (model, EMA, optimizer, generator and global RNG states, step,
  training seconds so far) every `ckpt_every_s` seconds, at the end, and on
  SIGTERM/SIGINT; resuming restores all of it.
"""

import copy
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import checkpoint
import vp_schedule
from csvlog import CsvLog
from runtime import StopFlag
from unet import NULL_LABEL

LOG_FIELDS = ["step", "loss", "lr", "sec_per_step", "train_seconds", "wall_time"]


@dataclass
class TrainConfig:
    steps: int
    batch: int = 128
    lr: float = 1e-3
    lr_min_ratio: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    seed: int = 0
    ckpt_every_s: float = 300.0
    log_every: int = 25


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    lo = cfg.lr * cfg.lr_min_ratio
    return lo + (cfg.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class Batches:
    """Deterministic batches: a permutation per epoch seeded by (seed, epoch);
    the last incomplete batch of an epoch is dropped."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        if n < batch:
            raise ValueError(f"dataset of {n} examples is smaller than a batch of {batch}")
        self.n, self.batch, self.seed = n, batch, seed
        self.per_epoch = n // batch
        self._epoch = -1
        self._perm = None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g)
            self._epoch = epoch
        return self._perm[i * self.batch : (i + 1) * self.batch]


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    ckpt_path: str,
    log_path: str,
    stop: StopFlag,
    extra: Optional[Dict] = None,
) -> Dict:
    """Train (or resume) until cfg.steps. `images` float [N,1,28,28] in [-1, 1]
    or uint8 [N,28,28]; `labels` int64 [N]. `model` holds the initial weights
    (ignored on resume). `extra` is stored in the checkpoint (model config).

    Returns {"done": bool, "ema": the EMA module, "step", "final_loss",
    "train_seconds"}.
    """
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    abar = vp_schedule.alphas_cumprod()
    step, train_seconds, recent = 0, 0.0, []

    state = checkpoint.load(ckpt_path)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        checkpoint.set_rng_state(state["rng"], gen)
        step = state["step"]
        train_seconds = state["train_seconds"]
        recent = state.get("recent_losses", [])
        if state["train_config"]["steps"] != cfg.steps:
            print(f"note: checkpoint planned {state['train_config']['steps']} steps, now {cfg.steps}")
        print(f"resumed {ckpt_path} at step {step} ({train_seconds / 60:.1f} min trained)", flush=True)

    def save(done: bool) -> None:
        checkpoint.save_atomic(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "rng": checkpoint.rng_state(gen),
                "step": step,
                "train_seconds": train_seconds,
                "recent_losses": recent[-200:],
                "train_config": asdict(cfg),
                "extra": extra or {},
                "done": done,
            },
            ckpt_path,
        )
        print(f"checkpoint {ckpt_path} step {step}", flush=True)

    result = lambda done: {  # noqa: E731
        "done": done,
        "ema": ema,
        "step": step,
        "final_loss": sum(recent[-200:]) / max(1, len(recent[-200:])),
        "train_seconds": train_seconds,
    }
    if state is not None and state.get("done") and step >= cfg.steps:
        return result(True)

    log = CsvLog(log_path, LOG_FIELDS, resume_step=step)
    batches = Batches(images.shape[0], cfg.batch, cfg.seed)
    model.train()
    last_ckpt = time.time()
    interval_loss, interval_n, interval_t0 = 0.0, 0, time.time()
    try:
        while step < cfg.steps:
            if stop.requested:
                save(False)
                return result(False)
            t0 = time.time()
            idx = batches.indices(step)
            x0 = images[idx]
            if x0.dtype == torch.uint8:
                x0 = (x0.to(torch.float32) / 127.5 - 1.0).unsqueeze(1)
            y = labels[idx].clone()
            n = x0.shape[0]
            t = torch.randint(0, abar.shape[0], (n,), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            drop = torch.rand(n, generator=gen) < cfg.label_dropout
            y[drop] = NULL_LABEL
            xt = vp_schedule.q_sample(x0, t, eps, abar)

            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.mse_loss(model(xt, t.to(torch.float32), y), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))

            lv = float(loss)
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at step {step}")
            recent.append(lv)
            recent = recent[-200:]
            train_seconds += time.time() - t0
            interval_loss += lv
            interval_n += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                sps = (time.time() - interval_t0) / interval_n
                row = {
                    "step": step,
                    "loss": f"{interval_loss / interval_n:.5f}",
                    "lr": f"{lr:.3g}",
                    "sec_per_step": f"{sps:.3f}",
                    "train_seconds": f"{train_seconds:.1f}",
                    "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
                log.write(row)
                print(
                    f"step {step}/{cfg.steps} loss {row['loss']} lr {row['lr']} "
                    f"{sps:.2f} s/step, {train_seconds / 60:.1f} min",
                    flush=True,
                )
                interval_loss, interval_n, interval_t0 = 0.0, 0, time.time()
            if time.time() - last_ckpt >= cfg.ckpt_every_s and step < cfg.steps:
                save(False)
                last_ckpt = time.time()
        save(True)
        return result(True)
    finally:
        log.close()
