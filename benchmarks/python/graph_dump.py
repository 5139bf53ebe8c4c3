"""The graph Python torch executes for a TorchScript file after its
optimisations: torch.jit.load + torch.jit.freeze, a few forwards under
inference mode (the profiling executor specialises), then
torch.jit.last_executed_optimized_graph().

Usage: graph_dump.py MODEL.pt BATCH [--device cpu|cuda]   (prints the graph)
"""
import sys

import torch


def main() -> None:
    path, batch = sys.argv[1], int(sys.argv[2])
    device = torch.device(sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu")
    model = torch.jit.freeze(torch.jit.load(path, map_location=device).eval())
    x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((batch,), 500.0, device=device)
    label = torch.full((batch,), 3, dtype=torch.long, device=device)
    with torch.inference_mode():
        for _ in range(6):
            model(x, t, label)
    print(torch.jit.last_executed_optimized_graph())


if __name__ == "__main__":
    main()
