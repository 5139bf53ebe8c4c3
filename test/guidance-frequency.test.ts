/**
 * Frequency-decoupled guidance against its formula, computed independently:
 * the Laplacian pyramid written out in JavaScript (5-tap Gaussian σ 1 with
 * reflect padding, every other pixel down, nearest up then the same blur),
 * per-level CFG with the parallel-weight projection, per-level rescale and
 * per-level start/stop, rebuilt in float64, against the engine's prediction
 * from batched forwards. And the two frequency baselines of SAG's ablation:
 * the high-pass degradation is the complement of the low-pass one.
 */
import assert from 'node:assert/strict';

import { ErrorCodes, cfg, fdg, isTorchGuidanceError, loadModel, randn } from '../src/index.js';
import { degradedInput } from '../src/guidance/degrade.js';
import {
  type Ref,
  type Vec,
  H,
  N,
  NULL,
  SIZE,
  W,
  between,
  draw,
  engine,
  expectClose,
  expectDiffers,
  fixture,
  mix,
  predictOnce,
  randomLabels,
  randomSeeds,
  randomSigma,
  randomX,
  refOf,
  refX0,
  withoutLeaks,
} from './helpers/guidance-reference.js';
import { freshRandom, relativeError } from './helpers/random.js';

interface Plane {
  data: Float64Array;
  h: number;
  w: number;
}

function blur(p: Plane): Plane {
  const k = [-2, -1, 0, 1, 2].map((j) => Math.exp(-(j * j) / 2));
  const total = k.reduce((a, b) => a + b, 0);
  const weights = k.map((v) => v / total);
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  const tmp = new Float64Array(p.h * p.w);
  const out = new Float64Array(p.h * p.w);
  for (let y = 0; y < p.h; y++)
    for (let x = 0; x < p.w; x++) tmp[y * p.w + x] = weights.reduce((s, wt, j) => s + wt * p.data[y * p.w + reflect(x + j - 2, p.w)]!, 0);
  for (let y = 0; y < p.h; y++)
    for (let x = 0; x < p.w; x++) out[y * p.w + x] = weights.reduce((s, wt, j) => s + wt * tmp[reflect(y + j - 2, p.h) * p.w + x]!, 0);
  return { data: out, h: p.h, w: p.w };
}

function nearest(p: Plane, h: number, w: number): Plane {
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = p.data[Math.floor((y * p.h) / h) * p.w + Math.floor((x * p.w) / w)]!;
  return { data: out, h, w };
}

const down = (p: Plane) => nearest(blur(p), Math.ceil(p.h / 2), Math.ceil(p.w / 2));
const up = (p: Plane, h: number, w: number) => blur(nearest(p, h, w));
const sub = (a: Plane, b: Plane): Plane => ({ data: a.data.map((v, i) => v - b.data[i]!), h: a.h, w: a.w });
const add = (a: Plane, b: Plane): Plane => ({ data: a.data.map((v, i) => v + b.data[i]!), h: a.h, w: a.w });

function pyramid(p: Plane, levels: number): Plane[] {
  const out: Plane[] = [];
  let g = p;
  for (let i = 0; i < levels - 1; i++) {
    const coarser = down(g);
    out.push(sub(g, up(coarser, g.h, g.w)));
    g = coarser;
  }
  out.push(g);
  return out;
}

function rebuild(levels: Plane[]): Plane {
  let img = levels[levels.length - 1]!;
  for (let i = levels.length - 2; i >= 0; i--) img = add(up(img, levels[i]!.h, levels[i]!.w), levels[i]!);
  return img;
}

const planeOf = (a: ArrayLike<number>, n: number): Plane => ({ data: Float64Array.from({ length: SIZE }, (_, i) => a[n * SIZE + i]!), h: H, w: W });
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const std = (a: Float64Array) => {
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  return Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / (a.length - 1));
};

