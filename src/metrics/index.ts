/** Sample-quality metrics: an evaluation classifier, FD and precision/recall off the event loop, image sets from disk. */
export { Classifier, loadClassifier, type ClassifierScores, type ScoreOptions } from './classifier.js';
export { evaluateImages, type EvaluateImagesOptions, type ImageEvaluation } from './evaluate.js';
export { featureMetrics, type FeatureMatrix, type FeatureMetrics, type FeatureMetricsOptions } from './feature-metrics.js';
export { readImageSet, type ImageSet, type ImageSetOptions } from '../io/image-sets.js';
