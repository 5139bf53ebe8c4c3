#!/usr/bin/env python3
"""Independent reference for src/metrics/statistics.ts, in numpy only:
the Fréchet distance with tr (Σ1 Σ2)^½ taken another way than the package
takes it (which factors Σ1 by Cholesky and takes the eigenvalues of the
symmetric Lᵀ Σ2 L), and improved precision/recall (Kynkäänniemi et al.
2019) from explicit differences and a sort.

    quality_metrics.py SPEC.json OUT.bin

SPEC: dim, k, a (path: float64 [countA, dim]), countA, b (float64
[countB, dim]), countB, fd ("eigvals" or "samples"), pr (bool).
fd "eigvals": the eigenvalues of the non-symmetric product Σ1·Σ2 (LAPACK's
general eigensolver; the same quantity pytorch-fid gets from
scipy.linalg.sqrtm). fd "samples": with centred data A and B,
Σ1 Σ2 = Aᵀ A Bᵀ B / c has the non-zero eigenvalues of (A Bᵀ)(A Bᵀ)ᵀ / c,
so tr (Σ1 Σ2)^½ is the sum of the singular values of the countA × countB
matrix A Bᵀ over √c: exact for rank-deficient covariances, and cheap when
the sets are smaller than the dimension.
Writes float64: [fd, precision (b in a's manifold), recall (a in b's)];
NaN for precision and recall without pr. OUT.bin.captures is empty.
"""
import json
import sys

import numpy as np


def trace_sqrt_eigvals(s1, s2):
    eig = np.linalg.eigvals(s1 @ s2)  # real and >= 0 up to round-off: Σ1Σ2 is similar to a PSD matrix
    return np.sqrt(np.clip(eig.real, 0, None)).sum()


def trace_sqrt_samples(a, b):
    ca, cb = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    return np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / scale


def frechet(a, b, method="eigvals"):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr_sqrt = trace_sqrt_eigvals(s1, s2) if method == "eigvals" else trace_sqrt_samples(a, b)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def squared_distances(x, y, chunk=32):
    """[len(x), len(y)] squared distances from explicit differences, in chunks of rows."""
    return np.concatenate([((x[i : i + chunk, None, :] - y[None, :, :]) ** 2).sum(-1) for i in range(0, len(x), chunk)])


def radii(x, k):
    d = squared_distances(x, x)
    np.fill_diagonal(d, np.inf)  # a point is not its own neighbour
    return np.sort(d, axis=1)[:, k - 1]


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
    precision, recall = precision_recall(a, b, k) if spec.get("pr", True) else (np.nan, np.nan)
    out = [frechet(a, b, spec.get("fd", "eigvals")), precision, recall]
    np.asarray(out, dtype=np.float64).tofile(sys.argv[2])
    open(sys.argv[2] + ".captures", "wb").close()


if __name__ == "__main__":
    main()
