#!/usr/bin/env python3
"""How much a second intra-op thread speeds up one forward, in Python torch.

Usage: intraop_scaling.py MODEL.pt BATCH PAIRS THREADS
Prints one JSON line: {"one_ms", "many_ms", "speedup": median of paired
(1 thread / THREADS threads) ratios}. The two settings alternate forward by
forward in one process (torch.set_num_threads between them), after a warm-up.
Inputs as forward_loop.py: x ~ N(0, 1) [B,1,28,28], t = 500, label = i % 10.
"""
import json
import statistics
import sys
import time

import torch


def main() -> None:
    path, batch, pairs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    model = torch.jit.freeze(torch.jit.load(path).eval())
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 500.0)
    label = torch.arange(batch) % 10

    def timed(n):
        torch.set_num_threads(n)
        start = time.perf_counter()
        model(x, t, label)
        return (time.perf_counter() - start) * 1000

    with torch.inference_mode():
        for _ in range(3):
            timed(1)
            timed(threads)
        one, many = [], []
        for i in range(pairs):
            if i % 2 == 0:
                one.append(timed(1))
                many.append(timed(threads))
            else:
                many.append(timed(threads))
                one.append(timed(1))
    ratios = [a / b for a, b in zip(one, many)]
    print(json.dumps({"one_ms": statistics.median(one), "many_ms": statistics.median(many), "speedup": statistics.median(ratios)}))


if __name__ == "__main__":
    main()
