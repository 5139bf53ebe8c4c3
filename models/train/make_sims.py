#!/usr/bin/env python3
"""Make the SIMS negative: the main model fine-tuned on its own samples.

    /usr/bin/python3 models/train/make_sims.py     # models/fashion-unet-sims.pt

Stage 1 samples a class-balanced synthetic set from models/fashion-unet.pt
(DDIM, --ddim-steps, CFG --cfg), chunk by chunk; each chunk has its own seed
and the set is checkpointed after every chunk
(models/checkpoints/sims/synthetic.pt, uint8 like the real data), so a killed
run resumes with the next chunk and yields the same set.
Stage 2 fine-tunes a copy of the main model (weights read from the exported
.pt) on that set with the same loss, label dropout and EMA as the main model
(models/checkpoints/sims/last.pt, resumable), and exports the EMA as
models/fashion-unet-sims.pt. Use it as D_base + w (D_base - D_sims).
"""

import argparse
import hashlib
import json
import os
import sys
import time

import torch

import checkpoint
import ddim
import fmnist
from diffusion_loop import TrainConfig, train
from export import load_scripted
from runtime import MODELS_DIR, StopFlag, setup
from train_diffusion import MAIN_STEPS, export_denoiser
from unet import PRESETS, build, count_params

NAME = "fashion-unet-sims"


def synthesize(main_path: str, path: str, per_class: int, steps: int, cfg: float, chunk: int,
               seed: int, stop: StopFlag):
    """Stage 1. Returns (images uint8 [M,28,28], labels [M]) or None if stopped."""
    with open(main_path, "rb") as f:
        main_sha = hashlib.sha256(f.read()).hexdigest()
    want = {"mainSha256": main_sha, "perClass": per_class, "ddimSteps": steps,
            "cfg": cfg, "chunk": chunk, "seed": seed}
    state = checkpoint.load(path)
    if state is not None and state["config"] != want:
        raise SystemExit(f"{path} was made with {state['config']}, not {want} (a different main model "
                         f"or settings): delete {os.path.dirname(path)} to start over")
    total = 10 * per_class
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    all_labels = torch.arange(10).repeat_interleave(per_class)[order]
    if state is None:
        state = {"config": want, "images": torch.empty(0, 28, 28, dtype=torch.uint8),
                 "labels": torch.empty(0, dtype=torch.int64), "seconds": 0.0}
    module, card = load_scripted(main_path)
    model = ddim.Denoiser(module, card)
    while state["images"].shape[0] < total:
        if stop.requested:
            return None
        i0 = state["images"].shape[0]
        i = i0 // chunk
        labels = all_labels[i0 : i0 + chunk]
        t0 = time.time()
        gen = torch.Generator().manual_seed(seed * 100_003 + i)
        x = ddim.sample(model, labels, steps=steps, cfg=cfg, generator=gen)
        state["images"] = torch.cat([state["images"], fmnist.to_uint8(x)])
        state["labels"] = torch.cat([state["labels"], labels])
        state["seconds"] += time.time() - t0
        checkpoint.save_atomic(state, path)
        print(f"synthetic {state['images'].shape[0]}/{total} ({time.time() - t0:.1f} s for {labels.shape[0]}, "
              f"{state['seconds'] / 60:.1f} min)", flush=True)
    return state["images"], state["labels"], state["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=MODELS_DIR)
    ap.add_argument("--main", help="exported main model (default <root>/fashion-unet.pt)")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="architecture of the main model (default main)")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--ddim-steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--steps", type=int, help=f"fine-tuning steps (default {MAIN_STEPS // 4})")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--label-dropout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--ckpt-every", type=float, default=300.0)
    ap.add_argument("--smoke", action="store_true", help="tiny: 4 per class, 5 DDIM steps, 20 steps")
    ap.add_argument("--force-export", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.preset = args.preset or "tiny"
        args.per_class, args.ddim_steps, args.chunk, args.warmup = 8, 5, 20, 2
        args.steps = args.steps or 20
        args.batch = min(args.batch, 32)
    preset = args.preset or "main"
    steps = args.steps or MAIN_STEPS // 4
    main_path = args.main or os.path.join(args.root, "fashion-unet.pt")
    setup(args.seed)
    stop = StopFlag()
    ckpt_dir = os.path.join(args.root, "checkpoints", "sims")
    out_path = os.path.join(args.root, NAME + ".pt")

    syn = synthesize(main_path, os.path.join(ckpt_dir, "synthetic.pt"), args.per_class, args.ddim_steps,
                     args.cfg, args.chunk, args.seed, stop)
    if syn is None:
        print("stopped while sampling; rerun the same command to resume")
        return stop.exit_code()
    images, labels, syn_seconds = syn

    model = build(preset)
    module, _ = load_scripted(main_path)
    model.load_state_dict(module.state_dict())  # strict: the preset must match the main model
    cfg = TrainConfig(steps=steps, batch=args.batch, lr=args.lr, warmup=args.warmup,
                      label_dropout=args.label_dropout, seed=args.seed, ckpt_every_s=args.ckpt_every)
    print(f"sims: fine-tuning {count_params(model):,} parameters for {steps} steps on "
          f"{images.shape[0]} synthetic images", flush=True)
    res = train(model, images, labels, cfg, os.path.join(ckpt_dir, "last.pt"),
                os.path.join(args.root, "logs", "sims-loss.csv"), stop,
                extra={"preset": preset, "unet": PRESETS[preset], "role": "sims"})
    if not res["done"]:
        print(f"stopped at step {res['step']}; rerun the same command to resume")
        return stop.exit_code() or 1
    if os.path.exists(out_path) and not args.force_export:
        print(f"{out_path} exists and fine-tuning is done; --force-export to rewrite it")
        return 0
    notes = (
        f"SIMS negative: {os.path.basename(main_path)} fine-tuned on {images.shape[0]:,} of its own samples "
        f"({args.per_class} per class, DDIM {args.ddim_steps} steps, CFG {args.cfg:g}, "
        f"{syn_seconds / 60:.0f} min to sample) for {res['step']} steps at batch {cfg.batch} "
        f"({res['train_seconds'] / 60:.0f} min on 1 CPU thread), eps-prediction MSE, "
        f"{cfg.label_dropout:.0%} label dropout, AdamW lr {cfg.lr:g} (warm-up {cfg.warmup}, cosine), "
        f"EMA {cfg.ema_decay}, seed {args.seed}. Architecture preset '{preset}' "
        f"{json.dumps(PRESETS[preset])}. Final training loss (mean of last 200 steps): "
        f"{res['final_loss']:.4f}. Use as the negative: D_base + w (D_base - D_sims)."
    )
    export_denoiser(res["ema"], out_path, NAME, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
