#!/usr/bin/env python3
"""Independent list of each model's attention sites, for test/inspect-sites.test.ts.

Usage: attention_sites.py MODEL.pt [...]  ->  one JSON object {path: [...sites]}

Paths and self/cross come from the scripted module's own hierarchy
(named_modules() and each submodule's original class name), not from the
graph the package rewrites. For models whose eager class we know (the trained
UNets from models/train/unet.py, the tiny UNet fixtures from
models/fixtures/make_fixtures.py), the query grid comes from an eager forward
with the file's weights and a forward pre-hook on every attention module
(its input is [N, C, H, W]); otherwise the grid is null (not checked here).
"""
import json
import os
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
sys.path.insert(0, os.path.join(ROOT, "models", "fixtures"))

ATTENTION = {"AttentionBlock": True, "BmmAttention": True, "EinsumAttention": True, "CrossAttention": False, "SelfAttention": True}


def eager_for(scripted, card):
    """The eager twin of a scripted model with its weights, or None."""
    name = card.get("name", "") if card else ""
    keys = {k for k, _ in scripted.named_modules()}
    try:
        if name.startswith("fashion-unet"):
            import unet

            width = scripted.state_dict()["input_conv.weight"].shape[0]
            preset = {24: "main", 16: "weak", 8: "tiny"}[width]
            model = unet.build(preset)
        elif "unet.mid.attn" in keys:
            import make_fixtures as fx

            model = fx.TinyUncond()
        elif name == "tiny-tensor-cond":
            import make_fixtures as fx

            model = fx.TinyTensorCond()
        elif name.startswith("tiny-unet") or name == "tiny-edm":
            import make_fixtures as fx

            model = fx.TinyUNet()
        else:
            return None
        model.load_state_dict(scripted.state_dict())
        return model.eval()
    except Exception as error:  # noqa: BLE001 - a reference that cannot be built checks paths only
        print(f"eager twin of {name}: {error}", file=sys.stderr)
        return None


def example_inputs(card, signature_len):
    shape = [1] + card["sampleShape"]
    inputs = [torch.randn(*shape), torch.tensor([500.0])]
    cond = card.get("conditioning", {})
    if cond.get("kind") == "class":
        inputs.append(torch.tensor([cond["nullLabel"]]))
    elif cond.get("kind") == "tensor":
        inputs.append(torch.zeros(1, *cond["shape"]))
    return inputs[:signature_len]


def sites_of(path):
    files = {"model.json": ""}
    scripted = torch.jit.load(path, map_location="cpu", _extra_files=files)
    try:
        card = json.loads(files["model.json"]) if files["model.json"] else None
    except json.JSONDecodeError:
        card = None
    sites = [
        {"path": name, "selfAttention": ATTENTION[m.original_name], "grid": None}
        for name, m in scripted.named_modules()
        if getattr(m, "original_name", None) in ATTENTION
    ]
    eager = eager_for(scripted, card) if card and "sampleShape" in card else None
    if eager is not None:
        grids = {}
        modules = dict(eager.named_modules())
        for site in sites:
            def hook(_module, args, name=site["path"]):
                grids[name] = list(args[0].shape[-2:])
            modules[site["path"]].register_forward_pre_hook(hook)
        n_args = eager.forward.__code__.co_argcount - 1
        with torch.no_grad():
            eager(*example_inputs(card, n_args))
        for site in sites:
            site["grid"] = grids[site["path"]]
    return sites


if __name__ == "__main__":
    print(json.dumps({p: sites_of(p) for p in sys.argv[1:]}))
