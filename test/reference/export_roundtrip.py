#!/usr/bin/env python3
"""Exports the architectures of models/architectures with scripts/export and checks the round trip.

Usage: /usr/bin/python3 test/reference/export_roundtrip.py OUT_DIR SEED
Writes OUT_DIR/<name>.pt for: sd15-narrow scripted and traced, an SDXL-style
UNet behind diffusers' forward signature (keyword conditions,
added_cond_kwargs, return_dict) traced, dit-narrow scripted, vae-narrow
traced; then loads each file with torch.jit.load and compares it with the
eager module on fresh inputs from SEED at two batch sizes (the exporter's own
check ran too). Prints one JSON object: per file, the card, the relative
errors, the parameter count and the null records' sizes.
"""
import json
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass
from typing import Dict, Optional

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "architectures"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "export"))
import dit  # noqa: E402
import sd_unet  # noqa: E402
import vae_decoder  # noqa: E402
from torch_guidance_export import Condition, export_decoder, export_denoiser  # noqa: E402

SCHEDULE = {"kind": "discrete", "betas": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012, "timesteps": 1000}


@dataclass
class UNetOutput:
    sample: torch.Tensor


class DiffusersStyleXL(sd_unet.UNet2DConditionModelXL):
    """The SDXL-style UNet behind diffusers' call convention."""

    def forward(self, sample, timestep, encoder_hidden_states, added_cond_kwargs: Optional[Dict] = None,
                return_dict: bool = True):
        out = super().forward(sample, timestep, encoder_hidden_states, added_cond_kwargs["text_embeds"],
                              added_cond_kwargs["time_ids"])
        return UNetOutput(out) if return_dict else (out,)


def relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def main() -> None:
    warnings.filterwarnings("ignore")
    out_dir, seed = sys.argv[1], int(sys.argv[2])
    os.makedirs(out_dir, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    report = {}

    def check(name, eager_call, inputs_for):
        path = os.path.join(out_dir, name + ".pt")
        loaded = torch.jit.load(path)
        errors = []
        for batch in (1, 3):
            inputs = inputs_for(batch)
            with torch.no_grad():
                errors.append(relative_error(loaded(*inputs[0]), eager_call(*inputs[1])))
        with zipfile.ZipFile(path) as archive:
            card = json.loads(next(archive.read(n) for n in archive.namelist() if n.endswith("extra/model.json")))
            nulls = {n.split("extra/", 1)[1]: archive.getinfo(n).file_size for n in archive.namelist() if "/extra/nulls/" in n}
        report[name] = {"card": card, "errors": errors, "nulls": nulls}

    # SD 1.x-style, scripted and traced, with the empty-prompt embedding as the null.
    empty_prompt = torch.randn(77, 768, generator=generator)
    empty_prompt.contiguous().numpy().astype("<f4").tofile(os.path.join(out_dir, "sd15-null.bin"))
    mid = "mid_block.attentions.0.transformer_blocks.0.attn1"
    for mode in ("script", "trace"):
        unet = sd_unet.build("sd15-narrow")
        name = "sd15-narrow-" + {"script": "scripted", "trace": "traced"}[mode]
        export_denoiser(unet, os.path.join(out_dir, name + ".pt"), name=name, prediction="eps", schedule=SCHEDULE,
                        sample_shape=[4, 16, 16], mode=mode,
                        conditions=[Condition("encoder_hidden_states", [77, 768], null=empty_prompt)],
                        decoder={"file": "vae-narrow-traced.pt", "scalingFactor": vae_decoder.SCALING_FACTOR},
                        guidance_sites={"pag": [mid], "seg": [mid], "sag": [mid]}, time_embedding="time_embedding")

        def inputs(batch):
            x = [torch.randn(batch, 4, 16, 16, generator=generator), torch.rand(batch, generator=generator) * 999,
                 torch.randn(batch, 77, 768, generator=generator)]
            return x, x
        check(name, unet, inputs)

    # SDXL-style behind diffusers' signature: keyword conditions, added_cond_kwargs, return_dict.
    torch.manual_seed(1)
    xl = DiffusersStyleXL(**sd_unet.CONFIGS["sdxl-narrow"]).eval()
    export_denoiser(xl, os.path.join(out_dir, "sdxl-narrow-traced.pt"), name="sdxl-narrow", prediction="eps",
                    schedule=SCHEDULE, sample_shape=[4, 16, 16], mode="trace",
                    conditions=[Condition("encoder_hidden_states", [77, 64], null="zeros"),
                                Condition("text_embeds", [48], null="zeros", keyword="added_cond_kwargs.text_embeds"),
                                Condition("time_ids", [6], null="same", keyword="added_cond_kwargs.time_ids")])
    assert type(xl) is DiffusersStyleXL, "the exporter must give the module its class back"

    def xl_inputs(batch):
        x, t = torch.randn(batch, 4, 16, 16, generator=generator), torch.rand(batch, generator=generator) * 999
        ehs, pooled = torch.randn(batch, 77, 64, generator=generator), torch.randn(batch, 48, generator=generator)
        ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]]).expand(batch, 6)
        return [x, t, ehs, pooled, ids], [x, t, ehs, {"text_embeds": pooled, "time_ids": ids}, False]
    check("sdxl-narrow-traced", lambda *a: xl(*a)[0], xl_inputs)

    # DiT, class-conditional, scripted.
    model = dit.build("dit-narrow")
    export_denoiser(model, os.path.join(out_dir, "dit-narrow-scripted.pt"), name="dit-narrow", prediction="eps",
                    schedule=SCHEDULE, sample_shape=[4, 16, 16], mode="script",
                    class_conditioning={"numClasses": 10, "nullLabel": 10})

    def dit_inputs(batch):
        x = [torch.randn(batch, 4, 16, 16, generator=generator), torch.rand(batch, generator=generator) * 999,
             torch.randint(0, 11, (batch,), generator=generator)]
        return x, x
    check("dit-narrow-scripted", model, dit_inputs)

    # The VAE decoder, traced.
    decoder = vae_decoder.build("vae-narrow")
    export_decoder(decoder, os.path.join(out_dir, "vae-narrow-traced.pt"), latent_shape=[4, 16, 16], name="vae-narrow")

    def z_inputs(batch):
        z = [torch.randn(batch, 4, 16, 16, generator=generator)]
        return z, z
    check("vae-narrow-traced", decoder, z_inputs)

    for name, entry in report.items():
        entry["parameters"] = sum(p.numel() for p in torch.jit.load(os.path.join(out_dir, name + ".pt")).parameters())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