interface FdgSettings {
  scales: number[];
  parallelWeights: number[];
  rescale: number[];
  start: number[];
  stop: number[];
  formulation: 'standard' | 'original';
  space: 'x0' | 'eps';
}

/** FDG of one step, in float64 from the two predictions. */
function fdgReference(dc: Vec, du: Vec, x: ArrayLike<number>, sigma: number, step: number, steps: number, o: FdgSettings): Vec {
  const into = (d: Vec) => (o.space === 'x0' ? d : d.map((v, i) => (x[i]! - v) / sigma));
  const c = into(dc);
  const u = into(du);
  const out = new Float64Array(N * SIZE);
  for (let n = 0; n < N; n++) {
    const cl = pyramid(planeOf(c, n), o.scales.length);
    const ul = pyramid(planeOf(u, n), o.scales.length);
    const guided = cl.map((cp, level) => {
      const on = Math.floor(o.start[level]! * steps) <= step && step < Math.floor(o.stop[level]! * steps);
      if (!on) return cp;
      let shift = sub(cp, ul[level]!).data;
      const pw = o.parallelWeights[level]!;
      if (pw !== 1) {
        const length = Math.sqrt(dot(cp.data, cp.data));
        const unit = cp.data.map((v) => v / length);
        const along = dot(shift, unit);
        shift = shift.map((v, i) => pw * along * unit[i]! + (v - along * unit[i]!));
      }
      const base = o.formulation === 'standard' ? ul[level]!.data : cp.data;
      let g = base.map((v, i) => v + o.scales[level]! * shift[i]!);
      const phi = o.rescale[level]!;
      if (phi > 0) {
        const factor = std(cp.data) / std(g);
        g = g.map((v) => phi * v * factor + (1 - phi) * v);
      }
      return { data: g, h: cp.h, w: cp.w };
    });
    out.set(rebuild(guided).data, n * SIZE);
  }
  return o.space === 'x0' ? out : out.map((v, i) => x[i]! - sigma * v);
}

