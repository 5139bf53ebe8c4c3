"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (IDX, gzip).

    apt-get install -y dataset-fashion-mnist

load(split) -> (images [N,1,28,28] float32 in [-1, 1], labels [N] int64)
"""

import gzip
import os
import struct
from typing import Optional, Tuple

import numpy as np
import torch

DATA_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(shape)


def load_uint8(split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
    """Raw images [N,28,28] uint8 and labels [N] int64."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    img_name, lab_name = _FILES[split]
    img_path = os.path.join(DATA_DIR, img_name)
    if not os.path.exists(img_path):
        raise FileNotFoundError(
            f"{img_path} not found: apt-get install -y dataset-fashion-mnist "
            "(or set FASHION_MNIST_DIR)"
        )
    images = torch.from_numpy(_read_idx(img_path).copy())
    labels = torch.from_numpy(_read_idx(os.path.join(DATA_DIR, lab_name)).astype(np.int64))
    assert images.shape[0] == labels.shape[0]
    return images, labels


def to_model_range(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [-1, 1]."""
    return (images_u8.to(torch.float32) / 127.5 - 1.0).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [N,1,28,28] in [-1, 1] -> uint8 [N,28,28] (clamped)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).squeeze(1)


def load(split: str = "train", limit: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images [N,1,28,28] float32 in [-1, 1] and labels [N] int64.

    limit keeps the first `limit` examples (smoke tests).
    """
    images, labels = load_uint8(split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return to_model_range(images), labels
