import assert from 'node:assert/strict';

import { liveHandles, loadModel, randn, tensor, type Tensor } from '../src/index.js';


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
