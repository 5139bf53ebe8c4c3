import assert from 'node:assert/strict';
import { join } from 'node:path';

import { loadModel, randn, runtimeInfo, tensor, type Tensor } from '../src/index.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, randomFloat32, relativeError } from './helpers/random.js';

// These run only where CUDA is usable; elsewhere mocha lists them as pending,
// with the reason in the title.
const info = runtimeInfo();
const reason = info.cudaAvailable
  ? ''
  : ` (skipped: ${info.builtWithCuda ? 'no CUDA device found' : 'this build uses a CPU-only libtorch'})`;
const cudaIt = info.cudaAvailable ? it : it.skip;

describe(`CUDA${reason}`, () => {
  cudaIt('a CUDA forward equals the CPU forward (1e-4 relative) and stays on the device', async () => {
    const path = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
    using cpu = await loadModel(path, { device: 'cpu' });
    using gpu = await loadModel(path, { device: 'cuda' });
    assert.equal(gpu.device, 'cuda:0');
    const rng = freshRandom();
    const batch = 8;
    const inputs = [
      tensor(randomFloat32(batch * 784, rng), [batch, 1, 28, 28]),
      tensor(Float32Array.from({ length: batch }, () => rng.next() * 999), [batch]),
      tensor(BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % 11)), [batch]),
    ];
    using onCpu = (await cpu.forward(...inputs)) as Tensor;
    using onGpu = (await gpu.forward(...inputs)) as Tensor;
    assert.equal(onGpu.device, 'cuda:0');
    const error = relativeError((await onGpu.toArray()) as Float32Array, (await onCpu.toArray()) as Float32Array);
    assert.ok(error < 1e-4, `relative error ${error} (seed ${rng.seed})`);
    for (const t of inputs) t.dispose();
  });

  cudaIt('randn gives the same noise on the GPU as on the CPU', async () => {
    const seed = freshRandom().seed;
    using a = randn([4, 16], { seed, device: 'cuda' });
    using b = randn([4, 16], { seed });
    assert.equal(a.device, 'cuda:0');
    assert.deepEqual(await a.toArray(), await b.toArray());
  });

  cudaIt('tensor ops run on the device and copy back asynchronously', async () => {
    const x = randomFloat32(64);
    using t = tensor(x, [4, 16], { device: 'cuda' });
    using y = t.mul(2).add(1);
    assert.equal(y.device, 'cuda:0');
    const back = (await y.toArray()) as Float32Array;
    back.forEach((v, i) => assert.equal(v, Math.fround(Math.fround(x[i]! * 2) + 1)));
  });

  cudaIt('a float16 model on CUDA runs', async () => {
    using model = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cuda', dtype: 'float16' });
    using x = randn([2, 1, 28, 28], { seed: 1, device: 'cuda' });
    using t = tensor(new Float32Array([10, 900]), [2]);
    using label = tensor(new BigInt64Array([1n, 10n]), [2]);
    using out = (await model.forward(x, t, label)) as Tensor;
    assert.equal(out.dtype, 'float16');
  });
});
