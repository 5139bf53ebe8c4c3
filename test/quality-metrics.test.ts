/**
 * The sample-quality statistics (src/metrics/statistics.ts, float64 on a torch
 * thread; native/src/ops/feature_statistics.cpp) against independent
 * references on fresh random inputs:
 *
 * - FD against numpy (test/reference/quality_metrics.py): LAPACK's general
 *   eigensolver on the non-symmetric Σ1·Σ2 (we factor Σ1 by Cholesky and take
 *   the symmetric eigenvalues of Lᵀ Σ2 L); at 2048 dimensions with fewer
 *   samples than dimensions, the singular values of the small matrix A·Bᵀ of
 *   the centred samples (exact for rank-deficient covariances); with a
 *   feature that never varies (both covariances singular: the eigh route);
 *   and at 2048 full-rank dimensions against a closed form.
 * - Precision/recall and the k-NN radii against brute force: numpy's
 *   explicit differences, and explicit differences here across blocks of
 *   rows that do not divide the sets.
 *
 * Tolerances. FD = tr Σ1 + tr Σ2 − 2 tr (Σ1Σ2)^½ is a cancellation, so its
 * round-off scales with the traces, not with FD: each comparison is on the
 * scale T = tr Σ1 + tr Σ2. A backward-stable symmetric eigensolver in float64
 * gets each eigenvalue λ of a d × d matrix M to about d·ε·‖M‖ (ε = 2.2e-16);
 * √λ then errs by that over 2√λ for well-resolved λ (relative d·ε, 5e-13 at
 * d = 2048), but by up to √(d·ε·‖M‖) for the zero eigenvalues of a
 * rank-deficient product (7e-7·√‖M‖ each at d = 2048), and there are over a
 * thousand of those here. Hence 1e-9·T where both covariances have full rank
 * (room for ill-conditioned draws) and 1e-6·T where one is rank-deficient.
 * Six runs of every case measured at most 4e-13·T and 2.2e-8·T.
 */
import assert from 'node:assert/strict';

