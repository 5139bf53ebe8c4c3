/**
 * Model.run's `parallel`: the batch split into chunks that run at once on the
 * torch threads. The split run must equal the unsplit one (to convolution
 * round-off) for random hooks on random slices, captures included, and the
 * chunking must never cut a slice whose noise is drawn from one seed.
 * Fresh random inputs, hooks and chunk counts per run; failures print the seed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { AUTO_MAX_CHUNK, AUTO_MIN_CHUNK, autoChunks, chunkBatch, catOutputs, entriesForChunk, modulesForChunk } from '../src/model/batch-split.js';
import type { NativePlanEntry } from '../src/hooks/attention.js';
import type { NativeModuleEntry } from '../src/hooks/module-hooks.js';
import { autoSplitThreads } from '../src/core/blas.js';
import { ErrorCodes, type Hook, cfg, liveHandles, loadModel, type Model, pag, sample, type SampleOptions, type Tensor, tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, guidanceScale, pick, randomFloat32, relativeError, uniformInt, type Rng } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', `${name}.pt`);

/** A random slice [start, start + length) of `batch`. */
function randomSlice(rng: Rng, batch: number): { start: number; length: number } {
  const start = uniformInt(rng, 0, batch - 1);
  return { start, length: uniformInt(rng, 1, batch - start) };
}

