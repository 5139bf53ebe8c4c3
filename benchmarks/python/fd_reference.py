#!/usr/bin/env python3
"""The numpy side of benchmarks/fd.ts: the same statistics on the same
features, timed.

    fd_reference.py fd A.bin B.bin COUNT DIM ROUNDS EIGVALS_ROUNDS
    fd_reference.py pr REAL.bin FAKE.bin COUNT DIM K

A.bin, B.bin: float64 [COUNT, DIM] features, row-major. Prints JSON.

fd: np.mean and np.cov of both sets (timed), then tr (Σ1 Σ2)^½ two ways:
"eigvals", the eigenvalues of the non-symmetric Σ1·Σ2 (LAPACK's general
eigensolver: the quantity pytorch-fid takes from scipy.linalg.sqrtm, without
scipy), and "cholesky", the package's own route in numpy (Σ1 = L Lᵀ, the
symmetric eigenvalues of Lᵀ Σ2 L), to tell the algorithm from the library.
Median milliseconds over ROUNDS (EIGVALS_ROUNDS for the slow one; 0 skips it).

pr: improved precision/recall with k-NN radii, in numpy's matrix form
(|x|² + |y|² − 2 x·y) in blocks of rows, as the paper's reference code
computes distances; every real and fake vector.
"""
import json
import sys
import time

import numpy as np


def timed(fn, rounds):
    times, value = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), value


def fd_from(mu1, s1, mu2, s2, tr_sqrt):
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def tr_sqrt_eigvals(s1, s2):
    return np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()


def tr_sqrt_cholesky(s1, s2):
    lower = np.linalg.cholesky(s1)
    return np.sqrt(np.clip(np.linalg.eigvalsh(lower.T @ s2 @ lower), 0, None)).sum()


def run_fd(a_path, b_path, count, dim, rounds, eigvals_rounds):
    a = np.fromfile(a_path, dtype=np.float64).reshape(count, dim)
    b = np.fromfile(b_path, dtype=np.float64).reshape(count, dim)
    stats_ms, (mu1, s1) = timed(lambda: (a.mean(0), np.cov(a, rowvar=False)), rounds)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    chol_ms, chol = timed(lambda: fd_from(mu1, s1, mu2, s2, tr_sqrt_cholesky(s1, s2)), rounds)
    result = {"statsMs": stats_ms, "choleskyMs": chol_ms, "fdCholesky": chol}
    if eigvals_rounds > 0:
        eig_ms, eig = timed(lambda: fd_from(mu1, s1, mu2, s2, tr_sqrt_eigvals(s1, s2)), eigvals_rounds)
        result.update({"eigvalsMs": eig_ms, "fdEigvals": eig})
    return result


def radii(x, k, block):
    norms = (x * x).sum(1)
    out = np.empty(len(x))
    for start in range(0, len(x), block):
        rows = slice(start, start + block)
        d = np.maximum(norms[rows, None] + norms[None, :] - 2 * x[rows] @ x.T, 0)
        d[np.arange(d.shape[0]), np.arange(start, start + d.shape[0])] = np.inf  # not its own neighbour
        out[rows] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def precision_recall(real, fake, k, block=1024):
    centre = real.mean(0)
    real, fake = real - centre, fake - centre
    r_real, r_fake = radii(real, k, block), radii(fake, k, block)
    rn, fn = (real * real).sum(1), (fake * fake).sum(1)
    precise, recalled = 0, np.zeros(len(real), dtype=bool)
    for start in range(0, len(fake), block):
        rows = slice(start, start + block)
        d = np.maximum(fn[rows, None] + rn[None, :] - 2 * fake[rows] @ real.T, 0)
        precise += int((d <= r_real[None, :]).any(1).sum())
        recalled |= (d <= r_fake[rows, None]).any(0)
    return precise / len(fake), float(recalled.mean())


def run_pr(real_path, fake_path, count, dim, k):
    real = np.fromfile(real_path, dtype=np.float64).reshape(count, dim)
    fake = np.fromfile(fake_path, dtype=np.float64).reshape(count, dim)
    ms, (precision, recall) = timed(lambda: precision_recall(real, fake, k), 1)
    return {"ms": ms, "precision": precision, "recall": recall}


def main():
    mode, first, second = sys.argv[1:4]
    numbers = [int(x) for x in sys.argv[4:]]
    result = run_fd(first, second, *numbers) if mode == "fd" else run_pr(first, second, *numbers)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
