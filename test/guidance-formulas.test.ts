/**
 * Every guidance strategy's prediction against its formula, computed
 * independently: GuidedDenoiser.predict() (the D(x; sigma) a sampler sees for
 * one step, with the planner's batched forwards and per-slice hooks) must equal
 * the method's formula (docs/guidance-methods.md), evaluated here from
 * separate, unbatched forwards of the model (model.run with explicit hooks per
 * branch), converted to x0 in JS from the card's schedule, and mixed in plain
 * JS arithmetic (float64). Inputs are fresh random draws; failures print the seed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

import {
  type DenoiserCard,
  type Hook,
  type Model,
  type Strategy,
  type Tensor,
  ErrorCodes,
  apg,
  autoguidance,
  blurGuidance,
  cfg,
  cfgZeroStar,
  guidanceInterval,
  icg,
  isTorchGuidanceError,
  liveHandles,
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
import { Streams, mixSeed, uniformFromSeed } from '../src/samplers/seeds.js';
import { repoRoot } from './helpers/python.js';
import { freshRandom, relativeError } from './helpers/random.js';

const fixture = (name: string) => join(repoRoot, 'models', 'fixtures', name);
const H = 28;
const W = 28;
const SIZE = H * W;
const N = 2;
const TOL = 1e-4;

type Rng = ReturnType<typeof freshRandom>;
type Vec = Float64Array;
type Cond = { kind: 'class'; labels: (number | null)[] } | { kind: 'tensor'; values: Float32Array } | { kind: 'none' };

// ---------------------------------------------------------------------------
// The independent reference: schedule, preconditioning, forwards
// ---------------------------------------------------------------------------

interface Ref {
  name: string;
  model: Model;
  card: DenoiserCard;
  /** sigma_t of a discrete VP schedule, t = 0..T-1; null for EDM. */
  sigmas: Float64Array | null;
}

