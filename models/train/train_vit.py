#!/usr/bin/env python3
"""Train the small ViT that serves as the DINO-style mask model of SAG's
ablation (sag({ mask: { source: 'model', model } })), and export it.

    /usr/bin/python3 models/train/train_vit.py      # models/fashion-vit.pt, a few minutes on 1 CPU thread

A supervised stand-in for DINO: DINO's point is a ViT whose class-token
attention finds the object without ever seeing noisy images; a ViT trained to
classify Fashion-MNIST learns such maps too, and it is small enough to train
here. Architecture in vit.py (4x4 patches, class token, 4 blocks of width 64,
4 heads). Inputs [N, 1, 28, 28] in [-1, 1], like the denoisers' samples. The
card is a classifier card (forward -> logits, features -> the normalised class
token); the test accuracy goes into it and into models/logs/vit.json.
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

import fmnist
from export import save_scripted
from runtime import MODELS_DIR, setup
from vit import ViT

NAME = "fashion-vit"


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    model.train()
    return correct / x.shape[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=MODELS_DIR)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few hundred steps on a subset")
    parser.add_argument("--force", action="store_true", help="train again even if the model exists")
    args = parser.parse_args()
    out_path = os.path.join(args.root, f"{NAME}.pt")
    if os.path.exists(out_path) and not args.force:
        print(f"{out_path} exists; --force to train it again")
        return 0
    setup(args.seed)

    train_x, train_y = fmnist.load("train", limit=4000 if args.smoke else None)
    test_x, test_y = fmnist.load("test", limit=1000 if args.smoke else None)
    model = ViT(dim=64, depth=4, heads=4)
    n_params = sum(p.numel() for p in model.parameters())
    steps = int(math.ceil(args.epochs * train_x.shape[0] / args.batch))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(args.seed)
    started = time.time()
    step = 0
    model.train()
    while step < steps:
        order = torch.randperm(train_x.shape[0], generator=g)
        for i in range(0, train_x.shape[0] - args.batch + 1, args.batch):
            idx = order[i : i + args.batch]
            x, y = train_x[idx], train_y[idx]
            # Random 2-pixel shifts, as the evaluation classifier is trained.
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
            if step >= steps:
                break
    train_seconds = time.time() - started
    acc = evaluate(model, test_x, test_y)
    print(f"test accuracy {acc:.4f} after {train_seconds / 60:.1f} min", flush=True)
    card = {
        "name": NAME,
        "version": "1",
        "kind": "classifier",
        "sampleShape": [1, 28, 28],
        "numClasses": 10,
        "featureDim": 64,
        "testAccuracy": round(acc, 4),
        "notes": (
            f"Mask model for SAG's attention-source ablation (a supervised stand-in for DINO): ViT, 4x4 patches + class token, "
            f"4 blocks of width 64, 4 heads ({n_params:,} parameters); attention written out so its maps can be captured. "
            f"Trained {step} steps at batch {args.batch} ({step * args.batch / train_x.shape[0]:.1f} epochs, "
            f"{train_seconds / 60:.1f} min on 1 CPU thread) on the Fashion-MNIST train split, AdamW lr {args.lr:g} one-cycle, "
            f"label smoothing 0.05, random 2-pixel shifts, seed {args.seed}. Test accuracy {acc:.4f}."
        ),
    }
    model.eval()

    def check(scripted) -> None:
        x = test_x[:16]
        with torch.no_grad():
            if not torch.allclose(scripted(x), model(x), atol=1e-4):
                raise RuntimeError("scripted logits differ from eager")

    size = save_scripted(model, out_path, card, check=check)
    print(f"exported {out_path} ({size / 1024:.0f} KiB)")
    report = {"testAccuracy": acc, "steps": step, "batch": args.batch, "trainMinutes": round(train_seconds / 60, 2), "parameters": n_params}
    os.makedirs(os.path.join(args.root, "logs"), exist_ok=True)
    with open(os.path.join(args.root, "logs", "vit.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
