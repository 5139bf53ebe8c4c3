/**
 * Scoring samples: FD, precision/recall and accuracy in the evaluation
 * classifier's features, against the Fashion-MNIST test split, next to the
 * same number of real images as a yardstick (FD depends on the count).
 *
 *   npx tsx examples/evaluate.ts [count] [steps]
 *
 * Needs the data set: apt-get install dataset-fashion-mnist (or FASHION_MNIST_DIR).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cfg, loadModel, sample } from 'torch-guidance';
import { toUint8Batch } from 'torch-guidance/image';
import { readImageSet } from 'torch-guidance/io';
import { evaluateImages, loadClassifier } from 'torch-guidance/metrics';

const count = Number(process.argv[2] ?? 100);
const steps = Number(process.argv[3] ?? 10);
const shipped = (file: string) => fileURLToPath(import.meta.resolve(`torch-guidance/models/${file}`));
const data = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

using model = await loadModel(shipped('fashion-unet.pt'));
using classifier = await loadClassifier(shipped('fashion-classifier.pt')); // a card of kind 'classifier' + features()
const labels = Array.from({ length: count }, (_, i) => i % 10);
const { images } = await sample({ model, guidance: [cfg({ scale: 2 })], labels, seed: 0, sampler: { name: 'euler', steps }, clipDenoised: [-1, 1] });
const samples = await toUint8Batch(images); // 8-bit, as samples are saved and compared
images.dispose();

const test = await readImageSet(join(data, 't10k-images-idx3-ubyte.gz')); // or a sample run's folder, an .npz
const scores = await evaluateImages({ classifier, samples, labels, reference: test.images, signal: AbortSignal.timeout(300_000) });
console.log(`samples:     FD ${scores.fd.toFixed(2)}, accuracy ${scores.accuracy?.toFixed(3)}, precision ${scores.precision.toFixed(3)}, recall ${scores.recall.toFixed(3)}`);

// The yardstick: as many real (training) images, scored the same way.
const train = await readImageSet(join(data, 'train-images-idx3-ubyte.gz'));
const plane = train.images.height * train.images.width * train.images.channels;
const real = { ...train.images, count, data: train.images.data.subarray(0, count * plane) };
const yardstick = await evaluateImages({ classifier, samples: real, reference: test.images });
console.log(`real images: FD ${yardstick.fd.toFixed(2)}, precision ${yardstick.precision.toFixed(3)}, recall ${yardstick.recall.toFixed(3)}`);
