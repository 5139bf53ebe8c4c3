#!/usr/bin/env python3
"""Independent reference for src/metrics/statistics.ts, in numpy only:
the Fréchet distance with tr (Σ1 Σ2)^½ taken from the eigenvalues of the
non-symmetric product Σ1·Σ2 (LAPACK's general eigensolver; the same quantity
pytorch-fid gets from scipy.linalg.sqrtm), and improved precision/recall
(Kynkäänniemi et al. 2019) from explicit differences and a sort.

    quality_metrics.py SPEC.json OUT.bin

SPEC: dim, k, a (path: float64 [countA, dim]), countA, b (float64
[countB, dim]), countB, square (path: float64 [dim, dim] symmetric).
Writes float32: [fd, precision (b in a's manifold), recall (a in b's),
eigenvalues of `square` ascending...]. OUT.bin.captures is empty.
"""
import json
import sys

import numpy as np


def frechet(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)  # real and >= 0 up to round-off: Σ1Σ2 is similar to a PSD matrix
    tr_sqrt = np.sqrt(np.clip(eig.real, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def squared_distances(x, y, chunk=32):
    """[len(x), len(y)] squared distances from explicit differences, in chunks of rows."""
    return np.concatenate([((x[i : i + chunk, None, :] - y[None, :, :]) ** 2).sum(-1) for i in range(0, len(x), chunk)])


def radii(x, k):
    return np.sort(squared_distances(x, x), axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real, fake, k):
    cross = squared_distances(fake, real)  # [fake, real]
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