function refOf(name: string, model: Model): Ref {
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
function timestepOf(ref: Ref, sigma: number): number {
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
function precondition(ref: Ref, sigma: number): { cIn: number; time: number; x0: (x: number, f: number) => number } {
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

interface RefResult {
  x0: Vec;
  /** Captured head-averaged maps [n, queries, keys] per site path. */
  captures: Map<string, Float32Array>;
}

/** One branch on its own: D(x; sigma, cond) with this branch's hooks only, batch = the n samples. */
async function refD(ref: Ref, x: ArrayLike<number>, sigma: number, cond: Cond, hooks: Hook[] = []): Promise<RefResult> {
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

const refX0 = async (ref: Ref, x: ArrayLike<number>, sigma: number, cond: Cond, hooks: Hook[] = []) =>
  (await refD(ref, x, sigma, cond, hooks)).x0;

// ---------------------------------------------------------------------------
// The engine under test
// ---------------------------------------------------------------------------

interface Engine {
  guided: GuidedDenoiser;
  predict(x: Float32Array, sigma: number, step?: number): Promise<Float32Array>;
  dispose(): void;
}

function engine(ref: Ref, strategies: Strategy[], cond: Cond, seeds: bigint[]): Engine {
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
    conditions: { given, null: nullCondition },
    unconditional,
    seeds,
  });
  return {
    guided,
    async predict(x, sigma, step = 0) {
      const input = tensor(x, [N, 1, H, W]);
      try {
        const prediction = await guided.predict(input, guided.stepInfo(step, 10, sigma));
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
async function predictOnce(e: Engine, x: Float32Array, sigma: number): Promise<Float32Array> {
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
async function withoutLeaks(body: () => Promise<void>): Promise<void> {
  const before = liveHandles().tensors;
  await body();
  const after = liveHandles().tensors;
  assert.equal(after, before, `live tensor handles: ${before} before the test, ${after} after it (leak)`);
}

// ---------------------------------------------------------------------------
// Plain-JS math (float64)
// ---------------------------------------------------------------------------

/** base + Σ s (pos − neg). */
function mix(base: ArrayLike<number>, terms: [number, ArrayLike<number>, ArrayLike<number>][]): Vec {
  const out = Float64Array.from(base);
  for (const [s, pos, neg] of terms) for (let i = 0; i < out.length; i++) out[i] = out[i]! + s * (pos[i]! - neg[i]!);
  return out;
}

const sampleOf = (a: ArrayLike<number>, n: number) => Array.from({ length: SIZE }, (_, i) => a[n * SIZE + i]!);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n: number) => {
  let s = 0;
  for (let i = n * SIZE; i < (n + 1) * SIZE; i++) s += a[i]! * b[i]!;
  return s;
};
const norm = (a: ArrayLike<number>, n: number) => Math.sqrt(dot(a, a, n));
/** Unbiased std over one sample's elements (torch.std). */
function std(a: ArrayLike<number>, n: number): number {
  const v = sampleOf(a, n);
  const mean = v.reduce((s, e) => s + e, 0) / v.length;
  return Math.sqrt(v.reduce((s, e) => s + (e - mean) ** 2, 0) / (v.length - 1));
}

/** Separable Gaussian blur with reflect padding (edge not repeated), per sample (one channel). */
function gaussianBlur(img: ArrayLike<number>, kernelSize: number, sigma: number): Vec {
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
function lowPass(img: ArrayLike<number>, cutoff: number): Vec {
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
function renoised(x: ArrayLike<number>, x0: Vec, degraded: Vec, mask?: Vec): Float32Array {
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
function randomX(rng: Rng, sigma: number): Float32Array {
  return Float32Array.from({ length: N * SIZE }, () => 0.8 * rng.normal() + sigma * rng.normal());
}
/** log-uniform in [lo, hi]. */
const randomSigma = (rng: Rng, lo = 0.3, hi = 5) => Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo)));
const between = (rng: Rng, lo: number, hi: number) => lo + rng.next() * (hi - lo);
const randomLabels = (rng: Rng): Cond => ({ kind: 'class', labels: Array.from({ length: N }, () => Math.floor(rng.next() * 10)) });
const randomSeeds = (rng: Rng) => Array.from({ length: N }, () => BigInt(Math.floor(rng.next() * 2 ** 40)));
const NULL: Cond = { kind: 'class', labels: Array.from({ length: N }, () => null) };

/** A fresh draw for one test: its generator, a noise level (log-uniform over `sigmas`), x at that level, random labels. */
function draw(sigmas: [number, number] = [0.3, 5]): { rng: Rng; sigma: number; x: Float32Array; cond: Cond } {
  const rng = freshRandom();
  const sigma = randomSigma(rng, ...sigmas);
  return { rng, sigma, x: randomX(rng, sigma), cond: randomLabels(rng) };
}

function nullOf(cond: Cond): Cond {
  if (cond.kind === 'class') return NULL;
  if (cond.kind === 'tensor') return { kind: 'tensor', values: new Float32Array(cond.values.length) };
  return cond;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rng: Rng, what: string, tol = TOL): void {
  const error = relativeError(actual, expected);
  assert.ok(error < tol, `${what}: relative error ${error.toExponential(3)} >= ${tol} (seed ${rng.seed})`);
}

/** The negative branch must really differ from the positive one, or a formula check proves little. */
function expectDiffers(a: ArrayLike<number>, b: ArrayLike<number>, rng: Rng, what: string): void {
  const difference = relativeError(a, b);
  assert.ok(difference > 1e-3, `${what}: the two branches are (nearly) equal, relative difference ${difference} (seed ${rng.seed})`);
}

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

  it('slg on tiny-unet: D(c) + s(D(c) − D_skip) inside its steps range (default 1 %–20 % of the run) and sigma window, D(c) outside', () =>
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
        // Step 0 (before 1 %) and step 2 (at 20 %) of 10: off; step 1 above the sigma window: off.
        for (const [step, sig] of [[0, sigma], [2, sigma], [1, between(rng, 3.5, 6)]] as const) {
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
      const always = { start: 0, end: 1 };
      const strategies = [slg({ scale: s1, blocks: 'mid.*', steps: always }), slg({ scale: s2, blocks: 'mid.*', steps: always }),
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
      const strategies = [cfg({ scale: w }), tsg({ scale: wt, noiseScale: k }), slg({ scale: s, blocks: 'up.2', steps: { start: 0, end: 1 } })];
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
