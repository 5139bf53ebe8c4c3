/**
 * Sample-quality metrics on feature vectors, in float64 and plain
 * TypeScript (no native code, so the unit test can check them against numpy):
 *
 * - the Fréchet distance between Gaussians fitted to two feature sets
 *   (Heusel et al. 2017), with the matrix square root taken through a
 *   symmetric eigendecomposition (Householder + QL);
 * - precision and recall with k-nearest-neighbour manifolds
 *   (Kynkäänniemi et al. 2019, k = 3);
 * - classifier accuracy against the requested class.
 *
 * Matrices are row-major Float64Arrays of n×n; feature sets are row-major
 * [count, dim].
 */

import { classifierAgreement } from './classifier-agreement.js';

/** A feature set: `count` rows of `dim` values, row-major. */
export interface FeatureSet {
  count: number;
  dim: number;
  data: Float64Array;
}

export interface GaussianStats {
  dim: number;
  /** Number of feature vectors the statistics come from. */
  count: number;
  mean: Float64Array;
  /** Unbiased (divides by count − 1), as numpy.cov. */
  cov: Float64Array;
}

export function featureSet(data: ArrayLike<number>, count: number, dim: number): FeatureSet {
  if (data.length !== count * dim) throw new Error(`feature data has ${data.length} values; ${count}x${dim} needs ${count * dim}`);
  return { count, dim, data: Float64Array.from(data) };
}

/** The rows `indices` of a feature set, in that order. */
export function selectRows(set: FeatureSet, indices: readonly number[]): FeatureSet {
  const data = new Float64Array(indices.length * set.dim);
  indices.forEach((row, i) => data.set(set.data.subarray(row * set.dim, (row + 1) * set.dim), i * set.dim));
  return { count: indices.length, dim: set.dim, data };
}

/** Mean and unbiased covariance (numpy.cov(rowvar=False)), accumulated in float64. */
export function gaussianStats(set: FeatureSet): GaussianStats {
  const { count, dim, data } = set;
  if (count < 2) throw new Error('need at least two feature vectors for a covariance');
  const mean = new Float64Array(dim);
  for (let i = 0; i < count; i++) for (let d = 0; d < dim; d++) mean[d]! += data[i * dim + d]!;
  for (let d = 0; d < dim; d++) mean[d]! /= count;
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let d = 0; d < dim; d++) centred[d] = data[i * dim + d]! - mean[d]!;
    for (let a = 0; a < dim; a++) {
      const ca = centred[a]!;
      if (ca === 0) continue;
      const row = a * dim;
      for (let b = a; b < dim; b++) cov[row + b]! += ca * centred[b]!;
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b]! / (count - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { dim, count, mean, cov };
}

/** C = A·B for n×n row-major matrices. */
export function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let k = 0; k < n; k++) {
      const aik = a[ci + k]!;
      if (aik === 0) continue;
      const bk = k * n;
      for (let j = 0; j < n; j++) c[ci + j]! += aik * b[bk + j]!;
    }
  }
  return c;
}

export interface Eigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as columns, in the order of `values` (n×n row-major). */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric n×n matrix: Householder reduction to
 * tridiagonal form, then the implicit QL algorithm with Wilkinson-style
 * shifts (tred2 + tql2 of EISPACK, in the form JAMA gives them). About 4n³
 * operations: a 256×256 covariance takes tens of milliseconds, and the
 * eigenvalues are accurate to round-off relative to the largest, which the
 * Fréchet distance needs (it subtracts traces of similar size). Only the
 * upper triangle is read; the input is not changed.
 */
export function symmetricEigen(matrix: Float64Array, n: number): Eigen {
  if (matrix.length !== n * n) throw new Error(`matrix has ${matrix.length} values, expected ${n}x${n}`);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      V[i * n + j] = matrix[i * n + j]!;
      V[j * n + i] = matrix[i * n + j]!;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(V, d, e, n);
  tql2(V, d, e, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i]! - d[j]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) order.forEach((col, j) => (vectors[r * n + j] = V[r * n + col]!));
  return { values, vectors };
}

