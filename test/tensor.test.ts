import assert from 'node:assert/strict';

import { cat, ErrorCodes, full, isTensor, liveHandles, randn, tensor, type AnyTypedArray, type Dtype } from '../src/index.js';
import { native } from '../src/core/native/binding.js';
import { expectCode } from './helpers/errors.js';
import { freshRandom, randomFloat32, relativeError } from './helpers/random.js';

/** Random data of each dtype, in the TypedArray that carries it. */
function randomData(dtype: Dtype, count: number, rng = freshRandom()): AnyTypedArray {
  const ints = (lo: number, hi: number) => Array.from({ length: count }, () => lo + Math.floor(rng.next() * (hi - lo)));
  switch (dtype) {
    case 'float32':
      return randomFloat32(count, rng);
    case 'float64':
      return Float64Array.from({ length: count }, () => rng.normal());
    case 'float16': // any bit pattern whose exponent is not all ones (no NaN/Inf)
      return Uint16Array.from(ints(0, 0x10000).map((b) => ((b & 0x7c00) === 0x7c00 ? b & 0xbfff : b)));
    case 'bfloat16':
      return Uint16Array.from(ints(0, 0x10000).map((b) => ((b & 0x7f80) === 0x7f80 ? b & 0xbfff : b)));
    case 'int64':
      return BigInt64Array.from(ints(-1e9, 1e9).map((v) => BigInt(v) * 4096n));
    case 'int32':
      return Int32Array.from(ints(-2e9, 2e9));
    case 'int16':
      return Int16Array.from(ints(-32768, 32768));
    case 'int8':
      return Int8Array.from(ints(-128, 128));
    case 'uint8':
      return Uint8Array.from(ints(0, 256));
    case 'bool':
      return Uint8Array.from(ints(0, 2));
  }
}

async function floats(t: { toArray(): Promise<AnyTypedArray> }): Promise<number[]> {
  return Array.from((await t.toArray()) as Float32Array);
}

