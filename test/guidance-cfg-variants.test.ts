/**
 * The non-linear CFG variants against their formulas, computed independently
 * (separate unbatched forwards, float64 JS arithmetic; helpers/guidance-reference.ts):
 * tangential CFG (principal direction by power iteration, not the engine's
 * closed-form 2×2 eigenproblem), magnitude-aware guidance, APG's normDim and
 * no-momentum options, and the CFG-then-APG mix with its momentum carried
 * across the switch. Fresh random inputs; failures print the seed.
 */
import assert from 'node:assert/strict';

import { ErrorCodes, apg, apgMix, isTorchGuidanceError, loadModel, magnitudeAware, tcfg } from '../src/index.js';
import {
  type Ref,
  type Vec,
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
import { freshRandom } from './helpers/random.js';

type Space = 'x0' | 'eps';

/** D → the space a guider computes in: D itself, or (x − D)/σ. */
const into = (d: Vec, space: Space, x: ArrayLike<number>, sigma: number): Vec =>
  space === 'x0' ? Float64Array.from(d) : d.map((v, i) => (x[i]! - v) / sigma);
const back = (v: Vec, space: Space, x: ArrayLike<number>, sigma: number): Vec =>
  space === 'x0' ? v : v.map((e, i) => x[i]! - sigma * e);

const slice = (a: Vec, n: number) => a.subarray(n * SIZE, (n + 1) * SIZE);
const dot1 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/** The first right singular vector of the 2×D matrix [c; u], by power iteration on PᵀP. */
function principalDirection(c: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  let v = Float64Array.from(c, (ci, i) => ci + u[i]!);
  for (let iteration = 0; iteration < 500; iteration++) {
    const a = dot1(c, v);
    const b = dot1(u, v);
    const next = Float64Array.from(c, (ci, i) => a * ci + b * u[i]!);
    const length = Math.sqrt(dot1(next, next));
    const change = next.reduce((s, e, i) => s + Math.abs(e / length - v[i]!), 0);
    v = next.map((e) => e / length);
    if (change < 1e-14) break;
  }
  return v;
}

describe('CFG variants against their formulas: TCFG, magnitude-aware, APG options, APG-mix', function () {
  this.timeout(300_000);
  const refs = new Map<string, Ref>();
  const get = (name: string) => refs.get(name)!;
  before(async () => {
    for (const name of ['tiny-unet', 'tiny-unet-v', 'tiny-edm']) refs.set(name, refOf(name, await loadModel(fixture(`${name}.pt`), { device: 'cpu' })));
  });
  after(() => refs.forEach((r) => r.model.dispose()));

  for (const [name, space, formulation] of [
    ['tiny-unet', 'eps', 'standard'],
    ['tiny-unet-v', 'x0', 'standard'],
    ['tiny-edm', 'eps', 'original'],
  ] as const) {
    it(`tcfg on ${name} in ${space} space (${formulation}): u' = <u, v₁>v₁ (v₁ the principal right singular vector of [c; u]), then CFG with u'`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw();
        const w = between(rng, 1.5, 5);
        const actual = await predictOnce(engine(ref, [tcfg({ scale: w, space, formulation })], cond, randomSeeds(rng)), x, sigma);
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        const c = into(dc, space, x, sigma);
        const u = into(du, space, x, sigma);
        const guided = new Float64Array(N * SIZE);
        for (let n = 0; n < N; n++) {
          const cn = slice(c, n);
          const un = slice(u, n);
          const v = principalDirection(cn, un);
          const along = dot1(un, v);
          for (let i = 0; i < SIZE; i++) {
            const projected = along * v[i]!;
            const base = formulation === 'standard' ? projected : cn[i]!;
            guided[n * SIZE + i] = base + w * (cn[i]! - projected);
          }
        }
        const expected = back(guided, space, x, sigma);
        // The projection must matter, or this checks plain CFG.
        expectDiffers(expected, mix(formulation === 'standard' ? du : dc, [[w, dc, du]]), rng, 'tcfg vs cfg');
        expectClose(actual, expected, rng, `tcfg w=${w} ${space} ${formulation}`);
      }));
  }

  it('tcfg at w = 1 is off (D(c)), as diffusers', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const { rng, sigma, x, cond } = draw();
      const actual = await predictOnce(engine(ref, [tcfg({ scale: 1 })], cond, randomSeeds(rng)), x, sigma);
      expectClose(actual, await refX0(ref, x, sigma, cond), rng, 'tcfg w=1');
    }));

  for (const [name, space, formulation] of [
    ['tiny-unet', 'eps', 'standard'],
    ['tiny-unet-v', 'x0', 'original'],
  ] as const) {
    it(`magnitude-aware on ${name} in ${space} space (${formulation}): ρ = ‖c − u‖/‖u‖ per sample, w' = 1 + (w − 1)e^(−αρ)`, () =>
      withoutLeaks(async () => {
        const ref = get(name);
        const { rng, sigma, x, cond } = draw();
        const w = between(rng, 2, 8);
        const dc = await refX0(ref, x, sigma, cond);
        const du = await refX0(ref, x, sigma, NULL);
        const c = into(dc, space, x, sigma);
        const u = into(du, space, x, sigma);
        const ratios = Array.from({ length: N }, (_, n) => {
          const d = slice(c, n).map((v, i) => v - slice(u, n)[i]!);
          return Math.sqrt(dot1(d, d)) / Math.sqrt(dot1(slice(u, n), slice(u, n)));
        });
        // α such that the damping e^(−αρ) lands between 0.2 and 0.8 for the first sample: neither vanishing nor flat.
        const alpha = -Math.log(between(rng, 0.2, 0.8)) / ratios[0]!;
        const actual = await predictOnce(engine(ref, [magnitudeAware({ scale: w, alpha, space, formulation })], cond, randomSeeds(rng)), x, sigma);
        const expected = new Float64Array(N * SIZE);
        for (let n = 0; n < N; n++) {
          const damping = Math.exp(-alpha * ratios[n]!);
          const wFinal = formulation === 'standard' ? 1 + (w - 1) * damping : w * damping;
          for (let i = n * SIZE; i < (n + 1) * SIZE; i++) {
            const base = formulation === 'standard' ? du[i]! : dc[i]!;
            expected[i] = base + wFinal * (dc[i]! - du[i]!);
          }
        }
        expectDiffers(expected, mix(du, [[w, dc, du]]), rng, 'magnitude-aware vs cfg');
        expectClose(actual, expected, rng, `magnitude-aware w=${w} α=${alpha} ${space} ${formulation}`);
      }));
  }

  /** APG's update per sample with norms and projections over groups of elements (`group(i)` names i's group). */
  function apgUpdate(diff: Vec, dc: Vec, r: number, eta: number, group: (i: number) => number): Vec {
    const out = new Float64Array(diff.length);
    const groups = new Map<number, number[]>();
    for (let i = 0; i < diff.length; i++) {
      const g = group(i);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(i);
    }
    for (const members of groups.values()) {
      const dNorm = Math.sqrt(members.reduce((s, i) => s + diff[i]! ** 2, 0));
      const factor = r > 0 ? Math.min(1, r / dNorm) : 1;
      const cNorm = Math.max(1e-12, Math.sqrt(members.reduce((s, i) => s + dc[i]! ** 2, 0)));
      const along = members.reduce((s, i) => s + diff[i]! * factor * (dc[i]! / cNorm), 0);
      for (const i of members) {
        const parallel = along * (dc[i]! / cNorm);
        out[i] = diff[i]! * factor - parallel + eta * parallel;
      }
    }
    return out;
  }
  const perSample = (i: number) => Math.floor(i / SIZE);
  const perRow = (i: number) => Math.floor(i / W); // normDim -1 on [N, 1, 28, 28]: each image row

  it('apg with normDim -1 (norm and projection per image row) and momentum null (no memory across steps)', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const w = between(rng, 2, 5);
      const eta = between(rng, 0.1, 0.6);
      const r = between(rng, 0.5, 2); // per-row norms are small: some rows clip, some do not
      const e = engine(ref, [apg({ scale: w, momentum: null, normThreshold: r, eta, normDim: -1 })], cond, randomSeeds(rng));
      try {
        for (let step = 0; step < 2; step++) {
          const sigma = randomSigma(rng);
          const x = randomX(rng, sigma);
          const actual = await e.predict(x, sigma, step);
          const dc = await refX0(ref, x, sigma, cond);
          const du = await refX0(ref, x, sigma, NULL);
          const diff = mix(new Float64Array(N * SIZE), [[1, dc, du]]);
          const rowwise = apgUpdate(diff, dc, r, eta, perRow);
          const expected = mix(dc, [[w - 1, rowwise, new Float64Array(N * SIZE)]]);
          expectDiffers(rowwise, apgUpdate(diff, dc, r, eta, perSample), rng, 'per-row vs per-sample APG update');
          expectClose(actual, expected, rng, `apg normDim -1, step ${step}, w=${w} r=${r} η=${eta}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('apg-mix on tiny-unet: CFG (momentum running) before floor(apgStart·steps), then diffusers’ APG D(∅) + w_apg(Δ⊥ + ηΔ∥) with the carried momentum', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const w = between(rng, 1.5, 4);
      const wApg = between(rng, 2, 8);
      const beta = between(rng, -0.7, -0.2);
      const eta = between(rng, 0, 0.5);
      const r = between(rng, 5, 30);
      const steps = 10;
      const apgStart = between(rng, 0.2, 0.29); // floor(apgStart · 10) = 2: steps 0-1 CFG, 2-3 APG
      const e = engine(ref, [apgMix({ scale: w, apgScale: wApg, momentum: beta, normThreshold: r, eta, apgStart })], cond, randomSeeds(rng));
      try {
        let running: Vec | undefined;
        for (let step = 0; step < 4; step++) {
          const sigma = randomSigma(rng);
          const x = randomX(rng, sigma);
          const actual = await e.predict(x, sigma, step, steps);
          const dc = await refX0(ref, x, sigma, cond);
          const du = await refX0(ref, x, sigma, NULL);
          const diff = mix(new Float64Array(N * SIZE), [[1, dc, du]]);
          running = running ? diff.map((v, i) => v + beta * running![i]!) : diff;
          const expected =
            step < 2 ? mix(du, [[w, dc, du]]) : mix(du, [[wApg, apgUpdate(running, dc, r, eta, perSample), new Float64Array(N * SIZE)]]);
          expectClose(actual, expected, rng, `apg-mix step ${step} (${step < 2 ? 'CFG' : 'APG'}) w=${w} w_apg=${wApg} β=${beta} r=${r} η=${eta}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('apg-mix without momentum: the APG phase sees only this step’s Δ', () =>
    withoutLeaks(async () => {
      const ref = get('tiny-unet-v');
      const rng = freshRandom();
      const cond = randomLabels(rng);
      const wApg = between(rng, 2, 6);
      const e = engine(ref, [apgMix({ scale: 2, apgScale: wApg, momentum: null, normThreshold: 0, eta: 0.3, apgStart: 0.1 })], cond, randomSeeds(rng));
      try {
        for (let step = 0; step < 3; step++) {
          const sigma = randomSigma(rng);
          const x = randomX(rng, sigma);
          const actual = await e.predict(x, sigma, step, 10);
          const dc = await refX0(ref, x, sigma, cond);
          const du = await refX0(ref, x, sigma, NULL);
          const diff = mix(new Float64Array(N * SIZE), [[1, dc, du]]);
          const expected = step < 1 ? mix(du, [[2, dc, du]]) : mix(du, [[wApg, apgUpdate(diff, dc, 0, 0.3, perSample), new Float64Array(N * SIZE)]]);
          expectClose(actual, expected, rng, `apg-mix (no momentum) step ${step}`);
        }
      } finally {
        e.dispose();
      }
    }));

  it('apg refuses a normDim on the batch axis or outside the sample, naming normDim', async () => {
    const ref = get('tiny-unet');
    for (const normDim of [0, 4, -4, [1, 0]]) {
      assert.throws(
        () => engine(ref, [apg({ normDim })], randomLabels(freshRandom()), [1n, 2n]),
        (error: unknown) => isTorchGuidanceError(error, ErrorCodes.INVALID_OPTION) && /normDim/.test(error.message),
        `normDim ${JSON.stringify(normDim)}`,
      );
    }
  });
});
