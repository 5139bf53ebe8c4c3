#!/usr/bin/env python3
"""Hostile inputs for the bad-input suites, written into one directory.

    python3 test/reference/hostile_models.py OUT_DIR MARKER_DIR [NAME ...]

OUT_DIR receives the files below (or only the NAMEs given); MARKER_DIR is where the side-effect models
would write if their code ran (the tests assert it stays empty).

Model files (TorchScript, made by this machine's torch):
  hang.pt             forward(x, n): n additions, one at a time (n = 10**15: never returns)
  hang-denoiser.pt    the tiny UNet's card on a forward that never returns
  nan-denoiser.pt     the tiny UNet's card on a forward that returns NaN
  huge-denoiser.pt    the tiny UNet's card on large finite predictions (CFG at scale 999 overflows)
  save.pt             forward calls torch.save (writes MARKER_DIR/saved.pt)
  save-unet.pt        the tiny UNet with a card (probed at load) whose forward calls torch.save
  save-in-branch.pt   torch.save in a branch no input takes
  save-in-helper.pt   a submodule's helper method calls torch.save
  print.pt            forward prints
  from-file.pt        forward maps a file (torch.from_file)
  fork-print.pt       a forked function prints
  manual-seed.pt      forward reseeds the global generator
  setstate.pt         a module with __setstate__ (runs while loading), which would save
  warn.pt             forward warns (allowed: torch's own modules do)
  truncated-weight.pt the tiny UNet with one weight record cut short
  card-bomb.pt        a 1.3 MB archive whose model.json inflates to 1 GiB
  card-huge-shape.pt  sampleShape [1, 50000, 50000]
  card-big-shape.pt   sampleShape [1, 4096, 4096] (valid; too large to probe under a 1 GiB limit)
  card-timesteps.pt   timesteps 1e12
  version-garbled.pt  the archive's version record is not a number

Data files:
  bomb-small-header.idx.gz  IDX header of 10x28x28, then 1 GiB of zeros, gzipped (~1 MB)
  bomb-huge-header.idx.gz   IDX header of 100000000x28x28 images (78 GB), gzipped
  sparse.npz                arr_0 declared [1, 50000, 50000] uint8, a sparse 2.5 GB file
  sparse-small.npz          arr_0 declared [40000, 28, 28] uint8 with a sparse body
"""

import gzip
import json
import os
import struct
import sys
import warnings
import zipfile
from typing import Tuple

import torch
import torch.nn as nn
from torch import Tensor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "fixtures"))
import make_fixtures as fx  # noqa: E402

OUT, MARKERS = sys.argv[1], sys.argv[2]
SAVED = os.path.join(MARKERS, "saved.pt")
MAPPED = os.path.join(MARKERS, "mapped.bin")


def save(module, name, card=None):
    scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
    extra = {} if card is None else {"model.json": card if isinstance(card, str) else json.dumps(card)}
    torch.jit.save(scripted, os.path.join(OUT, name), _extra_files=extra)


class Hang(nn.Module):
    def forward(self, x: Tensor, n: int) -> Tensor:
        for _ in range(n):
            x = x + 1.0
        return x


class HangDenoiser(nn.Module):
    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        for _ in range(1000000000000000):
            x = x + 1.0
        return x


class NanDenoiser(nn.Module):
    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        return x * float("nan")


class HugeDenoiser(nn.Module):
    """Large finite predictions that differ per label: D stays finite, CFG's term at scale 999 overflows."""

    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        return torch.ones_like(x) * (label.to(torch.float32) + 1.0)[:, None, None, None] * 1e35


class Save(nn.Module):
    def __init__(self):
        super().__init__()
        self.path = SAVED

    def forward(self, x: Tensor) -> Tensor:
        torch.save(x, self.path)
        return x


class SaveUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.unet = fx.TinyUNet()
        self.path = SAVED

    def forward(self, x: Tensor, t: Tensor, label: Tensor) -> Tensor:
        torch.save(x, self.path)
        return self.unet(x, t, label)


class SaveInBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.path = SAVED

    def forward(self, x: Tensor) -> Tensor:
        if bool(x.sum() > 1e30):
            torch.save(x, self.path)
        return x * 2


class Helper(nn.Module):
    def __init__(self):
        super().__init__()
        self.path = SAVED

    @torch.jit.export
    def keep(self, x: Tensor) -> Tensor:
        torch.save(x, self.path)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return x


class SaveInHelper(nn.Module):
    def __init__(self):
        super().__init__()
        self.helper = Helper()

    def forward(self, x: Tensor) -> Tensor:
        return self.helper.keep(x) + 1


