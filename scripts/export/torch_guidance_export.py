#!/usr/bin/env python3
"""Export a PyTorch diffusion model to TorchScript with a torch-guidance model card.

Run it where the model lives (any Python with torch >= 1.13; nothing else is
imported). As a module:

    from torch_guidance_export import export_denoiser, export_decoder, Condition

    export_denoiser(
        unet, "unet.pt",
        name="my-sd15", prediction="eps",
        schedule={"kind": "discrete", "betas": "scaled_linear", "betaStart": 0.00085, "betaEnd": 0.012,
                  "timesteps": 1000},
        sample_shape=[4, 64, 64],
        conditions=[Condition("encoder_hidden_states", [77, 768], null=empty_prompt_embedding)],
        decoder={"file": "vae-decoder.pt", "scalingFactor": 0.18215},
        mode="trace",
    )
    export_decoder(vae_decoder_module, "vae-decoder.pt", latent_shape=[4, 64, 64])

or from the command line, for a module built by a function of yours:

    python3 torch_guidance_export.py --build my_package.my_module:make_unet --out unet.pt \\
        --sample-shape 4,64,64 --condition encoder_hidden_states:77,768 --mode trace ...

What it does:
  * wraps a forward with diffusers' signature (keyword conditions, SDXL's
    `added_cond_kwargs`, `return_dict` outputs, tuples) into the positional
    `forward(sample, timestep, *conditions) -> Tensor` the package calls,
    without renaming any module (attention sites keep the paths
    `named_modules()` gives);
  * scripts it (`mode="script"`: the module must be scriptable) or traces it
    under no_grad (`mode="trace"`);
  * checks the export against the eager module on fresh random inputs, at
    the traced shape and at a second batch size (a trace can bake in sizes),
    and refuses to write a file that disagrees (1e-5 relative by default);
  * embeds the model card (model.json) and each condition's null value (the
    embedding of the empty prompt, say) as float32 records in the archive.
"""
import argparse
import importlib
import inspect
import io
import json
import math
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

CARD_FILE = "model.json"
NULLS_DIR = "nulls"


class Condition:
    """One condition input of the forward, after (sample, timestep).

    shape: one sample's shape (no batch axis).
    null: what the unconditional branch gets: a tensor of that shape (the
      empty-prompt embedding), "zeros", or "same" (it gets the conditional
      value: SDXL's size/crop ids).
    keyword: how the wrapped forward takes it: a keyword argument (default the
      name), or "added_cond_kwargs.<key>" for SDXL's dict of extra conditions.
    """

    def __init__(self, name: str, shape: Sequence[int], null: Union[torch.Tensor, str] = "zeros",
                 keyword: Optional[str] = None, dtype: torch.dtype = torch.float32):
        self.name = name
        self.shape = [int(s) for s in shape]
        self.null = null
        self.keyword = keyword if keyword is not None else name
        self.dtype = dtype
        if isinstance(null, torch.Tensor) and list(null.shape) not in (self.shape, [1] + self.shape):
            raise ValueError(f"condition {name}: the null tensor has shape {list(null.shape)}, expected {self.shape}")
        if isinstance(null, str) and null not in ("zeros", "same"):
            raise ValueError(f"condition {name}: null must be a tensor, 'zeros' or 'same', got {null!r}")


