import assert from 'node:assert/strict';

import { isTorchGuidanceError, liveHandles, tensor } from '../src/index.js';
import { toImages, toUint8Batch } from '../src/image/index.js';
import { freshRandom } from './helpers/random.js';

describe('image: samples to 8-bit pixels', () => {
  it('maps the range to 0..255 in NHWC order, clipping and rounding like an independent loop', async () => {
    const rng = freshRandom();
    const [n, c, h, w] = [1 + Math.floor(rng.next() * 3), [1, 3][Math.floor(rng.next() * 2)]!, 2 + Math.floor(rng.next() * 5), 2 + Math.floor(rng.next() * 5)];
    const low = -1 - rng.next();
    const high = 1 + rng.next();
    // Values spread beyond the range on both sides, so clipping is exercised.
    const values = Float32Array.from({ length: n * c * h * w }, () => low - 0.5 + rng.next() * (high - low + 1));
    const before = liveHandles().tensors;
    {
      using samples = tensor(values, [n, c, h, w]);
      const batch = await toUint8Batch(samples, { range: [low, high] });
      assert.deepEqual([batch.count, batch.channels, batch.height, batch.width], [n, c, h, w]);
      for (let i = 0; i < n; i++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            for (let k = 0; k < c; k++) {
              const v = values[((i * c + k) * h + y) * w + x]!;
              const expected = Math.min(255, Math.max(0, Math.round(((v - low) / (high - low)) * 255)));
              const got = batch.data[((i * h + y) * w + x) * c + k]!;
              assert.ok(Math.abs(got - expected) <= 1 && (v > low || got === 0) && (v < high || got === 255), `sample ${i} (${y},${x},${k}): ${got} vs ${expected} (seed ${rng.seed})`);
            }
      const images = await toImages(samples, { range: [low, high] });
      assert.equal(images.length, n);
      images.forEach((image, i) => {
        assert.deepEqual([image.width, image.height, image.channels], [w, h, c]);
        assert.deepEqual(image.data, batch.data.slice(i * h * w * c, (i + 1) * h * w * c));
      });
    }
    assert.equal(liveHandles().tensors, before);
  });

  it('rejects a tensor that is not [N, C, H, W] with C in 1, 3, 4, and a bad range', async () => {
    using flat = tensor(new Float32Array(12), [12]);
    using twoChannels = tensor(new Float32Array(8), [1, 2, 2, 2]);
    using ok = tensor(new Float32Array(4), [1, 1, 2, 2]);
    for (const [input, range, pattern] of [
      [flat, undefined, /\[N, C, H, W\].*\[12\]/],
      [twoChannels, undefined, /C = 1, 3 or 4/],
      [ok, [1, 1] as const, /high > low/],
    ] as const) {
      await assert.rejects(toUint8Batch(input, range ? { range } : {}), (e: unknown) => isTorchGuidanceError(e) && e.code === 'ERR_INVALID_ARGUMENT' && pattern.test(e.message));
    }
  });
});
