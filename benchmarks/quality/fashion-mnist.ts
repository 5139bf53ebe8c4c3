/**
 * Fashion-MNIST from Debian's `dataset-fashion-mnist` package (gzipped IDX
 * files, the reader of models/train/fmnist.py in TypeScript).
 *
 *   apt-get install -y dataset-fashion-mnist   (or set FASHION_MNIST_DIR)
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { parseIdx, type IdxArray } from '../../src/io/idx.js';

export const FASHION_MNIST_DIR = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

export const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const FILES = {
  train: ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
  test: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
} as const;

export type Split = keyof typeof FILES;

export interface FashionMnist {
  /** Images [count, 28, 28] as uint8, row-major. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

function readIdx(path: string): IdxArray {
  try {
    return parseIdx(readFileSync(path), path);
  } catch (error) {
    throw new Error(`${(error as Error).message} (apt-get install -y dataset-fashion-mnist, or set FASHION_MNIST_DIR)`);
  }
}

export function loadFashionMnist(split: Split): FashionMnist {
  const [imageFile, labelFile] = FILES[split];
  const images = readIdx(join(FASHION_MNIST_DIR, imageFile));
  const labels = readIdx(join(FASHION_MNIST_DIR, labelFile));
  const [count, height, width] = images.shape as [number, number, number];
  if (labels.shape[0] !== count) throw new Error(`${split}: ${count} images but ${labels.shape[0]} labels`);
  return { images: images.data, labels: labels.data, count, height, width };
}

/** Size and modification time of a split's files: part of the cache key. */
export function splitFingerprint(split: Split): string {
  return FILES[split].map((f) => {
    const s = statSync(join(FASHION_MNIST_DIR, f));
    return `${f}:${s.size}:${Math.floor(s.mtimeMs)}`;
  }).join(',');
}

/**
 * The first `perClass` indices of each class in file order, class by class
 * (a fixed, class-balanced subset: the real set for precision/recall).
 */
export function stratifiedIndices(labels: Uint8Array, perClass: number, classes = 10): number[] {
  const picked: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((label, i) => {
    if (label < classes && picked[label]!.length < perClass) picked[label]!.push(i);
  });
  for (const [c, list] of picked.entries()) if (list.length < perClass) throw new Error(`class ${c} has only ${list.length} images, ${perClass} asked`);
  return picked.flat();
}
