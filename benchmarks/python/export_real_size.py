#!/usr/bin/env python3
"""Exports the full-size architectures for benchmarks/real-size.ts (random weights).

Usage: /usr/bin/python3 benchmarks/python/export_real_size.py OUT_DIR
Writes OUT_DIR/sd15.pt (the SD 1.x-style UNet, 859.5M parameters, 64x64
latents, [77, 768] text context, scripted), OUT_DIR/sd15-guide.pt (the narrow
UNet with the same card contract, the autoguidance guide) and
OUT_DIR/sd-vae.pt (SD's VAE decoder, 64x64 latents to 512x512 images, traced),
each checked against its eager module by scripts/export/torch_guidance_export.py.
Files already there are kept.
"""
import os
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "architectures"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "export"))
import sd_unet  # noqa: E402
import vae_decoder  # noqa: E402
from torch_guidance_export import Condition, export_decoder, export_denoiser  # noqa: E402

SCHEDULE = {"kind": "discrete", "betas": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012, "timesteps": 1000}
MID = "mid_block.attentions.0.transformer_blocks.0.attn1"
LATENT = [4, 64, 64]


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    empty_prompt = torch.randn(77, 768, generator=torch.Generator().manual_seed(0))
    for name, config, mode in (("sd15", "sd15", "script"), ("sd15-guide", "sd15-narrow", "script")):
        path = os.path.join(out, name + ".pt")
        if os.path.exists(path):
            continue
        export_denoiser(sd_unet.build(config), path, name=name, prediction="eps", schedule=SCHEDULE, sample_shape=LATENT,
                        mode=mode, conditions=[Condition("encoder_hidden_states", [77, 768], null=empty_prompt)],
                        decoder={"file": "sd-vae.pt", "scalingFactor": vae_decoder.SCALING_FACTOR},
                        guidance_sites={"pag": [MID], "seg": [MID], "sag": [MID]}, time_embedding="time_embedding",
                        check_batches=(1,), example_batch=1)
        print(f"{path}\t{os.path.getsize(path)} bytes", flush=True)
    path = os.path.join(out, "sd-vae.pt")
    if not os.path.exists(path):
        export_decoder(vae_decoder.build("sd-vae"), path, latent_shape=LATENT, name="sd-vae", mode="trace",
                       check_batches=(1,))
        print(f"{path}\t{os.path.getsize(path)} bytes", flush=True)


if __name__ == "__main__":
    main()