describe('Tensor', () => {
  const dtypes: Dtype[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];
  for (const dtype of dtypes) {
    it(`round-trips ${dtype} data through its TypedArray`, async () => {
      const data = randomData(dtype, 3 * 5 * 7);
      using t = tensor(data, [3, 5, 7], { dtype });
      assert.deepEqual(t.shape, [3, 5, 7]);
      assert.equal(t.dtype, dtype);
      assert.equal(t.device, 'cpu');
      assert.equal(t.numel, 105);
      const back = await t.toArray();
      assert.equal(back.constructor, data.constructor);
      assert.deepEqual(Array.from(back as Iterable<number | bigint>), Array.from(data as Iterable<number | bigint>));
    });
  }

  it('infers the dtype from the TypedArray', () => {
    const cases: [AnyTypedArray, Dtype][] = [
      [new Float32Array(2), 'float32'],
      [new Uint16Array(2), 'float16'],
      [new BigInt64Array(2), 'int64'],
      [new Uint8Array(2), 'uint8'],
    ];
    for (const [data, dtype] of cases) {
      using t = tensor(data, [2]);
      assert.equal(t.dtype, dtype);
    }
  });

  it('does arithmetic exactly as IEEE float32, with tensors and numbers', async () => {
    const rng = freshRandom();
    const a = randomFloat32(64, rng);
    const b = randomFloat32(64, rng).map((v) => (Math.abs(v) < 1e-3 ? 1 : v));
    const s = Math.fround(rng.normal());
    using ta = tensor(a, [4, 16]);
    using tb = tensor(b, [4, 16]);
    const f = Math.fround;
    const cases: [string, () => ReturnType<typeof tensor>, (x: number, y: number) => number][] = [
      ['add', () => ta.add(tb), (x, y) => f(x + y)],
      ['sub', () => ta.sub(tb), (x, y) => f(x - y)],
      ['mul', () => ta.mul(tb), (x, y) => f(x * y)],
      ['div', () => ta.div(tb), (x, y) => f(x / y)],
      ['add scalar', () => ta.add(s), (x) => f(x + s)],
      ['mul scalar', () => ta.mul(s), (x) => f(x * s)],
      ['neg', () => ta.neg(), (x) => -x],
      ['sqrt', () => ta.mul(ta).sqrt(), (x) => f(Math.sqrt(f(x * x)))],
    ];
    for (const [name, op, reference] of cases) {
      using result = op();
      const actual = await floats(result);
      actual.forEach((v, i) => assert.equal(v, reference(a[i]!, b[i]!), `${name} at ${i} (seed ${rng.seed})`));
    }
  });

  it('broadcasts a per-sample tensor over the other axes', async () => {
    const rng = freshRandom();
    const x = randomFloat32(3 * 4, rng);
    const w = randomFloat32(3, rng);
    using tx = tensor(x, [3, 4]);
    using tw = tensor(w, [3, 1]);
    using product = tx.mul(tw);
    const actual = await floats(product);
    actual.forEach((v, i) => assert.equal(v, Math.fround(x[i]! * w[Math.floor(i / 4)]!)));
  });

  it('lerps with a number and with a tensor weight', async () => {
    const rng = freshRandom();
    const a = randomFloat32(40, rng);
    const b = randomFloat32(40, rng);
    const w = rng.next() * 3 - 1;
    using ta = tensor(a, [40]);
    using tb = tensor(b, [40]);
    using scalarLerp = ta.lerp(tb, w);
    assert.ok(relativeError(await floats(scalarLerp), Array.from(a, (x, i) => x + w * (b[i]! - x))) < 1e-6);
    const weights = randomFloat32(40, rng);
    using tw = tensor(weights, [40]);
    using tensorLerp = ta.lerp(tb, tw);
    assert.ok(relativeError(await floats(tensorLerp), Array.from(a, (x, i) => x + weights[i]! * (b[i]! - x))) < 1e-6);
  });

  it('reduces per sample: mean, unbiased std and L2 norm over the non-batch axes', async () => {
    const rng = freshRandom();
    const [n, c, h, w] = [3, 2, 5, 4];
    const size = c * h * w;
    const x = randomFloat32(n * size, rng);
    using t = tensor(x, [n, c, h, w]);
    const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * size, (i + 1) * size)));
    const mean = rows.map((r) => r.reduce((s, v) => s + v, 0) / size);
    const std = rows.map((r, i) => Math.sqrt(r.reduce((s, v) => s + (v - mean[i]!) ** 2, 0) / (size - 1)));
    const norm = rows.map((r) => Math.sqrt(r.reduce((s, v) => s + v * v, 0)));
    using m = t.meanPerSample();
    using sd = t.stdPerSample();
    using nm = t.normPerSample(true);
    assert.deepEqual(m.shape, [n]);
    assert.deepEqual(nm.shape, [n, 1, 1, 1]);
    assert.ok(relativeError(await floats(m), mean) < 1e-5, `mean (seed ${rng.seed})`);
    assert.ok(relativeError(await floats(sd), std) < 1e-5, `std (seed ${rng.seed})`);
    assert.ok(relativeError(await floats(nm), norm) < 1e-5, `norm (seed ${rng.seed})`);
  });

  it('narrows, concatenates, repeats and reshapes along the batch axis', async () => {
    const x = randomFloat32(4 * 6);
    using t = tensor(x, [4, 2, 3]);
    using middle = t.narrow(1, 2);
    assert.deepEqual(middle.shape, [2, 2, 3]);
    assert.deepEqual(await floats(middle), Array.from(x.subarray(6, 18)));
    using first = t.narrow(0, 1);
    using joined = cat([middle, first]);
    assert.deepEqual(await floats(joined), [...x.subarray(6, 18), ...x.subarray(0, 6)]);
    using twice = t.repeat(2);
    assert.deepEqual(twice.shape, [8, 2, 3]);
    assert.deepEqual(await floats(twice), [...x, ...x]);
    using flat = t.reshape([4, -1]);
    assert.deepEqual(flat.shape, [4, 6]);
    assert.deepEqual(await floats(flat), Array.from(x));
  });

  it('converts dtypes', async () => {
    const x = randomFloat32(50).map((v) => v * 100);
    using t = tensor(x, [50]);
    using d = t.to({ dtype: 'float64' });
    assert.equal(d.dtype, 'float64');
    assert.deepEqual(Array.from((await d.toArray()) as Float64Array), Array.from(x));
    using i = t.to({ dtype: 'int32' });
    assert.deepEqual(Array.from((await i.toArray()) as Int32Array), Array.from(x, (v) => Math.trunc(v) + 0)); // + 0: Int32Array has no -0
    using h = t.to({ dtype: 'float16' });
    using back = h.to({ dtype: 'float32' });
    const halves = await floats(back);
    halves.forEach((v, k) => assert.ok(Math.abs(v - x[k]!) <= Math.abs(x[k]!) * 2 ** -11 + 1e-7, `half at ${k}`));
  });

  it('full fills a tensor of any shape and dtype with a value, and refuses a value that is not a finite number', async () => {
    const rng = freshRandom();
    const value = (rng.next() - 0.5) * 1000;
    const shape = [1 + Math.floor(rng.next() * 5), 3];
    using a = full(shape, value);
    assert.deepEqual([a.shape, a.dtype, a.device], [shape, 'float32', 'cpu']);
    assert.deepEqual(await a.toArray(), new Float32Array(6 * shape[0]! / 2).fill(value));
    using b = full([4], 7, { dtype: 'int64' });
    assert.deepEqual(await b.toArray(), new BigInt64Array(4).fill(7n));
    assert.match((await expectCode(ErrorCodes.INVALID_OPTION, () => full([2], Number.NaN))).message, /full value/);
    assert.match((await expectCode(ErrorCodes.INVALID_OPTION, () => full([2], Infinity))).message, /full value/);
    assert.match((await expectCode(ErrorCodes.INVALID_OPTION, () => full([-1], 1))).message, /shape/);
  });

  describe('randn', () => {
    it('is reproducible from its seed, BigInt or number alike', async () => {
      const seed = freshRandom().seed;
      using a = randn([2, 8], { seed });
      using b = randn([2, 8], { seed: BigInt(seed) });
      using c = randn([2, 8], { seed: seed + 1 });
      assert.deepEqual(await floats(a), await floats(b));
      assert.notDeepEqual(await floats(a), await floats(c));
    });

    it('with one seed per sample, gives each sample the same noise in any batch', async () => {
      const rng = freshRandom();
      const seeds = Array.from({ length: 16 }, () => Math.floor(rng.next() * 2 ** 40));
      using batch = randn([16, 1, 28, 28], { seed: seeds });
      const all = await floats(batch);
      for (const i of [0, 7, 15]) {
        using alone = randn([1, 1, 28, 28], { seed: [seeds[i]!] });
        assert.deepEqual(await floats(alone), all.slice(i * 784, (i + 1) * 784), `sample ${i} (seed ${rng.seed})`);
      }
    });

    it('draws standard normal noise', async () => {
      using t = randn([200_000], { seed: freshRandom().seed });
      const values = await floats(t);
      const mean = values.reduce((s, v) => s + v, 0) / values.length;
      const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
      assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
      assert.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
    });

    it('draws in other floating dtypes from the same float32 noise', async () => {
      const seed = freshRandom().seed;
      using f32 = randn([64], { seed });
      using f64 = randn([64], { seed, dtype: 'float64' });
      assert.equal(f64.dtype, 'float64');
      assert.deepEqual(Array.from((await f64.toArray()) as Float64Array), await floats(f32));
    });
  });

  describe('disposal', () => {
    it('dispose() is idempotent, sets disposed, and use afterwards is ERR_DISPOSED', async () => {
      const t = randn([2, 2], { seed: 1 });
      const before = liveHandles().tensors;
      assert.equal(t.disposed, false);
      t.dispose();
      t.dispose();
      assert.equal(t.disposed, true);
      assert.equal(liveHandles().tensors, before - 1);
      await expectCode(ErrorCodes.DISPOSED, () => t.add(1));
      await expectCode(ErrorCodes.DISPOSED, () => t.shape);
      await expectCode(ErrorCodes.DISPOSED, () => t.toArray());
      using other = randn([2, 2], { seed: 2 });
      await expectCode(ErrorCodes.DISPOSED, () => other.add(t));
    });

    it('`using` disposes at the end of the block', () => {
      const before = liveHandles().tensors;
      {
        using t = randn([3], { seed: 3 });
        assert.equal(liveHandles().tensors, before + 1);
        assert.ok(isTensor(t));
      }
      assert.equal(liveHandles().tensors, before);
    });

    it('1,000 create/op/dispose cycles leave the live-handle count where it started', async () => {
      const before = liveHandles().tensors;
      for (let i = 0; i < 1000; i++) {
        const a = randn([4, 8], { seed: i });
        const b = tensor(new Float32Array(32).fill(i), [4, 8]);
        const doubled = a.mul(2);
        const c = doubled.add(b);
        const d = c.stdPerSample();
        if (i % 100 === 0) await d.toArray();
        for (const t of [a, b, doubled, c, d]) t.dispose();
      }
      assert.equal(liveHandles().tensors, before);
    });

    it('the garbage collector frees handles that were never disposed', async function () {
      if (!global.gc) this.skip(); // mocha runs with --expose-gc (.mocharc.json)
      const before = liveHandles().tensors;
      (() => {
        for (let i = 0; i < 200; i++) randn([16], { seed: i });
      })();
      assert.equal(liveHandles().tensors, before + 200);
      for (let round = 0; round < 10 && liveHandles().tensors > before; round++) {
        global.gc!();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(liveHandles().tensors, before);
    });
  });

  describe('bad input', () => {
    it('rejects data that does not fill the shape', async () => {
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => tensor(new Float32Array(5), [2, 3]));
    });
    it('rejects a dtype whose TypedArray does not match', async () => {
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => tensor(new Float32Array(4), [4], { dtype: 'float16' }));
    });
    it('rejects invalid options with the field named', async () => {
      const error = await expectCode(ErrorCodes.INVALID_OPTION, () =>
        tensor(new Float32Array(4), [4], { dtype: 'float8' as Dtype }),
      );
      assert.match(error.message, /dtype/);
      await expectCode(ErrorCodes.INVALID_OPTION, () => tensor(new Float32Array(4), [-4]));
      await expectCode(ErrorCodes.INVALID_OPTION, () => randn([4], {} as { seed: number }));
      await expectCode(ErrorCodes.INVALID_OPTION, () => randn([4], { seed: -1 }));
    });
    it('rejects a per-sample seed list of the wrong length', async () => {
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => randn([3, 2], { seed: [1, 2] }));
    });
    it('rejects out-of-range layout ops and reductions without a batch axis', async () => {
      using t = randn([4, 3], { seed: 1 });
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => t.narrow(3, 2));
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => t.narrow(-1, 1));
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => t.reshape([5, -1]));
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => t.repeat(0));
      using flat = randn([4], { seed: 1 });
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => flat.stdPerSample());
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => cat([]));
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => t.add('x' as unknown as number));
    });
    it('turns a libtorch failure (shapes that do not broadcast) into ERR_TORCH', async () => {
      using a = randn([4, 3], { seed: 1 });
      using b = randn([5, 2], { seed: 2 });
      await expectCode(ErrorCodes.TORCH, () => a.add(b));
    });
    it('names unknown devices and missing CUDA', async () => {
      using t = randn([2], { seed: 1 });
      await expectCode(ErrorCodes.UNKNOWN_DEVICE, () => t.to({ device: 'gpu' as 'cpu' }));
      await expectCode(ErrorCodes.CUDA_UNAVAILABLE, () => t.to({ device: 'cuda:99' }));
    });
    it('has no public constructor', async () => {
      const Tensor = native.Tensor as unknown as new () => unknown;
      await expectCode(ErrorCodes.INVALID_ARGUMENT, () => new Tensor());
    });
  });
});