class Print(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        print("model output", x.sum())
        return x


class FromFile(nn.Module):
    def __init__(self):
        super().__init__()
        self.path = MAPPED

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.from_file(self.path, shared=False, size=1)


def shout(x: Tensor) -> Tensor:
    print("forked", x)
    return x


class ForkPrint(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        future = torch.jit.fork(shout, x)
        return torch.jit.wait(future)


class ManualSeed(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        torch.manual_seed(0)
        return x


class SetState(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.ones(3)
        self.path = SAVED

    @torch.jit.export
    def __getstate__(self) -> Tuple[Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        torch.save(self.weight, self.path)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class Warn(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if bool(x.sum() > 1e30):
            warnings.warn("very large input")
        return x


def rewrite_zip(source, target, change):
    """Copies a zip record by record; change(name, data) returns new data, or None to keep it."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            new = change(info.filename, data)
            zout.writestr(info.filename, data if new is None else new)


def truncated_weight():
    unet = os.path.join(ROOT, "models", "fixtures", "tiny-unet.pt")
    with zipfile.ZipFile(unet) as z:
        weights = sorted((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: -i.file_size)
    victim = weights[0].filename
    rewrite_zip(unet, os.path.join(OUT, "truncated-weight.pt"), lambda name, data: data[: len(data) // 2] if name == victim else None)


def version_garbled():
    unet = os.path.join(ROOT, "models", "fixtures", "tiny-unet.pt")
    rewrite_zip(unet, os.path.join(OUT, "version-garbled.pt"), lambda name, data: b"seven\n" if name.endswith("/version") else None)


def card_bomb():
    """The tiny MLP with its model.json replaced by 1 GiB of spaces, deflated."""
    mlp = os.path.join(ROOT, "models", "fixtures", "tiny-mlp.pt")
    target = os.path.join(OUT, "card-bomb.pt")
    with zipfile.ZipFile(mlp) as zin, zipfile.ZipFile(target, "w") as zout:
        prefix = zin.infolist()[0].filename.split("/")[0]
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        entry = zipfile.ZipInfo(prefix + "/extra/model.json")
        entry.compress_type = zipfile.ZIP_DEFLATED
        chunk = b" " * (1 << 24)
        with zout.open(entry, "w", force_zip64=True) as card:
            for _ in range(64):
                card.write(chunk)


def idx_bombs():
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", 10, 28, 28)
    with gzip.open(os.path.join(OUT, "bomb-small-header.idx.gz"), "wb", compresslevel=6) as f:
        f.write(header)
        chunk = bytes(1 << 24)
        for _ in range(64):
            f.write(chunk)
    huge = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", 100000000, 28, 28)
    with gzip.open(os.path.join(OUT, "bomb-huge-header.idx.gz"), "wb") as f:
        f.write(huge + bytes(1 << 20))


def sparse_npz(name, shape):
    """A stored zip holding arr_0.npy of `shape` (uint8) whose data is a hole in a sparse file."""
    dict_text = "{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }" % ", ".join(str(d) for d in shape)
    unpadded = 10 + len(dict_text) + 1
    total = (unpadded + 63) // 64 * 64
    npy_header = b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + (dict_text + " " * (total - unpadded) + "\n").encode("latin1")
    data_bytes = 1
    for d in shape:
        data_bytes *= d
    size = len(npy_header) + data_bytes
    entry = b"arr_0.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 33, 0, size, size, len(entry), 0) + entry
    central_at = len(local) + size
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 33, 0, size, size, len(entry), 0, 0, 0, 0, 0, 0) + entry
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), central_at, 0)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(local + npy_header)
        f.seek(central_at)
        f.write(central + end)


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(MARKERS, exist_ok=True)
    torch.manual_seed(0)
    card = json.loads(json.dumps(fx.UNET_CARD))
    unet = fx.TinyUNet()
    makers = {
        "hang.pt": lambda: save(Hang(), "hang.pt"),
        "hang-denoiser.pt": lambda: save(HangDenoiser(), "hang-denoiser.pt", card),
        "nan-denoiser.pt": lambda: save(NanDenoiser(), "nan-denoiser.pt", card),
        "huge-denoiser.pt": lambda: save(HugeDenoiser(), "huge-denoiser.pt", card),
        "save.pt": lambda: save(Save(), "save.pt"),
        "save-unet.pt": lambda: save(SaveUNet(), "save-unet.pt", dict(card, timeEmbedding="unet.time_embed")),
        "save-in-branch.pt": lambda: save(SaveInBranch(), "save-in-branch.pt"),
        "save-in-helper.pt": lambda: save(SaveInHelper(), "save-in-helper.pt"),
        "print.pt": lambda: save(Print(), "print.pt"),
        "from-file.pt": lambda: save(FromFile(), "from-file.pt"),
        "fork-print.pt": lambda: save(ForkPrint(), "fork-print.pt"),
        "manual-seed.pt": lambda: save(ManualSeed(), "manual-seed.pt"),
        "setstate.pt": lambda: save(SetState(), "setstate.pt"),
        "warn.pt": lambda: save(Warn(), "warn.pt"),
        "card-huge-shape.pt": lambda: save(unet, "card-huge-shape.pt", dict(card, sampleShape=[1, 50000, 50000])),
        "card-big-shape.pt": lambda: save(unet, "card-big-shape.pt", dict(card, sampleShape=[1, 4096, 4096])),
        "card-timesteps.pt": lambda: save(unet, "card-timesteps.pt", dict(card, schedule=dict(card["schedule"], timesteps=10**12))),
        "truncated-weight.pt": truncated_weight,
        "version-garbled.pt": version_garbled,
        "card-bomb.pt": card_bomb,
        "bomb-small-header.idx.gz": idx_bombs,
        "bomb-huge-header.idx.gz": idx_bombs,
        "sparse.npz": lambda: sparse_npz("sparse.npz", [1, 50000, 50000]),
        "sparse-small.npz": lambda: sparse_npz("sparse-small.npz", [40000, 28, 28]),
    }
    wanted = sys.argv[3:] or list(makers)
    done = set()
    for name in wanted:
        maker = makers[name]
        if maker in done:
            continue
        maker()
        done.add(maker)


if __name__ == "__main__":
    main()
