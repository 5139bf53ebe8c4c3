/**
 * Scores a set of 8-bit samples against a set of real images with an
 * evaluation classifier: the Fréchet distance between Gaussians fitted to
 * the classifier's features (FD; with Inception features this would be FID),
 * precision and recall with k-NN manifolds, and the share of samples the
 * classifier puts in the class they were asked for.
 *
 * The classifier runs off the event loop like every model call, and the
 * statistics run as native jobs on torch threads (./feature-metrics.ts), so an
 * application can score tens of thousands of samples while it serves.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { UInt8Batch } from '../image/from-tensor.js';
import type { Classifier } from './classifier.js';
import { featureMetrics, resolveMetricOptions, type FeatureMetrics } from './feature-metrics.js';
import { classifierAccuracy } from './statistics.js';

/** Options of {@link evaluateImages}. */
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

/** What {@link evaluateImages} measures. */
export interface ImageEvaluation extends FeatureMetrics {
  sampleCount: number;
  referenceCount: number;
  featureDim: number;
  /** Share of labelled samples classified as their label; null without labels. */
  accuracy: number | null;
}

/**
 * Scores 8-bit samples against real images in an evaluation classifier's
 * features: Fréchet distance, precision and recall, and, with labels, the
 * share classified as their label. The classifier runs on a torch thread, the
 * statistics too.
 */
export async function evaluateImages(options: EvaluateImagesOptions): Promise<ImageEvaluation> {
  const { classifier, samples, reference, labels, signal } = options;
  const labelled = labels !== undefined && labels.some((l) => l !== null);
  if (labels !== undefined && labels.length !== samples.count) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${labels.length} labels for ${samples.count} samples. Fix: give one label (or null) per sample.`);
  }
  // Bad k or manifold size fail now, not after minutes of scoring.
  resolveMetricOptions(samples.count, reference.count, options);
  // Logits only where accuracy needs them.
  const fake = await classifier.score(samples, { signal, logits: labelled });
  const real = await classifier.score(reference, { signal, logits: false });
  const metrics = await featureMetrics(
    { data: fake.features, count: fake.count, dim: fake.featureDim },
    { data: real.features, count: real.count, dim: real.featureDim },
    { k: options.k, manifoldSize: options.manifoldSize, signal },
  );
  const accuracy = labelled ? classifierAccuracy(fake.logits, fake.classes, labels) : null;
  return { sampleCount: fake.count, referenceCount: real.count, featureDim: fake.featureDim, accuracy, ...metrics };
}
