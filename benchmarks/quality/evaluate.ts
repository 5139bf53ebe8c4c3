/** One setting's metrics from the classifier's scores of its samples. */
import type { ClassifierScores as Scored } from '../../src/metrics/classifier.js';
import { classifierAccuracy, featureSet, frechetDistance, gaussianStats, precisionRecall } from '../../src/metrics/statistics.js';
import type { Reference } from './reference.js';

export interface Metrics {
  /** Samples evaluated. */
  n: number;
  /** Fréchet distance to the test split in the classifier's 256-d features. */
  fd: number;
  /** Fraction classified as the requested class; null for null-label samples. */
  accuracy: number | null;
  precision: number;
  recall: number;
}

export async function evaluate(scored: Scored, labels: readonly (number | null)[], ref: Reference): Promise<Metrics> {
  const fake = featureSet(scored.features, scored.count, scored.featureDim);
  const fd = await frechetDistance(ref.stats, await gaussianStats(fake, { name: 'samples' }));
  const { precision, recall } = await precisionRecall(ref.real, fake, ref.k, { realRadii: ref.realRadii });
  const accuracy = labels.some((l) => l !== null) ? classifierAccuracy(scored.logits, scored.classes, labels) : null;
  return { n: scored.count, fd, accuracy, precision, recall };
}
