#!/usr/bin/env python3
"""Independent reference forward pass for tests (PyTorch, not libtorch/Node).

Usage:
    /usr/bin/python3 test/reference/forward.py MODEL.pt SPEC.json OUT.bin

SPEC.json:
    {"method": "forward",
     "inputs": [
        {"kind": "tensor", "dtype": "float32"|"int64"|"int32"|"uint8"|"bool",
         "shape": [...], "file": "path.bin"},
        {"kind": "float", "value": 1.5},
        {"kind": "int", "value": 3},
        {"kind": "bool", "value": true}
     ]}

Each tensor input's raw little-endian bytes (C order) are read from "file";
a relative path is looked up next to SPEC.json first, then in the current
directory. "method" defaults to "forward".

The model is loaded with torch.jit.load(MODEL, map_location="cpu"), put in
eval mode, and the method is called under torch.no_grad(). The result (a
tensor, or a tuple/list of tensors) is written to OUT.bin as raw little-endian
float32 bytes in C order, tensors one after another, and OUT.bin + ".json"
gets {"shapes": [[...], ...]} (one shape per tensor, in the same order).
"""

import json
import os
import sys

import numpy as np
import torch

DTYPES = {
    "float32": (np.dtype("<f4"), torch.float32),
    "int64": (np.dtype("<i8"), torch.int64),
    "int32": (np.dtype("<i4"), torch.int32),
    "uint8": (np.dtype("u1"), torch.uint8),
    "bool": (np.dtype("?"), torch.bool),
}


def fail(msg):
    sys.stderr.write("forward.py: " + msg + "\n")
    sys.exit(2)


def resolve(path, spec_dir):
    if os.path.isabs(path):
        return path
    beside = os.path.join(spec_dir, path)
    if os.path.exists(beside):
        return beside
    return path


def decode_input(i, spec, spec_dir):
    kind = spec.get("kind")
    if kind == "tensor":
        dtype = spec.get("dtype", "float32")
        if dtype not in DTYPES:
            fail("input %d: unsupported dtype %r" % (i, dtype))
        np_dtype, torch_dtype = DTYPES[dtype]
        shape = [int(d) for d in spec["shape"]]
        path = resolve(spec["file"], spec_dir)
        with open(path, "rb") as f:
            raw = f.read()
        count = 1
        for d in shape:
            count *= d
        if len(raw) != count * np_dtype.itemsize:
            fail(
                "input %d: %s holds %d bytes, expected %d for %s%s"
                % (i, path, len(raw), count * np_dtype.itemsize, dtype, shape)
            )
        arr = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
        # Native byte order and a writable copy, so torch.from_numpy is happy.
        arr = np.ascontiguousarray(arr.astype(np_dtype.newbyteorder("="), copy=True))
        t = torch.from_numpy(arr)
        assert t.dtype == torch_dtype, (t.dtype, torch_dtype)
        return t
    if kind == "float":
        return float(spec["value"])
    if kind == "int":
        return int(spec["value"])
    if kind == "bool":
        return bool(spec["value"])
    fail("input %d: unsupported kind %r" % (i, kind))


def flatten_result(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        out = []
        for r in result:
            out.extend(flatten_result(r))
        return out
    if isinstance(result, (bool, int, float)):
        return [torch.tensor(result)]
    fail("unsupported result type %s" % type(result).__name__)


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    model_path, spec_path, out_path = argv[1:]
    with open(spec_path, "r") as f:
        spec = json.load(f)
    spec_dir = os.path.dirname(os.path.abspath(spec_path))
    method_name = spec.get("method", "forward")
    inputs = [decode_input(i, s, spec_dir) for i, s in enumerate(spec.get("inputs", []))]

    model = torch.jit.load(model_path, map_location="cpu")
    model.eval()
    method = getattr(model, method_name)
    with torch.no_grad():
        result = method(*inputs)

    tensors = flatten_result(result)
    shapes = []
    with open(out_path, "wb") as f:
        for t in tensors:
            shapes.append(list(t.shape))
            data = t.detach().cpu().contiguous().float().numpy()
            f.write(data.astype("<f4", copy=False).tobytes(order="C"))
    with open(out_path + ".json", "w") as f:
        json.dump({"shapes": shapes}, f)


if __name__ == "__main__":
    main(sys.argv)
