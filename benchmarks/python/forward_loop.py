#!/usr/bin/env python3
"""Times forwards of a TorchScript model in Python, the way users write it.

Usage: forward_loop.py MODEL.pt BATCH ITERATIONS THREADS [--freeze] [--device cpu|cuda] [--serve]
Prints one JSON line: {"median_ms": ..., "times_ms": [...]}. With --serve it
warms up, prints {"ready": true}, then times ITERATIONS forwards per "run"
line on stdin (one JSON line each), so a caller can alternate block by block
with its own side; EOF ends it.
Inputs match benchmarks/forward-vs-python.ts: x ~ N(0, 1) [B,1,28,28],
t = 500, label = 3. On CUDA each timed forward ends with its output on the
host (.cpu()), as the Node side ends with toArray().
"""
import json
import statistics
import sys
import time

import torch


def main() -> None:
    path, batch, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = torch.device(sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu")
    torch.set_num_threads(threads)
    model = torch.jit.load(path, map_location=device).eval()
    if "--freeze" in sys.argv:
        model = torch.jit.freeze(model)
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((batch,), 500.0, device=device)
    label = torch.full((batch,), 3, dtype=torch.long, device=device)
    cuda = device.type == "cuda"
    with torch.inference_mode():
        for _ in range(5):  # warm-up: the profiling executor specialises here
            out = model(x, t, label)
            if cuda:
                out.cpu()

        def block():
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                out = model(x, t, label)
                if cuda:
                    out.cpu()
                times.append((time.perf_counter() - start) * 1000)
            return {"median_ms": statistics.median(times), "times_ms": times}

        if "--serve" in sys.argv:
            print(json.dumps({"ready": True}), flush=True)
            for line in sys.stdin:
                if line.strip() == "run":
                    print(json.dumps(block()), flush=True)
            return
        result = block()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
