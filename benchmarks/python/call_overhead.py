"""The fixed cost of one call, Python side: a forward of a module that does one
add, and the same add as an eager op, each on a small tensor.

Usage: call_overhead.py --make MODEL.pt      (writes the scripted module)
       call_overhead.py MODEL.pt ITERATIONS THREADS [--device cpu|cuda]
Prints JSON: median microseconds per forward and per op. No synchronisation
inside the timed loops (on CUDA that is launch cost, what a sampling loop that
never waits for the GPU pays); one at the end of each loop.
"""
import json
import statistics
import sys
import time

import torch


class AddOne(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


def timed(fn, iterations, sync):
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    sync()
    return statistics.median(times)


def main() -> None:
    if sys.argv[1] == "--make":
        torch.jit.save(torch.jit.script(AddOne()), sys.argv[2])
        return
    path, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    device = torch.device(sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu")
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = torch.jit.freeze(torch.jit.load(path, map_location=device).eval())
    x = torch.zeros(16, 1, 28, 28, device=device)
    with torch.inference_mode():
        for _ in range(50):  # the profiling executor specialises here
            model(x)
        sync()
        forward_us = timed(lambda: model(x), iterations, sync)
        op_us = timed(lambda: x + 1, iterations, sync)
    print(json.dumps({"forward_us": forward_us, "op_us": op_us}))


if __name__ == "__main__":
    main()