import { native } from '../src/core/native/binding.js';
import { isTorchGuidanceError } from '../src/index.js';
import {
  classifierAccuracy,
  featureSet,
  frechetDistance,
  gaussianStats,
  kthNeighbourRadii,
  precisionRecall,
  squaredDistances,
  type FeatureSet,
  type GaussianStats,
} from '../src/metrics/statistics.js';
import { loadModel, type Tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { fixture } from './helpers/guidance-reference.js';
import { runReference } from './helpers/python.js';
import { freshRandom, type Rng } from './helpers/random.js';

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

/**
 * A wide cloud cheap enough to draw at 2048 dimensions: x = s ⊙ z + W·u + shift
 * with per-feature scales s and a few shared factors u (so the covariance
 * diag(s²) + WWᵀ is dense).
 */
function wideCloud(rng: Rng, count: number, dim: number, shift: number): FeatureSet {
  const factors = 8;
  const scales = Float64Array.from({ length: dim }, () => 0.5 + rng.next());
  const loadings = Float64Array.from({ length: factors * dim }, () => 0.3 * rng.normal());
  const data = new Float64Array(count * dim);
  const u = new Float64Array(factors);
  for (let i = 0; i < count; i++) {
    for (let f = 0; f < factors; f++) u[f] = rng.normal();
    for (let d = 0; d < dim; d++) {
      let v = shift + scales[d]! * rng.normal();
      for (let f = 0; f < factors; f++) v += u[f]! * loadings[f * dim + d]!;
      data[i * dim + d] = v;
    }
  }
  return featureSet(data, count, dim);
}

function asFloat64(output: Float32Array): Float64Array {
  return new Float64Array(output.buffer, output.byteOffset, output.byteLength / 8);
}

/** numpy's FD ("eigvals": of Σ1·Σ2; "samples": from the singular values of A·Bᵀ) and, with `pr`, precision/recall of b against a. */
function reference(a: FeatureSet, b: FeatureSet, k: number, fd: 'eigvals' | 'samples' = 'eigvals', pr = true) {
  const data = (set: FeatureSet) => (set.data instanceof Float64Array ? set.data : Float64Array.from(set.data));
  const { output } = runReference('quality_metrics.py', { dim: a.dim, k, countA: a.count, countB: b.count, fd, pr }, { a: data(a), b: data(b) });
  const values = asFloat64(output);
  return { fd: values[0]!, precision: values[1]!, recall: values[2]! };
}

function trace(stats: GaussianStats): number {
  let sum = 0;
  for (let i = 0; i < stats.dim; i++) sum += stats.cov[i * stats.dim + i]!;
  return sum;
}

/** Squared distances from explicit differences, here in TypeScript. */
function bruteDistances(a: FeatureSet, b: FeatureSet): Float64Array {
  const out = new Float64Array(a.count * b.count);
  for (let i = 0; i < a.count; i++) {
    for (let j = 0; j < b.count; j++) {
      let sum = 0;
      for (let d = 0; d < a.dim; d++) sum += (a.data[i * a.dim + d]! - b.data[j * b.dim + d]!) ** 2;
      out[i * b.count + j] = sum;
    }
  }
  return out;
}

function bruteRadii(set: FeatureSet, k: number): Float64Array {
  const d = bruteDistances(set, set);
  return Float64Array.from({ length: set.count }, (_, i) => {
    const row = Array.from(d.subarray(i * set.count, (i + 1) * set.count)).filter((_, j) => j !== i);
    return row.sort((x, y) => x - y)[k - 1]!;
  });
}

function maxRelative(actual: Float64Array, expected: Float64Array): number {
  let worst = 0;
  expected.forEach((e, i) => (worst = Math.max(worst, Math.abs(actual[i]! - e) / Math.max(Math.abs(e), 1e-300))));
  return worst;
}

/** Σ = H1 H2 H3 diag(values) H3 H2 H1 with Householder reflections H = I − 2vvᵀ/vᵀv: dense, with eigenvalues `values`. */
function rotated(values: Float64Array, reflections: Float64Array[]): Float64Array {
  const n = values.length;
  const m = new Float64Array(n * n);
  values.forEach((v, i) => (m[i * n + i] = v));
  for (const v of [...reflections].reverse()) {
    const vv = v.reduce((s, x) => s + x * x, 0);
    const mv = new Float64Array(n); // M·v (M symmetric, so also vᵀM)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mv[i]! += m[i * n + j]! * v[j]!;
    const vmv = v.reduce((s, x, i) => s + x * mv[i]!, 0);
    // H M H = M − 2(v·(Mv)ᵀ + (Mv)·vᵀ)/vv + 4 (vᵀMv) v vᵀ / vv²
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) m[i * n + j]! += (-2 * (v[i]! * mv[j]! + mv[i]! * v[j]!)) / vv + (4 * vmv * v[i]! * v[j]!) / (vv * vv);
    }
  }
  return m;
}

