/**
 * The independent reference of the guidance formula tests: the fixtures'
 * noise schedules and preconditioning written out from the card, one
 * unbatched forward per branch (model.run with that branch's hooks only),
 * x0 computed in JS, and plain float64 arithmetic for the mixes; plus the
 * engine under test (a GuidedDenoiser on the same model) and fresh random
 * inputs. Shared by test/guidance-*.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { type DenoiserCard, type Hook, type Model, type Strategy, type Tensor, liveHandles, tensor } from '../../src/index.js';
import { Denoiser } from '../../src/guidance/denoiser.js';
import { GuidedDenoiser } from '../../src/guidance/guided-denoiser.js';
import { repoRoot } from './python.js';
import { freshRandom, relativeError } from './random.js';

export const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);
export const H = 28;
export const W = 28;
export const SIZE = H * W;
export const N = 2;
export const TOL = 1e-4;

export type Rng = ReturnType<typeof freshRandom>;
export type Vec = Float64Array;
export type Cond = { kind: 'class'; labels: (number | null)[] } | { kind: 'tensor'; values: Float32Array } | { kind: 'none' };

// ---------------------------------------------------------------------------
// The independent reference: schedule, preconditioning, forwards
// ---------------------------------------------------------------------------

export interface Ref {
  name: string;
  model: Model;
  card: DenoiserCard;
  /** sigma_t of a discrete VP schedule, t = 0..T-1; null for EDM. */
  sigmas: Float64Array | null;
}

export function refOf(name: string, model: Model): Ref {
  const card = model.card as DenoiserCard;
  const s = card.schedule;
  let sigmas: Float64Array | null = null;
  if (s.kind === 'discrete') {
    // betas 'linear': linspace(b0, b1); 'scaled_linear': linspace(sqrt b0, sqrt b1)^2; alphaBar = cumprod(1 - beta).
    sigmas = new Float64Array(s.timesteps);
    let alphaBar = 1;
    for (let i = 0; i < s.timesteps; i++) {
      const f = i / (s.timesteps - 1);
      const beta =
        s.betas === 'linear'
          ? s.betaStart * (1 - f) + s.betaEnd * f
          : (Math.sqrt(s.betaStart) * (1 - f) + Math.sqrt(s.betaEnd) * f) ** 2;
      alphaBar *= 1 - beta;
      sigmas[i] = Math.sqrt(1 / alphaBar - 1);
    }
  }
  return { name, model, card, sigmas };
}

/** k-diffusion's sigma_to_t: log-sigma interpolation between the neighbouring grid timesteps. */
export function timestepOf(ref: Ref, sigma: number): number {
  const logs = Array.from(ref.sigmas!, Math.log);
  const ls = Math.log(sigma);
  let low = 0;
  for (let i = 0; i < logs.length; i++) if (ls - logs[i]! >= 0) low = i;
  low = Math.min(low, logs.length - 2);
  const high = low + 1;
  const w = Math.min(1, Math.max(0, (logs[low]! - ls) / (logs[low]! - logs[high]!)));
  return (1 - w) * low + w * high;
}

/** Model input scale, time input, and x0 from (x, F) for the card's parameterisation. */
export function precondition(ref: Ref, sigma: number): { cIn: number; time: number; x0: (x: number, f: number) => number } {
  const { card } = ref;
  if (card.schedule.kind === 'edm') {
    const sd = card.schedule.sigmaData;
    const r = Math.sqrt(sigma * sigma + sd * sd);
    return { cIn: 1 / r, time: 0.25 * Math.log(sigma), x0: (x, f) => ((sd * sd) / (r * r)) * x + ((sigma * sd) / r) * f };
  }
  // VP: x_vp = alpha x0 + s eps = alpha x (sigma space x = x0 + sigma eps), alpha = 1/sqrt(1+sigma^2), s = sigma alpha.
  const alpha = 1 / Math.sqrt(1 + sigma * sigma);
  const s = sigma * alpha;
  const time = timestepOf(ref, sigma);
  switch (card.prediction) {
    case 'eps': // x0 = (x_vp - s eps) / alpha = x - sigma eps
      return { cIn: alpha, time, x0: (x, f) => x - sigma * f };
    case 'v': // v = alpha eps - s x0  =>  x0 = alpha x_vp - s v
      return { cIn: alpha, time, x0: (x, f) => alpha * alpha * x - s * f };
    default:
      return { cIn: alpha, time, x0: (_x, f) => f };
  }
}

