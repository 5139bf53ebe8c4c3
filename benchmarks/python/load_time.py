#!/usr/bin/env python3
"""Times torch.jit.load + torch.jit.freeze of one TorchScript file, as a Python user loads a model.

Usage: /usr/bin/python3 benchmarks/python/load_time.py MODEL.pt THREADS
Prints {"load_ms": ...} as one JSON line, then exits (each run is a fresh process, as ours is timed fresh in-process).
"""
import json
import sys
import time

import torch


def main() -> None:
    torch.set_num_threads(int(sys.argv[2]))
    start = time.perf_counter()
    module = torch.jit.load(sys.argv[1]).eval()
    frozen = torch.jit.freeze(module)
    load_ms = (time.perf_counter() - start) * 1000
    del frozen
    print(json.dumps({"load_ms": load_ms}), flush=True)


if __name__ == "__main__":
    main()
