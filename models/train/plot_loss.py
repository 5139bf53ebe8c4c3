#!/usr/bin/env python3
"""Plot the training-loss curves in <root>/logs/*-loss.csv to <root>/logs/loss.png.

    /usr/bin/python3 models/train/plot_loss.py
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from csvlog import read  # noqa: E402
from runtime import MODELS_DIR  # noqa: E402

CURVES = [
    ("main", "main model (fashion-unet)"),
    ("weak", "weak guide (fashion-unet-weak)"),
    ("sims", "SIMS fine-tune (fashion-unet-sims)"),
]


def ema(values, alpha=0.3):
    out, m = [], None
    for v in values:
        m = v if m is None else alpha * v + (1 - alpha) * m
        out.append(m)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=MODELS_DIR)
    args = ap.parse_args()
    logs = os.path.join(args.root, "logs")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    found = False
    for key, label in CURVES:
        path = os.path.join(logs, f"{key}-loss.csv")
        if not os.path.exists(path):
            continue
        rows = read(path)
        if not rows:
            continue
        found = True
        steps = [int(r["step"]) for r in rows]
        loss = [float(r["loss"]) for r in rows]
        axes[0].plot(steps, ema(loss), label=label, marker="o" if len(rows) < 5 else None)
    axes[0].set(xlabel="step", ylabel="eps MSE (smoothed)", title="denoisers", yscale="log")
    cpath = os.path.join(logs, "classifier-loss.csv")
    if os.path.exists(cpath):
        rows = read(cpath)
        axes[1].plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], color="C3")
        found = True
    axes[1].set(xlabel="step", ylabel="cross-entropy", title="classifier")
    if not found:
        print(f"no loss logs in {logs}")
        return 1
    axes[0].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = os.path.join(logs, "loss.png")
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
