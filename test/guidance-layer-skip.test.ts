/**
 * Layer skipping in part (diffusers' LayerSkipConfig) on a transformer
 * denoiser (models/fixtures/tiny-dit.pt, blocks `x + attn(norm1(x))`,
 * `x + ff(norm2(x))`): skip-layer guidance that removes only the attention,
 * only its scores (identity map) or only the feed-forward of a block, and
 * autoguidance whose guide is the main model with layers skipped. Each
 * prediction against its formula from separate forwards with the hooks
 * written out by hand (helpers/guidance-reference.ts).
 */
import assert from 'node:assert/strict';

import { type Hook, ErrorCodes, autoguidance, isTorchGuidanceError, loadModel, slg, type SlgOptions } from '../src/index.js';
import {
  type Ref,
  NULL,
  between,
  draw,
  engine,
  expectClose,
  expectDiffers,
  fixture,
  mix,
  randomLabels,
  randomSeeds,
  refOf,
  refX0,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom } from './helpers/random.js';
import { Streams, mixSeed } from '../src/core/seeds.js';

/**
 * The engine's dropout seeds for the `index`-th module entry of a branch at an
 * evaluation: mixSeed(mixSeed(seed_i, Streams.moduleDropout + evaluation), index).
 */
const dropoutSeeds = (seeds: bigint[], evaluation: number, index: number) =>
  seeds.map((s) => mixSeed(mixSeed(s, Streams.moduleDropout + BigInt(evaluation)), BigInt(index)));

