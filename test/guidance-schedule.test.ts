/**
 * The scheduling options every strategy shares, spelt one way: `enabled`,
 * step fractions `start`/`stop` (diffusers' rule: floor(start·steps) <= step
 * < floor(stop·steps)) and the sigma `window`. For each factory: off before
 * start, at and after stop, outside the window and when disabled, the
 * prediction is D(c) and the plan computes nothing else; inside, the
 * strategy acts. Bad values are refused naming the field.
 */
import assert from 'node:assert/strict';

import * as guidance from '../src/index.js';
import { type Model, type Strategy, ErrorCodes, isTorchGuidanceError, loadModel } from '../src/index.js';
import {
  type Ref,
  between,
  engine,
  expectClose,
  expectDiffers,
  fixture,
  randomLabels,
  randomSeeds,
  randomSigma,
  randomX,
  refOf,
  refX0,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom } from './helpers/random.js';

type Schedule = { enabled?: boolean; start?: number; stop?: number; window?: { sigmaMin?: number; sigmaMax?: number } };

describe('scheduling options of every strategy: enabled, start/stop, window', function () {
  this.timeout(600_000);
  let unet: Ref;
  let dit: Ref;
  let other: Model;
  let vit: Model;
  before(async () => {
    unet = refOf('tiny-unet', await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' }));
    dit = refOf('tiny-dit', await loadModel(fixture('tiny-dit.pt'), { device: 'cpu' }));
    other = await loadModel(fixture('tiny-unet-v.pt'), { device: 'cpu' });
    vit = await loadModel(fixture('tiny-vit.pt'), { device: 'cpu' });
  });
  after(() => {
    unet.model.dispose();
    dit.model.dispose();
    other.dispose();
    vit.dispose();
  });

  /** Each factory with options that make it act, the model it runs on, and whether D(c) is its "off" prediction. */
  const factories: { name: string; ref: () => Ref; make: (schedule: Schedule) => Strategy[] }[] = [
    { name: 'cfg', ref: () => unet, make: (o) => [guidance.cfg({ scale: 3, ...o })] },
    { name: 'pag', ref: () => unet, make: (o) => [guidance.pag({ scale: 3, ...o })] },
    { name: 'seg', ref: () => unet, make: (o) => [guidance.seg({ scale: 3, ...o })] },
    { name: 'sag', ref: () => unet, make: (o) => [guidance.sag({ scale: 1, ...o })] },
    { name: 'sag (model mask)', ref: () => unet, make: (o) => [guidance.sag({ scale: 1, mask: { source: 'model', model: vit }, ...o })] },
    { name: 'blur', ref: () => unet, make: (o) => [guidance.blurGuidance({ scale: 1, ...o })] },
    { name: 'lowpass', ref: () => unet, make: (o) => [guidance.lowPassGuidance({ scale: 1, ...o })] },
    { name: 'highpass', ref: () => unet, make: (o) => [guidance.highPassGuidance({ scale: 1, ...o })] },
    { name: 'random-reset', ref: () => unet, make: (o) => [guidance.randomResetGuidance({ scale: 1, ...o })] },
    { name: 'square-reset', ref: () => unet, make: (o) => [guidance.squareResetGuidance({ scale: 1, ...o })] },
    { name: 'autoguidance (guide)', ref: () => unet, make: (o) => [guidance.autoguidance({ guide: other, scale: 2, ...o })] },
    { name: 'autoguidance (layers)', ref: () => dit, make: (o) => [guidance.autoguidance({ layers: { blocks: 'blocks.0', skip: 'attention' }, scale: 2, ...o })] },
    { name: 'sims', ref: () => unet, make: (o) => [guidance.sims({ negative: other, scale: 1, ...o })] },
    { name: 'icg', ref: () => unet, make: (o) => [guidance.icg({ scale: 3, ...o })] },
    { name: 'tsg', ref: () => unet, make: (o) => [guidance.tsg({ scale: 3, ...o })] },
    { name: 'slg', ref: () => dit, make: (o) => [guidance.slg({ scale: 3, blocks: 'blocks.1', skip: 'feed-forward', ...o })] },
    { name: 'apg', ref: () => unet, make: (o) => [guidance.apg({ scale: 3, ...o })] },
    { name: 'apg-mix', ref: () => unet, make: (o) => [guidance.apgMix({ scale: 3, apgStart: 0.4, ...o })] },
    { name: 'tcfg', ref: () => unet, make: (o) => [guidance.tcfg({ scale: 3, ...o })] },
    { name: 'fdg', ref: () => unet, make: (o) => [guidance.fdg({ scales: [4, 2], ...o })] },
    { name: 'magnitude-aware', ref: () => unet, make: (o) => [guidance.magnitudeAware({ scale: 3, alpha: 0.5, ...o })] },
    { name: 'cfg-zero-star', ref: () => unet, make: (o) => [guidance.cfgZeroStar({ scale: 3, ...o })] },
    { name: 'cfgpp', ref: () => unet, make: (o) => [guidance.cfgpp({ scale: 0.6, ...o })] },
    // rescale has no terms of its own: stacked on an always-on cfg, "off" is plain cfg.
    { name: 'rescale', ref: () => unet, make: (o) => [guidance.cfg({ scale: 3 }), guidance.rescale({ phi: 0.7, ...o })] },
  ];

  for (const f of factories) {
    it(`${f.name}: off before start, from stop, outside the window and with enabled false; on inside`, () =>
      withoutLeaks(async () => {
        const ref = f.ref();
        const rng = freshRandom();
        const cond = randomLabels(rng);
        const steps = 10;
        // Steps floor(0.3·10) = 3 to floor(0.6·10) = 6 (exclusive); sigma window (0.5, 3].
        const on = { start: between(rng, 0.3, 0.39), stop: between(rng, 0.6, 0.69), window: { sigmaMin: 0.5, sigmaMax: 3 } };
        const off = async (strategies: Strategy[], step: number, sigma: number, why: string) => {
          const e = engine(ref, strategies, cond, randomSeeds(rng));
          try {
            const x = randomX(rng, sigma);
            const plan = e.guided.explain(e.guided.stepInfo(step, steps, sigma));
            // rescale's stack keeps cfg's two branches; everything else is D(c) alone.
            assert.equal(plan.modelEvaluations, f.name === 'rescale' ? 2 : 1, `${f.name} ${why}: branches computed anyway`);
            const actual = await e.predict(x, sigma, step, steps);
            const expected = f.name === 'rescale' ? await cfgOnly(ref, x, sigma, cond) : await refX0(ref, x, sigma, cond);
            expectClose(actual, expected, rng, `${f.name} ${why}`);
          } finally {
            e.dispose();
          }
        };
        const inside = randomSigma(rng, 0.6, 2.9);
        await off(f.make(on), 2, inside, 'before start (step 2)');
        await off(f.make(on), 6, inside, 'at stop (step 6)');
        await off(f.make(on), 4, randomSigma(rng, 3.2, 8), 'above the window');
        await off(f.make(on), 4, randomSigma(rng, 0.1, 0.45), 'below the window');
        await off(f.make({ ...on, enabled: false }), 4, inside, 'disabled');
        // Inside: it acts.
        const e = engine(ref, f.make(on), cond, randomSeeds(rng));
        try {
          const x = randomX(rng, inside);
          const actual = await e.predict(x, inside, 4, steps);
          const plain = f.name === 'rescale' ? await cfgOnly(ref, x, inside, cond) : await refX0(ref, x, inside, cond);
          expectDiffers(actual, plain, rng, `${f.name} inside its schedule`);
        } finally {
          e.dispose();
        }
      }));
  }

  /** CFG w 3 alone, from separate forwards. */
  async function cfgOnly(ref: Ref, x: Float32Array, sigma: number, cond: ReturnType<typeof randomLabels>) {
    const dc = await refX0(ref, x, sigma, cond);
    const du = await refX0(ref, x, sigma, { kind: 'class', labels: [null, null] });
    return dc.map((v, i) => du[i]! + 3 * (v - du[i]!));
  }

  it('refuses bad scheduling values, naming the field, in every factory', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ start: 0.7, stop: 0.3 }, /start: start must be below stop/],
      [{ start: 0.5, stop: 0.5 }, /start: start must be below stop/],
      [{ start: -0.1 }, /start:/],
      [{ stop: 1.5 }, /stop:/],
      [{ enabled: 'yes' }, /enabled:/],
      [{ window: { sigmaMin: 2, sigmaMax: 1 } }, /window\.sigmaMin: sigmaMin must be below sigmaMax/],
      [{ steps: { start: 0, end: 1 } }, /steps/],
    ];
    const makers: [string, (o: Record<string, unknown>) => unknown][] = [
      ['cfg', (o) => guidance.cfg(o)],
      ['slg', (o) => guidance.slg(o)],
      ['tcfg', (o) => guidance.tcfg(o)],
      ['apg-mix', (o) => guidance.apgMix(o)],
      ['magnitude-aware', (o) => guidance.magnitudeAware(o)],
      ['rescale', (o) => guidance.rescale(o)],
      ['highpass', (o) => guidance.highPassGuidance(o)],
      ['fdg', (o) => guidance.fdg(o)],
    ];
    for (const [name, make] of makers) {
      for (const [options, pattern] of bad) {
        assert.throws(
          () => make(options),
          (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && pattern.test(error.message) && error.message.includes(`${name} options`),
          `${name} ${JSON.stringify(options)}`,
        );
      }
    }
  });
});
