#!/usr/bin/env python3
"""Independent reference for benchmarks/quality/metrics.ts, in numpy/scipy:
the Fréchet distance as pytorch-fid computes it (scipy.linalg.sqrtm of
Σ1·Σ2, a Schur-based square root of the non-symmetric product) and
improved precision/recall (Kynkäänniemi et al. 2019) with scipy's cdist
and a sort.

    quality_metrics.py SPEC.json OUT.bin

SPEC: dim, k, a (path: float64 [countA, dim]), countA, b (float64
[countB, dim]), countB, square (path: float64 [dim, dim] symmetric).
Writes float32: [fd, precision (b in a's manifold), recall (a in b's),
eigenvalues of `square` ascending...]. OUT.bin.captures is empty.
"""
import json
import sys

import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist


def frechet(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def radii(x, k):
    d = cdist(x, x, "sqeuclidean")
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real, fake, k):
    cross = cdist(fake, real, "sqeuclidean")  # [fake, real]
    precision = float((cross <= radii(real, k)[None, :]).any(axis=1).mean())
    recall = float((cross <= radii(fake, k)[:, None]).any(axis=0).mean())
    return precision, recall


def main():
    spec = json.load(open(sys.argv[1]))
    dim, k = spec["dim"], spec["k"]
    a = np.fromfile(spec["a"], dtype=np.float64).reshape(spec["countA"], dim)
    b = np.fromfile(spec["b"], dtype=np.float64).reshape(spec["countB"], dim)
    square = np.fromfile(spec["square"], dtype=np.float64).reshape(dim, dim)
    precision, recall = precision_recall(a, b, k)
    out = [frechet(a, b), precision, recall] + list(np.linalg.eigvalsh(square))
    np.asarray(out, dtype=np.float32).tofile(sys.argv[2])
    open(sys.argv[2] + ".captures", "wb").close()


if __name__ == "__main__":
    main()
