/**
 * The sample-quality metrics (src/metrics/statistics.ts, used by the quality benchmark and `torch-guidance evaluate`) against an
 * independent numpy computation (test/reference/quality_metrics.py) on fresh
 * random point clouds: the Fréchet distance (numpy's general eigensolver on
 * the non-symmetric Σ1·Σ2, not our symmetric Householder + QL on
 * Σ1^½Σ2Σ1^½), improved precision/recall with k = 3 (explicit differences,
 * not our ‖a‖² + ‖b‖² − 2a·b), and the eigenvalues themselves.
 */
import assert from 'node:assert/strict';

import {
  classifierAccuracy,
  featureSet,
  frechetDistance,
  gaussianStats,
  kthNeighbourRadii,
  matmul,
  precisionRecall,
  sqrtPsd,
  symmetricEigen,
  type FeatureSet,
} from '../src/metrics/statistics.js';
import { runReference } from './helpers/python.js';
import { freshRandom } from './helpers/random.js';

type Rng = ReturnType<typeof freshRandom>;

/** A correlated Gaussian cloud: x = z·M + shift, M random (so the covariance is far from diagonal). */
function cloud(rng: Rng, count: number, dim: number, shift: number, mixing: Float64Array): FeatureSet {
  const data = new Float64Array(count * dim);
  const z = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let d = 0; d < dim; d++) z[d] = rng.normal();
    for (let d = 0; d < dim; d++) {
      let v = shift;
      for (let e = 0; e < dim; e++) v += z[e]! * mixing[e * dim + d]!;
      data[i * dim + d] = v;
    }
  }
  return featureSet(data, count, dim);
}

function randomMatrix(rng: Rng, dim: number, scale: number): Float64Array {
  return Float64Array.from({ length: dim * dim }, (_, i) => (i % (dim + 1) === 0 ? 1 : 0) + scale * rng.normal());
}

function reference(a: FeatureSet, b: FeatureSet, square: Float64Array, k: number) {
  const { output } = runReference(
    'quality_metrics.py',
    { dim: a.dim, k, countA: a.count, countB: b.count },
    { a: a.data, b: b.data, square },
  );
  return { fd: output[0]!, precision: output[1]!, recall: output[2]!, eigenvalues: output.subarray(3) };
}

describe('quality metrics (benchmarks/quality) against numpy', function () {
  this.timeout(60_000);

  for (const { dim, countA, countB } of [
    { dim: 16, countA: 300, countB: 200 },
    { dim: 256, countA: 400, countB: 400 },
  ]) {
    it(`FD, precision/recall (k = 3) and eigenvalues agree: ${dim}-d, ${countA} and ${countB} points`, () => {
      const rng = freshRandom();
      const a = cloud(rng, countA, dim, 0, randomMatrix(rng, dim, 0.3));
      const b = cloud(rng, countB, dim, 0.2, randomMatrix(rng, dim, 0.3));
      const statsB = gaussianStats(b);
      const ref = reference(a, b, statsB.cov, 3);
      const seed = `(seed ${rng.seed})`;

      const fd = frechetDistance(gaussianStats(a), statsB);
      assert.ok(Math.abs(fd - ref.fd) <= 1e-5 * Math.abs(ref.fd) + 1e-4, `FD ${fd} vs numpy ${ref.fd} ${seed}`);
      assert.ok(ref.fd > 1, `the clouds should differ ${seed}`);

      const pr = precisionRecall(a, b, 3);
      // The reference comes back as float32: compare the counts.
      assert.equal(Math.round(pr.precision * countB), Math.round(ref.precision * countB), `precision ${pr.precision} vs ${ref.precision} ${seed}`);
      assert.equal(Math.round(pr.recall * countA), Math.round(ref.recall * countA), `recall ${pr.recall} vs ${ref.recall} ${seed}`);
      assert.ok(pr.precision > 0 && pr.precision < 1 && pr.recall > 0 && pr.recall < 1, `a non-trivial case ${seed}: ${JSON.stringify(pr)}`);

      const { values, vectors } = symmetricEigen(statsB.cov, dim);
      const top = values[dim - 1]!;
      values.forEach((v, i) => assert.ok(Math.abs(v - ref.eigenvalues[i]!) <= 1e-5 * top, `eigenvalue ${i}: ${v} vs ${ref.eigenvalues[i]} ${seed}`));
      // A·V = V·Λ and VᵀV = I, to round-off.
      const av = matmul(statsB.cov, vectors, dim);
      let residual = 0;
      for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) residual = Math.max(residual, Math.abs(av[i * dim + j]! - vectors[i * dim + j]! * values[j]!));
      assert.ok(residual < 1e-10 * top, `eigen residual ${residual} ${seed}`);
    });
  }

  it('FD is 0 for identical statistics; sqrtPsd squares back; a shifted mean adds its squared norm', () => {
    const rng = freshRandom();
    const dim = 32;
    const a = cloud(rng, 200, dim, 0, randomMatrix(rng, dim, 0.4));
    const s = gaussianStats(a);
    // FD(s, s) is tr Σ + tr Σ − 2 tr Σ, a cancellation: its round-off scales with the trace
    // (worst of 300 fresh draws: 3.8e-10 · tr Σ; an absolute bound failed in CI at 3.9e-8).
    let traceCov = 0;
    for (let i = 0; i < dim; i++) traceCov += s.cov[i * dim + i]!;
    const fdSelf = frechetDistance(s, s);
    assert.ok(Math.abs(fdSelf) < 1e-8 * traceCov, `FD(s, s) = ${fdSelf}, tr Σ = ${traceCov} (seed ${rng.seed})`);
    const r = sqrtPsd(s.cov, dim);
    const rr = matmul(r, r, dim);
    const scale = Math.max(...s.cov.map(Math.abs));
    s.cov.forEach((v, i) => assert.ok(Math.abs(rr[i]! - v) < 1e-10 * scale, `sqrt² differs at ${i}`));
    const shifted = { ...s, mean: s.mean.map((m) => m + 0.5) };
    const fdShifted = frechetDistance(s, shifted);
    assert.ok(Math.abs(fdShifted - 0.25 * dim) < 1e-8 * traceCov, `FD(s, s + 0.5) = ${fdShifted}, expected ${0.25 * dim} (seed ${rng.seed})`);
  });

  it('k-NN radii exclude the point itself; accuracy skips null labels', () => {
    const set = featureSet([0, 1, 3, 7], 4, 1);
    assert.deepEqual([...kthNeighbourRadii(set, 1)], [1, 1, 4, 16]);
    assert.deepEqual([...kthNeighbourRadii(set, 3)], [49, 36, 16, 49]);
    const logits = [2, 1, 0, /**/ 0, 0, 3, /**/ 1, 5, 0];
    assert.equal(classifierAccuracy(logits, 3, [0, 1, null]), 0.5);
    assert.ok(Number.isNaN(classifierAccuracy(logits, 3, [null, null, null])));
  });
});
