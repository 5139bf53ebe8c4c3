#!/usr/bin/env python3
"""Independent eager reference for the module hooks (PyTorch, not libtorch).

Usage:
    /usr/bin/python3 test/reference/module_hooks.py SPEC.json OUT.bin

SPEC.json: {"model": "tiny-unet" | "attn-zoo", "x": file, "t": file, "label": file,
            "batch": B, "entries": [{"path": "time_embed", "start": s, "length": n,
                                     "action": "noise" | "skip" | "dropout", "scale": 0.5, "p": 0.3,
                                     "seeds": ["123", ...], "perSample": true}]}
x, t, label are raw little-endian files: float32 [B, *sampleShape], float32 [B], int64 [B].

Rebuilds the fixture as eager modules (models/fixtures/make_fixtures.py) with
the weights of its .pt file and perturbs module outputs with PyTorch's own
forward hooks (register_forward_hook), for the samples [start, start+length):
noise adds scale * n, n drawn here from torch.Generator seeded with the
entry's seeds (one generator for the slice's whole noise tensor, or one per
sample when perSample); skip returns the module's first tensor argument;
dropout zeroes the elements whose torch.rand draw (from the same generators)
is below p and scales the rest by 1 / (1 - p), as torch's dropout in
training mode defines it.
Writes the output (float32) to OUT.bin.
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "fixtures"))
import make_fixtures as fx  # noqa: E402

MODELS = {
    "tiny-unet": (fx.TinyUNet, [1, 28, 28]),
    "attn-zoo": (fx.AttnZoo, [1, 8, 16]),
}


def randn(seed: int, shape) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def rand(seed: int, shape) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float32)


def noise_for(entry, sample_shape, draw=randn) -> torch.Tensor:
    seeds = [int(s) for s in entry["seeds"]]
    if entry["perSample"]:
        return torch.stack([draw(s, sample_shape) for s in seeds])
    return draw(seeds[0], [entry["length"], *sample_shape])


def dropout(values: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    return values * keep.to(values.dtype) / (1.0 - p)


def hook_for(entry):
    s = slice(entry["start"], entry["start"] + entry["length"])

    def hook(module, args, output):
        output = output.clone()
        if entry["action"] == "noise":
            noise = noise_for(entry, list(output.shape[1:]))
            output[s] = output[s] + float(entry["scale"]) * noise
        elif entry["action"] == "dropout":
            p = float(entry["p"])
            keep = noise_for(entry, list(output.shape[1:]), draw=rand) >= p
            output[s] = dropout(output[s], keep, p)
        else:
            first = next(a for a in args if isinstance(a, torch.Tensor))
            assert first.shape == output.shape, (first.shape, output.shape)
            output[s] = first[s]
        return output

    return hook


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    make, sample_shape = MODELS[spec["model"]]
    b = spec["batch"]
    x = torch.from_numpy(np.fromfile(spec["x"], dtype="<f4").reshape(b, *sample_shape).copy())
    t = torch.from_numpy(np.fromfile(spec["t"], dtype="<f4").copy())
    label = torch.from_numpy(np.fromfile(spec["label"], dtype="<i8").copy())

    model = make()
    scripted = torch.jit.load(os.path.join(ROOT, "models", "fixtures", spec["model"] + ".pt"), map_location="cpu")
    model.load_state_dict(scripted.state_dict())
    model.eval()
    modules = dict(model.named_modules())
    for entry in spec["entries"]:
        modules[entry["path"]].register_forward_hook(hook_for(entry))
    with torch.no_grad():
        out = model(x, t, label)
    out.contiguous().numpy().astype("<f4").tofile(out_path)
    open(out_path + ".captures", "wb").close()


if __name__ == "__main__":
    main()