describe('frequency-decoupled guidance and the frequency baselines', function () {
  this.timeout(300_000);
  const refs = new Map<string, Ref>();
  const get = (name: string) => refs.get(name)!;
  before(async () => {
    for (const name of ['tiny-unet', 'tiny-unet-v']) refs.set(name, refOf(name, await loadModel(fixture(`${name}.pt`), { device: 'cpu' })));
  });
  after(() => refs.forEach((r) => r.model.dispose()));

  it('fdg on tiny-unet, 2 levels, parallel weights, eps space: per-level CFG on the Laplacian pyramid, rebuilt', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const settings: FdgSettings = {
        scales: [between(rng, 3, 8), between(rng, 1.2, 3)],
        parallelWeights: [between(rng, 0, 0.8), between(rng, 0.2, 1)],
        rescale: [0, 0],
        start: [0, 0],
        stop: [1, 1],
        formulation: 'standard',
        space: 'eps',
      };
      const strategy = fdg({ scales: settings.scales, parallelWeights: settings.parallelWeights });
      const actual = await predictOnce(engine(ref, [strategy], cond, randomSeeds(rng)), x, sigma);
      const dc = await refX0(ref, x, sigma, cond);
      const du = await refX0(ref, x, sigma, NULL);
      const expected = fdgReference(dc, du, x, sigma, 0, 10, settings);
      expectDiffers(expected, mix(du, [[settings.scales[0]!, dc, du]]), rng, 'fdg vs cfg at the high scale');
      expectDiffers(expected, mix(du, [[settings.scales[1]!, dc, du]]), rng, 'fdg vs cfg at the low scale');
      expectClose(actual, expected, rng, `fdg ${JSON.stringify(settings)}`);
    }));

  it('fdg on tiny-unet-v, 3 levels, original form, x0 space: per-level rescale and per-level start/stop (the middle level off)', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet-v');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const settings: FdgSettings = {
        scales: [between(rng, 2, 5), between(rng, 1, 3), between(rng, 0.5, 2)],
        parallelWeights: [1, between(rng, 0, 1), 1],
        rescale: [between(rng, 0.2, 0.9), 0, between(rng, 0.2, 0.9)],
        start: [0, 0.5, 0],
        stop: [1, 1, 0.8],
        formulation: 'original',
        space: 'x0',
      };
      const { formulation, space, ...levels } = settings;
      const e = engine(ref, [fdg({ ...levels, formulation, space })], cond, randomSeeds(rng));
      try {
        // Step 2 of 10: the middle level (start 0.5) is off; step 9: the coarsest (stop 0.8) is off instead.
        for (const step of [2, 9]) {
          const sigma = randomSigma(rng);
          const x = randomX(rng, sigma);
          const actual = await e.predict(x, sigma, step, 10);
          const dc = await refX0(ref, x, sigma, cond);
          const du = await refX0(ref, x, sigma, NULL);
          expectClose(actual, fdgReference(dc, du, x, sigma, step, 10, settings), rng, `fdg step ${step} ${JSON.stringify(settings)}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('fdg with one scale on every level and parallel weight 1 is CFG (the pyramid rebuilds exactly)', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const w = between(rng, 1.5, 5);
      const levels = 1 + Math.floor(rng.next() * 4);
      const viaFdg = await predictOnce(engine(ref, [fdg({ scales: Array.from({ length: levels }, () => w) })], cond, randomSeeds(rng)), x, sigma);
      const viaCfg = await predictOnce(engine(ref, [cfg({ scale: w })], cond, randomSeeds(rng)), x, sigma);
      expectClose(viaFdg, viaCfg, rng, `fdg ${levels} levels at w=${w} vs cfg`);
    }));

  it('fdg refuses more levels than the sample allows (naming scales) and per-level lists of the wrong length (naming the list)', async () => {
    const ref = get('tiny-unet');
    assert.throws(
      () => engine(ref, [fdg({ scales: [5, 4, 3, 2, 1] })], randomLabels(freshRandom()), [1n, 2n]),
      (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && /scales: 5 levels/.test(error.message) && /allows 4/.test(error.message),
    );
    for (const key of ['parallelWeights', 'rescale', 'start', 'stop'] as const) {
      assert.throws(
        () => fdg({ scales: [3, 2], [key]: [0.5, 0.6, 0.7] }),
        (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && new RegExp(`${key}: has 3 entries`).test(error.message),
        key,
      );
    }
  });

  it('high-pass and low-pass degradations at one cutoff add up to x0 (each re-noised with x − x0)', () => {
    const rng = freshRandom();
    const cutoff = between(rng, 0.1, 0.7);
    const seed = Math.floor(rng.next() * 1e9);
    using x = randn([3, 1, H, W], { seed });
    using x0 = randn([3, 1, H, W], { seed: seed + 1 });
    const common = { source: { model: 'main' as const, condition: 'given' as const }, kernelSize: 9, blurSigma: 1, cutoff };
    const inputs = { x, x0, captures: [], seeds: [1n, 2n, 3n], evaluation: 0 };
    using high = degradedInput({ ...common, kind: 'highpass' }, inputs);
    using low = degradedInput({ ...common, kind: 'lowpass' }, inputs);
    using sum = high.add(low);
    using noise = x.sub(x0);
    using twice = noise.mul(2);
    using expected = x0.add(twice);
    return Promise.all([sum.toArray(), expected.toArray(), high.toArray(), low.toArray()]).then(([s, e, h, l]) => {
      const error = relativeError(s as Float32Array, e as Float32Array);
      assert.ok(error < 1e-5, `highpass + lowpass = x0 + 2(x − x0): relative error ${error} (seed ${rng.seed})`);
      assert.ok(relativeError(h as Float32Array, l as Float32Array) > 0.1, 'the two degradations differ');
    });
  });
});
