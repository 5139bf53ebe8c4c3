/**
 * Scores a set of 8-bit samples against a set of real images with an
 * evaluation classifier: the Fréchet distance between Gaussians fitted to
 * the classifier's features (FD; with Inception features this would be FID),
 * precision and recall with k-NN manifolds, and the share of samples the
 * classifier puts in the class they were asked for.
 *
 * The statistics are plain TypeScript on the calling thread (seconds for tens
 * of thousands of samples), which is why this serves the command line and
 * the benchmarks and is not part of the package's API.
 */
import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import type { Classifier } from './classifier.js';
import { classifierAccuracy, featureSet, frechetDistance, gaussianStats, precisionRecall, selectRows } from './statistics.js';

export interface EvaluateImagesOptions {
  classifier: Classifier;
  samples: UInt8Batch;
  /** The class each sample was asked for (null: none); accuracy is left out without them. */
  labels?: readonly (number | null)[];
  /** Real images to compare with. */
  reference: UInt8Batch;
  /** k of the k-NN manifolds (default 3, as Kynkäänniemi et al.). */
  k?: number;
  /**
   * Most images of each set in precision/recall (default 2000): its cost is
   * quadratic, and it depends on the set size, so both sets use the same
   * size, taken evenly spaced through each set (a file sorted by class still
   * gives every class).
   */
  manifoldSize?: number;
  signal?: AbortSignal;
}

export interface ImageEvaluation {
  sampleCount: number;
  referenceCount: number;
  featureDim: number;
  /** Fréchet distance in the classifier's features, all samples against all reference images. */
  fd: number;
  /** Share of labelled samples classified as their label; null without labels. */
  accuracy: number | null;
  precision: number;
  recall: number;
  /** Images of each set in precision/recall, and its k. */
  manifoldSize: number;
  k: number;
}

/** `m` indices spread evenly over [0, count): floor(i · count / m). */
export function spacedIndices(count: number, m: number): number[] {
  return Array.from({ length: m }, (_, i) => Math.floor((i * count) / m));
}

export async function evaluateImages(options: EvaluateImagesOptions): Promise<ImageEvaluation> {
  const { classifier, samples, reference, labels, signal } = options;
  const k = options.k ?? 3;
  const labelled = labels !== undefined && labels.some((l) => l !== null);
  if (labels !== undefined && labels.length !== samples.count) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${labels.length} labels for ${samples.count} samples. Fix: give one label (or null) per sample.`);
  }
  // Logits only where accuracy needs them.
  const fake = await classifier.score(samples, { signal, logits: labelled });
  const real = await classifier.score(reference, { signal, logits: false });
  const fakeSet = featureSet(fake.features, fake.count, fake.featureDim);
  const realSet = featureSet(real.features, real.count, real.featureDim);
  const fd = frechetDistance(gaussianStats(realSet), gaussianStats(fakeSet));
  const m = Math.min(options.manifoldSize ?? 2000, fake.count, real.count);
  const { precision, recall } = precisionRecall(selectRows(realSet, spacedIndices(real.count, m)), selectRows(fakeSet, spacedIndices(fake.count, m)), k);
  const accuracy = labelled ? classifierAccuracy(fake.logits, fake.classes, labels) : null;
  return { sampleCount: fake.count, referenceCount: real.count, featureDim: fake.featureDim, fd, accuracy, precision, recall, manifoldSize: m, k };
}
