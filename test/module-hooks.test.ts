/**
 * Module hooks (noise on a module's output, skip a block) and attention skip,
 * against an independent eager PyTorch reference that perturbs the same
 * modules with PyTorch's own forward hooks (test/reference/module_hooks.py).
 * Fresh random inputs and seeds per run; failures print the seed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ErrorCodes, type Hook, liveHandles, loadModel, type Model, type Tensor, tensor } from '../src/index.js';
import { randomDenoiserInputs } from './helpers/denoiser-inputs.js';
import { expectCode } from './helpers/errors.js';
import { type ModuleReferenceEntry, moduleReference } from './helpers/module-reference.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, relativeError } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', `${name}.pt`);
const BATCH = 3;

type Inputs = ReturnType<typeof randomDenoiserInputs>;

const seedOf = (rng: ReturnType<typeof freshRandom>) => BigInt(Math.floor(rng.next() * 2 ** 52)) * 4099n + 7n;

/** The hooked forward's output and the plain one's, as arrays; disposes every tensor it makes. */
async function runBoth(model: Model, inputs: Inputs, hooks: Hook[]): Promise<{ ours: Float32Array; base: Float32Array }> {
  const handles = inputs.tensors();
  try {
    const plain = await model.forward<Tensor>(...handles);
    const { output } = await model.run<Tensor>({ inputs: handles, hooks });
    try {
      return { ours: (await output.toArray()) as Float32Array, base: (await plain.toArray()) as Float32Array };
    } finally {
      output.dispose();
      plain.dispose();
    }
  } finally {
    for (const h of handles) h.dispose();
  }
}

/** Equal to the reference, changed on the touched samples, bit-identical elsewhere. */
function expectSlices(ours: Float32Array, base: Float32Array, expected: Float32Array, touched: Set<number>, seed: number): void {
  const error = relativeError(ours, expected);
  assert.ok(error < 1e-5, `relative error ${error} vs the eager reference (seed ${seed})`);
  const size = ours.length / BATCH;
  for (let i = 0; i < BATCH; i++) {
    const mine = ours.subarray(i * size, (i + 1) * size);
    const plain = base.subarray(i * size, (i + 1) * size);
    if (touched.has(i)) assert.ok(relativeError(mine, plain) > 1e-4, `sample ${i} unchanged (seed ${seed})`);
    else assert.deepEqual(mine, plain, `sample ${i} should be bit-identical (seed ${seed})`);
  }
}

const touchedBy = (entries: { start: number; length: number }[]) =>
  new Set(entries.flatMap((e) => Array.from({ length: e.length }, (_, k) => e.start + k)));

