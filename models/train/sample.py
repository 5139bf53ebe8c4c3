#!/usr/bin/env python3
"""Sample any exported class-conditional model with DDIM (+ CFG, + a guide
model), write a PNG grid (one row per class) and score the samples with the
evaluation classifier.

    /usr/bin/python3 models/train/sample.py models/fashion-unet.pt --cfg 2
    /usr/bin/python3 models/train/sample.py models/fashion-unet.pt \
        --guide models/fashion-unet-weak.pt --guide-scale 2   # autoguidance

Prints (and writes next to the PNG as .json) the classifier's accuracy on the
samples (the intended class is the label), its mean confidence, and with
--fd the Fréchet distance between classifier features of the samples and of
the test split (use >= 500 samples for a meaningful number).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import ddim
import fmnist
from export import load_scripted
from runtime import MODELS_DIR, setup


def write_grid(samples: torch.Tensor, per_class: int, cols: int, path: str, zoom: int = 2,
               title: str = "") -> None:
    """samples [10 * per_class, 1, 28, 28] in class order -> PNG, rows = classes."""
    cols = min(cols, per_class)
    cell, pad, left, top = 28 * zoom, 2, 90, 18 if title else 2
    font = ImageFont.load_default()
    w = left + cols * (cell + pad) + pad
    if title:
        w = max(w, int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(title, font=font)) + 8)
    h = top + 10 * (cell + pad) + pad
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((4, 3), title, fill=0, font=font)
    u8 = fmnist.to_uint8(samples).numpy()
    for c in range(10):
        y = top + pad + c * (cell + pad)
        draw.text((4, y + cell // 2 - 5), fmnist.CLASSES[c], fill=0, font=font)
        for j in range(cols):
            tile = Image.fromarray(u8[c * per_class + j]).resize((cell, cell), Image.NEAREST)
            img.paste(tile, (left + pad + j * (cell + pad), y))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # sqrt(s1)
    m = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@torch.no_grad()
def score(classifier, samples: torch.Tensor, labels: torch.Tensor, fd: bool) -> dict:
    logits = torch.cat([classifier(samples[i : i + 500]) for i in range(0, samples.shape[0], 500)])
    probs = logits.softmax(-1)
    out = {
        "accuracy": float((logits.argmax(-1) == labels).float().mean()),
        "meanConfidence": float(probs.max(-1).values.mean()),
        "perClassAccuracy": [
            float((logits.argmax(-1)[labels == c] == c).float().mean()) for c in range(10)
        ],
    }
    if fd:
        test_x, _ = fmnist.load("test")
        feats = lambda x: torch.cat(  # noqa: E731
            [classifier.features(x[i : i + 500]) for i in range(0, x.shape[0], 500)]
        ).double().numpy()
        out["frechetDistance"] = frechet_distance(feats(samples), feats(test_x))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--classifier", default=os.path.join(MODELS_DIR, "fashion-classifier.pt"))
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--cols", type=int, default=10, help="grid columns (first N samples per class)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=1.0, help="CFG scale w in D(null) + w (D(c) - D(null))")
    ap.add_argument("--guide", help="a second exported model: autoguidance / SIMS negative")
    ap.add_argument("--guide-scale", type=float, default=2.0, help="w in D_guide + w (D_main - D_guide)")
    ap.add_argument("--eta", type=float, default=0.0)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fd", action="store_true", help="also the Fréchet distance to the test split")
    ap.add_argument("--out", help="PNG path (default models/logs/samples-<model>.png)")
    ap.add_argument("--skip-up-to-date", action="store_true",
                    help="do nothing when the .json is newer than the model files")
    args = ap.parse_args()
    setup(args.seed)

    name = os.path.splitext(os.path.basename(args.model))[0]
    out = args.out or os.path.join(MODELS_DIR, "logs", f"samples-{name}.png")
    json_out = os.path.splitext(out)[0] + ".json"
    inputs = [args.model] + ([args.guide] if args.guide else [])
    if args.skip_up_to_date and os.path.exists(json_out) and os.path.exists(out):
        if all(os.path.getmtime(json_out) > os.path.getmtime(p) for p in inputs):
            print(f"{json_out} is up to date")
            return 0

    module, card = load_scripted(args.model)
    model = ddim.Denoiser(module, card)
    guide = ddim.Denoiser(*load_scripted(args.guide)) if args.guide else None
    labels = torch.arange(10).repeat_interleave(args.per_class)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    chunks = []
    for i in range(0, labels.shape[0], args.batch):
        chunks.append(ddim.sample(model, labels[i : i + args.batch], steps=args.steps, cfg=args.cfg,
                                  guide=guide, guide_scale=args.guide_scale, eta=args.eta,
                                  generator=gen, clip=not args.no_clip))
    samples = torch.cat(chunks)
    seconds = time.time() - t0

    desc = f"{name}  DDIM {args.steps}  cfg {args.cfg:g}"
    if guide is not None:
        desc += f"  guide {os.path.basename(args.guide)} w {args.guide_scale:g}"
    report = {"model": args.model, "guide": args.guide, "guideScale": args.guide_scale if guide else None,
              "cfg": args.cfg, "steps": args.steps, "eta": args.eta, "seed": args.seed,
              "samples": int(labels.shape[0]), "seconds": round(seconds, 1)}
    if os.path.exists(args.classifier):
        classifier, _ = load_scripted(args.classifier)
        report.update(score(classifier, samples, labels, args.fd))
        desc += f"  acc {report['accuracy']:.2f}"
    else:
        print(f"no classifier at {args.classifier}: skipping accuracy")
    write_grid(samples, args.per_class, args.cols, out, title=desc)
    with open(json_out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(desc)
    print(json.dumps({k: v for k, v in report.items() if k != "perClassAccuracy"}))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
