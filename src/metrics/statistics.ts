/**
 * Sample-quality metrics on feature vectors, in float64 on a torch thread
 * (native/src/ops/feature_statistics.h), so that the event loop stays free:
 *
 * - the Fréchet distance between Gaussians fitted to two feature sets
 *   (Heusel et al. 2017; FID in Inception's features);
 * - precision and recall with k-nearest-neighbour manifolds
 *   (Kynkäänniemi et al. 2019, k = 3), in blocks of rows, so that 50,000
 *   against 50,000 vectors never hold their 50,000 × 50,000 distances;
 * - classifier accuracy against the requested class (plain TypeScript).
 *
 * Feature sets are row-major [count, dim]; covariances row-major dim × dim.
 * Bad input rejects with ERR_INVALID_ARGUMENT naming the problem and the fix;
 * an abort through `signal` rejects with ERR_ABORTED at once and stops the
 * native computation at its next block.
 */

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { native } from '../core/native/binding.js';
import { classifierAgreement } from './classifier-agreement.js';

/** A feature set: `count` rows of `dim` values, row-major. Float32 features are widened to float64 natively. */
export interface FeatureSet {
  count: number;
  dim: number;
  data: Float32Array | Float64Array;
}

/** The Gaussian fitted to a feature set, as FD uses it. */
export interface GaussianStats {
  dim: number;
  /** Number of feature vectors the statistics come from. */
  count: number;
  mean: Float64Array;
  /** Unbiased (divides by count − 1), as numpy.cov; dim × dim, row-major. */
  cov: Float64Array;
}

/** Options of the asynchronous statistics. */
export interface StatisticsOptions {
  /** Rejects with ERR_ABORTED when it fires, and stops the native computation at its next block. */
  signal?: AbortSignal;
}

function invalid(message: string): TorchGuidanceError {
  return new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, message);
}

/** Throws ERR_INVALID_ARGUMENT unless `set` is `count` whole rows of `dim` values. */
function checkSet(set: FeatureSet, name: string): void {
  if (!Number.isInteger(set.count) || set.count < 0 || !Number.isInteger(set.dim) || set.dim < 1 || set.data.length !== set.count * set.dim) {
    throw invalid(`${name}: ${set.data.length} values do not make ${set.count} vectors of ${set.dim}. Fix: give data of count × dim values, row-major.`);
  }
}

function checkSameWidth(a: { dim: number }, b: { dim: number }, names: [string, string]): void {
  if (a.dim !== b.dim) {
    throw invalid(`${names[0]} have ${a.dim}-d features and ${names[1]} ${b.dim}-d. Fix: take both from the same feature extractor.`);
  }
}

function checkK(k: number, set: FeatureSet, name: string): void {
  if (!Number.isInteger(k) || k < 1) throw invalid(`k ${k}: must be a whole number ≥ 1. Fix: pass k like 3 (the paper's).`);
  if (set.count <= k) throw invalid(`${name}: ${set.count} vectors; the k-NN manifolds need more than k = ${k}. Fix: use more vectors or a smaller k.`);
}

/**
 * A feature set over `data` (count × dim values, row-major). Float32Array and
 * Float64Array data are used as they are (the native side copies them when a
 * computation starts); other array-likes are copied into a Float64Array.
 */
export function featureSet(data: ArrayLike<number>, count: number, dim: number): FeatureSet {
  const values = data instanceof Float32Array || data instanceof Float64Array ? data : Float64Array.from(data);
  const set = { count, dim, data: values };
  checkSet(set, 'features');
  return set;
}

