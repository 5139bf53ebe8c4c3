/** Samples one setting with sample() and scores the samples with the classifier. */
import { sample } from '../../src/index.js';
import { toUint8Batch, type UInt8Batch } from '../../src/image/index.js';
import type { Classifier, ClassifierScores as Scored } from '../../src/metrics/classifier.js';
import type { Models, Setting } from './sweep.js';

export interface SamplerChoice {
  name: 'euler' | 'ddim';
  steps: number;
}

export interface SampledSetting {
  scored: Scored;
  labels: (number | null)[];
  /** The first few samples as uint8 [28, 28] each, for the picture. */
  preview: Uint8Array[];
  forwards: number;
  seconds: number;
}

/** Sample i asks for class i mod 10 (any prefix is class-balanced), or the null label. */
export function labelsFor(n: number, unconditional: boolean, classes = 10): (number | null)[] {
  return Array.from({ length: n }, (_, i) => (unconditional ? null : i % classes));
}

export async function sampleSetting(
  setting: Setting,
  models: Models,
  classifier: Classifier,
  options: { n: number; seed: number; sampler: SamplerChoice; batchSize: number; previewCount?: number },
): Promise<SampledSetting> {
  const labels = labelsFor(options.n, setting.family.unconditional);
  const started = performance.now();
  const result = await sample({
    model: models.main,
    guidance: setting.strategies(models),
    sampler: { name: options.sampler.name, steps: options.sampler.steps },
    labels,
    seed: options.seed,
    batchSize: options.batchSize,
    clipDenoised: [-1, 1],
  });
  // 8 bits, like the data they are compared with (and like a saved PNG).
  let images: UInt8Batch;
  try {
    images = await toUint8Batch(result.images, { range: [-1, 1] });
  } finally {
    result.images.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const scored = await classifier.score(images);
  const plane = images.height * images.width * images.channels;
  const preview = Array.from({ length: Math.min(options.previewCount ?? 10, options.n) }, (_, i) => images.data.slice(i * plane, (i + 1) * plane));
  return { scored, labels, preview, forwards: result.forwards, seconds };
}
