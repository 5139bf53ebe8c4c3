#!/usr/bin/env python3
"""Independent reference for `torch-guidance evaluate`: reads the two image
files with numpy (np.load for .npz, a gzip + np.frombuffer IDX parser), runs
the evaluation classifier through Python torch, and computes the metrics with
quality_metrics.py's numpy functions.

    evaluate_images.py SAMPLES.npz REFERENCE.idx.gz CLASSIFIER.pt K M

Prints JSON: fd, precision, recall (on M images of each set, indices
floor(i * count / M)), accuracy over the samples whose label is not -1.
"""
import gzip
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from quality_metrics import frechet, precision_recall  # noqa: E402


def read_idx(path):
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def as_input(images):
    if images.ndim == 3:
        images = images[..., None]
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2).contiguous()


def main():
    samples_path, reference_path, classifier_path, k, m = sys.argv[1:6]
    k, m = int(k), int(m)
    with np.load(samples_path) as data:
        samples, labels = data["arr_0"], data["arr_1"]
    reference = read_idx(reference_path)
    model = torch.jit.load(classifier_path).eval()
    with torch.no_grad():
        x = as_input(samples)
        logits = model(x).double().numpy()
        fake = model.features(x).double().numpy()
        real = model.features(as_input(reference)).double().numpy()
    m = min(m, len(fake), len(real))
    pick = lambda count: [i * count // m for i in range(m)]  # noqa: E731
    precision, recall = precision_recall(real[pick(len(real))], fake[pick(len(fake))], k)
    labelled = labels >= 0
    accuracy = float((logits.argmax(1)[labelled] == labels[labelled]).mean())
    print(json.dumps({"fd": frechet(real, fake), "precision": precision, "recall": recall, "accuracy": accuracy}))


if __name__ == "__main__":
    main()
