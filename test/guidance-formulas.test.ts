/**
 * Every guidance strategy's prediction against its formula, computed
 * independently: GuidedDenoiser.predict() (the D(x; sigma) a sampler sees for
 * one step, with the planner's batched forwards and per-slice hooks) must equal
 * the method's formula (docs/guidance-methods.md), evaluated here from
 * separate, unbatched forwards of the model (model.run with explicit hooks per
 * branch), converted to x0 in JS from the card's schedule, and mixed in plain
 * JS arithmetic (float64; test/helpers/guidance-reference.ts). Inputs are
 * fresh random draws; failures print the seed.
 */
import assert from 'node:assert/strict';

import {
  type Hook,
  type Model,
  type Strategy,
  ErrorCodes,
  apg,
  autoguidance,
  blurGuidance,
  cfg,
  cfgZeroStar,
  guidanceInterval,
  highPassGuidance,
  icg,
  isTorchGuidanceError,
  loadModel,
  lowPassGuidance,
  pag,
  randn,
  randomResetGuidance,
  rescale,
  sag,
  seg,
  sims,
  slg,
  squareResetGuidance,
  tensor,
  tsg,
} from '../src/index.js';
import { Denoiser } from '../src/guidance/denoiser.js';
import { GuidedDenoiser } from '../src/guidance/guided-denoiser.js';
import { Streams, mixSeed, uniformFromSeed } from '../src/core/seeds.js';
import {
  type Cond,
  H,
  N,
  NULL,
  type Ref,
  SIZE,
  TOL,
  type Vec,
  W,
  between,
  dot,
  draw,
  engine,
  expectClose,
  expectDiffers,
  fixture,
  gaussianBlur,
  lowPass,
  mix,
  norm,
  nullOf,
  predictOnce,
  randomLabels,
  randomSeeds,
  randomSigma,
  randomX,
  refD,
  refOf,
  refX0,
  renoised,
  sampleOf,
  std,
  timestepOf,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom, relativeError } from './helpers/random.js';

// ---------------------------------------------------------------------------

