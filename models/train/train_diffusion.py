#!/usr/bin/env python3
"""Train a class-conditional Fashion-MNIST denoiser and export it.

    /usr/bin/python3 models/train/train_diffusion.py --role main   # models/fashion-unet.pt
    /usr/bin/python3 models/train/train_diffusion.py --role weak   # models/fashion-unet-weak.pt

Resumable: rerun the same command after a kill and it continues from the
last checkpoint (models/checkpoints/<role>/last.pt); once training is done, a
rerun only re-exports when the .pt is missing (--force-export to redo it).
SIGTERM / Ctrl-C write a checkpoint before exiting.

--role main: preset "main", eps prediction, 10 % label dropout.
--role weak: the autoguidance guide: preset "weak" (~45 % of the parameters),
             trained for 1/5 of the main model's steps.
--smoke:     tiny model, 2,000 examples, 40 steps (use with --root /tmp/...).
"""

import argparse
import json
import os
import sys

import torch

import fmnist
import vp_schedule
from diffusion_loop import TrainConfig, train
from export import check_denoiser_card, save_scripted
from runtime import MODELS_DIR, StopFlag, setup
from unet import NULL_LABEL, NUM_CLASSES, PRESETS, build, count_params

MAIN_STEPS = 2800
ROLES = {
    "main": {"preset": "main", "name": "fashion-unet", "steps": MAIN_STEPS, "seed": 1},
    "weak": {"preset": "weak", "name": "fashion-unet-weak", "steps": MAIN_STEPS // 5, "seed": 2},
}


def denoiser_card(name: str, notes: str) -> dict:
    card = {
        "name": name,
        "version": "1",
        "prediction": "eps",
        "schedule": vp_schedule.card_schedule(),
        "sampleShape": [1, 28, 28],
        "conditioning": {"kind": "class", "numClasses": NUM_CLASSES, "nullLabel": NULL_LABEL},
        "timeEmbedding": "time_embed",
        "notes": notes,
    }
    check_denoiser_card(card)
    return card


def make_check(eager: torch.nn.Module):
    """Compare the reloaded TorchScript module with the eager EMA module."""

    def check(scripted) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(3, 1, 28, 28, generator=g)
        t = torch.tensor([0.0, 500.0, 999.0])
        y = torch.tensor([0, 7, NULL_LABEL])
        with torch.no_grad():
            a, b = eager.eval()(x, t, y), scripted(x, t, y)
        if a.shape != (3, 1, 28, 28) or not torch.allclose(a, b, atol=1e-5):
            raise RuntimeError(f"scripted output differs from eager: {(a - b).abs().max()}")

    return check


def export_denoiser(ema, out_path: str, name: str, notes: str) -> None:
    card = denoiser_card(name, notes)
    size = save_scripted(ema, out_path, card, check=make_check(ema))
    print(f"exported {out_path} ({size / 1024:.0f} KiB, {count_params(ema):,} parameters)")
    print(json.dumps(card, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=sorted(ROLES), default="main")
    ap.add_argument("--root", default=MODELS_DIR, help="where .pt, checkpoints/ and logs/ go (default models/)")
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--label-dropout", type=float, default=0.1)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--ckpt-every", type=float, default=300.0, help="seconds between checkpoints")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--limit", type=int, help="use only the first N training examples")
    ap.add_argument("--smoke", action="store_true", help="tiny model and data, a few steps")
    ap.add_argument("--force-export", action="store_true")
    args = ap.parse_args()

    role = ROLES[args.role]
    preset = args.preset or ("tiny" if args.smoke else role["preset"])
    steps = args.steps or (40 if args.smoke else role["steps"])
    limit = args.limit or (2000 if args.smoke else None)
    seed = role["seed"] if args.seed is None else args.seed
    warmup = min(args.warmup, max(1, steps // 10)) if args.smoke else args.warmup
    setup(seed)
    stop = StopFlag()

    out_path = os.path.join(args.root, role["name"] + ".pt")
    ckpt_path = os.path.join(args.root, "checkpoints", args.role, "last.pt")
    log_path = os.path.join(args.root, "logs", f"{args.role}-loss.csv")

    cfg = TrainConfig(
        steps=steps, batch=args.batch, lr=args.lr, warmup=warmup, ema_decay=args.ema_decay,
        label_dropout=args.label_dropout, seed=seed, ckpt_every_s=args.ckpt_every,
        log_every=args.log_every,
    )
    model = build(preset)
    print(f"{args.role}: preset {preset} {PRESETS[preset]}, {count_params(model):,} parameters, "
          f"{steps} steps at batch {args.batch}", flush=True)
    images, labels = fmnist.load_uint8("train")
    if limit:
        images, labels = images[:limit], labels[:limit]

    res = train(model, images, labels, cfg, ckpt_path, log_path, stop,
                extra={"preset": preset, "unet": PRESETS[preset], "role": args.role, "limit": limit})
    if not res["done"]:
        print(f"stopped at step {res['step']}; rerun the same command to resume")
        return stop.exit_code() or 1
    if os.path.exists(out_path) and not args.force_export:
        print(f"{out_path} exists and training is done; --force-export to rewrite it")
        return 0
    data = f"Fashion-MNIST train split ({images.shape[0]:,} images, Debian dataset-fashion-mnist)"
    notes = (
        f"{'Autoguidance guide (weak model)' if args.role == 'weak' else 'Main model'}: "
        f"class-conditional ADM-style UNet, preset '{preset}' {json.dumps(PRESETS[preset])}, "
        f"{count_params(res['ema']):,} parameters. Trained {res['step']} steps at batch {cfg.batch} "
        f"({res['step'] * cfg.batch / images.shape[0]:.1f} epochs, {res['train_seconds'] / 60:.0f} min on 1 CPU thread) "
        f"on {data}, eps-prediction MSE, {cfg.label_dropout:.0%} label dropout to the null label, "
        f"AdamW lr {cfg.lr:g} (warm-up {cfg.warmup}, cosine to {cfg.lr * cfg.lr_min_ratio:g}), "
        f"EMA {cfg.ema_decay}, seed {seed}. Final training loss (mean of last 200 steps): "
        f"{res['final_loss']:.4f}. Exported weights are the EMA."
    )
    export_denoiser(res["ema"], out_path, role["name"], notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
