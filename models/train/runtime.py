"""Process setup shared by every script: one torch thread, seeds, stop flag.

Every script runs torch on ONE thread, so that a resumed run is bit-identical
to an uninterrupted one and the other cores stay free (TG_TRAIN_THREADS sets
another count).
"""

import ctypes
import os
import random
import signal
import sys

import numpy as np
import torch

# Paths relative to the repository (this file is models/train/runtime.py).
TRAIN_DIR = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.dirname(TRAIN_DIR)


def _limit_openblas(threads: int) -> None:
    """Debian's torch does its matmuls (Linear, bmm) in OpenBLAS, whose own
    thread pool torch.set_num_threads does not size: size it here (the same as
    OPENBLAS_NUM_THREADS=1 before the import)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line and line.strip().endswith(".so")
                    or "libopenblas" in line}
    except OSError:
        return
    for lib in libs:
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(threads)
        except (OSError, AttributeError):
            pass


def setup(seed: int) -> None:
    """One intra-op and one inter-op thread (OpenBLAS included); seed python,
    numpy and torch."""
    threads = int(os.environ.get("TG_TRAIN_THREADS", "1"))
    torch.set_num_threads(threads)
    _limit_openblas(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed once per process)
        pass
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class StopFlag:
    """Turns SIGTERM / SIGINT into a flag the training loop polls between steps,
    so that it can write a checkpoint and exit cleanly. A second signal exits
    at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            sys.exit(128 + signum)
        self.requested = True
        self.signum = signum
        print(f"signal {signum}: checkpointing and stopping", flush=True)

    def exit_code(self) -> int:
        return 128 + self.signum if self.requested else 0