export interface RefResult {
  x0: Vec;
  /** Captured head-averaged maps [n, queries, keys] per site path. */
  captures: Map<string, Float32Array>;
}

/** One branch on its own: D(x; sigma, cond) with this branch's hooks only, batch = the n samples. */
export async function refD(ref: Ref, x: ArrayLike<number>, sigma: number, cond: Cond, hooks: Hook[] = []): Promise<RefResult> {
  const n = x.length / SIZE;
  const { cIn, time, x0 } = precondition(ref, sigma);
  const owned: Tensor[] = [];
  try {
    const input = tensor(Float32Array.from(x, (v) => v * cIn), [n, 1, H, W]);
    owned.push(input);
    const t = tensor(new Float32Array(n).fill(time), [n]);
    owned.push(t);
    const inputs: Tensor[] = [input, t];
    if (cond.kind === 'class') {
      const nullLabel = ref.card.conditioning.kind === 'class' ? ref.card.conditioning.nullLabel : 0;
      inputs.push(tensor(BigInt64Array.from(cond.labels, (l) => BigInt(l ?? nullLabel)), [n]));
    } else if (cond.kind === 'tensor') {
      inputs.push(tensor(cond.values, [n, cond.values.length / n]));
    }
    if (inputs.length > 2) owned.push(inputs[2]!);
    const { output, captures } = await ref.model.run<Tensor>({ inputs, hooks });
    owned.push(output, ...captures.values());
    const f = (await output.toArray()) as Float32Array;
    const out = new Float64Array(f.length);
    for (let i = 0; i < f.length; i++) out[i] = x0(x[i]!, f[i]!);
    const maps = new Map<string, Float32Array>();
    for (const [path, map] of captures) maps.set(path, (await map.toArray()) as Float32Array);
    return { x0: out, captures: maps };
  } finally {
    for (const t of owned) t.dispose();
  }
}

export const refX0 = async (ref: Ref, x: ArrayLike<number>, sigma: number, cond: Cond, hooks: Hook[] = []) =>
  (await refD(ref, x, sigma, cond, hooks)).x0;

// ---------------------------------------------------------------------------
// The engine under test
// ---------------------------------------------------------------------------

export interface Engine {
  guided: GuidedDenoiser;
  /** D at (x, sigma) for sampler step `step` of `steps` (default 0 of 10). */
  predict(x: Float32Array, sigma: number, step?: number, steps?: number): Promise<Float32Array>;
  dispose(): void;
}

