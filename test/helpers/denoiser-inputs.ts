import { tensor, type Tensor } from '../../src/index.js';
import { freshRandom, randomFloat32 } from './random.js';

/**
 * Fresh random inputs for a class-conditional denoiser `forward(x, t, label)`:
 * x ~ N(0, 1) of [batch, ...sampleShape], t in [0, 999), labels in 0..10
 * (10 = null). The arrays feed the Python references, `tensors()` the model.
 */
export function randomDenoiserInputs(batch: number, sampleShape: readonly number[], rng = freshRandom()) {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const x = randomFloat32(batch * size, rng);
  const t = Float32Array.from({ length: batch }, () => rng.next() * 999);
  const label = BigInt64Array.from({ length: batch }, () => BigInt(Math.floor(rng.next() * 11)));
  return {
    rng,
    batch,
    x,
    t,
    label,
    tensors: (): [Tensor, Tensor, Tensor] => [tensor(x, [batch, ...sampleShape]), tensor(t, [batch]), tensor(label, [batch])],
  };
}
