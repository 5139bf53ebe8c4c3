import assert from 'node:assert/strict';

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  cfg,
  decodePng,
  evaluateImages,
  explain,
  imageGrid,
  liveHandles,
  loadClassifier,
  loadModel,
  pag,
  readImageSet,
  randn,
  sample,
  tensor,
  toImages,
  toUint8Batch,
  writePng,
  type Strategy,
  type Tensor,
} from '../src/index.js';


/** Live tensors and models (jobs and threads are left out: a torch thread may still be finishing its hand-off). */
function handleCounts() {
  const { tensors, models } = liveHandles();
  return { tensors, models };
}

describe('README example', () => {
  it('runs as written and leaves no handle behind', async () => {
    const before = handleCounts();
    let pixels: Float32Array;
    {
      // ---- the README's example, verbatim except for the import path ----
      using model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'auto' });
      assert.ok(model.card);
      assert.equal(model.methods[0]!.signature, 'forward(x: Tensor, t: Tensor, label: Tensor) -> Tensor');

      const seeds = [11, 12, 13, 14];
      using x = randn([4, 1, 28, 28], { seed: seeds, device: model.device });
      using t = tensor(new Float32Array([999, 999, 999, 999]), [4]);
      using label = tensor(new BigInt64Array([0n, 3n, 7n, 10n]), [4]);

      using eps = await model.forward<Tensor>(x, t, label);
      using scaledEps = eps.mul(0.99);
      using x0 = x.sub(scaledEps);
      pixels = (await x0.toArray()) as Float32Array;
    }
    assert.equal(pixels.length, 4 * 28 * 28);
    assert.ok(pixels.every(Number.isFinite));
    assert.deepEqual(handleCounts(), before);
  });
});

describe('README guided-sampling examples', () => {
  it('sample() with cfg + pag writes a grid PNG and leaves no handle behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-readme-'));
    const before = handleCounts();
    try {
      const progress: number[] = [];
      {
        // ---- the README's example, with 3 steps on the CPU instead of 20 and the file in a temp folder ----
        using model = await loadModel('models/fashion-unet.pt', { device: 'cpu' });
        const result = await sample({
          model,
          guidance: [cfg({ scale: 3 }), pag({ scale: 3 })],
          sampler: { name: 'euler', steps: 3 },
          labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
          seed: 42,
          clipDenoised: [-1, 1],
          signal: AbortSignal.timeout(60_000),
          onProgress: ({ step }) => progress.push(step),
        });
        assert.equal(result.forwards, 3); // stacked: one forward per step
        await writePng(join(dir, 'samples.png'), imageGrid(await toImages(result.images), { columns: 10, scale: 2 }));
        const values = (await result.images.toArray()) as Float32Array;
        assert.ok(values.every((v) => v >= -1 && v <= 1), 'clipDenoised keeps samples in [-1, 1]');
        result.images.dispose();
      }
      assert.deepEqual(progress, [1, 2, 3]);
      const png = decodePng(readFileSync(join(dir, 'samples.png')));
      assert.ok(png.width >= 10 * 56 && png.height >= 56);
      assert.deepEqual(handleCounts(), before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the scoring example runs as written: CFG samples score sanely, and worse than real images', async function () {
    this.timeout(300_000);
    const before = handleCounts();
    let scores, real;
    {
      // ---- the README's scoring example, verbatim except for the import path and the CPU ----
      using model = await loadModel('models/fashion-unet.pt', { device: 'cpu' });
      using classifier = await loadClassifier('models/fashion-classifier.pt', { device: 'cpu' });
      const labels = Array.from({ length: 100 }, (_, i) => i % 10);
      const { images } = await sample({ model, guidance: [cfg({ scale: 2 })], labels, seed: 0, sampler: { name: 'euler', steps: 10 }, clipDenoised: [-1, 1] });
      const samples = await toUint8Batch(images);
      images.dispose();
      const test = await readImageSet('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');
      scores = await evaluateImages({ classifier, samples, labels, reference: test.images, signal: AbortSignal.timeout(120_000) });
      // ---- end of the example ----
      // 100 real images (the training split's first) scored the same way.
      const train = await readImageSet('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz');
      const first = { ...train.images, count: 100, data: train.images.data.subarray(0, 100 * 784) };
      real = await evaluateImages({ classifier, samples: first, reference: test.images });
    }
    assert.equal(scores.sampleCount, 100);
    assert.equal(scores.referenceCount, 10_000);
    // CFG 2 at 10 steps: 0.88-0.91 of 400 samples in the quality benchmark.
    assert.ok(scores.accuracy! > 0.6, `accuracy ${scores.accuracy}`);
    assert.ok(scores.fd > real.fd && real.fd > 0, `FD of samples ${scores.fd}, of real images ${real.fd}`);
    for (const v of [scores.precision, scores.recall]) assert.ok(v > 0 && v <= 1, JSON.stringify(scores));
    assert.deepEqual(handleCounts(), before);
  });

  it('a custom strategy plans as one forward of 3N with CFG and samples', async () => {
    using model = await loadModel('models/fixtures/tiny-unet.pt', { device: 'cpu' });
    const before = handleCounts();
    // ---- the README's custom strategy, verbatim ----
    const perturbedNull = (scale: number): Strategy => ({
      name: 'perturbed-null',
      settings: { scale },
      terms: () => [{
        label: `perturbed-null(s=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'null', attention: [{ sites: 'mid.*', action: 'identity' }] },
        scale: ({ sigma }) => (sigma > 0.5 ? scale : 0),
      }],
    });
    const options = { model, guidance: [cfg({ scale: 2 }), perturbedNull(1)], labels: [3, 7], sampler: { name: 'euler', steps: 10 } } as const;
    const plan = explain(options);
    const first = plan.evaluations[0]!;
    assert.equal(first.forwards, 1);
    assert.equal(first.modelEvaluations, 3, JSON.stringify(first));
    // Off at the end: the last evaluations (sigma <= 0.5) plan CFG's 2N only.
    assert.equal(plan.evaluations.at(-1)!.modelEvaluations, 2);
    const { images } = await sample(options);
    assert.deepEqual(images.shape, [2, 1, 28, 28]);
    images.dispose();
    assert.deepEqual(handleCounts(), before);
  });
});
