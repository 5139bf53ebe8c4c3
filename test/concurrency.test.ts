import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { autoguidance, cfg, icg, liveHandles, loadModel, pag, sag, sample, seg, type SampleOptions } from '../src/index.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);

describe('concurrency', function () {
  this.timeout(300_000);

  it('8 simultaneous sample() calls on one model equal the same calls in sequence', async () => {
    using model = await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' });
    using guide = await loadModel(fixture('tiny-unet-v.pt'), { device: 'cpu' });
    const rng = freshRandom();
    const seed = rng.seed;
    const label = () => Math.floor(rng.next() * 10);
    const calls: SampleOptions[] = [
      { model, labels: [label(), label()], seed, sampler: { name: 'euler', steps: 3 } },
      { model, guidance: [cfg({ scale: 2 + rng.next() })], labels: [label(), null], seed: seed + 1, sampler: { name: 'heun', steps: 2 } },
      { model, guidance: [pag({ scale: 2 })], labels: [label()], seed: seed + 2, sampler: { name: 'euler_ancestral', steps: 3 } },
      { model, guidance: [seg({ scale: 2, sigma: 2 })], labels: [label(), label(), label()], seed: seed + 3, sampler: { name: 'ddim', steps: 3 } },
      { model, guidance: [sag()], labels: [label(), label()], seed: seed + 4, sampler: { name: 'euler', steps: 3 } },
      { model, guidance: [icg({ scale: 2 })], labels: [label(), label()], seed: seed + 5, sampler: { name: 'dpmpp_2m', steps: 3 } },
      { model, guidance: [autoguidance({ guide, scale: 2 })], labels: [label()], seed: seed + 6, sampler: { name: 'euler', steps: 3 } },
      { model, guidance: [cfg({ scale: 3 }), pag({ scale: 1 })], count: 3, seed: seed + 7, batchSize: 2, sampler: { name: 'euler_ancestral', steps: 2 } },
    ];
    const before = liveHandles().tensors;
    const pixels = async (options: SampleOptions) => {
      const { images } = await sample(options);
      try {
        return (await images.toArray()) as Float32Array;
      } finally {
        images.dispose();
      }
    };
    const sequential: Float32Array[] = [];
    for (const options of calls) sequential.push(await pixels(options));
    const forwardsBefore = model.forwardCount;
    const concurrent = await Promise.all(calls.map(pixels));
    assert.ok(model.forwardCount > forwardsBefore);
    concurrent.forEach((result, i) => assert.deepEqual(result, sequential[i], `call ${i} (seed ${seed})`));
    assert.equal(liveHandles().tensors, before);
  });

  it('the package runs inside worker threads, with the same results as on the main thread', async () => {
    const seed = freshRandom().seed;
    const job = { modelPath: fixture('tiny-unet.pt'), labels: [3, 8], seed, steps: 2 };
    const inWorker = () =>
      new Promise<Float32Array>((resolve, reject) => {
        const worker = new Worker(new URL('./children/worker-entry.mjs', import.meta.url), {
          workerData: { ...job, body: pathToFileURL(join(repoRoot, 'test', 'children', 'worker-sample.ts')).href },
        });
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
      });
    // Two workers at once, each with its own addon instance data, plus the main thread.
    const [a, b] = await Promise.all([inWorker(), inWorker()]);
    using model = await loadModel(job.modelPath, { device: 'cpu' });
    const { images } = await sample({ model, guidance: [cfg({ scale: 2 }), pag({ scale: 2 })], labels: job.labels, seed, sampler: { name: 'euler_ancestral', steps: 2 } });
    const here = (await images.toArray()) as Float32Array;
    images.dispose();
    assert.deepEqual(a, here, `worker 1 (seed ${seed})`);
    assert.deepEqual(b, here, `worker 2 (seed ${seed})`);
  });
});