describe('module hooks', () => {
  let unet: Model;
  let zoo: Model;
  let tensorsBefore: number;
  before(async () => {
    unet = await loadModel(fixture('tiny-unet'), { device: 'cpu' });
    zoo = await loadModel(fixture('attn-zoo'), { device: 'cpu' });
    // Earlier files leave unreachable tensors for the GC-fallback tests; collect
    // them now, or a collection during this file lowers the count (CI saw 2 -> 0).
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    gc?.();
    tensorsBefore = liveHandles().tensors;
  });
  after(() => {
    unet.dispose();
    zoo.dispose();
  });
  afterEach(() => {
    assert.equal(liveHandles().tensors, tensorsBefore, 'live tensor handles changed: a test leaked (or freed) a tensor');
  });

  it('lists the module sites by path, with whether each can be skipped (output shape = input shape)', () => {
    assert.deepEqual(
      unet.moduleSites.map((s) => [s.id, s.path, s.skippable]),
      [
        [0, 'time_embed', false],
        [1, 'time_embed.sinusoidal', false],
        [2, 'down.0', true],
        [3, 'down.1', false],
        [4, 'down.2', true],
        [5, 'down.3', true],
        [6, 'down.4', false],
        [7, 'mid', true],
        [8, 'mid.res1', true],
        [9, 'mid.attn', true],
        [10, 'mid.res2', true],
        [11, 'up.0', false],
        [12, 'up.1', false],
        [13, 'up.2', true],
        [14, 'up.3', false],
        [15, 'up.4', false],
      ],
    );
    assert.deepEqual(unet.moduleSites[0]!.outputShape, [1, 32]);
    // ModuleList elements keep their container's name; torch.nn layers are not tagged.
    assert.deepEqual(zoo.moduleSites.map((s) => s.path), ['blocks.0', 'blocks.1', 'blocks.2']);
  });

  it('a model loaded without the graph pass has no module sites', async () => {
    using plain = await loadModel(fixture('tiny-unet'), { device: 'cpu', attentionHooks: false });
    assert.deepEqual(plain.moduleSites, []);
  });

  const unetCases: { name: string; hooks: (rng: ReturnType<typeof freshRandom>) => [Hook[], ModuleReferenceEntry[]] }[] = [
    {
      name: 'noise on the time embedding (TSG), one seed for the slice, samples 1-2',
      hooks: (rng) => {
        const seed = seedOf(rng);
        const scale = 0.2 + rng.next() * 2;
        return [
          [{ modules: 'time_embed', action: 'noise', scale, seed, start: 1, length: 2 }],
          [{ path: 'time_embed', start: 1, length: 2, action: 'noise', scale, seeds: [seed] }],
        ];
      },
    },
    {
      name: 'noise on the time embedding, one seed per sample, sample 0',
      hooks: (rng) => {
        const seeds = [seedOf(rng)];
        return [
          [{ modules: /^time_embed$/, action: 'noise', scale: 1.5, seed: seeds, start: 0, length: 1 }],
          [{ path: 'time_embed', start: 0, length: 1, action: 'noise', scale: 1.5, seeds, perSample: true }],
        ];
      },
    },
    {
      name: 'dropout on mid.res1, one seed per sample, samples 1-2',
      hooks: (rng) => {
        const seeds = [seedOf(rng), seedOf(rng)];
        const p = 0.1 + rng.next() * 0.8;
        return [
          [{ modules: 'mid.res1', action: 'dropout', p, seed: seeds, start: 1, length: 2 }],
          [{ path: 'mid.res1', start: 1, length: 2, action: 'dropout', p, seeds, perSample: true }],
        ];
      },
    },
    {
      name: 'dropout on the attention module mid.attn and on up.2, one seed for the slice, sample 0',
      hooks: (rng) => {
        const [a, b] = [seedOf(rng), seedOf(rng)];
        const p = 0.05 + rng.next() * 0.5;
        return [
          [
            { modules: 'mid.attn', action: 'dropout', p, seed: a, start: 0, length: 1 },
            { modules: 'up.2', action: 'dropout', p: 1 - p, seed: b, start: 0, length: 1 },
          ],
          [
            { path: 'mid.attn', start: 0, length: 1, action: 'dropout', p, seeds: [a] },
            { path: 'up.2', start: 0, length: 1, action: 'dropout', p: 1 - p, seeds: [b] },
          ],
        ];
      },
    },
    {
      name: 'skip mid.res1 (SLG) for sample 2',
      hooks: () => [
        [{ modules: 'mid.res1', action: 'skip', start: 2, length: 1 }],
        [{ path: 'mid.res1', start: 2, length: 1, action: 'skip' }],
      ],
    },
    {
      name: 'skip the whole middle block and up.2 for samples 0-1 (a list selector)',
      hooks: () => [
        [{ modules: ['mid', 'up.2'], action: 'skip', start: 0, length: 2 }],
        [
          { path: 'mid', start: 0, length: 2, action: 'skip' },
          { path: 'up.2', start: 0, length: 2, action: 'skip' },
        ],
      ],
    },
    {
      name: 'attention skip on down.3 (the attention block adds nothing) for sample 1',
      hooks: () => [
        [{ sites: 'down.3', action: 'skip', start: 1, length: 1 }],
        [{ path: 'down.3', start: 1, length: 1, action: 'skip' }],
      ],
    },
    {
      name: 'noise on the time embedding for sample 0 and skip mid.attn for sample 2 in one forward',
      hooks: (rng) => {
        const seed = seedOf(rng);
        return [
          [
            { modules: 'time_embed', action: 'noise', scale: 0.7, seed, start: 0, length: 1 },
            { sites: 'mid.*', action: 'skip', start: 2, length: 1 },
          ],
          [
            { path: 'time_embed', start: 0, length: 1, action: 'noise', scale: 0.7, seeds: [seed] },
            { path: 'mid.attn', start: 2, length: 1, action: 'skip' },
          ],
        ];
      },
    },
  ];

  for (const { name, hooks } of unetCases) {
    it(`tiny-unet, ${name}: equals the eager reference, changes its slice, leaves the others bit-identical`, async () => {
      const inputs = randomDenoiserInputs(BATCH, [1, 28, 28]);
      const [ours, reference] = hooks(inputs.rng);
      const result = await runBoth(unet, inputs, ours);
      const expected = moduleReference('tiny-unet', inputs, reference);
      expectSlices(result.ours, result.base, expected, touchedBy(reference), inputs.rng.seed);
    });
  }

  it('attn-zoo: skip on the cross-attention site blocks.2 and module skip of blocks.0 equal the eager reference', async () => {
    const inputs = randomDenoiserInputs(BATCH, [1, 8, 16]);
    const result = await runBoth(zoo, inputs, [
      { sites: 'blocks.2', action: 'skip', start: 0, length: 1 },
      { modules: 'blocks.0', action: 'skip', start: 2, length: 1 },
    ]);
    const reference: ModuleReferenceEntry[] = [
      { path: 'blocks.2', start: 0, length: 1, action: 'skip' },
      { path: 'blocks.0', start: 2, length: 1, action: 'skip' },
    ];
    expectSlices(result.ours, result.base, moduleReference('attn-zoo', inputs, reference), touchedBy(reference), inputs.rng.seed);
  });

  it('noise with one seed per sample: the same at any place in the batch, and drawn as the reference draws it', async () => {
    const rng = freshRandom();
    const inputs = randomDenoiserInputs(BATCH, [1, 28, 28], rng);
    const seeds = [seedOf(rng), seedOf(rng), seedOf(rng)];
    const handles = inputs.tensors();
    // The same three samples, reversed, with their seeds reversed.
    const order = [2, 1, 0];
    const reversed = [
      tensor(new Float32Array(order.flatMap((i) => Array.from(inputs.x.subarray(i * 784, (i + 1) * 784)))), [BATCH, 1, 28, 28]),
      tensor(Float32Array.from(order, (i) => inputs.t[i]!), [BATCH]),
      tensor(BigInt64Array.from(order, (i) => inputs.label[i]!), [BATCH]),
    ];
    try {
      const a = await unet.run<Tensor>({ inputs: handles, hooks: [{ modules: 'time_embed', action: 'noise', scale: 1, seed: seeds }] });
      const b = await unet.run<Tensor>({
        inputs: reversed,
        hooks: [{ modules: 'time_embed', action: 'noise', scale: 1, seed: order.map((i) => seeds[i]!) }],
      });
      const again = await unet.run<Tensor>({ inputs: handles, hooks: [{ modules: 'time_embed', action: 'noise', scale: 1, seed: seeds }] });
      const [ya, yb, yc] = (await Promise.all([a.output.toArray(), b.output.toArray(), again.output.toArray()])) as Float32Array[];
      assert.deepEqual(ya, yc, `the same seeds give the same output (seed ${rng.seed})`);
      for (let k = 0; k < BATCH; k++) {
        const i = order[k]!;
        assert.ok(relativeError(yb!.subarray(k * 784, (k + 1) * 784), ya!.subarray(i * 784, (i + 1) * 784)) < 1e-6, `sample ${i} (seed ${rng.seed})`);
      }
      for (const r of [a, b, again]) r.output.dispose();
      // And per-sample seeds draw what randn draws with them: equals the reference.
      const expected = moduleReference('tiny-unet', inputs, [
        { path: 'time_embed', start: 0, length: BATCH, action: 'noise', scale: 1, seeds, perSample: true },
      ]);
      assert.ok(relativeError(ya!, expected) < 1e-5, `per-sample seeds vs the reference (seed ${rng.seed})`);
    } finally {
      for (const h of [...handles, ...reversed]) h.dispose();
    }
  });

  it('two concurrent forwards with different plans equal the same two in sequence', async () => {
    const inputs = randomDenoiserInputs(BATCH, [1, 28, 28]);
    const handles = inputs.tensors();
    const seed = seedOf(inputs.rng);
    const plans: Hook[][] = [
      [{ modules: 'time_embed', action: 'noise', scale: 1, seed }],
      [{ modules: 'mid.*', action: 'skip', start: 1, length: 2 }],
      [{ sites: 'up.2', action: 'skip' }, { sites: 'mid.attn', action: 'identity', start: 0, length: 1 }],
      [],
    ];
    try {
      const together = await Promise.all(plans.map((hooks) => unet.run<Tensor>({ inputs: handles, hooks })));
      for (let i = 0; i < plans.length; i++) {
        const alone = await unet.run<Tensor>({ inputs: handles, hooks: plans[i] });
        assert.deepEqual(await together[i]!.output.toArray(), await alone.output.toArray(), `plan ${i} (seed ${inputs.rng.seed})`);
        alone.output.dispose();
        together[i]!.output.dispose();
      }
    } finally {
      for (const h of handles) h.dispose();
    }
  });

  describe('selectors and errors', () => {
    it('a module selector that matches nothing names the module sites that exist', async () => {
      const error = await expectCode(ErrorCodes.NO_MATCHING_SITE, () =>
        unet.run({ inputs: [], hooks: [{ modules: 'blocks.*', action: 'skip' }] }),
      );
      assert.match(error.message, /mid\.res1 \(skippable\)/);
      assert.match(error.message, /time_embed/);
    });

    it('matches whole segments: mid.res never matches mid.res1, and an index names one site', async () => {
      await expectCode(ErrorCodes.NO_MATCHING_SITE, () => unet.run({ inputs: [], hooks: [{ modules: 'mid.res', action: 'skip' }] }));
      await expectCode(ErrorCodes.NO_MATCHING_SITE, () => unet.run({ inputs: [], hooks: [{ modules: 99, action: 'skip' }] }));
    });

    it('refuses skip on a module whose output shape differs from its input (and the time embedding)', async () => {
      const error = await expectCode(ErrorCodes.NOT_SKIPPABLE, () =>
        unet.run({ inputs: [], hooks: [{ modules: 'down.*', action: 'skip' }] }),
      );
      assert.match(error.message, /down\.1/);
      await expectCode(ErrorCodes.NOT_SKIPPABLE, () => unet.run({ inputs: [], hooks: [{ modules: 'time_embed', action: 'skip' }] }));
    });

    it('rejects noise without scale or seed, and a seed list of the wrong length, naming the field', async () => {
      const error = await expectCode(ErrorCodes.INVALID_OPTION, () =>
        unet.run({ inputs: [], hooks: [{ modules: 'time_embed', action: 'noise', seed: 1 }] }),
      );
      assert.match(error.message, /scale/);
      const inputs = randomDenoiserInputs(BATCH, [1, 28, 28]);
      const handles = inputs.tensors();
      try {
        await expectCode(ErrorCodes.INVALID_OPTION, () =>
          unet.run({ inputs: handles, hooks: [{ modules: 'time_embed', action: 'noise', scale: 1, seed: [1, 2] }] }),
        );
        await expectCode(ErrorCodes.INVALID_OPTION, () =>
          unet.run({ inputs: handles, hooks: [{ modules: 'mid', action: 'skip', start: 2, length: 2 }] }),
        );
        await expectCode(ErrorCodes.INVALID_OPTION, () =>
          unet.run({ inputs: handles, hooks: [{ modules: 'mid', action: 'blur' as 'skip' }] }),
        );
        // dropout: p in [0, 1) and a seed are required; 1 is skip.
        for (const [hook, field] of [
          [{ modules: 'mid', action: 'dropout', seed: 1 }, /p/],
          [{ modules: 'mid', action: 'dropout', p: 1, seed: 1 }, /p/],
          [{ modules: 'mid', action: 'dropout', p: -0.1, seed: 1 }, /p/],
          [{ modules: 'mid', action: 'dropout', p: 0.5 }, /seed/],
          [{ modules: 'mid', action: 'dropout', p: 0.5, seed: [1, 2] }, /seed/],
        ] as const) {
          const refused = await expectCode(ErrorCodes.INVALID_OPTION, () => unet.run({ inputs: handles, hooks: [hook as Hook] }));
          assert.match(refused.message, field, JSON.stringify(hook));
        }
      } finally {
        for (const h of handles) h.dispose();
      }
    });
  });
});
