/**
 * SAG with its mask from a second model (the paper's DINO ablation) on the
 * tiny UNet, with a small random-weight ViT (models/fixtures/tiny-vit.pt) as
 * the mask model: a mechanism test. The reference runs the denoiser and the
 * ViT separately, reduces the ViT's captured attention to a patch mask in
 * JavaScript (the class token's row, or the attention each patch receives),
 * thresholds it at a multiple of the mean, lays the 7×7 patch grid over the
 * 28×28 sample, blurs x0 there, re-noises and predicts again; the term is
 * SAG's, s((D − x) − (D(x̃) − x̃)).
 */
import assert from 'node:assert/strict';

import { type Model, type Strategy, type Tensor, ErrorCodes, cfg, isTorchGuidanceError, loadModel, sag, tensor } from '../src/index.js';
import {
  type Cond,
  type Ref,
  type Vec,
  H,
  N,
  NULL,
  SIZE,
  TOL,
  W,
  between,
  draw,
  engine,
  expectDiffers,
  fixture,
  gaussianBlur,
  mix,
  predictOnce,
  randomLabels,
  randomSeeds,
  refOf,
  refX0,
  renoised,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom, relativeError } from './helpers/random.js';

interface MaskSettings {
  reduce: 'cls' | 'sum';
  threshold: number;
  inputScale: number;
  inputShift: number;
}