export function engine(ref: Ref, strategies: Strategy[], cond: Cond, seeds: bigint[]): Engine {
  const owned: Tensor[] = [];
  const conditioning = ref.card.conditioning;
  let given: Tensor | undefined;
  let nullCondition: Tensor | undefined;
  let unconditional = cond.kind === 'none';
  if (cond.kind === 'class' && conditioning.kind === 'class') {
    given = tensor(BigInt64Array.from(cond.labels, (l) => BigInt(l ?? conditioning.nullLabel)), [N]);
    nullCondition = tensor(new BigInt64Array(N).fill(BigInt(conditioning.nullLabel)), [N]);
    unconditional = cond.labels.every((l) => l === null);
  } else if (cond.kind === 'tensor') {
    given = tensor(cond.values, [N, cond.values.length / N]);
    nullCondition = tensor(new Float32Array(cond.values.length), [N, cond.values.length / N]);
  }
  if (given) owned.push(given);
  if (nullCondition) owned.push(nullCondition);
  const guided = new GuidedDenoiser({
    main: Denoiser.of(ref.model),
    strategies,
    conditions: { given: given && [given], null: nullCondition && [nullCondition] },
    unconditional,
    seeds,
  });
  return {
    guided,
    async predict(x, sigma, step = 0, steps = 10) {
      const input = tensor(x, [N, 1, H, W]);
      try {
        const prediction = await guided.predict(input, guided.stepInfo(step, steps, sigma));
        try {
          return (await prediction.denoised.toArray()) as Float32Array;
        } finally {
          prediction.denoised.dispose();
          prediction.renoise?.dispose();
        }
      } finally {
        input.dispose();
      }
    },
    dispose() {
      guided.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

/** The engine's one prediction at (x, sigma), the engine disposed afterwards. */
export async function predictOnce(e: Engine, x: Float32Array, sigma: number): Promise<Float32Array> {
  try {
    return await e.predict(x, sigma);
  } finally {
    e.dispose();
  }
}

/**
 * Runs a test body and checks that every tensor handle it made is gone
 * afterwards. No gc here: a collected wrapper frees its handle, which would
 * hide a leak; every tensor of these tests is disposed explicitly.
 */
export async function withoutLeaks(body: () => Promise<void>): Promise<void> {
  const before = liveHandles().tensors;
  await body();
  const after = liveHandles().tensors;
  assert.equal(after, before, `live tensor handles: ${before} before the test, ${after} after it (leak)`);
}

// ---------------------------------------------------------------------------
// Plain-JS math (float64)
// ---------------------------------------------------------------------------

/** base + Σ s (pos − neg). */
export function mix(base: ArrayLike<number>, terms: [number, ArrayLike<number>, ArrayLike<number>][]): Vec {
  const out = Float64Array.from(base);
  for (const [s, pos, neg] of terms) for (let i = 0; i < out.length; i++) out[i] = out[i]! + s * (pos[i]! - neg[i]!);
  return out;
}

export const sampleOf = (a: ArrayLike<number>, n: number) => Array.from({ length: SIZE }, (_, i) => a[n * SIZE + i]!);
export const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n: number) => {
  let s = 0;
  for (let i = n * SIZE; i < (n + 1) * SIZE; i++) s += a[i]! * b[i]!;
  return s;
};
export const norm = (a: ArrayLike<number>, n: number) => Math.sqrt(dot(a, a, n));
/** Unbiased std over one sample's elements (torch.std). */
export function std(a: ArrayLike<number>, n: number): number {
  const v = sampleOf(a, n);
  const mean = v.reduce((s, e) => s + e, 0) / v.length;
  return Math.sqrt(v.reduce((s, e) => s + (e - mean) ** 2, 0) / (v.length - 1));
}

/** Separable Gaussian blur with reflect padding (edge not repeated), per sample (one channel). */
export function gaussianBlur(img: ArrayLike<number>, kernelSize: number, sigma: number): Vec {
  const half = (kernelSize - 1) / 2;
  const kernel = Array.from({ length: kernelSize }, (_, j) => Math.exp(-((j - half) ** 2) / (2 * sigma * sigma)));
  const total = kernel.reduce((s, k) => s + k, 0);
  const k = kernel.map((v) => v / total);
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  const out = new Float64Array(img.length);
  for (let n = 0; n < img.length / SIZE; n++) {
    const o = n * SIZE;
    const tmp = new Float64Array(SIZE);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let j = 0; j < kernelSize; j++) s += k[j]! * img[o + y * W + reflect(x + j - half, W)]!;
        tmp[y * W + x] = s;
      }
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let j = 0; j < kernelSize; j++) s += k[j]! * tmp[reflect(y + j - half, H) * W + x]!;
        out[o + y * W + x] = s;
      }
  }
  return out;
}