describe('layer skipping in part: slg and autoguidance from the main model (tiny-dit)', function () {
  this.timeout(300_000);
  let dit: Ref;
  let unet: Ref;
  before(async () => {
    dit = refOf('tiny-dit', await loadModel(fixture('tiny-dit.pt'), { device: 'cpu' }));
    unet = refOf('tiny-unet', await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' }));
  });
  after(() => {
    dit.model.dispose();
    unet.model.dispose();
  });

  const cases: { skip: SlgOptions['skip']; blocks: string; hooks: Hook[]; what: string }[] = [
    { skip: 'attention', blocks: 'blocks.1', hooks: [{ modules: 'blocks.1.attn', action: 'skip' }], what: 'the attention module returns its input' },
    { skip: 'attention-scores', blocks: 'blocks.0', hooks: [{ sites: 'blocks.0.attn', action: 'identity' }], what: 'identity attention map (output = V)' },
    {
      skip: 'feed-forward',
      blocks: 'blocks.*',
      hooks: [{ modules: ['blocks.0.ff', 'blocks.1.ff'], action: 'skip' }],
      what: 'both feed-forwards return their input',
    },
    {
      skip: ['attention-scores', 'feed-forward'],
      blocks: 'blocks.1',
      hooks: [
        { sites: 'blocks.1.attn', action: 'identity' },
        { modules: 'blocks.1.ff', action: 'skip' },
      ],
      what: 'identity map and no feed-forward',
    },
  ];

  for (const c of cases) {
    it(`slg skip ${JSON.stringify(c.skip)} of ${c.blocks}: D(c) + s(D(c) − D_skip), ${c.what}`, () =>
      withoutLeaks(async () => {
        const { rng, sigma, x, cond } = draw();
        const s = between(rng, 1, 4);
        const e = engine(dit, [slg({ scale: s, blocks: c.blocks, skip: c.skip, start: 0, stop: 1 })], cond, randomSeeds(rng));
        try {
          const plan = e.guided.explain(e.guided.stepInfo(0, 10, sigma));
          assert.equal(plan.forwards, 1, 'the skipped branch batches with the main one');
          const actual = await e.predict(x, sigma);
          const dc = await refX0(dit, x, sigma, cond);
          const ds = await refX0(dit, x, sigma, cond, c.hooks);
          expectDiffers(dc, ds, rng, `D(c) vs D with ${JSON.stringify(c.skip)} skipped`);
          // The part differs from skipping the whole block.
          const whole = await refX0(dit, x, sigma, cond, [{ modules: c.blocks, action: 'skip' }]);
          expectDiffers(ds, whole, rng, 'part vs whole block');
          expectClose(actual, mix(dc, [[s, dc, ds]]), rng, `slg skip ${JSON.stringify(c.skip)} s=${s}`);
        } finally {
          e.dispose();
        }
      }));
  }

  // diffusers' LayerSkipConfig.dropout < 1: the parts run and their outputs go through dropout.
  const dropoutCases: { skip: SlgOptions['skip']; blocks: string; modules: string[]; what: string }[] = [
    { skip: 'block', blocks: 'blocks.0', modules: ['blocks.0'], what: "the block's output" },
    { skip: 'attention', blocks: 'blocks.1', modules: ['blocks.1.attn'], what: "the attention module's output" },
    { skip: 'feed-forward', blocks: 'blocks.*', modules: ['blocks.0.ff', 'blocks.1.ff'], what: 'each feed-forward, its own mask' },
    { skip: ['attention', 'feed-forward'], blocks: 'blocks.0', modules: ['blocks.0.attn', 'blocks.0.ff'], what: 'attention and feed-forward' },
  ];

  for (const c of dropoutCases) {
    it(`slg skip ${JSON.stringify(c.skip)} of ${c.blocks} with dropout p < 1: D(c) + s(D(c) − D_drop), dropout on ${c.what}, a fresh mask per evaluation`, () =>
      withoutLeaks(async () => {
        const { rng, cond } = draw();
        const s = between(rng, 1, 4);
        const p = between(rng, 0.1, 0.9);
        const seeds = randomSeeds(rng);
        const e = engine(dit, [slg({ scale: s, blocks: c.blocks, skip: c.skip, dropout: p, start: 0, stop: 1 })], cond, seeds);
        try {
          assert.equal(e.guided.explain(e.guided.stepInfo(0, 10, 1)).forwards, 1, 'the dropout branch batches with the main one');
          for (const evaluation of [0, 1]) {
            const sigma = between(rng, 0.3, 5);
            const x = new Float32Array(draw().x.length).map(() => (rng.next() - 0.5) * 2 * sigma);
            const actual = await e.predict(x, sigma);
            const dc = await refX0(dit, x, sigma, cond);
            const hooks: Hook[] = c.modules.map((modules, index) => ({ modules, action: 'dropout', p, seed: dropoutSeeds(seeds, evaluation, index) }));
            const dd = await refX0(dit, x, sigma, cond, hooks);
            expectDiffers(dc, dd, rng, 'D(c) vs D with dropout');
            const skipped = await refX0(dit, x, sigma, cond, c.modules.map((modules) => ({ modules, action: 'skip' as const })));
            expectDiffers(dd, skipped, rng, 'dropout vs skip');
            expectClose(actual, mix(dc, [[s, dc, dd]]), rng, `slg dropout ${JSON.stringify(c.skip)} p=${p} evaluation ${evaluation}`);
          }
        } finally {
          e.dispose();
        }
      }));
  }

  it('layer dropout 0 keeps the outputs whole (the guidance term vanishes); autoguidance layers take dropout too', () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw();
      const seeds = randomSeeds(rng);
      const none = engine(dit, [slg({ scale: 3, blocks: 'blocks.*', dropout: 0, start: 0, stop: 1 })], cond, seeds);
      const w = between(rng, 1.5, 3);
      const p = between(rng, 0.2, 0.8);
      const auto = engine(dit, [autoguidance({ scale: w, layers: { blocks: 'blocks.1', dropout: p } })], cond, seeds);
      try {
        const dc = await refX0(dit, x, sigma, cond);
        expectClose(await none.predict(x, sigma), dc, rng, 'dropout 0');
        const dg = await refX0(dit, x, sigma, cond, [{ modules: 'blocks.1', action: 'dropout', p, seed: dropoutSeeds(seeds, 0, 0) }]);
        expectClose(await auto.predict(x, sigma), mix(dg, [[w, dc, dg]]), rng, `autoguidance (layers, dropout ${p}) w=${w}`);
      } finally {
        none.dispose();
        auto.dispose();
      }
    }));

  it("autoguidance from the main model, layers { blocks: 'blocks.0' } (the whole block): D_skip + w(D − D_skip), one forward", () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 1.5, 3);
      const e = engine(dit, [autoguidance({ scale: w, layers: { blocks: 'blocks.0' } })], cond, randomSeeds(rng));
      try {
        const actual = await e.predict(x, sigma);
        assert.equal(e.guided.forwards, 1, 'main and skipped guide in one forward of 2N');
        const dc = await refX0(dit, x, sigma, cond);
        const dg = await refX0(dit, x, sigma, cond, [{ modules: 'blocks.0', action: 'skip' }]);
        expectDiffers(dc, dg, rng, 'D vs D_guide');
        expectClose(actual, mix(dg, [[w, dc, dg]]), rng, `autoguidance (layers) w=${w}`);
      } finally {
        e.dispose();
      }
    }));

  it("autoguidance as diffusers configures it: guideCondition 'null', attention of blocks.1 skipped: D_skip(∅) + w(D(c) − D_skip(∅))", () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 1.5, 3);
      const strategy = autoguidance({ scale: w, guideCondition: 'null', layers: { blocks: 'blocks.1', skip: 'attention' } });
      const e = engine(dit, [strategy], cond, randomSeeds(rng));
      try {
        const actual = await e.predict(x, sigma);
        const dc = await refX0(dit, x, sigma, cond);
        const dg = await refX0(dit, x, sigma, NULL, [{ modules: 'blocks.1.attn', action: 'skip' }]);
        expectClose(actual, mix(dg, [[w, dc, dg]]), rng, `autoguidance (null, attention skipped) w=${w}`);
      } finally {
        e.dispose();
      }
    }));

  it("skip 'attention' keeps cross-attention, as diffusers does (attn-zoo: two self-attention blocks and a cross-attention one)", async () => {
    using zoo = await loadModel(fixture('attn-zoo.pt'), { device: 'cpu' });
    const context = (strategy: ReturnType<typeof slg>) =>
      strategy.terms({
        conditional: true,
        strategies: [strategy],
        conditioning: 'class',
        sampleShape: [1, 8, 16],
        attentionSites: zoo.attentionSites,
        moduleSites: zoo.moduleSites,
      })[0]!.negative;
    const selfOnly = context(slg({ blocks: 'blocks.*', skip: 'attention' }));
    assert.deepEqual(selfOnly.attention, [{ sites: ['blocks.0', 'blocks.1'], action: 'skip' }]);
    const dropped = context(slg({ blocks: 'blocks.*', skip: 'attention', dropout: 0.5 }));
    assert.deepEqual(
      dropped.modules?.map((m) => m.modules),
      ['blocks.0', 'blocks.1'],
      'dropout on each self-attention module, one entry each',
    );
    assert.throws(
      () => context(slg({ blocks: 'blocks.2', skip: 'attention' })),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && /no self-attention site/.test(error.message),
    );
  });

  it('refuses bad layer-skip options, naming the field', () => {
    const cond = randomLabels(freshRandom());
    const refuses = (make: () => unknown, code: string, pattern: RegExp, what: string) =>
      assert.throws(make, (error: unknown) => isTorchGuidanceError(error, code as never) && pattern.test(error.message), what);
    refuses(() => slg({ skip: ['attention', 'attention-scores'] }), ErrorCodes.INVALID_OPTION, /skip: 'attention' and 'attention-scores'/, 'both attention parts');
    refuses(() => slg({ skip: 'heads' as never }), ErrorCodes.INVALID_OPTION, /skip/, 'unknown part');
    refuses(() => slg({ skip: 'attention-scores', dropout: 0.5 }), ErrorCodes.INVALID_OPTION, /dropout.*attention-scores/, 'dropout of the scores');
    refuses(() => slg({ dropout: 1.5 }), ErrorCodes.INVALID_OPTION, /dropout/, 'dropout above 1');
    refuses(
      () => autoguidance({ layers: { blocks: 'x', skip: ['attention-scores', 'feed-forward'], dropout: 0.2 } }),
      ErrorCodes.INVALID_OPTION,
      /layers\.dropout/,
      'autoguidance names layers.dropout',
    );
    refuses(() => autoguidance({ scale: 2 }), ErrorCodes.INVALID_OPTION, /guide: give either guide/, 'neither guide nor layers');
    refuses(() => autoguidance({ layers: { blocks: 'x', skip: 'block', extra: 1 } as never }), ErrorCodes.INVALID_OPTION, /layers/, 'a misspelt layers field');
    refuses(() => engine(dit, [slg({ blocks: 'nothing.here', skip: 'attention' })], cond, [1n, 2n]), ErrorCodes.NO_MATCHING_SITE, /blocks: nothing\.here matches no module/, 'no block');
    refuses(() => engine(dit, [slg({ blocks: 'time_embed', skip: 'attention' })], cond, [1n, 2n]), ErrorCodes.INVALID_OPTION, /skip: 'attention', but the blocks time_embed hold no self-attention/, 'no attention');
    refuses(() => engine(unet, [slg({ blocks: 'mid.*', skip: 'feed-forward' })], cond, [1n, 2n]), ErrorCodes.INVALID_OPTION, /feedForward: no module matching/, 'no feed-forward');
    refuses(
      () => engine(dit, [autoguidance({ layers: { blocks: 'blocks.9', skip: 'feed-forward' } })], cond, [1n, 2n]),
      ErrorCodes.NO_MATCHING_SITE,
      /autoguidance options: layers\.blocks/,
      'autoguidance names layers.blocks',
    );
  });
});
