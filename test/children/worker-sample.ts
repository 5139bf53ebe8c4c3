// Runs in a worker thread (test/concurrency.test.ts): loads the package,
// samples with the options it is sent, and posts the pixels back.
import { parentPort, workerData } from 'node:worker_threads';

import { cfg, loadModel, pag, sample } from '../../src/index.js';

const { modelPath, labels, seed, steps } = workerData as { modelPath: string; labels: number[]; seed: number; steps: number };
using model = await loadModel(modelPath, { device: 'cpu' });
const result = await sample({ model, guidance: [cfg({ scale: 2 }), pag({ scale: 2 })], labels, seed, sampler: { name: 'euler_ancestral', steps } });
const pixels = (await result.images.toArray()) as Float32Array;
result.images.dispose();
parentPort!.postMessage(pixels);
