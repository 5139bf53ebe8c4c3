/**
 * Guidance as data: a stack saved as a versioned JSON document and loaded
 * back gives the same strategies (settings, and predictions from the engine
 * on fresh inputs), models by name, Infinity and RegExps through their tags;
 * bad documents are refused naming the field. And the command line's spec
 * parser as API (guidanceFromSpec).
 */
import assert from 'node:assert/strict';

import {
  type Model,
  type Strategy,
  ErrorCodes,
  GUIDANCE_FORMAT,
  apg,
  autoguidance,
  cfg,
  fdg,
  guidanceFromJSON,
  guidanceFromSpec,
  guidanceToJSON,
  isTorchGuidanceError,
  loadModel,
  pag,
  rescale,
  sag,
  seg,
  slg,
  tcfg,
} from '../src/index.js';
import {
  type Ref,
  between,
  draw,
  engine,
  expectClose,
  fixture,
  predictOnce,
  randomSeeds,
  refOf,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom } from './helpers/random.js';

const refuses = (make: () => unknown, pattern: RegExp, what: string) =>
  assert.throws(make, (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && pattern.test(error.message), what);

describe('guidance as data: JSON documents and specs', function () {
  this.timeout(300_000);
  let unet: Ref;
  let weak: Model;
  let vit: Model;
  before(async () => {
    unet = refOf('tiny-unet', await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' }));
    weak = await loadModel(fixture('tiny-unet-v.pt'), { device: 'cpu' });
    vit = await loadModel(fixture('tiny-vit.pt'), { device: 'cpu' });
  });
  after(() => {
    unet.model.dispose();
    weak.dispose();
    vit.dispose();
  });

  /** A random stack touching every kind of value a document holds. */
  function randomStack(rng: ReturnType<typeof freshRandom>): Strategy[] {
    return [
      cfg({ scale: between(rng, 1.5, 4), window: { sigmaMin: between(rng, 0, 0.2), sigmaMax: between(rng, 5, 50) } }),
      pag({ scale: between(rng, 1, 3), sites: /^mid\./ }),
      seg({ scale: between(rng, 1, 3) }), // sigma Infinity
      autoguidance({ guide: weak, scale: between(rng, 1.5, 3), start: 0.1 }),
      sag({ scale: between(rng, 0.5, 1), mask: { source: 'model', model: vit, threshold: between(rng, 0.8, 1.2) } }),
      apg({ scale: between(rng, 2, 4), momentum: null, normDim: [-2, -1] }),
      fdg({ scales: [between(rng, 3, 6), between(rng, 1, 3)], parallelWeights: [0.5, 1], enabled: rng.next() < 0.5 }),
      tcfg({ scale: between(rng, 1.5, 3), formulation: 'original' }),
      rescale({ phi: between(rng, 0.3, 0.9) }),
    ];
  }

  it('a stack saved and loaded keeps every setting and predicts the same', () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw();
      const stack = randomStack(rng);
      const models = { weak, vit };
      const text = JSON.stringify(guidanceToJSON(stack, { models }));
      const document = JSON.parse(text);
      assert.equal(document.format, GUIDANCE_FORMAT);
      assert.equal(document.version, 1);
      assert.deepEqual(document.strategies[2].options.sigma, { $number: 'Infinity' });
      assert.deepEqual(document.strategies[1].options.sites, { $regexp: '^mid\\.', flags: '' });
      assert.deepEqual(document.strategies[3].options.guide, { $model: 'weak' });
      const loaded = guidanceFromJSON(text, { models });
      assert.deepEqual(loaded.map((s) => s.name), stack.map((s) => s.name));
      // Saving the loaded stack gives the same document: every option survives the round trip.
      assert.deepEqual(guidanceToJSON(loaded, { models }), document);
      const seeds = randomSeeds(rng);
      const before = await predictOnce(engine(unet, stack, cond, seeds), x, sigma);
      const after = await predictOnce(engine(unet, loaded, cond, seeds), x, sigma);
      expectClose(after, before, rng, 'loaded stack vs original', 1e-6);
    }));

  it('refuses what it cannot save and documents it cannot load, naming the field', () => {
    const custom: Strategy = { name: 'cfg', settings: { scale: 3 }, terms: () => [] };
    refuses(() => guidanceToJSON([cfg(), custom]), /strategies\.1 \('cfg'\) was not made by one of the package's factories/, 'a hand-written strategy');
    refuses(() => guidanceToJSON([autoguidance({ guide: weak })]), /strategies\.0\.options\.guide is a model with no name/, 'an unnamed model');
    const good = guidanceToJSON([cfg({ scale: 2 }), slg({ scale: 3 })]);
    refuses(() => guidanceFromJSON('{"format":'), /not JSON/, 'not JSON');
    refuses(() => guidanceFromJSON({ ...good, version: 2 }), /version: this package reads version 1/, 'a newer version');
    refuses(() => guidanceFromJSON({ ...good, format: 'other' }), /format/, 'another format');
    refuses(() => guidanceFromJSON({ ...good, strategies: [{ name: 'cfgg', options: {} }] }), /strategies\.0\.name: unknown strategy 'cfgg'/, 'unknown name');
    refuses(
      () => guidanceFromJSON({ ...good, strategies: [good.strategies[0], { name: 'slg', options: { scale: 'high' } }] }),
      /strategies\.1 \(slg\): invalid slg options: scale/,
      'a bad option inside',
    );
    refuses(
      () => guidanceFromJSON({ ...good, strategies: [{ name: 'autoguidance', options: { guide: { $model: 'big' } } }] }),
      /strategies\.0\.options\.guide names the model 'big'/,
      'a model not given',
    );
    refuses(
      () => guidanceFromJSON({ ...good, strategies: [{ name: 'seg', options: { sigma: { $number: 'lots' } } }] }),
      /strategies\.0\.options\.sigma\.\$number/,
      'a bad $number',
    );
  });

  it('guidanceFromSpec reads the command line specs, with typed errors naming the spec and option', () => {
    const rng = freshRandom();
    const w = Math.round(between(rng, 1.5, 4) * 100) / 100;
    const a = guidanceFromSpec(`cfg:${w},sigmaMax=5,start=0.1,enabled=true`);
    assert.deepEqual(a.settings, cfg({ scale: w, window: { sigmaMax: 5 }, start: 0.1 }).settings);
    assert.deepEqual(guidanceFromSpec('fdg:10+5,parallelWeights=0.5').settings, fdg({ scales: [10, 5], parallelWeights: 0.5 }).settings);
    assert.deepEqual(
      guidanceFromSpec('autoguidance:2,layers.blocks=mid.*,layers.skip=attention').settings,
      autoguidance({ scale: 2, layers: { blocks: 'mid.*', skip: 'attention' } }).settings,
    );
    assert.equal(guidanceFromSpec('autoguidance:2', { model: weak }).settings.guide, weak);
    assert.equal(guidanceFromSpec('slg:3,enabled=false').settings.enabled, false);
    refuses(() => guidanceFromSpec('pag:scale=abc'), /^guidance spec pag:scale=abc: scale must be a number/, 'not a number');
    refuses(() => guidanceFromSpec('tcfg:3,space=latent'), /space/, 'bad enum');
    refuses(() => guidanceFromSpec('nope:1'), /unknown strategy 'nope'/, 'unknown');
    refuses(() => guidanceFromSpec('autoguidance:2'), /needs a second model/, 'no guide');
  });
});