/** Real part of ifft2(fft2(img) · [radius ≤ cutoff]), radius in units of Nyquist (DFT written out). */
export function lowPass(img: ArrayLike<number>, cutoff: number): Vec {
  const freq = (k: number, n: number) => ((k <= Math.floor((n - 1) / 2) ? k : k - n) / n) * 2;
  const out = new Float64Array(img.length);
  for (let n = 0; n < img.length / SIZE; n++) {
    const o = n * SIZE;
    const re = new Float64Array(SIZE);
    const im = new Float64Array(SIZE);
    for (let ky = 0; ky < H; ky++)
      for (let kx = 0; kx < W; kx++) {
        if (Math.hypot(freq(ky, H), freq(kx, W)) > cutoff) continue;
        let r = 0;
        let i = 0;
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const angle = -2 * Math.PI * ((ky * y) / H + (kx * x) / W);
            r += img[o + y * W + x]! * Math.cos(angle);
            i += img[o + y * W + x]! * Math.sin(angle);
          }
        re[ky * W + kx] = r;
        im[ky * W + kx] = i;
      }
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let ky = 0; ky < H; ky++)
          for (let kx = 0; kx < W; kx++) {
            const idx = ky * W + kx;
            if (re[idx] === 0 && im[idx] === 0) continue;
            const angle = 2 * Math.PI * ((ky * y) / H + (kx * x) / W);
            s += re[idx]! * Math.cos(angle) - im[idx]! * Math.sin(angle);
          }
        out[o + y * W + x] = s / SIZE;
      }
  }
  return out;
}

/** x̃ = x0_deg + (x − x0) with x0_deg = x0 + m (blurred − x0) (m = 1 everywhere: blurred itself). */
export function renoised(x: ArrayLike<number>, x0: Vec, degraded: Vec, mask?: Vec): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const m = mask ? mask[i]! : 1;
    out[i] = x0[i]! + m * (degraded[i]! - x0[i]!) + (x[i]! - x0[i]!);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------

/** x = data-like + sigma · noise, float32. */
export function randomX(rng: Rng, sigma: number): Float32Array {
  return Float32Array.from({ length: N * SIZE }, () => 0.8 * rng.normal() + sigma * rng.normal());
}
/** log-uniform in [lo, hi]. */
export const randomSigma = (rng: Rng, lo = 0.3, hi = 5) => Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo)));
export const between = (rng: Rng, lo: number, hi: number) => lo + rng.next() * (hi - lo);
export const randomLabels = (rng: Rng): Cond => ({ kind: 'class', labels: Array.from({ length: N }, () => Math.floor(rng.next() * 10)) });
export const randomSeeds = (rng: Rng) => Array.from({ length: N }, () => BigInt(Math.floor(rng.next() * 2 ** 40)));
export const NULL: Cond = { kind: 'class', labels: Array.from({ length: N }, () => null) };

/** A fresh draw for one test: its generator, a noise level (log-uniform over `sigmas`), x at that level, random labels. */
export function draw(sigmas: [number, number] = [0.3, 5]): { rng: Rng; sigma: number; x: Float32Array; cond: Cond } {
  const rng = freshRandom();
  const sigma = randomSigma(rng, ...sigmas);
  return { rng, sigma, x: randomX(rng, sigma), cond: randomLabels(rng) };
}

export function nullOf(cond: Cond): Cond {
  if (cond.kind === 'class') return NULL;
  if (cond.kind === 'tensor') return { kind: 'tensor', values: new Float32Array(cond.values.length) };
  return cond;
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rng: Rng, what: string, tol = TOL): void {
  const error = relativeError(actual, expected);
  assert.ok(error < tol, `${what}: relative error ${error.toExponential(3)} >= ${tol} (seed ${rng.seed})`);
}

/** The negative branch must really differ from the positive one, or a formula check proves little. */
export function expectDiffers(a: ArrayLike<number>, b: ArrayLike<number>, rng: Rng, what: string): void {
  const difference = relativeError(a, b);
  assert.ok(difference > 1e-3, `${what}: the two branches are (nearly) equal, relative difference ${difference} (seed ${rng.seed})`);
}