describe('quality metrics (src/metrics/statistics.ts) against numpy and brute force', function () {
  this.timeout(300_000);

  for (const { dim, countA, countB } of [
    { dim: 16, countA: 300, countB: 200 },
    { dim: 256, countA: 400, countB: 400 },
  ]) {
    it(`FD and precision/recall (k = 3) agree with numpy: ${dim}-d, ${countA} and ${countB} points`, async () => {
      const rng = freshRandom();
      const a = cloud(rng, countA, dim, 0, randomMatrix(rng, dim, 0.3));
      const b = cloud(rng, countB, dim, 0.2, randomMatrix(rng, dim, 0.3));
      const ref = reference(a, b, 3);
      const seed = `(seed ${rng.seed})`;
      const [statsA, statsB] = await Promise.all([gaussianStats(a), gaussianStats(b)]);
      const fd = await frechetDistance(statsA, statsB);
      const scale = trace(statsA) + trace(statsB);
      assert.ok(Math.abs(fd - ref.fd) <= 1e-9 * scale, `FD ${fd} vs numpy ${ref.fd}, scale ${scale} ${seed}`);
      assert.ok(ref.fd > 1, `the clouds should differ ${seed}`);

      const pr = await precisionRecall(a, b, 3);
      assert.equal(Math.round(pr.precision * countB), Math.round(ref.precision * countB), `precision ${pr.precision} vs ${ref.precision} ${seed}`);
      assert.equal(Math.round(pr.recall * countA), Math.round(ref.recall * countA), `recall ${pr.recall} vs ${ref.recall} ${seed}`);
      assert.ok(pr.precision > 0 && pr.precision < 1 && pr.recall > 0 && pr.recall < 1, `a non-trivial case ${seed}: ${JSON.stringify(pr)}`);
    });
  }

  it('FD at 2048 dimensions with fewer samples than dimensions (a rank-deficient covariance) agrees with numpy', async () => {
    const rng = freshRandom();
    const dim = 2048;
    for (const [countA, countB] of [
      [700, 2300], // Σ1 singular, Σ2 not
      [600, 900], // both singular
    ] as const) {
      const a = wideCloud(rng, countA, dim, 0);
      const b = wideCloud(rng, countB, dim, 0.05);
      const [statsA, statsB] = await Promise.all([gaussianStats(a), gaussianStats(b)]);
      const fd = await frechetDistance(statsA, statsB);
      const ref = reference(a, b, 3, 'samples', false);
      const scale = trace(statsA) + trace(statsB);
      const seed = `(${countA} and ${countB} samples, seed ${rng.seed})`;
      assert.ok(Math.abs(fd - ref.fd) <= 1e-6 * scale, `FD ${fd} vs numpy ${ref.fd}, scale ${scale} ${seed}`);
      assert.ok(ref.fd > 0.01 * scale, `the clouds should differ ${seed}`);
    }
  });

  it('FD at 2048 full-rank dimensions equals the closed form for covariances with common eigenvectors', async () => {
    const rng = freshRandom();
    const dim = 2048;
    const reflections = [0, 1, 2].map(() => Float64Array.from({ length: dim }, () => rng.normal()));
    const a = Float64Array.from({ length: dim }, () => 0.2 + 2 * rng.next());
    const b = Float64Array.from({ length: dim }, () => 0.2 + 2 * rng.next());
    const s1: GaussianStats = { dim, count: 10_000, mean: Float64Array.from({ length: dim }, () => rng.normal()), cov: rotated(a, reflections) };
    const s2: GaussianStats = { dim, count: 10_000, mean: Float64Array.from({ length: dim }, () => rng.normal()), cov: rotated(b, reflections) };
    // Σ1 and Σ2 commute: tr (Σ1Σ2)^½ = Σ √(aᵢbᵢ), so FD = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)².
    let expected = 0;
    for (let i = 0; i < dim; i++) expected += (s1.mean[i]! - s2.mean[i]!) ** 2 + (Math.sqrt(a[i]!) - Math.sqrt(b[i]!)) ** 2;
    const fd = await frechetDistance(s1, s2);
    const scale = trace(s1) + trace(s2);
    assert.ok(Math.abs(fd - expected) <= 1e-9 * scale, `FD ${fd} vs ${expected}, scale ${scale} (seed ${rng.seed})`);
  });

  it('both covariances singular (a feature that never varies): the eigh route agrees with numpy', async () => {
    const rng = freshRandom();
    const dim = 48;
    const a = cloud(rng, 300, dim, 0, randomMatrix(rng, dim, 0.3));
    const b = cloud(rng, 250, dim, 0.3, randomMatrix(rng, dim, 0.3));
    // Feature 5 is 0 everywhere: its covariance row and column are exact zeros, a zero Cholesky pivot in both.
    for (const set of [a, b]) for (let i = 0; i < set.count; i++) set.data[i * dim + 5] = 0;
    const [statsA, statsB] = await Promise.all([gaussianStats(a), gaussianStats(b)]);
    const terms = await native.frechetDistance(statsA, statsB);
    assert.equal(terms.method, 'eigh');
    const ref = reference(a, b, 3, 'eigvals', false);
    const scale = trace(statsA) + trace(statsB);
    assert.ok(Math.abs(terms.distance - ref.fd) <= 1e-6 * scale, `FD ${terms.distance} vs numpy ${ref.fd} (seed ${rng.seed})`);
    assert.equal(terms.distance, await frechetDistance(statsA, statsB));
  });

  it('FD is 0 for identical statistics; a shifted mean adds its squared norm', async () => {
    const rng = freshRandom();
    const dim = 32;
    const s = await gaussianStats(cloud(rng, 200, dim, 0, randomMatrix(rng, dim, 0.4)));
    const traceCov = trace(s);
    const fdSelf = await frechetDistance(s, s);
    assert.ok(Math.abs(fdSelf) < 1e-9 * traceCov, `FD(s, s) = ${fdSelf}, tr Σ = ${traceCov} (seed ${rng.seed})`);
    const shifted = { ...s, mean: s.mean.map((m) => m + 0.5) };
    const fdShifted = await frechetDistance(s, shifted);
    assert.ok(Math.abs(fdShifted - 0.25 * dim) < 1e-9 * traceCov, `FD(s, s + 0.5) = ${fdShifted}, expected ${0.25 * dim} (seed ${rng.seed})`);
  });

  it('mean and covariance equal numpy.cov\'s definition, from float32 features too', async () => {
    const rng = freshRandom();
    const count = 37;
    const dim = 300; // over one block of 256 columns (the product stops at the diagonal block by block)
    const data = Float32Array.from({ length: count * dim }, () => 3 + rng.normal());
    const stats = await gaussianStats(featureSet(data, count, dim));
    for (let p = 0; p < dim; p++) {
      let mean = 0;
      for (let i = 0; i < count; i++) mean += data[i * dim + p]!;
      mean /= count;
      assert.ok(Math.abs(stats.mean[p]! - mean) < 1e-12, `mean ${p}`);
      for (let q = 0; q < dim; q++) {
        let cov = 0;
        let meanQ = 0;
        for (let i = 0; i < count; i++) meanQ += data[i * dim + q]!;
        meanQ /= count;
        for (let i = 0; i < count; i++) cov += (data[i * dim + p]! - mean) * (data[i * dim + q]! - meanQ);
        assert.ok(Math.abs(stats.cov[p * dim + q]! - cov / (count - 1)) < 1e-12, `cov ${p},${q}`);
      }
    }
  });

  it('k-NN radii, precision/recall and distances equal brute force across blocks of rows', async () => {
    const rng = freshRandom();
    const dim = 5;
    const real = cloud(rng, 157, dim, 0, randomMatrix(rng, dim, 0.5));
    const fake = cloud(rng, 131, dim, 0.4, randomMatrix(rng, dim, 0.5));
    const seed = `(seed ${rng.seed})`;
    const distances = await squaredDistances(fake, real);
    assert.ok(maxRelative(distances, bruteDistances(fake, real)) < 1e-12, `distances ${seed}`);
    for (const k of [1, 3, 5]) {
      const realRadii = bruteRadii(real, k);
      const fakeRadii = bruteRadii(fake, k);
      let precise = 0;
      for (let j = 0; j < fake.count; j++) if (realRadii.some((r, i) => distances[j * real.count + i]! <= r)) precise++;
      let recalled = 0;
      for (let i = 0; i < real.count; i++) if (fakeRadii.some((r, j) => distances[j * real.count + i]! <= r)) recalled++;
      // Blocks of 2 (fewer rows than k), 7 and 64 rows do not divide 157 or 131; by default, 20 and 17.
      for (const blockRows of [2, 7, 64, undefined]) {
        const counts = await native.precisionRecall(real, fake, k, { blockRows });
        assert.ok(maxRelative(counts.realRadii, realRadii) < 1e-12 && maxRelative(counts.fakeRadii, fakeRadii) < 1e-12, `radii, k ${k}, blocks ${blockRows} ${seed}`);
        assert.equal(counts.precise, precise, `precise, k ${k}, blocks ${blockRows} ${seed}`);
        assert.equal(counts.recalled, recalled, `recalled, k ${k}, blocks ${blockRows} ${seed}`);
        assert.ok(maxRelative(await native.kthNeighbourRadii(real, k, { blockRows }), realRadii) < 1e-12);
      }
      const pr = await precisionRecall(real, fake, k, { realRadii });
      assert.deepEqual(pr, { precision: precise / fake.count, recall: recalled / real.count });
    }
  });

  it('k-NN radii exclude the point itself; accuracy skips null labels', async () => {
    const set = featureSet([0, 1, 3, 7], 4, 1);
    assert.deepEqual([...(await kthNeighbourRadii(set, 1))], [1, 1, 4, 16]);
    assert.deepEqual([...(await kthNeighbourRadii(set, 3))], [49, 36, 16, 49]);
    // A repeated point is its twin's nearest neighbour, at 0; one row per block.
    const twins = featureSet([0, 0, 1, 5], 4, 1);
    assert.deepEqual([...(await native.kthNeighbourRadii(twins, 1, { blockRows: 1 }))], [0, 0, 1, 16]);
    assert.deepEqual([...(await native.kthNeighbourRadii(twins, 2, { blockRows: 1 }))], [1, 1, 1, 25]);
    const logits = [2, 1, 0, /**/ 0, 0, 3, /**/ 1, 5, 0];
    assert.equal(classifierAccuracy(logits, 3, [0, 1, null]), 0.5);
    assert.ok(Number.isNaN(classifierAccuracy(logits, 3, [null, null, null])));
  });

  // The Fréchet distance's factor and eigensolver may take every BLAS thread
  // while no other job runs (native/src/runtime/blas_gate.h): the BLAS
  // thread count is process-wide, and forwards promise the same result
  // whatever runs beside them.
  it('FD beside forwards: the forwards equal the same forwards alone bit for bit, and FD equals FD alone', async () => {
    const rng = freshRandom();
    const [statsA, statsB] = await Promise.all([gaussianStats(wideCloud(rng, 1500, 1024, 0)), gaussianStats(wideCloud(rng, 1500, 1024, 0.1))]);
    const scale = trace(statsA) + trace(statsB);
    using unet = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
    const sets = Array.from({ length: 6 }, () => randomDenoiserInputs(16, [1, 28, 28], rng).tensors());
    try {
      const alone: number[][] = [];
      for (const inputs of sets) {
        using out = (await unet.forward(...inputs)) as Tensor;
        alone.push(Array.from((await out.toArray()) as Float32Array));
      }
      const fdAlone = await frechetDistance(statsA, statsB);
      // Forwards issued before, during and after the statistics, two at a time.
      const beside = frechetDistance(statsA, statsB);
      const outputs: number[][] = [];
      for (let i = 0; i < sets.length; i += 2) {
        const pair = (await Promise.all([unet.forward(...sets[i]!), unet.forward(...sets[i + 1]!)])) as Tensor[];
        for (const out of pair) {
          outputs.push(Array.from((await out.toArray()) as Float32Array));
          out.dispose();
        }
      }
      const fdBeside = await beside;
      for (let i = 0; i < sets.length; i++) assert.deepEqual(outputs[i], alone[i], `forward ${i} beside FD (seed ${rng.seed})`);
      // Without every BLAS thread (another job was running) the eigensolver splits its work otherwise: round-off only.
      assert.ok(Math.abs(fdBeside - fdAlone) <= 1e-12 * scale, `FD ${fdBeside} beside forwards vs ${fdAlone} alone (seed ${rng.seed})`);
    } finally {
      for (const t of sets.flat()) t.dispose();
    }
  });

  it('bad input rejects with ERR_INVALID_ARGUMENT naming the problem and the fix', async () => {
    const rng = freshRandom();
    const good = cloud(rng, 20, 4, 0, randomMatrix(rng, 4, 0.3));
    const wide = cloud(rng, 20, 5, 0, randomMatrix(rng, 5, 0.3));
    const withNaN = featureSet(Float64Array.from(good.data), good.count, good.dim);
    withNaN.data[13 * 4 + 2] = NaN;
    const stats = await gaussianStats(good);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => gaussianStats({ ...good, count: 21 }), /features: 80 values do not make 21 vectors of 4\. Fix: give data of count × dim values/],
      [() => gaussianStats(featureSet(good.data.subarray(0, 4), 1, 4)), /features: 1 feature vector\(s\); a covariance needs at least two\. Fix/],
      [() => gaussianStats(withNaN, { name: 'samples' }), /samples: row 13 holds NaN or infinity\. Fix: drop or recompute/],
      [() => precisionRecall(withNaN, good), /the real set: row 13 holds NaN or infinity/],
      [async () => frechetDistance(stats, await gaussianStats(wide)), /the first statistics have 4-d features and the second 5-d\. Fix: take both from the same feature extractor/],
      [() => frechetDistance(stats, { ...stats, cov: stats.cov.subarray(1) }), /the second statistics: a 4-d Gaussian needs 4 mean values and 4×4 covariance values; got 4 and 15/],
      [() => precisionRecall(good, wide), /the real vectors have 4-d features and the generated 5-d/],
      [() => precisionRecall(good, featureSet(good.data.subarray(0, 12), 3, 4)), /the generated set: 3 vectors; the k-NN manifolds need more than k = 3\. Fix/],
      [() => kthNeighbourRadii(good, 0), /k 0: must be a whole number ≥ 1/],
      [() => precisionRecall(good, good, 3, { realRadii: new Float64Array(3) }), /realRadii: 3 radii for 20 real vectors/],
      [async () => native.precisionRecall(good, good, 3, { blockRows: 0 }), /blockRows must be at least 1/],
      [async () => native.featureMoments({ data: new Int32Array(8) as unknown as Float64Array, count: 2, dim: 4 }), /must be a Float32Array or a Float64Array/],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(isTorchGuidanceError(error, 'ERR_INVALID_ARGUMENT'), String(error));
        assert.match((error as Error).message, message);
        return true;
      });
    }
  });
});
