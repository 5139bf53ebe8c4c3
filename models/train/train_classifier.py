#!/usr/bin/env python3
"""Train the evaluation classifier for Fashion-MNIST and export it.

    /usr/bin/python3 models/train/train_classifier.py     # models/fashion-classifier.pt

The exported module has forward(x) -> logits [N, 10] and an exported method
features(x) -> penultimate features [N, 256] (for a Fréchet distance between
sample sets). Inputs are [N, 1, 28, 28] float32 in [-1, 1], like the
denoisers' samples. The test accuracy goes into the card and into
models/logs/classifier.json.

Resumable like the diffusion scripts (models/checkpoints/classifier/last.pt).
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import checkpoint
import fmnist
from csvlog import CsvLog
from diffusion_loop import Batches
from export import save_scripted
from runtime import MODELS_DIR, StopFlag, setup

FEATURE_DIM = 256
NAME = "fashion-classifier"


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FashionClassifier(nn.Module):
    """Small VGG-style CNN: 28 -> 14 -> 7 -> 3, then a 256-d feature layer."""

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, num_classes: int = 10):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            conv_bn(1, w), nn.MaxPool2d(2),  # 14x14
            conv_bn(w, 2 * w), nn.MaxPool2d(2),  # 7x7
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),  # 3x3
        )
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * 9, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    @torch.jit.export
    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations [N, feature_dim] (after ReLU)."""
        return self.fc(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random shift by up to 2 pixels (one offset per batch, zero = -1 padding)."""
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return x[:, :, 2 + dy : 30 + dy, 2 + dx : 30 + dx]


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, images.shape[0], batch):
        correct += int((model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
    return correct / images.shape[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=MODELS_DIR)
    ap.add_argument("--epochs", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--ckpt-every", type=float, default=120.0)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--smoke", action="store_true", help="2,000 examples, 0.5 epoch")
    ap.add_argument("--force-export", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.limit = args.limit or 2000
        args.epochs = 0.5 if args.epochs == 5.0 else args.epochs

    setup(args.seed)
    stop = StopFlag()
    out_path = os.path.join(args.root, NAME + ".pt")
    ckpt_path = os.path.join(args.root, "checkpoints", "classifier", "last.pt")
    log_path = os.path.join(args.root, "logs", "classifier-loss.csv")
    json_path = os.path.join(args.root, "logs", "classifier.json")

    train_x, train_y = fmnist.load_uint8("train")
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    test_x, test_y = fmnist.load("test")
    batches = Batches(train_x.shape[0], args.batch, args.seed)
    steps = max(1, int(round(args.epochs * batches.per_epoch)))

    model = FashionClassifier(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed + 1)
    step, train_seconds = 0, 0.0
    state = checkpoint.load(ckpt_path)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        checkpoint.set_rng_state(state["rng"], gen)
        step, train_seconds = state["step"], state["train_seconds"]
        print(f"resumed {ckpt_path} at step {step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"classifier: {n_params:,} parameters, {steps} steps at batch {args.batch}", flush=True)

    def save(done: bool) -> None:
        checkpoint.save_atomic(
            {"model": model.state_dict(), "opt": opt.state_dict(), "rng": checkpoint.rng_state(gen),
             "step": step, "train_seconds": train_seconds, "done": done, "steps": steps},
            ckpt_path,
        )
        print(f"checkpoint {ckpt_path} step {step}", flush=True)

    if not (state is not None and state.get("done") and step >= steps):
        log = CsvLog(log_path, ["step", "loss", "lr", "train_seconds"], resume_step=step)
        last_ckpt, run_loss, run_n = time.time(), 0.0, 0
        model.train()
        while step < steps:
            if stop.requested:
                save(False)
                log.close()
                print(f"stopped at step {step}; rerun the same command to resume")
                return stop.exit_code()
            t0 = time.time()
            idx = batches.indices(step)
            x = augment(fmnist.to_model_range(train_x[idx]), gen)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(x), train_y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            train_seconds += time.time() - t0
            run_loss += float(loss)
            run_n += 1
            if step % 50 == 0 or step == steps:
                log.write({"step": step, "loss": f"{run_loss / run_n:.4f}", "lr": f"{lr:.3g}",
                           "train_seconds": f"{train_seconds:.1f}"})
                print(f"step {step}/{steps} loss {run_loss / run_n:.4f} {train_seconds / step if step else 0:.3f} s/step",
                      flush=True)
                run_loss, run_n = 0.0, 0
            if time.time() - last_ckpt >= args.ckpt_every and step < steps:
                save(False)
                last_ckpt = time.time()
        save(True)
        log.close()
    elif os.path.exists(out_path) and os.path.exists(json_path) and not args.force_export:
        print(f"{out_path} exists and training is done; --force-export to rewrite it")
        return 0

    acc = evaluate(model, test_x, test_y)
    print(f"test accuracy {acc:.4f}", flush=True)
    card = {
        "name": NAME,
        "version": "1",
        "kind": "classifier",
        "sampleShape": [1, 28, 28],
        "numClasses": 10,
        "featureDim": FEATURE_DIM,
        "testAccuracy": round(acc, 4),
        "notes": (
            f"Evaluation classifier: CNN (3 conv-BN-ReLU-maxpool stages, width {args.width}, "
            f"{n_params:,} parameters), forward(x) -> logits, features(x) -> {FEATURE_DIM}-d penultimate "
            f"activations. Input [N,1,28,28] in [-1, 1]. Trained {step} steps at batch {args.batch} "
            f"({step * args.batch / train_x.shape[0]:.1f} epochs, {train_seconds / 60:.1f} min on 1 CPU thread) "
            f"on the Fashion-MNIST train split ({train_x.shape[0]:,} images), AdamW lr {args.lr:g} cosine, "
            f"label smoothing 0.05, random 2-pixel shifts, seed {args.seed}. "
            f"Test accuracy {acc:.4f} on the 10,000-image test split."
        ),
    }
    model.eval()

    def check(scripted) -> None:
        x = test_x[:16]
        with torch.no_grad():
            if not torch.allclose(scripted(x), model(x), atol=1e-4):
                raise RuntimeError("scripted logits differ from eager")
            if scripted.features(x).shape != (16, FEATURE_DIM):
                raise RuntimeError("features shape")

    size = save_scripted(model, out_path, card, check=check)
    print(f"exported {out_path} ({size / 1024:.0f} KiB)")
    report = {"testAccuracy": acc, "testExamples": int(test_x.shape[0]), "steps": step,
              "batch": args.batch, "trainExamples": int(train_x.shape[0]),
              "trainMinutes": round(train_seconds / 60, 2), "parameters": n_params,
              "model": os.path.relpath(out_path, args.root)}
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