/** The rows `indices` of a feature set, in that order (in the set's own array type). */
export function selectRows(set: FeatureSet, indices: readonly number[]): FeatureSet {
  const data = new (set.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(indices.length * set.dim);
  indices.forEach((row, i) => data.set(set.data.subarray(row * set.dim, (row + 1) * set.dim), i * set.dim));
  return { count: indices.length, dim: set.dim, data };
}

/**
 * Mean and unbiased covariance (numpy.cov(rowvar=False)) in float64, on a
 * torch thread. `name` names the set in errors (fewer than two vectors, a
 * row holding NaN or infinity).
 */
export async function gaussianStats(set: FeatureSet, options: StatisticsOptions & { name?: string } = {}): Promise<GaussianStats> {
  const name = options.name ?? 'features';
  checkSet(set, name);
  if (set.count < 2) throw invalid(`${name}: ${set.count} feature vector(s); a covariance needs at least two. Fix: pass more vectors.`);
  const { mean, cov } = await native.featureMoments(set, { name, signal: options.signal });
  return { dim: set.dim, count: set.count, mean, cov };
}

function checkStats(stats: GaussianStats, name: string): void {
  if (!Number.isInteger(stats.dim) || stats.dim < 1 || stats.mean.length !== stats.dim || stats.cov.length !== stats.dim * stats.dim) {
    throw invalid(
      `${name}: a ${stats.dim}-d Gaussian needs ${stats.dim} mean values and ${stats.dim}×${stats.dim} covariance values; got ${stats.mean.length} and ${stats.cov.length}. Fix: pass what gaussianStats returns.`,
    );
  }
}

/**
 * Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2):
 * ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½, in float64 on a torch thread.
 * tr (Σ1 Σ2)^½ is the sum of the square roots of the eigenvalues of Lᵀ Σ2 L
 * with Σ1 = L Lᵀ (Cholesky), a symmetric PSD matrix similar to Σ1 Σ2; where
 * both covariances are singular, of Σ1^½ Σ2 Σ1^½ (native/src/ops/feature_statistics.cpp
 * says why). The covariances must be symmetric, as gaussianStats returns them.
 */
export async function frechetDistance(s1: GaussianStats, s2: GaussianStats, options: StatisticsOptions = {}): Promise<number> {
  checkStats(s1, 'the first statistics');
  checkStats(s2, 'the second statistics');
  checkSameWidth(s1, s2, ['the first statistics', 'the second']);
  const { distance } = await native.frechetDistance(s1, s2, { signal: options.signal });
  return distance;
}

/**
 * Squared Euclidean distances between every row of `a` and every row of `b`,
 * [a.count, b.count] row-major, in float64 on a torch thread. The whole
 * matrix at once: for sets that can hold it (precisionRecall works in blocks).
 */
export async function squaredDistances(a: FeatureSet, b: FeatureSet, options: StatisticsOptions = {}): Promise<Float64Array> {
  checkSet(a, 'the first set');
  checkSet(b, 'the second set');
  checkSameWidth(a, b, ['the first set', 'the second']);
  return native.squaredDistances(a, b, { signal: options.signal });
}

/**
 * Squared distance from each row to its k-th nearest other row of the same
 * set (the radius of its k-NN ball), in float64 on a torch thread.
 */
export async function kthNeighbourRadii(set: FeatureSet, k: number, options: StatisticsOptions = {}): Promise<Float64Array> {
  checkSet(set, 'the set');
  checkK(k, set, 'the set');
  return native.kthNeighbourRadii(set, k, { signal: options.signal });
}

/** Improved precision and recall of a generated set against a real one. */
export interface PrecisionRecall {
  /** Fraction of generated samples inside the real manifold (some real sample's k-NN ball). */
  precision: number;
  /** Fraction of real samples inside the generated manifold. */
  recall: number;
}

/** Options of {@link precisionRecall}. */
export interface PrecisionRecallOptions extends StatisticsOptions {
  /** The real set's k-NN radii for this k (kthNeighbourRadii), when the real set is fixed and they are known. */
  realRadii?: Float64Array;
}

/**
 * Improved precision and recall (Kynkäänniemi et al. 2019): each set's
 * manifold is the union of balls around its points with the distance to the
 * k-th nearest neighbour as radius (boundary included, as the reference
 * code), in float64 on a torch thread, in blocks of rows.
 */
export async function precisionRecall(real: FeatureSet, fake: FeatureSet, k = 3, options: PrecisionRecallOptions = {}): Promise<PrecisionRecall> {
  checkSet(real, 'the real set');
  checkSet(fake, 'the generated set');
  checkSameWidth(real, fake, ['the real vectors', 'the generated']);
  checkK(k, real, 'the real set');
  checkK(k, fake, 'the generated set');
  if (options.realRadii !== undefined && options.realRadii.length !== real.count) {
    throw invalid(`realRadii: ${options.realRadii.length} radii for ${real.count} real vectors. Fix: pass the radii of this real set, or none.`);
  }
  const counts = await native.precisionRecall(real, fake, k, { realRadii: options.realRadii, signal: options.signal });
  return { precision: counts.precise / fake.count, recall: counts.recalled / real.count };
}

/** Fraction of rows of `logits` [labels.length, classes] whose argmax is the requested label; null labels are skipped (NaN if none). */
export function classifierAccuracy(logits: ArrayLike<number>, classes: number, labels: readonly (number | null)[]): number {
  const { agree, of } = classifierAgreement(logits, classes, labels);
  return of === 0 ? NaN : agree / of;
}
