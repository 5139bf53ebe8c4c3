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

  it('refuses bad layer-skip options, naming the field', () => {
    const cond = randomLabels(freshRandom());
    const refuses = (make: () => unknown, code: string, pattern: RegExp, what: string) =>
      assert.throws(make, (error: unknown) => isTorchGuidanceError(error, code as never) && pattern.test(error.message), what);
    refuses(() => slg({ skip: ['attention', 'attention-scores'] }), ErrorCodes.INVALID_OPTION, /skip: 'attention' and 'attention-scores'/, 'both attention parts');
    refuses(() => slg({ skip: 'heads' as never }), ErrorCodes.INVALID_OPTION, /skip/, 'unknown part');
    refuses(() => autoguidance({ scale: 2 }), ErrorCodes.INVALID_OPTION, /guide: give either guide/, 'neither guide nor layers');
    refuses(() => autoguidance({ layers: { blocks: 'x', skip: 'block', extra: 1 } as never }), ErrorCodes.INVALID_OPTION, /layers/, 'a misspelt layers field');
    refuses(() => engine(dit, [slg({ blocks: 'nothing.here', skip: 'attention' })], cond, [1n, 2n]), ErrorCodes.NO_MATCHING_SITE, /blocks: nothing\.here matches no module/, 'no block');
    refuses(() => engine(dit, [slg({ blocks: 'time_embed', skip: 'attention' })], cond, [1n, 2n]), ErrorCodes.INVALID_OPTION, /skip: 'attention', but the blocks time_embed hold no attention/, 'no attention');
    refuses(() => engine(unet, [slg({ blocks: 'mid.*', skip: 'feed-forward' })], cond, [1n, 2n]), ErrorCodes.INVALID_OPTION, /feedForward: no module matching/, 'no feed-forward');
    refuses(
      () => engine(dit, [autoguidance({ layers: { blocks: 'blocks.9', skip: 'feed-forward' } })], cond, [1n, 2n]),
      ErrorCodes.NO_MATCHING_SITE,
      /autoguidance options: layers\.blocks/,
      'autoguidance names layers.blocks',
    );
  });
});