/** Householder tridiagonalisation: on return d is the diagonal, e[1..n-1] the subdiagonal, V the transformation. */
function tred2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[(n - 1) * n + j]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
        V[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        V[j * n + i] = f;
        g = e[j]! + V[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k * n + j]! * d[k]!;
          e[k] = e[k]! + V[k * n + j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k * n + j] = V[k * n + j]! - (f * e[k]! + g * d[k]!);
        d[j] = V[(i - 1) * n + j]!;
        V[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    V[(n - 1) * n + i] = V[i * n + i]!;
    V[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k * n + i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k * n + i + 1]! * V[k * n + j]!;
        for (let k = 0; k <= i; k++) V[k * n + j] = V[k * n + j]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[(n - 1) * n + j]!;
    V[(n - 1) * n + j] = 0;
  }
  V[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (d, e), accumulating the rotations into V. */
function tql2(V: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error('symmetric eigendecomposition (tql2) did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          for (let k = 0; k < n; k++) {
            const row = k * n;
            h = V[row + i + 1]!;
            V[row + i + 1] = s * V[row + i]! + c * h;
            V[row + i] = c * V[row + i]! - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/** The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues, round-off, clipped to 0). */
export function sqrtPsd(matrix: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, n);
  const roots = values.map((x) => Math.sqrt(Math.max(x, 0)));
  // V · diag(√λ) · Vᵀ
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += vectors[i * n + k]! * roots[k]! * vectors[j * n + k]!;
      out[i * n + j] = sum;
      out[j * n + i] = sum;
    }
  }
  return out;
}

function trace(m: Float64Array, n: number): number {
  let t = 0;
  for (let i = 0; i < n; i++) t += m[i * n + i]!;
  return t;
}

/**
 * Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2):
 * ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½.
 * tr (Σ1 Σ2)^½ is computed as the sum of the square roots of the eigenvalues
 * of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½ (same eigenvalues as Σ1 Σ2).
 * Pass `sqrtCov1` when Σ1 is fixed (the reference set) to compute its root once.
 */
export function frechetDistance(s1: GaussianStats, s2: GaussianStats, sqrtCov1?: Float64Array): number {
  const n = s1.dim;
  if (s2.dim !== n) throw new Error(`feature widths differ: ${n} and ${s2.dim}`);
  const r1 = sqrtCov1 ?? sqrtPsd(s1.cov, n);
  const m = matmul(matmul(r1, s2.cov, n), r1, n);
  const { values } = symmetricEigen(m, n);
  let trSqrt = 0;
  for (const x of values) trSqrt += Math.sqrt(Math.max(x, 0));
  let meanTerm = 0;
  for (let d = 0; d < n; d++) meanTerm += (s1.mean[d]! - s2.mean[d]!) ** 2;
  return meanTerm + trace(s1.cov, n) + trace(s2.cov, n) - 2 * trSqrt;
}

/**
 * Squared Euclidean distances between every row of `a` and every row of `b`,
 * [a.count, b.count], as ‖a‖² + ‖b‖² − 2a·b in float64 (clamped at 0), in
 * blocks of rows so that each block of `b` stays in cache.
 */
export function squaredDistances(a: FeatureSet, b: FeatureSet): Float64Array {
  const dim = a.dim;
  if (b.dim !== dim) throw new Error(`feature widths differ: ${dim} and ${b.dim}`);
  const norms = (set: FeatureSet) =>
    Float64Array.from({ length: set.count }, (_, i) => {
      let sum = 0;
      for (let d = 0; d < dim; d++) sum += set.data[i * dim + d]! * set.data[i * dim + d]!;
      return sum;
    });
  const na = norms(a);
  const nb = norms(b);
  const out = new Float64Array(a.count * b.count);
  const A = a.data;
  const B = b.data;
  const block = 64;
  for (let j0 = 0; j0 < b.count; j0 += block) {
    const j1 = Math.min(b.count, j0 + block);
    for (let i = 0; i < a.count; i++) {
      const ai = i * dim;
      for (let j = j0; j < j1; j++) {
        const bj = j * dim;
        let dot0 = 0;
        let dot1 = 0;
        let d = 0;
        for (; d + 1 < dim; d += 2) {
          dot0 += A[ai + d]! * B[bj + d]!;
          dot1 += A[ai + d + 1]! * B[bj + d + 1]!;
        }
        if (d < dim) dot0 += A[ai + d]! * B[bj + d]!;
        out[i * b.count + j] = Math.max(0, na[i]! + nb[j]! - 2 * (dot0 + dot1));
      }
    }
  }
  return out;
}

/** Squared distance from each row to its k-th nearest other row of the same set (the radius of its k-NN ball). */
export function kthNeighbourRadii(set: FeatureSet, k: number, distances = squaredDistances(set, set)): Float64Array {
  const n = set.count;
  if (k < 1 || k >= n) throw new Error(`k must be in 1..${n - 1}, got ${k}`);
  const radii = new Float64Array(n);
  const nearest = new Float64Array(k); // the k smallest, ascending
  for (let i = 0; i < n; i++) {
    nearest.fill(Infinity);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = distances[i * n + j]!;
      if (d >= nearest[k - 1]!) continue;
      let pos = k - 1;
      while (pos > 0 && nearest[pos - 1]! > d) {
        nearest[pos] = nearest[pos - 1]!;
        pos--;
      }
      nearest[pos] = d;
    }
    radii[i] = nearest[k - 1]!;
  }
  return radii;
}

export interface PrecisionRecall {
  /** Fraction of generated samples inside the real manifold (some real sample's k-NN ball). */
  precision: number;
  /** Fraction of real samples inside the generated manifold. */
  recall: number;
}

/**
 * Improved precision and recall (Kynkäänniemi et al. 2019): each set's
 * manifold is the union of balls around its points with the distance to the
 * k-th nearest neighbour as radius (boundary included, as the reference code).
 * `realRadii` may be passed when the real set is fixed.
 */
export function precisionRecall(real: FeatureSet, fake: FeatureSet, k = 3, realRadii?: Float64Array): PrecisionRecall {
  const rReal = realRadii ?? kthNeighbourRadii(real, k);
  const rFake = kthNeighbourRadii(fake, k);
  const cross = squaredDistances(fake, real); // [fake, real]
  let inReal = 0;
  for (let j = 0; j < fake.count; j++) {
    for (let i = 0; i < real.count; i++) {
      if (cross[j * real.count + i]! <= rReal[i]!) {
        inReal++;
        break;
      }
    }
  }
  let inFake = 0;
  for (let i = 0; i < real.count; i++) {
    for (let j = 0; j < fake.count; j++) {
      if (cross[j * real.count + i]! <= rFake[j]!) {
        inFake++;
        break;
      }
    }
  }
  return { precision: inReal / fake.count, recall: inFake / real.count };
}

/** Fraction of rows of `logits` [labels.length, classes] whose argmax is the requested label; null labels are skipped (NaN if none). */
export function classifierAccuracy(logits: ArrayLike<number>, classes: number, labels: readonly (number | null)[]): number {
  const { agree, of } = classifierAgreement(logits, classes, labels);
  return of === 0 ? NaN : agree / of;
}