describe('batch-parallel runs (Model.run parallel)', () => {
  describe('chunking and rebasing (no model)', () => {
    it('covers the batch with contiguous chunks, as even as possible, never more than asked or than samples', () => {
      const rng = freshRandom();
      for (let trial = 0; trial < 200; trial++) {
        const batch = uniformInt(rng, 1, 70);
        const parts = uniformInt(rng, 1, 9);
        const chunks = chunkBatch(batch, parts);
        const at = `(batch ${batch}, parts ${parts}, seed ${rng.seed})`;
        assert.equal(chunks.length, Math.min(batch, parts), `chunk count ${at}`);
        assert.equal(chunks[0]!.start, 0, at);
        assert.equal(chunks.at(-1)!.end, batch, at);
        chunks.forEach((c, i) => {
          assert.ok(c.end > c.start, `empty chunk ${at}`);
          if (i > 0) assert.equal(c.start, chunks[i - 1]!.end, `gap or overlap ${at}`);
        });
        const sizes = chunks.map((c) => c.end - c.start);
        assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `uneven chunks ${JSON.stringify(sizes)} ${at}`);
      }
    });

    it('never cuts inside a slice whose noise comes from one seed; per-sample seeds may be cut', () => {
      const rng = freshRandom();
      for (let trial = 0; trial < 200; trial++) {
        const batch = uniformInt(rng, 2, 40);
        const modules: NativeModuleEntry[] = Array.from({ length: uniformInt(rng, 1, 3) }, () => {
          const slice = randomSlice(rng, batch);
          const perSample = rng.next() < 0.5;
          return {
            site: 0,
            ...slice,
            action: 'noise' as const,
            scale: 1,
            seed: perSample ? Array.from({ length: slice.length }, (_, k) => k + 1) : 7,
          };
        });
        const chunks = chunkBatch(batch, uniformInt(rng, 2, 6), modules);
        for (const c of chunks.slice(1)) {
          for (const m of modules) {
            if (Array.isArray(m.seed)) continue;
            assert.ok(!(m.start < c.start && c.start < m.start + m.length), `cut at ${c.start} inside [${m.start}, ${m.start + m.length}) (seed ${rng.seed})`);
          }
        }
        assert.equal(chunks[0]!.start, 0);
        assert.equal(chunks.at(-1)!.end, batch);
      }
    });

    it('gives every sample of every hook slice to exactly one chunk, at its rebased place, with its own seed', () => {
      const rng = freshRandom();
      for (let trial = 0; trial < 100; trial++) {
        const batch = uniformInt(rng, 1, 30);
        const entries: NativePlanEntry[] = Array.from({ length: uniformInt(rng, 1, 4) }, (_, site) => ({
          site,
          ...randomSlice(rng, batch),
          action: pick(rng, ['identity', 'blur', 'capture'] as const),
        }));
        const seeded = randomSlice(rng, batch);
        const seeds = Array.from({ length: seeded.length }, () => uniformInt(rng, 0, 1e9));
        const modules: NativeModuleEntry[] = [{ site: 9, ...seeded, action: 'noise', scale: 0.5, seed: seeds }];
        const chunks = chunkBatch(batch, uniformInt(rng, 1, 8), modules);
        // Map each chunk's rebased slices back to batch positions.
        const covered = new Map<number, number[]>();
        const seedAt = new Map<number, number>();
        for (const c of chunks) {
          for (const e of entriesForChunk(entries, c)) {
            assert.ok(e.start >= 0 && e.start + e.length <= c.end - c.start, `entry outside its chunk (seed ${rng.seed})`);
            for (let k = 0; k < e.length; k++) covered.set(e.site, [...(covered.get(e.site) ?? []), c.start + e.start + k]);
          }
          for (const m of modulesForChunk(modules, c)) {
            const chunkSeeds = m.seed as number[];
            assert.equal(chunkSeeds.length, m.length, `seeds per sample (seed ${rng.seed})`);
            chunkSeeds.forEach((s, k) => seedAt.set(c.start + m.start + k, s));
          }
        }
        for (const e of entries) {
          const expected = Array.from({ length: e.length }, (_, k) => e.start + k);
          assert.deepEqual(covered.get(e.site), expected, `site ${e.site} (seed ${rng.seed})`);
        }
        seeds.forEach((s, k) => assert.equal(seedAt.get(seeded.start + k), s, `seed of sample ${seeded.start + k} (seed ${rng.seed})`));
      }
    });

    it('refuses to join outputs that do not lead with the batch, naming the fix, and makes no tensor', async () => {
      const a = tensor(new Float32Array(6), [2, 3]);
      const b = tensor(new Float32Array(9), [3, 3]);
      const before = liveHandles().tensors;
      try {
        const chunks = [{ start: 0, end: 2 }, { start: 2, end: 4 }];
        const misaligned = await expectCode(ErrorCodes.INVALID_OPTION, () => catOutputs([[a, a], [a, b]], chunks));
        assert.match(misaligned.message, /does not lead with the batch.*parallel: 1/);
        const differing = await expectCode(ErrorCodes.INVALID_OPTION, () => catOutputs([[a, 1], [a, 2]], chunks));
        assert.match(differing.message, /differs between chunks/);
        assert.equal(liveHandles().tensors, before);
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  });

  describe('on the tiny UNet', () => {
    let unet: Model;
    let tuple: Model;
    before(async () => {
      unet = await loadModel(fixture('tiny-unet'), { device: 'cpu' });
      tuple = await loadModel(fixture('tiny-tuple'), { device: 'cpu' });
    });
    after(() => {
      unet.dispose();
      tuple.dispose();
    });

    /** A random mix of attention and module hooks on random slices of `batch`. */
    function randomHooks(rng: Rng, batch: number): Hook[] {
      const hooks: Hook[] = [];
      for (let i = uniformInt(rng, 1, 4); i > 0; i--) {
        const slice = randomSlice(rng, batch);
        const kind = pick(rng, ['identity', 'blur', 'capture', 'skip', 'noise-one', 'noise-each'] as const);
        if (kind === 'noise-one') hooks.push({ modules: 'time_embed', action: 'noise', scale: 0.8, seed: uniformInt(rng, 0, 1e9), ...slice });
        else if (kind === 'noise-each') {
          const seed = Array.from({ length: slice.length }, () => uniformInt(rng, 0, 1e9));
          hooks.push({ modules: 'time_embed', action: 'noise', scale: 0.8, seed, ...slice });
        } else if (kind === 'blur') hooks.push({ sites: 'mid.attn', action: 'blur', sigma: 0.5 + 3 * rng.next(), ...slice });
        else hooks.push({ sites: 'mid.attn', action: kind, ...slice });
      }
      // One capture per site and call: keep the first.
      const firstCapture = hooks.findIndex((h) => 'sites' in h && h.action === 'capture');
      return hooks.filter((h, i) => !('sites' in h && h.action === 'capture') || i === firstCapture);
    }

    it('equals the unsplit run for random hooks, batches and chunk counts, captures included', async () => {
      const rng = freshRandom();
      for (let trial = 0; trial < 6; trial++) {
        const batch = uniformInt(rng, 2, 9);
        const parallel = uniformInt(rng, 2, 4);
        const hooks = randomHooks(rng, batch);
        const inputs = randomDenoiserInputs(batch, [1, 28, 28], rng);
        const handles = inputs.tensors();
        const at = `(batch ${batch}, parallel ${parallel}, hooks ${JSON.stringify(hooks)}, seed ${rng.seed})`;
        try {
          const whole = await unet.run<Tensor>({ inputs: handles, hooks });
          const split = await unet.run<Tensor>({ inputs: handles, hooks, parallel });
          try {
            assert.deepEqual(split.output.shape, whole.output.shape);
            const error = relativeError((await split.output.toArray()) as Float32Array, (await whole.output.toArray()) as Float32Array);
            assert.ok(error < 1e-5, `output relative error ${error} ${at}`);
            assert.deepEqual([...split.captures.keys()], [...whole.captures.keys()], `captured sites ${at}`);
            for (const [path, map] of whole.captures) {
              const mine = split.captures.get(path)!;
              assert.deepEqual(mine.shape, map.shape, `capture shape ${at}`);
              const e = relativeError((await mine.toArray()) as Float32Array, (await map.toArray()) as Float32Array);
              assert.ok(e < 1e-5, `capture relative error ${e} ${at}`);
            }
          } finally {
            for (const r of [whole, split]) {
              r.output.dispose();
              for (const t of r.captures.values()) t.dispose();
            }
          }
        } finally {
          for (const h of handles) h.dispose();
        }
      }
    });

    it("parallel 'auto' runs as many chunks as autoChunks picks for the batch and equals the whole forward", async () => {
      const rng = freshRandom();
      const batch = uniformInt(rng, 1, 40);
      const handles = randomDenoiserInputs(batch, [1, 28, 28]).tensors();
      try {
        const forwards = unet.forwardCount;
        const split = await unet.run<Tensor>({ inputs: handles, parallel: 'auto' });
        assert.equal(unet.forwardCount - forwards, autoChunks(batch, autoSplitThreads()), `batch ${batch} (seed ${rng.seed})`);
        const whole = await unet.run<Tensor>({ inputs: handles });
        const error = relativeError((await split.output.toArray()) as Float32Array, (await whole.output.toArray()) as Float32Array);
        split.output.dispose();
        whole.output.dispose();
        assert.ok(error < 1e-5, `relative error ${error}, batch ${batch} (seed ${rng.seed})`);
      } finally {
        for (const h of handles) h.dispose();
      }
    });

    it('runs the chunks as separate forwards and leaves no handle behind', async () => {
      const inputs = randomDenoiserInputs(6, [1, 28, 28]);
      const handles = inputs.tensors();
      const before = liveHandles().tensors;
      const forwards = unet.forwardCount;
      const { output } = await unet.run<Tensor>({ inputs: handles, parallel: 3 });
      assert.equal(unet.forwardCount - forwards, 3, 'one forward per chunk');
      assert.deepEqual(output.shape, [6, 1, 28, 28]);
      output.dispose();
      for (const h of handles) h.dispose();
      assert.equal(liveHandles().tensors, before - 3);
    });

    it('joins tuple outputs element by element and passes non-batch inputs whole', async () => {
      const rng = freshRandom();
      const batch = uniformInt(rng, 2, 12);
      const x = tensor(randomFloat32(batch * 5, rng), [batch, 5]);
      const scale = 0.5 + rng.next();
      try {
        const whole = (await tuple.run<Tensor[]>({ inputs: [x, scale] })).output;
        const split = (await tuple.run<Tensor[]>({ inputs: [x, scale], parallel: uniformInt(rng, 2, 5) })).output;
        for (let i = 0; i < 2; i++) {
          assert.deepEqual(split[i]!.shape, whole[i]!.shape);
          assert.deepEqual(await split[i]!.toArray(), await whole[i]!.toArray(), `element ${i} (seed ${rng.seed})`);
        }
        for (const t of [...whole, ...split]) t.dispose();
      } finally {
        x.dispose();
      }
    });

    it('a failing split call rejects with the forward\'s own typed error and leaves no handle', async () => {
      const inputs = randomDenoiserInputs(6, [1, 28, 28]);
      const [x, t] = inputs.tensors().slice(0, 2) as [Tensor, Tensor];
      const before = liveHandles();
      // A string where the signature wants the label tensor: every chunk's forward refuses it.
      const error = await expectCode(ErrorCodes.INPUT_TYPE, () => unet.run({ inputs: [x, t, 'three'], parallel: 3 }));
      assert.match(error.message, /label: Tensor/);
      const after = liveHandles();
      assert.equal(after.tensors, before.tensors, 'tensors after the failed split call');
      assert.equal(after.jobs, before.jobs, 'jobs after the failed split call');
      x.dispose();
      t.dispose();
    });

    it('rejects a parallel that is not a positive integer', async () => {
      const handles = randomDenoiserInputs(2, [1, 28, 28]).tensors();
      try {
        for (const parallel of [0, 1.5, -2, Number.NaN]) {
          const error = await expectCode(ErrorCodes.INVALID_OPTION, () => unet.run({ inputs: handles, parallel }));
          assert.match(error.message, /parallel must be a positive integer/);
        }
      } finally {
        for (const h of handles) h.dispose();
      }
    });
  });
});

describe("parallel 'auto' (autoChunks)", () => {
  it('keeps every chunk within 4-12 samples where the batch allows, uses a multiple of the threads, and never splits on one thread', () => {
    // The values measured to pay on a 2-core CPU (AUTO_MAX_CHUNK's doc comment): 16 rows as 2 chunks of 8, 32 as 4 of 8.
    assert.equal(autoChunks(16, 2), 2);
    assert.equal(autoChunks(32, 2), 4);
    assert.equal(autoChunks(4, 2), 1); // a chunk of 2 lost
    const rng = freshRandom();
    for (let i = 0; i < 500; i++) {
      const rows = uniformInt(rng, 1, 600);
      const threads = uniformInt(rng, 1, 8);
      const chunks = autoChunks(rows, threads);
      const at = `rows ${rows}, threads ${threads} -> ${chunks} (seed ${rng.seed})`;
      assert.ok(Number.isInteger(chunks) && chunks >= 1 && chunks <= rows, at);
      if (threads === 1) assert.equal(chunks, 1, at);
      // No chunk below the minimum (chunkBatch cuts as evenly as it can: the smallest is floor(rows / chunks)).
      if (chunks > 1) assert.ok(Math.floor(rows / chunks) >= AUTO_MIN_CHUNK, at);
      // Where the minimum allows it, every chunk holds at most the maximum and every round fills every thread.
      const roomy = threads > 1 && Math.floor(rows / AUTO_MIN_CHUNK) >= threads * Math.ceil(rows / (threads * AUTO_MAX_CHUNK));
      if (roomy) {
        assert.ok(Math.ceil(rows / chunks) <= AUTO_MAX_CHUNK, at);
        assert.equal(chunks % threads, 0, at);
        // And no more chunks than that needs: one round fewer would overfill a chunk.
        if (chunks > threads) assert.ok(Math.ceil(rows / (chunks - threads)) > AUTO_MAX_CHUNK, at);
      }
    }
  });
});

describe('sample() on the CPU splits forwards across the torch threads', () => {
  let unet: Model;
  before(async () => {
    unet = await loadModel(fixture('tiny-unet'), { device: 'cpu' });
  });
  after(() => unet.dispose());

  /** The images and the native forwards of one run. */
  async function run(options: Omit<SampleOptions, 'model'>): Promise<{ images: Float32Array; forwards: number; planned: number }> {
    const before = unet.forwardCount;
    const result = await sample({ model: unet, ...options });
    const images = (await result.images.toArray()) as Float32Array;
    result.images.dispose();
    return { images, forwards: unet.forwardCount - before, planned: result.forwards };
  }

  it("'auto' splits each forward as autoChunks says (more chunks than threads for large batches), and matches parallel 1", async () => {
    const rng = freshRandom();
    const steps = uniformInt(rng, 2, 3);
    const batch = pick(rng, [4, 16]);
    const base = {
      sampler: { name: 'euler' as const, steps },
      labels: Array.from({ length: batch }, () => uniformInt(rng, 0, 9)),
      seed: uniformInt(rng, 0, 1e9),
      batchSize: batch,
    };
    const chunks = (rows: number) => autoChunks(rows, autoSplitThreads());
    for (const guidance of [[], [cfg({ scale: guidanceScale(rng) })], [cfg({ scale: guidanceScale(rng) }), pag({ scale: guidanceScale(rng) })]]) {
      const at = `${guidance.map((g) => g.name).join('+') || 'none'}, batch ${batch}, seed ${rng.seed}`;
      const rows = batch * (1 + guidance.length); // one branch per term, plus the base
      const auto = await run({ ...base, guidance });
      const one = await run({ ...base, guidance, parallel: 1 });
      assert.equal(one.forwards, one.planned, `parallel 1: one native forward per planned one (${at})`);
      assert.equal(auto.forwards, auto.planned * chunks(rows), `auto: ${chunks(rows)} chunks per forward of ${rows} (${at})`);
      const error = relativeError(auto.images, one.images);
      assert.ok(error < 1e-4, `split vs whole: relative error ${error} (${at})`);
    }
  });
});
