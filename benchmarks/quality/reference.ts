/**
 * Reference statistics: the classifier's features of the Fashion-MNIST test
 * split (10,000 images), computed once and cached under
 * benchmarks/quality/cache/ (keyed by the classifier's SHA-256 and the data
 * files), and what the metrics need from them: the Gaussian (mean and
 * covariance) for the Fréchet distance, and a fixed
 * class-balanced subset of N images with their k-NN radii for
 * precision/recall.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Classifier, ClassifierScores as Scored } from '../../src/metrics/classifier.js';
import { loadFashionMnist, splitFingerprint, stratifiedIndices, type Split } from './fashion-mnist.js';
import { featureSet, gaussianStats, kthNeighbourRadii, selectRows, type FeatureSet, type GaussianStats } from '../../src/metrics/statistics.js';

export const CACHE_DIR = join(import.meta.dirname, 'cache');

export interface Reference {
  /** Gaussian of the whole test split's features. */
  stats: GaussianStats;
  /** The class-balanced real subset (N images) for precision/recall, and its k-NN radii. */
  real: FeatureSet;
  realRadii: Float64Array;
  k: number;
  /** Test accuracy of the classifier on the whole split (a sanity check against its card). */
  testAccuracy: number;
  /** Where the features came from ('cache' or 'computed') and the seconds it took. */
  source: string;
  seconds: number;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The classifier's scores of a whole split, from the cache or computed (and cached). */
export async function splitScores(classifier: Classifier, split: Split): Promise<{ scored: Scored; labels: Uint8Array; cached: boolean }> {
  const data = loadFashionMnist(split);
  const key = createHash('sha256').update(`${sha256(classifier.path)}|${splitFingerprint(split)}`).digest('hex').slice(0, 16);
  const base = join(CACHE_DIR, `${split}-${key}`);
  if (existsSync(`${base}.json`) && existsSync(`${base}.features.bin`) && existsSync(`${base}.logits.bin`)) {
    const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as { count: number; classes: number; featureDim: number };
    const read = (path: string) => {
      const bytes = readFileSync(path);
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    };
    return { scored: { ...meta, features: read(`${base}.features.bin`), logits: read(`${base}.logits.bin`) }, labels: data.labels, cached: true };
  }
  const scored = await classifier.score({ data: data.images, count: data.count, height: data.height, width: data.width, channels: 1 });
  mkdirSync(CACHE_DIR, { recursive: true });
  const write = (path: string, bytes: Uint8Array | string) => {
    writeFileSync(`${path}.tmp-${process.pid}`, bytes);
    renameSync(`${path}.tmp-${process.pid}`, path);
  };
  write(`${base}.features.bin`, new Uint8Array(scored.features.buffer, scored.features.byteOffset, scored.features.byteLength));
  write(`${base}.logits.bin`, new Uint8Array(scored.logits.buffer, scored.logits.byteOffset, scored.logits.byteLength));
  write(
    `${base}.json`,
    JSON.stringify({ count: scored.count, classes: scored.classes, featureDim: scored.featureDim, classifier: classifier.path, split, created: new Date().toISOString() }),
  );
  return { scored, labels: data.labels, cached: false };
}

/** Reference statistics for N generated samples per setting. */
export async function reference(classifier: Classifier, n: number, k: number): Promise<Reference> {
  const started = performance.now();
  const { scored, labels, cached } = await splitScores(classifier, 'test');
  const all = featureSet(scored.features, scored.count, scored.featureDim);
  const stats = await gaussianStats(all, { name: 'reference' });
  const perClass = Math.ceil(n / scored.classes);
  const real = selectRows(all, stratifiedIndices(labels, perClass, scored.classes).slice(0, n));
  const realRadii = await kthNeighbourRadii(real, k);
  let correct = 0;
  for (let i = 0; i < scored.count; i++) {
    let best = 0;
    for (let c = 1; c < scored.classes; c++) if (scored.logits[i * scored.classes + c]! > scored.logits[i * scored.classes + best]!) best = c;
    if (best === labels[i]) correct++;
  }
  return {
    stats,
    real,
    realRadii,
    k,
    testAccuracy: correct / scored.count,
    source: cached ? 'cache' : 'computed',
    seconds: (performance.now() - started) / 1000,
  };
}

/** The classifier's scores of a class-balanced subset of N training images (the real-data row: what real images score at this N). */
export async function trainSubsetScores(classifier: Classifier, n: number): Promise<{ scored: Scored; labels: number[] }> {
  const data = loadFashionMnist('train');
  const indices = stratifiedIndices(data.labels, Math.ceil(n / 10)).slice(0, n);
  const plane = data.height * data.width;
  const images = new Uint8Array(indices.length * plane);
  indices.forEach((index, i) => images.set(data.images.subarray(index * plane, (index + 1) * plane), i * plane));
  const scored = await classifier.score({ data: images, count: indices.length, height: data.height, width: data.width, channels: 1 });
  return { scored, labels: indices.map((i) => data.labels[i]!) };
}