/** The ViT's head-averaged map at `site` for x0 (one unbatched forward, capture hook). */
async function capturedMap(vit: Model, x0: Vec, settings: MaskSettings, site: string): Promise<Float32Array> {
  const owned: Tensor[] = [];
  try {
    const input = tensor(Float32Array.from(x0, (v) => v * settings.inputScale + settings.inputShift), [N, 1, H, W]);
    owned.push(input);
    const { output, captures } = await vit.run<Tensor>({ inputs: [input], hooks: [{ sites: site, action: 'capture', self: true }] });
    owned.push(output, ...captures.values());
    return (await captures.get(site)!.toArray()) as Float32Array;
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** Masks from the map: the union mask, and variants with patches within 1e-5 of the threshold flipped (round-off between batch sizes). */
function patchMasks(map: Float32Array, settings: MaskSettings): Vec[] {
  const tokens = 50;
  const patches = 49;
  const grid = 7;
  const on = new Uint8Array(N * patches);
  const ambiguous: number[] = [];
  for (let n = 0; n < N; n++) {
    const weights = new Float64Array(patches);
    for (let k = 0; k < patches; k++) {
      if (settings.reduce === 'cls') weights[k] = map[(n * tokens + 0) * tokens + 1 + k]!;
      else for (let q = 1; q < tokens; q++) weights[k]! += map[(n * tokens + q) * tokens + 1 + k]!;
    }
    const limit = (settings.threshold * weights.reduce((s, v) => s + v, 0)) / patches;
    for (let k = 0; k < patches; k++) {
      if (weights[k]! > limit) on[n * patches + k] = 1;
      if (Math.abs(weights[k]! - limit) < 1e-5 * Math.abs(limit)) ambiguous.push(n * patches + k);
    }
  }
  const upsample = (cells: Uint8Array) => {
    const mask = new Float64Array(N * SIZE);
    for (let n = 0; n < N; n++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) mask[n * SIZE + y * W + x] = cells[n * patches + Math.floor((y * grid) / H) * grid + Math.floor((x * grid) / W)]!;
    return mask;
  };
  return [on, ...ambiguous.slice(0, 3).map((k) => Uint8Array.from(on, (v, i) => (i === k ? 1 - v : v)))].map(upsample);
}

describe('sag with its mask from a second model (DINO-style ViT, random weights: the mechanism)', function () {
  this.timeout(300_000);
  let unet: Ref;
  let vit: Model;
  before(async () => {
    unet = refOf('tiny-unet', await loadModel(fixture('tiny-unet.pt'), { device: 'cpu' }));
    vit = await loadModel(fixture('tiny-vit.pt'), { device: 'cpu' });
  });
  after(() => {
    unet.model.dispose();
    vit.dispose();
  });

  const cases: { settings: MaskSettings; withCfg: boolean; site?: string }[] = [
    { settings: { reduce: 'cls', threshold: 1, inputScale: 1, inputShift: 0 }, withCfg: false },
    { settings: { reduce: 'sum', threshold: 1.1, inputScale: 0.5, inputShift: 0.5 }, withCfg: true, site: 'blocks.0.attn' },
  ];

  for (const { settings, withCfg, site } of cases) {
    it(`${withCfg ? 'cfg + ' : ''}sag, mask from the ViT's ${site ?? 'last'} attention (${settings.reduce}, threshold ${settings.threshold}, input ${settings.inputScale}·x0 + ${settings.inputShift})`, () =>
      withoutLeaks(async () => {
        const { rng, sigma, x, cond } = draw([0.5, 4]);
        const s = between(rng, 0.5, 2);
        const w = between(rng, 1.5, 3);
        const blurSigma = between(rng, 1, 2);
        const mask = { source: 'model' as const, model: vit, ...settings, ...(site ? { sites: site } : {}) };
        const strategies: Strategy[] = [...(withCfg ? [cfg({ scale: w })] : []), sag({ scale: s, blurSigma, mask })];
        const e = engine(unet, strategies, cond, randomSeeds(rng));
        let actual: Float32Array;
        const vitForwards = vit.forwardCount;
        try {
          actual = await e.predict(x, sigma);
          assert.equal(vit.forwardCount - vitForwards, 1, 'one mask-model forward per evaluation');
        } finally {
          e.dispose();
        }
        const sourceCond: Cond = withCfg ? NULL : cond;
        const dc = await refX0(unet, x, sigma, cond);
        const source = withCfg ? await refX0(unet, x, sigma, NULL) : dc;
        const map = await capturedMap(vit, source, settings, site ?? 'blocks.1.attn');
        const masks = patchMasks(map, settings);
        const covered = masks[0]!.reduce((sum, v) => sum + v, 0) / masks[0]!.length;
        assert.ok(covered > 0 && covered < 1, `the ViT's mask covers ${covered} of the sample; expected part of it (seed ${rng.seed})`);
        const blurred = gaussianBlur(source, 9, blurSigma);
        let best = Infinity;
        for (const m of masks) {
          const xt = renoised(x, source, blurred, m);
          const degraded = await refX0(unet, xt, sigma, sourceCond);
          expectDiffers(source, degraded, rng, 'D(x) vs D(x̃)');
          const terms: [number, Vec, Vec][] = withCfg ? [[w - 1, dc, source]] : [];
          terms.push([s, source, degraded.map((v, i) => v - xt[i]! + x[i]!)]);
          best = Math.min(best, relativeError(actual, mix(dc, terms)));
        }
        assert.ok(best < TOL, `sag (mask model): relative error ${best} >= ${TOL} (seed ${rng.seed})`);
      }));
  }

  it('the model mask differs from the denoiser’s own (the source really is pluggable)', () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw([0.5, 4]);
      const seeds = randomSeeds(rng);
      const own = await predictOnce(engine(unet, [sag({ scale: 1 })], cond, seeds), x, sigma);
      const viaVit = await predictOnce(engine(unet, [sag({ scale: 1, mask: { source: 'model', model: vit } })], cond, seeds), x, sigma);
      expectDiffers(own, viaVit, rng, 'own mask vs ViT mask');
    }));

  it('refuses a bad mask source, naming the field', async () => {
    const cond = randomLabels(freshRandom());
    assert.throws(
      () => sag({ mask: { source: 'model', model: vit, prefixTokens: 0 } }),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && /mask\.prefixTokens/.test(error.message),
    );
    assert.throws(
      () => sag({ mask: { source: 'model', model: 'vit.pt' as never } }),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && /mask\.model/.test(error.message),
    );
    assert.throws(
      () => engine(unet, [sag({ mask: { source: 'model', model: vit, sites: 'head' } })], cond, [1n, 2n]),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.NO_MATCHING_SITE) && /mask model/.test(error.message),
    );
    // Two prefix tokens leave 48 patches, which tile no 28×28 grid: refused when the mask is made.
    const e = engine(unet, [sag({ mask: { source: 'model', model: vit, prefixTokens: 2 } })], cond, [1n, 2n]);
    try {
      const x = new Float32Array(N * SIZE).map(() => freshRandom().normal());
      await assert.rejects(e.predict(x, 1), (error: unknown) => isTorchGuidanceError(error, ErrorCodes.NO_GRID) && /prefixTokens/.test(error.message));
    } finally {
      e.dispose();
    }
  });
});