def _first_tensor(output: Any) -> torch.Tensor:
    """The prediction out of whatever the forward returns: a tensor, a tuple or list, a dict, an output object."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return _first_tensor(output[0])
    if isinstance(output, dict) and output:
        return _first_tensor(output.get("sample", next(iter(output.values()))))
    if hasattr(output, "sample"):
        return output.sample
    raise TypeError(f"cannot find the prediction in a forward output of type {type(output).__name__}")


def positional(module: nn.Module, conditions: Sequence[Condition]) -> Callable[[], None]:
    """Swaps the module's class for a subclass whose forward is
    forward(sample, timestep, *conditions) -> Tensor, and returns the function
    that swaps it back. Nothing is renamed: the instance keeps its children,
    so sites keep their paths. (For tracing: a script compiles the class's
    own forward.)"""
    original = type(module)
    names = [c.keyword for c in conditions]
    takes_return_dict = "return_dict" in inspect.signature(original.forward).parameters

    def forward(self, sample, timestep, *values):
        kwargs: Dict[str, Any] = {}
        added: Dict[str, torch.Tensor] = {}
        for key, value in zip(names, values):
            if key.startswith("added_cond_kwargs."):
                added[key.split(".", 1)[1]] = value
            else:
                kwargs[key] = value
        if added:
            kwargs["added_cond_kwargs"] = added
        if takes_return_dict:
            kwargs["return_dict"] = False
        return _first_tensor(original.forward(self, sample, timestep, **kwargs))

    module.__class__ = type(original.__name__, (original,), {"forward": forward})

    def restore() -> None:
        module.__class__ = original
    return restore


def _random_inputs(sample_shape: Sequence[int], conditions: Sequence[Condition], batch: int,
                   generator: torch.Generator) -> List[torch.Tensor]:
    inputs = [torch.randn(batch, *sample_shape, generator=generator),
              torch.rand(batch, generator=generator) * 999]
    for c in conditions:
        if c.dtype.is_floating_point:
            inputs.append(torch.randn(batch, *c.shape, generator=generator).to(c.dtype))
        else:
            inputs.append(torch.randint(0, 8, (batch, *c.shape), generator=generator).to(c.dtype))
    return inputs


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.abs().max().item() or 1.0
    return (actual - expected).abs().max().item() / scale


def _check(eager: Callable, exported: torch.jit.ScriptModule, inputs_for: Callable[[int], List[torch.Tensor]],
           batches: Sequence[int], tolerance: float) -> List[Dict[str, Any]]:
    results = []
    for batch in batches:
        inputs = inputs_for(batch)
        with torch.no_grad():
            expected = _first_tensor(eager(*inputs))
            actual = _first_tensor(exported(*inputs))
        if actual.shape != expected.shape:
            raise RuntimeError(f"export check: at batch {batch} the export returns {list(actual.shape)}, the eager "
                               f"module {list(expected.shape)}")
        error = _relative_error(actual.float(), expected.float())
        results.append({"batch": batch, "relativeError": error})
        if not error <= tolerance:
            raise RuntimeError(f"export check: at batch {batch} the export differs from the eager module by {error:.3g} "
                               f"(relative; the limit is {tolerance:g}). A trace may have baked in a size or taken one "
                               f"branch of data-dependent control flow: try mode='script', or trace at the batch you use.")
    return results


def _convert(module: nn.Module, example: List[torch.Tensor], mode: str) -> torch.jit.ScriptModule:
    module.eval()
    if mode == "script":
        return torch.jit.script(module)
    if mode == "trace":
        with torch.no_grad():
            return torch.jit.trace(module, tuple(example), check_trace=False)
    raise ValueError(f"mode must be 'script' or 'trace', got {mode!r}")


def _save(exported: torch.jit.ScriptModule, path: str, card: Dict[str, Any], records: Dict[str, bytes]) -> None:
    files = {CARD_FILE: json.dumps(card, indent=2)}
    files.update(records)
    tmp = path + ".partial"
    torch.jit.save(exported, tmp, _extra_files=files)
    os.replace(tmp, path)


def export_denoiser(module: nn.Module, path: str, *, name: str, prediction: str, schedule: Dict[str, Any],
                    sample_shape: Sequence[int], conditions: Sequence[Condition] = (),
                    class_conditioning: Optional[Dict[str, int]] = None, mode: str = "trace",
                    keyword_forward: Optional[bool] = None, version: str = "1", decoder: Optional[Dict[str, Any]] = None,
                    guidance_sites: Optional[Dict[str, List[str]]] = None, time_embedding: Optional[str] = None,
                    notes: Optional[str] = None, example_batch: int = 2, check_batches: Sequence[int] = (2, 3),
                    tolerance: float = 1e-5, seed: int = 0) -> Dict[str, Any]:
    """Exports a denoiser `forward(sample, timestep, *conditions)` with a model card; returns the card.

    conditions: the named condition inputs (text embeddings, pooled
      embeddings, size ids), in forward order after (sample, timestep).
    class_conditioning: instead, a class label input: {"numClasses": n, "nullLabel": k}.
    keyword_forward: whether the module's forward takes the conditions as
      keywords (diffusers); default: when any condition is named.
    """
    conditions = list(conditions)
    if class_conditioning is not None and conditions:
        raise ValueError("give conditions or class_conditioning, not both")
    if keyword_forward is None:
        keyword_forward = bool(conditions) and mode == "trace"
    restore = positional(module, conditions) if keyword_forward else (lambda: None)
    try:
        return _export_denoiser(module, path, name, prediction, schedule, sample_shape, conditions,
                                class_conditioning, mode, version, decoder, guidance_sites, time_embedding, notes,
                                example_batch, check_batches, tolerance, seed)
    finally:
        restore()


def _export_denoiser(module, path, name, prediction, schedule, sample_shape, conditions, class_conditioning, mode,
                     version, decoder, guidance_sites, time_embedding, notes, example_batch, check_batches, tolerance,
                     seed) -> Dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)
    label_conditioning = class_conditioning is not None

    def inputs_for(batch: int) -> List[torch.Tensor]:
        inputs = _random_inputs(sample_shape, conditions, batch, generator)
        if label_conditioning:
            inputs.append(torch.randint(0, class_conditioning["numClasses"] + 1, (batch,), generator=generator))
        return inputs

    exported = _convert(module, inputs_for(example_batch), mode)
    checks = _check(module, exported, inputs_for, check_batches, tolerance)

    card: Dict[str, Any] = {"cardVersion": 2, "name": name, "version": version, "prediction": prediction,
                            "schedule": schedule, "sampleShape": [int(s) for s in sample_shape]}
    records: Dict[str, bytes] = {}
    if label_conditioning:
        card["conditioning"] = {"kind": "class", **class_conditioning}
    elif conditions:
        named = {}
        for c in conditions:
            entry: Dict[str, Any] = {"shape": c.shape, "dtype": str(c.dtype).replace("torch.", "")}
            if isinstance(c.null, torch.Tensor):
                record = f"{NULLS_DIR}/{c.name}.f32"
                records[record] = c.null.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes()
                entry["null"] = {"file": record}
            else:
                entry["null"] = c.null
            named[c.name] = entry
        card["conditioning"] = {"kind": "named", "inputs": named}
    else:
        card["conditioning"] = {"kind": "none"}
    if decoder is not None:
        card["decoder"] = decoder
    if guidance_sites is not None:
        card["guidanceSites"] = guidance_sites
    if time_embedding is not None:
        card["timeEmbedding"] = time_embedding
    card["notes"] = notes if notes is not None else f"Exported by torch_guidance_export ({mode}); check: " + \
        ", ".join(f"batch {c['batch']} rel. error {c['relativeError']:.2g}" for c in checks)
    _save(exported, path, card, records)
    return card


def export_decoder(module: nn.Module, path: str, *, latent_shape: Sequence[int], name: str = "decoder",
                   version: str = "1", mode: str = "trace", check_batches: Sequence[int] = (1, 2),
                   tolerance: float = 1e-5, seed: int = 0) -> Dict[str, Any]:
    """Exports a latent decoder `forward(z) -> image` (z already divided by the scaling factor)."""
    generator = torch.Generator().manual_seed(seed)

    def inputs_for(batch: int) -> List[torch.Tensor]:
        return [torch.randn(batch, *latent_shape, generator=generator)]

    example = inputs_for(1)
    with torch.no_grad():
        output_shape = list(_first_tensor(module(*example)).shape[1:])
    exported = _convert(module, example, mode)
    checks = _check(module, exported, inputs_for, check_batches, tolerance)
    card = {"cardVersion": 2, "kind": "decoder", "name": name, "version": version,
            "latentShape": [int(s) for s in latent_shape], "outputShape": [int(s) for s in output_shape],
            "notes": f"Exported by torch_guidance_export ({mode}); check: " +
                     ", ".join(f"batch {c['batch']} rel. error {c['relativeError']:.2g}" for c in checks)}
    _save(exported, path, card, {})
    return card


def _shape(text: str) -> List[int]:
    return [int(s) for s in text.split(",") if s]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, help="module.path:function that returns the nn.Module (eval() is applied)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--kind", choices=["denoiser", "decoder"], default="denoiser")
    parser.add_argument("--mode", choices=["trace", "script"], default="trace")
    parser.add_argument("--name", default=None)
    parser.add_argument("--sample-shape", type=_shape, help="denoiser: one sample's shape, e.g. 4,64,64")
    parser.add_argument("--latent-shape", type=_shape, help="decoder: one latent's shape, e.g. 4,64,64")
    parser.add_argument("--prediction", choices=["eps", "v", "x0", "edm"], default="eps")
    parser.add_argument("--schedule", default="discrete:scaled_linear:0.00085:0.012:1000",
                        help="discrete:BETAS:START:END:STEPS or edm:SIGMA_MIN:SIGMA_MAX:SIGMA_DATA")
    parser.add_argument("--condition", action="append", default=[],
                        help="NAME:SHAPE[:zeros|same|FILE.pt] (a tensor saved with torch.save), in forward order")
    parser.add_argument("--classes", default=None, help="NUM_CLASSES:NULL_LABEL for a class-label input instead")
    parser.add_argument("--decoder", default=None, help="FILE:SCALING_FACTOR of the decoder beside the export")
    args = parser.parse_args(argv)

    module_name, function = args.build.split(":")
    module = getattr(importlib.import_module(module_name), function)().eval()
    name = args.name or os.path.splitext(os.path.basename(args.out))[0]
    if args.kind == "decoder":
        card = export_decoder(module, args.out, latent_shape=args.latent_shape, name=name, mode=args.mode)
    else:
        parts = args.schedule.split(":")
        schedule = ({"kind": "discrete", "betas": parts[1], "betaStart": float(parts[2]), "betaEnd": float(parts[3]),
                     "timesteps": int(parts[4])} if parts[0] == "discrete" else
                    {"kind": "edm", "sigmaMin": float(parts[1]), "sigmaMax": float(parts[2]), "sigmaData": float(parts[3])})
        conditions = []
        for spec in args.condition:
            pieces = spec.split(":")
            null: Union[str, torch.Tensor] = pieces[2] if len(pieces) > 2 else "zeros"
            if null not in ("zeros", "same"):
                null = torch.load(null)
            conditions.append(Condition(pieces[0], _shape(pieces[1]), null))
        classes = None
        if args.classes:
            count, null_label = args.classes.split(":")
            classes = {"numClasses": int(count), "nullLabel": int(null_label)}
        decoder = None
        if args.decoder:
            file, factor = args.decoder.rsplit(":", 1)
            decoder = {"file": file, "scalingFactor": float(factor)}
        card = export_denoiser(module, args.out, name=name, prediction=args.prediction, schedule=schedule,
                               sample_shape=args.sample_shape, conditions=conditions, class_conditioning=classes,
                               mode=args.mode, decoder=decoder)
    print(json.dumps(card))


if __name__ == "__main__":
    main()