describe('guidance formulas: the engine prediction equals each strategy formula, computed independently', function () {
  this.timeout(300_000);
  const refs = new Map<string, Ref>();
  const get = (name: string) => refs.get(name)!;

  before(async () => {
    for (const name of ['tiny-unet', 'tiny-unet-v', 'tiny-unet-x0', 'tiny-edm', 'tiny-uncond', 'tiny-tensor-cond']) {
      refs.set(name, refOf(name, await loadModel(fixture(`${name}.pt`), { device: 'cpu' })));
    }
    // The card's probe inputs do not cover a tensor condition: probe it here for its query grids (SEG needs them).
    const x = randn([1, 1, H, W], { seed: 1 });
    const t = tensor(new Float32Array([500]), [1]);
    const c = tensor(new Float32Array(4), [1, 4]);
    try {
      await get('tiny-tensor-cond').model.probe(x, t, c);
    } finally {
      x.dispose();
      t.dispose();
      c.dispose();
    }
    // Loading tiny-tensor-cond leaves two unreferenced probe tensors behind (src/model.ts builds card probe
    // inputs it then does not use); let the collector free them now, not in the middle of a test's count.
    for (let i = 0; i < 5; i++) {
      global.gc?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  after(() => refs.forEach((r) => r.model.dispose()));

  // ---- CFG ---------------------------------------------------------------

  for (const name of ['tiny-unet', 'tiny-unet-v', 'tiny-unet-x0', 'tiny-edm']) {
    it(`cfg standard on ${name}: D(∅) + w(D(c) − D(∅))`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw();
        const w = between(rng, 1.5, 5);
        const actual = await predictOnce(engine(ref, [cfg({ scale: w })], cond, randomSeeds(rng)), x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        expectDiffers(dc, du, rng, 'D(c) vs D(∅)');
        expectClose(actual, mix(du, [[w, dc, du]]), rng, `cfg w=${w} sigma=${sigma}`);
      }));
  }

  it("cfg 'original' formulation on tiny-unet-x0: D(c) + w'(D(c) − D(∅))", () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet-x0');
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 0.5, 4);
      const actual = await predictOnce(engine(ref, [cfg({ scale: w, formulation: 'original' })], cond, randomSeeds(rng)), x, sigma);
      const dc = await refX0(ref, x, sigma, cond);
      const du = await refX0(ref, x, sigma, NULL);
      expectClose(actual, mix(dc, [[w, dc, du]]), rng, `cfg original w'=${w}`);
    }));

  it('guidance interval on tiny-edm: CFG for sigmaMin < sigma <= sigmaMax, D(c) outside', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-edm');
      const rng = freshRandom();
      const sigmaMin = between(rng, 0.4, 0.8);
      const sigmaMax = between(rng, 1.5, 3);
      const w = between(rng, 1.5, 4);
      const cond = randomLabels(rng);
      const e = engine(ref, [guidanceInterval({ scale: w, window: { sigmaMin, sigmaMax } })], cond, randomSeeds(rng));
      try {
        const cases: [number, boolean][] = [
          [between(rng, sigmaMin * 1.05, sigmaMax * 0.95), true],
          [sigmaMax, true],
          [sigmaMin, false],
          [between(rng, sigmaMax * 1.2, 6), false],
        ];
        for (const [sigma, inside] of cases) {
          const x = randomX(rng, sigma);
          const actual = await e.predict(x, sigma);
          const dc = await refX0(ref, x, sigma, cond);
          let expected = dc;
          if (inside) {
            const du = await refX0(ref, x, sigma, NULL);
            expected = mix(du, [[w, dc, du]]);
          }
          expectClose(actual, expected, rng, `window (${sigmaMin}, ${sigmaMax}], sigma ${sigma} (${inside ? 'inside' : 'outside'})`);
        }
      } finally {
        e.dispose();
      }
    }));

  // ---- Rescale -----------------------------------------------------------

  for (const [name, space] of [
    ['tiny-unet', 'eps'],
    ['tiny-unet-v', 'x0'],
  ] as const) {
    it(`cfg + rescale in ${space} space on ${name}: φ·out·std(ref)/std(out) + (1−φ)·out per sample`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw();
        const w = between(rng, 2, 6);
        const phi = between(rng, 0.3, 0.9);
        const actual = await predictOnce(engine(ref, [cfg({ scale: w }), rescale({ phi, space })], cond, randomSeeds(rng)), x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        const guided = mix(du, [[w, dc, du]]);
        // In eps space the rescaled quantities are the noise estimates (x − D)/sigma.
        const toSpace = (d: Vec) => (space === 'eps' ? d.map((v, i) => (x[i]! - v) / sigma) : d);
        const out = toSpace(guided);
        const reference = toSpace(dc);
        const rescaled = new Float64Array(out.length);
        for (let n = 0; n < N; n++) {
          const factor = std(reference, n) / std(out, n);
          for (let i = n * SIZE; i < (n + 1) * SIZE; i++) rescaled[i] = phi * out[i]! * factor + (1 - phi) * out[i]!;
        }
        const expected = space === 'eps' ? rescaled.map((v, i) => x[i]! - sigma * v) : rescaled;
        expectDiffers(expected, guided, rng, 'rescaled vs plain cfg');
        expectClose(actual, expected, rng, `rescale φ=${phi} (${space}) over cfg w=${w}`);
      }));
  }

  // ---- PAG ---------------------------------------------------------------

  it('pag on tiny-unet (two sites): D(c) + s(D(c) − D(c; identity attention))', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const s = between(rng, 1, 5);
      const sites = ['mid.*', 'up.2'];
      const actual = await predictOnce(engine(ref, [pag({ scale: s, sites })], cond, randomSeeds(rng)), x, sigma);
      const dc = await refX0(ref, x, sigma, cond);
      const dp = await refX0(ref, x, sigma, cond, [{ sites, action: 'identity' }]);
      expectDiffers(dc, dp, rng, 'D(c) vs D_pag');
      expectClose(actual, mix(dc, [[s, dc, dp]]), rng, `pag s=${s}`);
    }));

  it('pag adaptive scale on tiny-unet-v: s_t = max(0, s − a(1000 − t)); 0 gives D(c); EDM refuses it', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet-v');
      const rng = freshRandom();
      const s = between(rng, 2, 5);
      const cond = randomLabels(rng);
      const sigma = randomSigma(rng, 1, 4);
      const t = timestepOf(ref, sigma);
      // a such that s_t lands strictly inside (0, s) at this sigma, and clamps to 0 at a low sigma.
      const low = randomSigma(rng, 0.03, 0.1);
      const tl = timestepOf(ref, low);
      const [aLow, aHigh] = [s / (1000 - tl), s / (1000 - t)];
      const a = aLow + between(rng, 0.1, 0.9) * (aHigh - aLow);
      const e = engine(ref, [pag({ scale: s, adaptiveScale: a })], cond, randomSeeds(rng));
      try {
        const x = randomX(rng, sigma);
        const actual = await e.predict(x, sigma);
        const st = Math.max(0, s - a * (1000 - t));
        const dc = await refX0(ref, x, sigma, cond);
        const dp = await refX0(ref, x, sigma, cond, [{ sites: 'mid.*', action: 'identity' }]);
        expectClose(actual, mix(dc, [[st, dc, dp]]), rng, `pag adaptive s=${s} a=${a} t=${t} s_t=${st}`);
        // Lower sigma, smaller t: the adaptive scale clamps at 0 and the prediction is D(c).
        assert.equal(Math.max(0, s - a * (1000 - timestepOf(ref, low))), 0, `s_t should clamp at sigma ${low} (seed ${rng.seed})`);
        const xl = randomX(rng, low);
        expectClose(await e.predict(xl, low), await refX0(ref, xl, low, cond), rng, `pag adaptive clamped at sigma ${low}`);
      } finally {
        e.dispose();
      }
      const edm = engine(get('tiny-edm'), [pag({ scale: s, adaptiveScale: a })], cond, randomSeeds(rng));
      try {
        await assert.rejects(
          edm.predict(randomX(rng, 1), 1),
          (error: unknown) => isTorchGuidanceError(error) && error.code === ErrorCodes.INVALID_OPTION,
        );
      } finally {
        edm.dispose();
      }
    }));

  it('pag on the unconditional tiny-uncond: D + s(D − D_pag), no condition input', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-uncond');
      const { rng, sigma, x } = draw();
      const s = between(rng, 1, 5);
      const none: Cond = { kind: 'none' };
      const actual = await predictOnce(engine(ref, [pag({ scale: s, sites: '**.mid.*' })], none, randomSeeds(rng)), x, sigma);
      const d = await refX0(ref, x, sigma, none);
      const dp = await refX0(ref, x, sigma, none, [{ sites: 'unet.mid.attn', action: 'identity' }]);
      expectDiffers(d, dp, rng, 'D vs D_pag');
      expectClose(actual, mix(d, [[s, d, dp]]), rng, `pag (unconditional) s=${s}`);
    }));

  // ---- SEG ---------------------------------------------------------------

  for (const [name, finite] of [
    ['tiny-unet', false],
    ['tiny-unet-x0', true],
  ] as const) {
    it(`seg with sigma ${finite ? 'finite' : 'Infinity'} on ${name}: D(c) + s(D(c) − D(c; blurred queries))`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw();
        const s = between(rng, 1, 5);
        const blur = finite ? between(rng, 0.5, 2.5) : Infinity;
        const actual = await predictOnce(engine(ref, [seg({ scale: s, sigma: blur })], cond, randomSeeds(rng)), x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const ds = await refX0(ref, x, sigma, cond, [{ sites: 'mid.*', action: 'blur', sigma: blur }]);
        expectDiffers(dc, ds, rng, 'D(c) vs D_seg');
        expectClose(actual, mix(dc, [[s, dc, ds]]), rng, `seg s=${s} blur sigma=${blur}`);
      }));
  }

  // ---- SAG and its baselines -----------------------------------------------

  /** SAG's mask from captured maps: per key, head-averaged attention summed over queries > threshold, nearest-upsampled. */
  function sagMasks(captures: Map<string, Float32Array>, grid: [number, number], threshold: number): Vec[] {
    const [gh, gw] = grid;
    const keys = gh * gw;
    const high = new Uint8Array(N * keys);
    const ambiguous: number[] = [];
    for (const map of captures.values()) {
      const queries = map.length / N / keys;
      for (let n = 0; n < N; n++)
        for (let k = 0; k < keys; k++) {
          let sum = 0;
          for (let q = 0; q < queries; q++) sum += map[(n * queries + q) * keys + k]!;
          if (sum > threshold) high[n * keys + k] = 1;
          // Float noise between a batched and an unbatched forward may flip a key this close to the threshold.
          if (Math.abs(sum - threshold) < 1e-5) ambiguous.push(n * keys + k);
        }
    }
    const upsample = (cells: Uint8Array) => {
      const mask = new Float64Array(N * SIZE);
      for (let n = 0; n < N; n++)
        for (let y = 0; y < H; y++)
          for (let xx = 0; xx < W; xx++)
            mask[n * SIZE + y * W + xx] = cells[n * keys + Math.floor((y * gh) / H) * gw + Math.floor((xx * gw) / W)]!;
      return mask;
    };
    const masks = [upsample(high)];
    for (const k of ambiguous.slice(0, 3)) {
      const flipped = Uint8Array.from(high);
      flipped[k] = 1 - flipped[k]!;
      masks.push(upsample(flipped));
    }
    return masks;
  }

  for (const [name, withCfg] of [
    ['tiny-unet', false],
    ['tiny-unet-v', true],
  ] as const) {
    const title = withCfg
      ? 'cfg + sag on tiny-unet-v: D(∅) + w(D(c) − D(∅)) + s((D(∅) − x) − (D(∅; x̃) − x̃)), x̃ from the null branch'
      : 'sag on tiny-unet: D(c) + s((D(c) − x) − (D(c; x̃) − x̃)) (eps space), x̃ = x0 blurred where attention is high, re-noised';
    it(title, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw([0.5, 4]);
        const w = between(rng, 1.5, 4);
        const s = between(rng, 0.5, 2);
        const blurSigma = between(rng, 1, 2);
        const strategies = [...(withCfg ? [cfg({ scale: w })] : []), sag({ scale: s, blurSigma })];
        const actual = await predictOnce(engine(ref, strategies, cond, randomSeeds(rng)), x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const sourceCond = withCfg ? NULL : cond;
        const source = await refD(ref, x, sigma, sourceCond, [{ sites: 'mid.*', action: 'capture', self: true }]);
        const site = ref.model.attentionSites.find((a) => a.path === 'mid.attn')!;
        const masks = sagMasks(source.captures, site.grid!, 1);
        const covered = masks[0]!.reduce((sum, v) => sum + v, 0) / masks[0]!.length;
        assert.ok(covered > 0 && covered < 1, `SAG mask covers ${covered} of the sample; expected part of it (seed ${rng.seed})`);
        const blurred = gaussianBlur(source.x0, 9, blurSigma);
        let best = Infinity;
        for (const mask of masks) {
          const xt = renoised(x, source.x0, blurred, mask);
          const degraded = await refX0(ref, xt, sigma, sourceCond);
          expectDiffers(source.x0, degraded, rng, 'D_source vs D_source(x̃)');
          const terms: [number, Vec, Vec][] = withCfg ? [[w - 1, dc, source.x0]] : [];
          terms.push([s, source.x0, asIfFromX(degraded, xt, x)]);
          best = Math.min(best, relativeError(actual, mix(dc, terms)));
        }
        assert.ok(best < TOL, `${withCfg ? 'cfg+' : ''}sag: relative error ${best} >= ${TOL} (seed ${rng.seed})`);
      }));
  }

  /** A degradation baseline: D(c) + s((D(c) − x) − (D(c; x̃) − x̃)), x̃ = degrade(x0) + (x − x0). */
  async function baseline(
    name: string,
    strategy: (s: number, blurSigma: number) => Strategy,
    degrade: (x0: Vec, blurSigma: number, seeds: bigint[]) => Vec,
    label: string,
  ): Promise<void> {
    const ref = get(name);
    const { rng, sigma, x, cond } = draw([0.5, 4]);
    const s = between(rng, 0.5, 2);
    const blurSigma = between(rng, 1, 2);
    const seeds = randomSeeds(rng);
    const actual = await predictOnce(engine(ref, [strategy(s, blurSigma)], cond, seeds), x, sigma);
    const dc = await refX0(ref, x, sigma, cond);
    const deg = degrade(dc, blurSigma, seeds);
    const xt = renoised(x, dc, deg);
    const dd = await refX0(ref, xt, sigma, cond);
    expectDiffers(dc, dd, rng, `${label}: D(c) vs D(c; x̃)`);
    expectClose(actual, mix(dc, [[s, dc, asIfFromX(dd, xt, x)]]), rng, `${label} s=${s} blurSigma=${blurSigma}`);
  }

  /**
   * D(x̃) − x̃ + x: a prediction made from x̃, moved so that subtracting it from
   * one made from x compares noise predictions (D − input = −σ·eps), as SAG
   * and its baselines are defined.
   */
  function asIfFromX(d: Vec, xt: ArrayLike<number>, x: ArrayLike<number>): Vec {
    return d.map((v, i) => v - xt[i]! + x[i]!);
  }

  /** x0 + m (blur(x0) − x0) for a per-pixel mask shared by the channel. */
  const maskedBlur = (x0: Vec, blurSigma: number, mask: Vec) => {
    const blurred = gaussianBlur(x0, 9, blurSigma);
    return x0.map((v, i) => v + mask[i]! * (blurred[i]! - v));
  };

  it('blur guidance (global Gaussian blur of x0) on tiny-unet', () =>
    withoutLeaks(() =>
      baseline('tiny-unet', (s, blurSigma) => blurGuidance({ scale: s, blurSigma }), (x0, b) => gaussianBlur(x0, 9, b), 'blur'),
    ));

  it('low-pass guidance (FFT low-pass of x0, radius ≤ cutoff·Nyquist) on tiny-unet-x0', () =>
    withoutLeaks(async () => {
      const cutoff = between(freshRandom(), 0.2, 0.6);
      await baseline('tiny-unet-x0', (s) => lowPassGuidance({ scale: s, cutoff }), (x0) => lowPass(x0, cutoff), `lowpass cutoff=${cutoff}`);
    }));

  it('high-pass guidance (x0 minus its FFT low-pass: keeps radius > cutoff·Nyquist) on tiny-unet', () =>
    withoutLeaks(async () => {
      const cutoff = between(freshRandom(), 0.1, 0.5);
      await baseline(
        'tiny-unet',
        (s) => highPassGuidance({ scale: s, cutoff }),
        (x0) => {
          const low = lowPass(x0, cutoff);
          return x0.map((v, i) => v - low[i]!);
        },
        `highpass cutoff=${cutoff}`,
      );
    }));

  it('square-reset guidance (blur one centred square of fraction f) on tiny-edm', () =>
    withoutLeaks(async () => {
      const fraction = between(freshRandom(), 0.15, 0.6);
      const side = Math.round(Math.sqrt(fraction * H * W));
      const top = Math.floor((H - side) / 2);
      const left = Math.floor((W - side) / 2);
      const mask = new Float64Array(N * SIZE);
      for (let n = 0; n < N; n++)
        for (let y = top; y < top + side; y++) for (let xx = left; xx < left + side; xx++) mask[n * SIZE + y * W + xx] = 1;
      await baseline(
        'tiny-edm',
        (s, blurSigma) => squareResetGuidance({ scale: s, blurSigma, fraction }),
        (x0, b) => maskedBlur(x0, b, mask),
        `square-reset fraction=${fraction}`,
      );
    }));

  it('random-reset guidance on tiny-unet: fraction 1 equals global blur; partial patches seeded per sample and evaluation', () =>
    withoutLeaks(async () => {
      await baseline(
        'tiny-unet',
        (s, blurSigma) => randomResetGuidance({ scale: s, blurSigma, fraction: 1 }),
        (x0, b) => gaussianBlur(x0, 9, b),
        'random-reset fraction=1',
      );
      const fraction = between(freshRandom(), 0.3, 0.7);
      const patch = 4;
      // The patch draw as degrade.ts documents it: per sample, seed mixSeed(sample seed, 0x5a60000 + evaluation),
      // cell (r, c) reset when uniform(seed, r·cols + c) < fraction. This engine makes one evaluation: index 0.
      const STREAM = 0x5a6_0000n;
      const maskFor = (seeds: bigint[]) => {
        const mask = new Float64Array(N * SIZE);
        const cols = Math.ceil(W / patch);
        for (let n = 0; n < N; n++) {
          const seed = mixSeed(seeds[n]!, STREAM + 0n /* evaluation 0 */);
          for (let y = 0; y < H; y++)
            for (let xx = 0; xx < W; xx++) {
              const cell = Math.floor(y / patch) * cols + Math.floor(xx / patch);
              mask[n * SIZE + y * W + xx] = uniformFromSeed(seed, cell) < fraction ? 1 : 0;
            }
        }
        return mask;
      };
      await baseline(
        'tiny-unet',
        (s, blurSigma) => randomResetGuidance({ scale: s, blurSigma, fraction, patch }),
        (x0, b, seeds) => maskedBlur(x0, b, maskFor(seeds)),
        `random-reset fraction=${fraction}`,
      );
    }));

  // ---- Second models -------------------------------------------------------

  for (const [main, guide] of [
    ['tiny-unet', 'tiny-unet-v'],
    ['tiny-edm', 'tiny-unet-x0'],
  ] as const) {
    it(`autoguidance, main ${main} guided by ${guide}: D_guide + w(D_main − D_guide), each in its own parameterisation`, () =>
      withoutLeaks(async () => {
        const { rng, sigma, x, cond } = draw();
        const w = between(rng, 1.5, 3);
        const e = engine(get(main), [autoguidance({ guide: get(guide).model, scale: w })], cond, randomSeeds(rng));
        try {
          const actual = await e.predict(x, sigma);
          assert.equal(e.guided.forwards, 2, 'autoguidance: one forward per model');
          const dm = await refX0(get(main), x, sigma, cond);
          const dg = await refX0(get(guide), x, sigma, cond);
          expectDiffers(dm, dg, rng, 'D_main vs D_guide');
          expectClose(actual, mix(dg, [[w, dm, dg]]), rng, `autoguidance w=${w}`);
        } finally {
          e.dispose();
        }
      }));
  }

  it('sims, base tiny-unet-v with negative tiny-unet: D_base + w(D_base − D_sims)', () =>
    withoutLeaks(async () => {
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 0.5, 3);
      const actual = await predictOnce(engine(get('tiny-unet-v'), [sims({ negative: get('tiny-unet').model, scale: w })], cond, randomSeeds(rng)), x, sigma);
      const db = await refX0(get('tiny-unet-v'), x, sigma, cond);
      const dn = await refX0(get('tiny-unet'), x, sigma, cond);
      expectClose(actual, mix(db, [[w, db, dn]]), rng, `sims w=${w}`);
    }));

  // ---- ICG -----------------------------------------------------------------

  it('icg with class labels on tiny-unet: D(ĉ) + w(D(c) − D(ĉ)), ĉ drawn from the sample seed per evaluation', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 1.5, 4);
      const seeds = randomSeeds(rng);
      const e = engine(ref, [icg({ scale: w })], cond, seeds);
      try {
        const dc = await refX0(ref, x, sigma, cond);
        for (const evaluation of [0, 1]) {
          const actual = await e.predict(x, sigma);
          // The random label of sample i: uniform(mixSeed(seed_i, Streams.randomCondition + evaluation), 0) · numClasses.
          const labels = seeds.map((s) => Math.floor(uniformFromSeed(mixSeed(s, Streams.randomCondition + BigInt(evaluation)), 0) * 10));
          const dr = await refX0(ref, x, sigma, { kind: 'class', labels });
          const error = relativeError(actual, mix(dr, [[w, dc, dr]]));
          if (error >= TOL) {
            // Which label did it use? Every candidate for each sample, for the message.
            const found: string[] = [];
            for (let n = 0; n < N; n++) {
              const hits: number[] = [];
              for (let label = 0; label <= 10; label++) {
                const candidate = await refX0(ref, x, sigma, { kind: 'class', labels: Array.from({ length: N }, () => label) });
                const expected = mix(candidate, [[w, dc, candidate]]);
                if (relativeError(sampleOf(actual, n), sampleOf(expected, n)) < TOL) hits.push(label);
              }
              found.push(`sample ${n}: derived ${labels[n]}, matches ${hits.length ? hits.join('/') : 'no label'}`);
            }
            assert.fail(`icg evaluation ${evaluation}: relative error ${error} (seed ${rng.seed}); ${found.join('; ')}`);
          }
        }
      } finally {
        e.dispose();
      }
    }));

  it('icg with tensor conditions on tiny-tensor-cond: ĉ = Gaussian with the condition’s per-sample mean and std', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-tensor-cond');
      const { rng, sigma, x } = draw();
      const values = Float32Array.from({ length: N * 4 }, () => 0.5 + 2 * rng.normal());
      const cond: Cond = { kind: 'tensor', values };
      const w = between(rng, 1.5, 4);
      const seeds = randomSeeds(rng);
      const actual = await predictOnce(engine(ref, [icg({ scale: w })], cond, seeds), x, sigma);
      const noiseTensor = randn([N, 4], { seed: seeds.map((s) => mixSeed(s, Streams.randomCondition + 0n)) });
      const noise = (await noiseTensor.toArray()) as Float32Array;
      noiseTensor.dispose();
      const random = new Float32Array(N * 4);
      for (let n = 0; n < N; n++) {
        const v = Array.from(values.subarray(n * 4, n * 4 + 4));
        const mean = v.reduce((a, b) => a + b, 0) / 4;
        const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / 3);
        for (let j = 0; j < 4; j++) random[n * 4 + j] = noise[n * 4 + j]! * sd + mean;
      }
      const dc = await refX0(ref, x, sigma, cond);
      const dr = await refX0(ref, x, sigma, { kind: 'tensor', values: random });
      expectDiffers(dc, dr, rng, 'D(c) vs D(ĉ)');
      expectClose(actual, mix(dr, [[w, dc, dr]]), rng, `icg (tensor) w=${w}`);
    }));

  // ---- Non-linear CFG variants ---------------------------------------------

  it('apg on tiny-unet over two steps: momentum, norm clip, parallel/orthogonal split', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const w = between(rng, 2, 5);
      const beta = between(rng, -0.7, -0.2);
      const eta = between(rng, 0.1, 0.5);
      const sigmas = [randomSigma(rng, 1.5, 5), randomSigma(rng, 0.3, 1.2)];
      const xs = sigmas.map((s) => randomX(rng, s));
      const dcs: Vec[] = [];
      const dus: Vec[] = [];
      for (let k = 0; k < 2; k++) {
        dcs.push(await refX0(ref, xs[k]!, sigmas[k]!, cond));
        dus.push(await refX0(ref, xs[k]!, sigmas[k]!, NULL));
      }
      // r between the two samples' first-step norms: one sample is clipped, the other not.
      const first = mix(new Float64Array(N * SIZE), [[1, dcs[0]!, dus[0]!]]);
      const r = Math.sqrt(norm(first, 0) * norm(first, 1));
      const e = engine(ref, [apg({ scale: w, momentum: beta, normThreshold: r, eta })], cond, randomSeeds(rng));
      try {
        let running: Vec | undefined;
        for (let k = 0; k < 2; k++) {
          const actual = await e.predict(xs[k]!, sigmas[k]!, k);
          const dc = dcs[k]!;
          // The APG paper's normalized_guidance: running average, clip, project onto D(c).
          const diff = mix(new Float64Array(N * SIZE), [[1, dc, dus[k]!]]);
          running = running ? diff.map((v, i) => v + beta * running![i]!) : diff;
          const expected = new Float64Array(N * SIZE);
          for (let n = 0; n < N; n++) {
            const factor = Math.min(1, r / norm(running, n));
            const d = sampleOf(running, n).map((v) => v * factor);
            const cNorm = norm(dc, n);
            const unit = sampleOf(dc, n).map((v) => v / cNorm);
            const along = d.reduce((s, v, i) => s + v * unit[i]!, 0);
            for (let i = 0; i < SIZE; i++) {
              const parallel = along * unit[i]!;
              const orthogonal = d[i]! - parallel;
              expected[n * SIZE + i] = dc[n * SIZE + i]! + (w - 1) * (orthogonal + eta * parallel);
            }
          }
          expectClose(actual, expected, rng, `apg step ${k} w=${w} β=${beta} r=${r} η=${eta}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('cfg-zero* on tiny-unet-v: D = x on the first step; then α D(∅) + w(D(c) − α D(∅)), α per sample', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet-v');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const w = between(rng, 1.5, 5);
      const e = engine(ref, [cfgZeroStar({ scale: w })], cond, randomSeeds(rng));
      try {
        const s0 = randomSigma(rng, 2, 5);
        const x0 = randomX(rng, s0);
        expectClose(await e.predict(x0, s0, 0), x0, rng, 'cfg-zero* zero init (step 0): D = x', 1e-6);
        const sigma = randomSigma(rng);
        const x = randomX(rng, sigma);
        const actual = await e.predict(x, sigma, 1);
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        const expected = new Float64Array(N * SIZE);
        for (let n = 0; n < N; n++) {
          const alpha = dot(dc, du, n) / dot(du, du, n);
          for (let i = n * SIZE; i < (n + 1) * SIZE; i++) expected[i] = alpha * du[i]! + w * (dc[i]! - alpha * du[i]!);
        }
        expectClose(actual, expected, rng, `cfg-zero* step 1 w=${w}`);
      } finally {
        e.dispose();
      }
    }));

  // ---- TSG and SLG (module hooks) ------------------------------------------

  /** The engine's time-embedding noise seeds at an evaluation: mixSeed(seed_i, Streams.moduleNoise + evaluation). */
  const noiseSeeds = (seeds: bigint[], evaluation: number) => seeds.map((s) => mixSeed(s, Streams.moduleNoise + BigInt(evaluation)));

  for (const [name, conditional] of [
    ['tiny-unet', true],
    ['tiny-uncond', false],
  ] as const) {
    it(`tsg on ${name}: D(t̃) + w(D(t) − D(t̃)), emb + k·n at the card's timeEmbedding, n fresh per evaluation from each sample's seed`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const path = ref.card.timeEmbedding!;
        const rng = freshRandom();
        const cond: Cond = conditional ? randomLabels(rng) : { kind: 'none' };
        const w = between(rng, 1.5, 4);
        const k = between(rng, 0.3, 2);
        const seeds = randomSeeds(rng);
        const e = engine(ref, [tsg({ scale: w, noiseScale: k })], cond, seeds);
        try {
          for (const evaluation of [0, 1]) {
            const sigma = randomSigma(rng);
            const x = randomX(rng, sigma);
            const actual = await e.predict(x, sigma);
            const d = await refX0(ref, x, sigma, cond);
            const dn = await refX0(ref, x, sigma, cond, [{ modules: path, action: 'noise', scale: k, seed: noiseSeeds(seeds, evaluation) }]);
            expectDiffers(d, dn, rng, 'D(t) vs D(t̃)');
            // Evaluation 1 checks against evaluation 1's seeds: the noise is drawn afresh.
            expectClose(actual, mix(dn, [[w, d, dn]]), rng, `tsg evaluation ${evaluation} w=${w} k=${k}`);
          }
        } finally {
          e.dispose();
        }
      }));
  }

  it('tsg refuses a model whose card names no time embedding, and a module path that matches nothing', async () => {
    using zoo = await loadModel(fixture('attn-zoo.pt'), { device: 'cpu' });
    const make = (model: Model, strategy: Strategy) =>
      new GuidedDenoiser({ main: Denoiser.of(model), strategies: [strategy], conditions: {}, unconditional: true, seeds: [1n] });
    assert.throws(() => make(zoo, tsg()), (error: unknown) => isTorchGuidanceError(error, ErrorCodes.MODEL_CARD) && /timeEmbedding/.test(error.message));
    assert.throws(
      () => make(get('tiny-unet').model, tsg({ module: 'time_embedding' })),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.NO_MATCHING_SITE) && /time_embed/.test(error.message),
    );
  });

  it('slg on tiny-unet: D(c) + s(D(c) − D_skip) inside its start/stop (default 1 %–20 % of the run) and sigma window, D(c) outside', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const s = between(rng, 1, 4);
      const choices = ['mid.attn', ['mid.res1', 'up.2'], 'down.2', 'mid'] as const;
      const blocks = choices[Math.floor(rng.next() * choices.length)]!;
      const skipHook = (): Hook[] => [{ modules: blocks as string | string[], action: 'skip' }];
      const e = engine(ref, [slg({ scale: s, blocks: blocks as string | string[], window: { sigmaMax: 3 } })], cond, randomSeeds(rng));
      try {
        // Step 1 of 10 is inside [0.01, 0.2); sigma below the window's top.
        const sigma = randomSigma(rng, 0.3, 2.5);
        const x = randomX(rng, sigma);
        const actual = await e.predict(x, sigma, 1);
        const dc = await refX0(ref, x, sigma, cond);
        const ds = await refX0(ref, x, sigma, cond, skipHook());
        expectDiffers(dc, ds, rng, `D(c) vs D with ${String(blocks)} skipped`);
        expectClose(actual, mix(dc, [[s, dc, ds]]), rng, `slg s=${s} blocks=${String(blocks)}`);
        // diffusers' rounding: steps floor(0.01·10) = 0 to floor(0.2·10) = 2 (exclusive) of 10 are on.
        // Step 2 and step 7: off; step 1 above the sigma window: off.
        for (const [step, sig] of [[2, sigma], [7, sigma], [1, between(rng, 3.5, 6)]] as const) {
          const xo = randomX(rng, sig);
          expectClose(await e.predict(xo, sig, step), await refX0(ref, xo, sig, cond), rng, `slg off at step ${step}, sigma ${sig}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('equal branches run once: two slg terms on the same blocks share D_skip, two tsg terms with one k share D(t̃)', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const [s1, s2, w1, w2] = [between(rng, 1, 3), between(rng, 1, 3), between(rng, 1.5, 3), between(rng, 1.5, 3)];
      const k = between(rng, 0.3, 1.5);
      const seeds = randomSeeds(rng);
      const always = { start: 0, stop: 1 };
      const strategies = [slg({ scale: s1, blocks: 'mid.*', ...always }), slg({ scale: s2, blocks: 'mid.*', ...always }),
        tsg({ scale: w1, noiseScale: k }), tsg({ scale: w2, noiseScale: k })];
      const e = engine(ref, strategies, cond, seeds);
      try {
        const sigma = randomSigma(rng);
        const plan = e.guided.explain(e.guided.stepInfo(0, 10, sigma));
        assert.equal(plan.forwards, 1);
        assert.deepEqual(plan.stages[0]![0]!.branches, ['main(given)', 'main(given)+skip{mid.*}', `main(given)+noise(${k}){time_embed}`]);
        const x = randomX(rng, sigma);
        const actual = await e.predict(x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const ds = await refX0(ref, x, sigma, cond, [{ modules: 'mid.*', action: 'skip' }]);
        const dn = await refX0(ref, x, sigma, cond, [{ modules: 'time_embed', action: 'noise', scale: k, seed: noiseSeeds(seeds, 0) }]);
        expectClose(actual, mix(dc, [[s1 + s2, dc, ds], [w1 - 1 + w2 - 1, dc, dn]]), rng, 'two slg + two tsg');
      } finally {
        e.dispose();
      }
    }));

  // ---- Stacks --------------------------------------------------------------

  it('stack [cfg, pag, seg] on tiny-tensor-cond: D(∅) + w(D(c) − D(∅)) + s_p(D(c) − D_pag) + s_s(D(c) − D_seg), one 4N forward', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-tensor-cond');
      const { rng, sigma, x } = draw();
      const cond: Cond = { kind: 'tensor', values: Float32Array.from({ length: N * 4 }, () => rng.normal()) };
      const w = between(rng, 1.5, 4);
      const sp = between(rng, 1, 4);
      const ss = between(rng, 1, 4);
      const e = engine(ref, [cfg({ scale: w }), pag({ scale: sp }), seg({ scale: ss })], cond, randomSeeds(rng));
      try {
        const actual = await e.predict(x, sigma);
        assert.equal(e.guided.forwards, 1, 'cfg + pag + seg: one batched forward');
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, nullOf(cond));
        const dp = await refX0(ref, x, sigma, cond, [{ sites: 'mid.*', action: 'identity' }]);
        const ds = await refX0(ref, x, sigma, cond, [{ sites: 'mid.*', action: 'blur', sigma: Infinity }]);
        expectDiffers(dp, ds, rng, 'D_pag vs D_seg');
        expectClose(actual, mix(du, [[w, dc, du], [sp, dc, dp], [ss, dc, ds]]), rng, `cfg w=${w} + pag ${sp} + seg ${ss}`);
      } finally {
        e.dispose();
      }
    }));

  it('stack [cfg outside its window, pag, seg(finite)] on tiny-unet: the cfg term drops, the others stay', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw([0.3, 1]);
      const sp = between(rng, 1, 4);
      const ss = between(rng, 1, 4);
      const blur = between(rng, 0.5, 2);
      const strategies = [
        cfg({ scale: 3, window: { sigmaMin: 2, sigmaMax: 10 } }),
        pag({ scale: sp, sites: 'up.2' }),
        seg({ scale: ss, sigma: blur, sites: ['mid.*', 'down.3'] }),
      ];
      const actual = await predictOnce(engine(ref, strategies, cond, randomSeeds(rng)), x, sigma);
      const dc = await refX0(ref, x, sigma, cond);
      const dp = await refX0(ref, x, sigma, cond, [{ sites: 'up.2', action: 'identity' }]);
      const ds = await refX0(ref, x, sigma, cond, [{ sites: ['mid.*', 'down.3'], action: 'blur', sigma: blur }]);
      expectClose(actual, mix(dc, [[sp, dc, dp], [ss, dc, ds]]), rng, `pag ${sp} + seg ${ss} (blur ${blur}), cfg off`);
    }));

  it('stack [cfg, tsg, slg] on tiny-unet: D(∅) + w(D(c) − D(∅)) + (w_t − 1)(D(c) − D(t̃)) + s(D(c) − D_skip), one 4N forward', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const [w, wt, s] = [between(rng, 1.5, 4), between(rng, 1.5, 4), between(rng, 1, 3)];
      const k = between(rng, 0.3, 2);
      const seeds = randomSeeds(rng);
      const strategies = [cfg({ scale: w }), tsg({ scale: wt, noiseScale: k }), slg({ scale: s, blocks: 'up.2', start: 0, stop: 1 })];
      const e = engine(ref, strategies, cond, seeds);
      try {
        const plan = e.guided.explain(e.guided.stepInfo(0, 10, sigma));
        assert.equal(plan.forwards, 1, 'cfg + tsg + slg: one forward');
        assert.equal(plan.stages[0]![0]!.batchMultiple, 4, 'of 4N');
        assert.deepEqual(plan.stages[0]![0]!.branches, ['main(given)', 'main(null)', `main(given)+noise(${k}){time_embed}`, 'main(given)+skip{up.2}']);
        const counted = ref.model.forwardCount;
        const actual = await e.predict(x, sigma);
        assert.equal(ref.model.forwardCount - counted, 1, 'one native forward');
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        const dn = await refX0(ref, x, sigma, cond, [{ modules: 'time_embed', action: 'noise', scale: k, seed: noiseSeeds(seeds, 0) }]);
        const ds = await refX0(ref, x, sigma, cond, [{ modules: 'up.2', action: 'skip' }]);
        expectDiffers(dn, ds, rng, 'D(t̃) vs D_skip');
        expectClose(actual, mix(du, [[w, dc, du], [wt - 1, dc, dn], [s, dc, ds]]), rng, `cfg w=${w} + tsg ${wt} (k ${k}) + slg ${s}`);
      } finally {
        e.dispose();
      }
    }));
});
