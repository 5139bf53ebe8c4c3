"""Atomic checkpoints: write to a temporary file in the same folder, then
os.replace it over the target, so a run killed mid-write leaves the previous
checkpoint intact. A checkpoint holds whatever dict the caller gives (model,
EMA, optimizer, step, RNG states, config)."""

import os
import random
from typing import Any, Dict, Optional

import numpy as np
import torch


def save_atomic(obj: Any, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str) -> Optional[Dict]:
    """The checkpoint at path, or None when there is none."""
    if not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu")


def rng_state(generator: Optional[torch.Generator] = None) -> Dict:
    """Every RNG a training loop may draw from."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: Dict, generator: Optional[torch.Generator] = None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])
