/**
 * FD and precision/recall between two sets of feature vectors, off the event
 * loop: the statistics are seconds of float64 linear algebra for tens of
 * thousands of vectors, so they run on torch threads as native jobs
 * (./statistics.ts, native/src/ops/feature_statistics.h) and the caller's
 * event loop stays free. The two Gaussians are fitted at once, one per
 * torch thread.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { featureSet, frechetDistance, gaussianStats, precisionRecall, selectRows } from './statistics.js';

/** `count` feature vectors of `dim` values, row-major (what `Classifier.score` returns as `features`). */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  count: number;
  dim: number;
}

/** Options of {@link featureMetrics}. */
export interface FeatureMetricsOptions {
  /** k of the k-NN manifolds (default 3, as Kynkäänniemi et al.). */
  k?: number;
  /**
   * Most vectors of each set in precision/recall (default 2000): its cost is
   * quadratic, and it depends on the set size, so both sets use the same
   * size, taken evenly spaced through each set (a set sorted by class still
   * gives every class).
   */
  manifoldSize?: number;
  signal?: AbortSignal;
}

/** Fréchet distance and k-NN precision/recall of two sets of feature vectors. */
export interface FeatureMetrics {
  /** Fréchet distance between Gaussians fitted to all samples and all reference vectors. */
  fd: number;
  /** Share of samples inside the reference's k-NN manifold. */
  precision: number;
  /** Share of reference vectors inside the samples' k-NN manifold. */
  recall: number;
  /** Vectors of each set in precision/recall, and its k. */
  manifoldSize: number;
  k: number;
}

/** `m` indices spread evenly over [0, count): floor(i · count / m). */
export function spacedIndices(count: number, m: number): number[] {
  return Array.from({ length: m }, (_, i) => Math.floor((i * count) / m));
}

function invalid(message: string): TorchGuidanceError {
  return new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, message);
}

/**
 * k and the manifold size with their defaults, checked against the set sizes
 * (known before any feature is computed, so callers can refuse bad options
 * before minutes of scoring); throws ERR_INVALID_ARGUMENT naming the problem.
 */
export function resolveMetricOptions(sampleCount: number, referenceCount: number, options: Omit<FeatureMetricsOptions, 'signal'>): { k: number; manifoldSize: number } {
  const k = options.k ?? 3;
  if (!Number.isInteger(k) || k < 1) throw invalid(`k ${k}: must be a whole number ≥ 1. Fix: pass k like 3 (the paper's).`);
  for (const [name, count] of [['samples', sampleCount], ['reference', referenceCount]] as const) {
    if (count <= k) throw invalid(`${name}: ${count} vectors; the k-NN manifolds need more than k = ${k}. Fix: evaluate more images.`);
  }
  const manifoldSize = Math.min(options.manifoldSize ?? 2000, sampleCount, referenceCount);
  if (!Number.isInteger(manifoldSize) || manifoldSize <= k) {
    throw invalid(`manifoldSize ${options.manifoldSize}: needs a whole number above k = ${k}. Fix: pass a larger manifoldSize (default 2000).`);
  }
  return { k, manifoldSize };
}

/** The options with their defaults, after checking both sets' shapes and sizes. */
function checked(samples: FeatureMatrix, reference: FeatureMatrix, options: Omit<FeatureMetricsOptions, 'signal'>): { k: number; manifoldSize: number } {
  for (const [name, set] of [['samples', samples], ['reference', reference]] as const) {
    if (!Number.isInteger(set.count) || !Number.isInteger(set.dim) || set.dim < 1 || set.data.length !== set.count * set.dim) {
      throw invalid(`${name}: ${set.data.length} values do not make ${set.count} vectors of ${set.dim}. Fix: give data of count × dim values, row-major.`);
    }
  }
  if (samples.dim !== reference.dim) throw invalid(`samples have ${samples.dim}-d features and the reference ${reference.dim}-d. Fix: score both with the same classifier.`);
  return resolveMetricOptions(samples.count, reference.count, options);
}

/**
 * FD and precision/recall of `samples` against `reference`, computed on
 * torch threads. Bad sets reject at once with ERR_INVALID_ARGUMENT; an abort
 * rejects with ERR_ABORTED at once and stops the computation at its next
 * block of rows.
 */
export async function featureMetrics(samples: FeatureMatrix, reference: FeatureMatrix, options: FeatureMetricsOptions = {}): Promise<FeatureMetrics> {
  const { k, manifoldSize } = checked(samples, reference, options);
  const { signal } = options;
  const fake = featureSet(samples.data, samples.count, samples.dim);
  const real = featureSet(reference.data, reference.count, reference.dim);
  const [realStats, fakeStats] = await Promise.all([
    gaussianStats(real, { name: 'reference', signal }),
    gaussianStats(fake, { name: 'samples', signal }),
  ]);
  const fd = await frechetDistance(realStats, fakeStats, { signal });
  const { precision, recall } = await precisionRecall(
    selectRows(real, spacedIndices(real.count, manifoldSize)),
    selectRows(fake, spacedIndices(fake.count, manifoldSize)),
    k,
    { signal },
  );
  return { fd, precision, recall, manifoldSize, k };
}
