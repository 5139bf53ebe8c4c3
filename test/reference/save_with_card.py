#!/usr/bin/env python3
"""Saves a tiny TorchScript model with the given model.json text (for card tests).

Usage: /usr/bin/python3 test/reference/save_with_card.py OUT.pt CARD.json [OUT2.pt CARD2.json ...]
"""
import sys

import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def main() -> None:
    scripted = torch.jit.script(Tiny().eval())
    args = sys.argv[1:]
    for out, card_path in zip(args[::2], args[1::2]):
        with open(card_path) as f:
            torch.jit.save(scripted, out, _extra_files={"model.json": f.read()})


if __name__ == "__main__":
    main()
