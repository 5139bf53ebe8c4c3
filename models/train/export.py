"""Export a trained module as TorchScript with its model card.

The card travels inside the .pt as the extra file `model.json`, which the
package reads with the model (torch.jit.load(..., _extra_files=...)).
"""

import copy
import json
import os
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

DENOISER_FIELDS = [
    "name", "version", "prediction", "schedule", "sampleShape",
    "conditioning", "timeEmbedding", "notes",
]


def check_denoiser_card(card: Dict) -> None:
    """The card contract for denoisers (see models/README.md)."""
    missing = [k for k in DENOISER_FIELDS if k not in card]
    extra = [k for k in card if k not in DENOISER_FIELDS]
    if missing or extra:
        raise ValueError(f"card fields: missing {missing}, unexpected {extra}")
    if card["prediction"] not in ("eps", "v", "x0", "edm"):
        raise ValueError(f"prediction: {card['prediction']!r}")
    kind = card["schedule"].get("kind")
    if kind == "discrete":
        need = {"kind", "betas", "betaStart", "betaEnd", "timesteps"}
    elif kind == "edm":
        need = {"kind", "sigmaMin", "sigmaMax", "sigmaData"}
    else:
        raise ValueError(f"schedule.kind: {kind!r}")
    if set(card["schedule"]) != need:
        raise ValueError(f"schedule fields {sorted(card['schedule'])}, expected {sorted(need)}")
    cond = card["conditioning"].get("kind")
    if cond not in ("none", "class", "tensor"):
        raise ValueError(f"conditioning.kind: {cond!r}")


def save_scripted(module: nn.Module, path: str, card: Dict,
                  check: Optional[Callable[[torch.jit.ScriptModule], None]] = None) -> int:
    """Script a copy of module (eval mode), save it atomically with the card.

    `check`, when given, is run on the reloaded file (e.g. compare outputs with
    the eager module). Returns the file size in bytes.
    """
    m = copy.deepcopy(module).cpu().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    scripted = torch.jit.script(m)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.jit.save(scripted, tmp, _extra_files={"model.json": json.dumps(card, indent=2)})
    try:
        if check is not None:
            check(torch.jit.load(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return os.path.getsize(path)


def load_scripted(path: str) -> Tuple[torch.jit.ScriptModule, Dict]:
    """(module, card) from an exported .pt; card is {} when it has none."""
    extra = {"model.json": ""}
    module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    module.eval()
    text = extra["model.json"]
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return module, (json.loads(text) if text else {})
