import assert from 'node:assert/strict';
import { join } from 'node:path';

import { cfg, cudaMemory, full, liveHandles, loadModel, pag, randn, runtimeInfo, sag, sample, seg, tensor, type Tensor } from '../src/index.js';
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
  cudaIt('a CUDA forward equals the CPU forward (5e-3 relative: TF32 convolutions) and stays on the device', async () => {
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
    // cuDNN convolutions run in TF32 on Ampere and later (PyTorch's default,
    // the same in Python): about 1e-3 relative, where an actual device bug is O(1).
    assert.ok(error < 5e-3, `relative error ${error} (seed ${rng.seed})`);
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
    using doubled = t.mul(2); // named, so it is disposed (an unnamed intermediate lives until a GC)
    using y = doubled.add(1);
    assert.equal(y.device, 'cuda:0');
    const back = (await y.toArray()) as Float32Array;
    back.forEach((v, i) => assert.equal(v, Math.fround(Math.fround(x[i]! * 2) + 1)));
  });

  cudaIt('full() makes its tensor on the device', async () => {
    using t = full([5], 0.25, { device: 'cuda' });
    assert.equal(t.device, 'cuda:0');
    assert.deepEqual(await t.toArray(), new Float32Array(5).fill(0.25));
  });

  cudaIt('a float16 model runs under autocast and stays close to float32', async () => {
    const path = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
    using half = await loadModel(path, { device: 'cuda', dtype: 'float16' });
    using full = await loadModel(path, { device: 'cuda' });
    const seed = freshRandom().seed;
    using x = randn([2, 1, 28, 28], { seed, device: 'cuda' });
    using t = tensor(new Float32Array([10, 900]), [2]);
    using label = tensor(new BigInt64Array([1n, 10n]), [2]);
    using out = (await half.forward(x, t, label)) as Tensor;
    using reference = (await full.forward(x, t, label)) as Tensor;
    assert.equal(out.dtype, 'float16');
    using outFloat = out.to({ dtype: 'float32' });
    const values = (await outFloat.toArray()) as Float32Array;
    assert.ok(values.every(Number.isFinite));
    const error = relativeError(values, (await reference.toArray()) as Float32Array);
    assert.ok(error < 5e-2, `float16 vs float32 relative error ${error} (seed ${seed})`);
  });

  cudaIt('guided sampling on CUDA (CFG + PAG + SEG, SAG) matches the CPU and leaks nothing', async () => {
    const path = join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt');
    using cpu = await loadModel(path, { device: 'cpu' });
    using gpu = await loadModel(path, { device: 'cuda' });
    const seed = freshRandom().seed;
    // Collect earlier tests' garbage first: a wrapper collected during the
    // test would lower the count (it failed as 0 !== 1 that way).
    (globalThis as { gc?: () => void }).gc?.();
    const before = liveHandles().tensors;
    for (const guidance of [[cfg({ scale: 3 }), pag({ scale: 2 }), seg({ scale: 2 })], [sag()]]) {
      const options = { guidance, sampler: { name: 'euler_ancestral', steps: 4 }, labels: [0, 3, 7, null], seed, batchSize: 3 } as const;
      const onGpu = await sample({ model: gpu, ...options });
      const onCpu = await sample({ model: cpu, ...options });
      assert.equal(onGpu.images.device, 'cuda:0');
      assert.equal(onGpu.forwards, onCpu.forwards);
      const error = relativeError((await onGpu.images.toArray()) as Float32Array, (await onCpu.images.toArray()) as Float32Array);
      assert.ok(error < 2e-2, `${guidance.map((g) => g.name).join('+')}: GPU vs CPU relative error ${error} (seed ${seed})`);
      onGpu.images.dispose();
      onCpu.images.dispose();
    }
    assert.equal(liveHandles().tensors, before);
  });

  cudaIt('concurrent forwards on one CUDA model give the sequential results (2e-3 relative)', async () => {
    using gpu = await loadModel(join(repoRoot, 'models', 'fixtures', 'tiny-unet.pt'), { device: 'cuda' });
    const seed = freshRandom().seed;
    const inputs = Array.from({ length: 4 }, (_, i) => [
      randn([8, 1, 28, 28], { seed: seed + i, device: 'cuda' }),
      tensor(new Float32Array(8).fill(100 + 200 * i), [8]),
      tensor(new BigInt64Array(8).fill(BigInt(i)), [8]),
    ]);
    const sequential: Float32Array[] = [];
    for (const [x, t, label] of inputs) {
      using out = (await gpu.forward(x!, t!, label!)) as Tensor;
      sequential.push((await out.toArray()) as Float32Array);
    }
    const concurrent = await Promise.all(inputs.map(([x, t, label]) => gpu.forward(x!, t!, label!) as Promise<Tensor>));
    // Not bit-equal on an H200 (2026-11-26: up to 2e-4 relative): each torch
    // thread has its own cuDNN/cuBLAS handles and TF32 convolutions; crossed
    // inputs or hook plans would differ by O(1).
    for (let i = 0; i < inputs.length; i++) {
      const error = relativeError((await concurrent[i]!.toArray()) as Float32Array, sequential[i]!);
      assert.ok(error < 2e-3, `input ${i}: concurrent vs sequential relative error ${error} (seed ${seed})`);
      concurrent[i]!.dispose();
    }
    for (const row of inputs) for (const h of row) h.dispose();
  });

  cudaIt('cudaMemory follows a tensor\'s allocation and release on the device', async () => {
    const stats = cudaMemory(0);
    assert.ok(stats, 'this CUDA build reads the caching allocator (TORCH_GUIDANCE_CUDA_MEMORY_STATS)');
    const bytes = 16 * 2 ** 20;
    cudaMemory(0, { resetPeak: true });
    const before = cudaMemory(0)!;
    const t = randn([bytes / 4], { seed: 1, device: 'cuda' });
    await t.toArray(); // the allocation has happened once the data is back
    const during = cudaMemory(0)!;
    t.dispose();
    const after = cudaMemory(0)!;
    assert.ok(during.allocated - before.allocated >= bytes, `allocated grew by ${during.allocated - before.allocated}`);
    assert.ok(during.peakAllocated >= during.allocated && during.reserved >= during.allocated);
    assert.ok(during.allocated - after.allocated >= bytes, `allocated fell by ${during.allocated - after.allocated}`);
  });
});
