/**
 * Samplers in sigma space (x = x0 + σ·eps), after k-diffusion and EDM:
 *
 *   euler               x ← D + (σ'/σ̂)·(x̂ − D), with EDM's churn (σ̂, x̂; off by default)
 *   heun                EDM's 2nd-order sampler with optional churn (S_churn, S_tmin, S_tmax, S_noise)
 *   ddim                x ← D + (σ_down/σ)·(x − D) + S_noise·σ_up·z with
 *                       σ_up = min(σ', η·sqrt(σ'²(σ² − σ'²)/σ²)), σ_down = sqrt(σ'² − σ_up²);
 *                       for a VP model this is exactly DDIM(η) written in sigma space
 *                       (DDIM's σ_t(η)/sqrt(ᾱ') equals σ_up), η = 0 the deterministic DDIM
 *   euler_ancestral     the same update with η = 1 by default (k-diffusion's)
 *   dpmpp_2m            DPM-Solver++(2M), k-diffusion's sample_dpmpp_2m
 *   dpm_2, dpm_2_ancestral, dpmpp_2s_ancestral, dpmpp_sde        dpm-solver.ts
 *   lms, dpmpp_2m_sde, dpmpp_3m_sde                                multistep.ts
 *
 * A prediction may carry `renoise` (CFG++): first-order samplers then take
 * the noise direction from it, x ← D + (σ_down/σ)·(x − D_renoise); the others
 * refuse it.
 *
 * Every random draw is per sample, from the sample's seed and the step
 * (SamplerIO.noise), so a sample is the same alone and in any batch.
 */
import { z } from 'zod';

import type { GuidedPrediction } from '../../guidance/types.js';
import type { Tensor } from '../../core/tensor.js';
import {
  dpm2AncestralSigmas,
  dpm2AncestralStep,
  dpm2Sigmas,
  dpm2Step,
  dpmpp2sAncestralSigmas,
  dpmpp2sAncestralStep,
  dpmppSdeSigmas,
  dpmppSdeStep,
} from './dpm-solver.js';
import { MAX_LMS_ORDER } from './lms-coefficients.js';
import { History, dpmpp2mSdeStep, dpmpp3mSdeStep, lmsStep } from './multistep.js';
import { sigmaScheduleSchema } from './sigma-schedules.js';
import { type Churn, ancestralStep, churned, churnedSigma, derivative, rejectRenoise } from './step-math.js';

const steps = z.number().int().positive().max(10_000).default(30);
const schedule = sigmaScheduleSchema.default({ kind: 'karras', rho: 7 });

/** EDM's churn, as heun, euler and dpm_2 take it (k-diffusion's s_churn, s_tmin, s_tmax, s_noise). */
const churn = {
  churn: z.number().nonnegative().max(1e6).default(0),
  churnSigmaMin: z.number().nonnegative().default(0),
  churnSigmaMax: z.number().positive().default(Infinity),
  churnNoise: z.number().positive().max(1000, 'must be at most 1000 (EDM uses about 1)').default(1),
};
/** k-diffusion's s_noise: the scale of the noise ancestral and SDE samplers add. */
const sNoise = z.number().nonnegative().max(1000, 'must be at most 1000 (k-diffusion uses about 1)').default(1);
/** η of an ancestral step: 0 deterministic, 1 the full ancestral noise. */
const ancestralEta = (value: number) => z.number().min(0).max(1).default(value);
/** η of the SDE samplers (k-diffusion's default 1; 0 is the ODE). */
const sdeEta = z.number().nonnegative().refine(Number.isFinite, 'must be finite').default(1);

/** The zod schema of {@link SamplerOptions}: one object per sampler, discriminated by `name`. */
export const samplerSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('euler'), steps, schedule, ...churn }).strict(),
  z.object({ name: z.literal('heun'), steps, schedule, ...churn }).strict(),
  z.object({ name: z.literal('ddim'), steps, schedule, eta: ancestralEta(0), sNoise }).strict(),
  z.object({ name: z.literal('euler_ancestral'), steps, schedule, eta: ancestralEta(1), sNoise }).strict(),
  z.object({ name: z.literal('dpmpp_2m'), steps, schedule }).strict(),
  z.object({ name: z.literal('dpm_2'), steps, schedule, ...churn }).strict(),
  z.object({ name: z.literal('dpm_2_ancestral'), steps, schedule, eta: ancestralEta(1), sNoise }).strict(),
  z.object({ name: z.literal('dpmpp_2s_ancestral'), steps, schedule, eta: ancestralEta(1), sNoise }).strict(),
  z
    .object({
      name: z.literal('dpmpp_sde'),
      steps,
      schedule,
      eta: sdeEta,
      sNoise,
      /** Where the intermediate evaluation sits, as a fraction of the step in log-sigma. */
      r: z.number().gt(0).lt(1).default(0.5),
    })
    .strict(),
  z
    .object({ name: z.literal('dpmpp_2m_sde'), steps, schedule, eta: sdeEta, sNoise, solverType: z.enum(['midpoint', 'heun']).default('midpoint') })
    .strict(),
  z.object({ name: z.literal('dpmpp_3m_sde'), steps, schedule, eta: sdeEta, sNoise }).strict(),
  z.object({ name: z.literal('lms'), steps, schedule, order: z.number().int().min(1).max(MAX_LMS_ORDER).default(4) }).strict(),
]);

/**
 * A sampler and its settings: `name` (`euler`, `heun`, `ddim`,
 * `euler_ancestral`, `dpmpp_2m`), `steps` (default 30), `schedule` (default
 * Karras ρ 7); Heun takes `churn*`, DDIM and Euler ancestral `eta`.
 */
export type SamplerOptions = z.input<typeof samplerSchema>;
export type Sampler = z.output<typeof samplerSchema>;
/** The samplers' names. */
export type SamplerName = Sampler['name'];

/** The samplers that can take CFG++'s re-noise branch. */
export const FIRST_ORDER_SAMPLERS: readonly SamplerName[] = ['euler', 'euler_ancestral', 'ddim'];

export interface SamplerIO {
  /** The guided denoiser at (x, sigma) for sampler step `step`. */
  denoise(x: Tensor, sigma: number, step: number): Promise<GuidedPrediction>;
  /**
   * Fresh per-sample noise for step `step` (ancestral steps, churn, SDE
   * increments). `part` 1 is a second, independent draw of the same step
   * (dpmpp_sde's second Brownian increment).
   */
  noise(step: number, part?: 0 | 1): Tensor;
  /** Called after each step with the new x (which the sampler still owns). */
  afterStep?(step: number, x: Tensor): void | Promise<void>;
}

/**
 * The sigmas the sampler evaluates the model at during step `step`, in
 * order: explain() plans at each, so a window edge between two of them
 * shows in the plan as it runs.
 */
export function evaluationSigmas(sampler: Sampler, sigmas: readonly number[], step: number): number[] {
  const sigma = sigmas[step]!;
  const next = sigmas[step + 1]!;
  const n = sigmas.length - 1;
  switch (sampler.name) {
    case 'euler':
      return [churnedSigma(sampler, sigma, n)];
    case 'heun': {
      const hat = churnedSigma(sampler, sigma, n);
      return next === 0 ? [hat] : [hat, next];
    }
    case 'dpm_2':
      return dpm2Sigmas(sampler, sigma, next, n);
    case 'dpm_2_ancestral':
      return dpm2AncestralSigmas(sigma, next, sampler.eta);
    case 'dpmpp_2s_ancestral':
      return dpmpp2sAncestralSigmas(sigma, next, sampler.eta);
    case 'dpmpp_sde':
      return dpmppSdeSigmas(sigma, next, sampler.r);
    default:
      return [sigma];
  }
}

/** Runs the sampler from x (noise already scaled to sigmas[0]); takes ownership of x and returns the result. */
export async function runSampler(sampler: Sampler, sigmas: readonly number[], x: Tensor, io: SamplerIO): Promise<Tensor> {
  let current = x;
  const replace = (next: Tensor) => {
    current.dispose();
    current = next;
  };
  const n = sigmas.length - 1;
  const history = new History();
  let previous: { denoised: Tensor; sigma: number } | undefined;
  try {
    for (let i = 0; i < n; i++) {
      const sigma = sigmas[i]!;
      const next = sigmas[i + 1]!;
      switch (sampler.name) {
        case 'euler':
          replace(await eulerStep(io, current, sigma, next, i, n, sampler));
          break;
        case 'ddim':
        case 'euler_ancestral':
          replace(await ancestralEulerStep(io, current, sigma, next, sampler.eta, sampler.sNoise, i));
          break;
        case 'heun':
          replace(await heunStep(io, current, sigma, next, i, n, sampler));
          break;
        case 'dpmpp_2m': {
          const prediction = await io.denoise(current, sigma, i);
          rejectRenoise(prediction, sampler.name);
          replace(dpmpp2mStep(current, prediction.denoised, sigma, next, previous));
          previous?.denoised.dispose();
          previous = { denoised: prediction.denoised, sigma };
          break;
        }
        case 'dpm_2':
          replace(await dpm2Step(io, current, sigma, next, i, n, sampler));
          break;
        case 'dpm_2_ancestral':
          replace(await dpm2AncestralStep(io, current, sigma, next, i, sampler.eta, sampler.sNoise));
          break;
        case 'dpmpp_2s_ancestral':
          replace(await dpmpp2sAncestralStep(io, current, sigma, next, i, sampler.eta, sampler.sNoise));
          break;
        case 'dpmpp_sde':
          replace(await dpmppSdeStep(io, current, sigma, next, i, sampler));
          break;
        case 'dpmpp_2m_sde':
          replace(await dpmpp2mSdeStep(io, current, sigma, next, i, sampler, history));
          break;
        case 'dpmpp_3m_sde':
          replace(await dpmpp3mSdeStep(io, current, sigma, next, i, sampler, history));
          break;
        case 'lms':
          replace(await lmsStep(io, current, sigmas, i, sampler.order, history));
          break;
      }
      await io.afterStep?.(i, current);
    }
    return current;
  } catch (error) {
    current.dispose();
    throw error;
  } finally {
    previous?.denoised.dispose();
    history.dispose();
  }
}

/** x ← D + (σ_down/σ)·(x − R) + S_noise·σ_up·z; η = 0 is Euler. */
async function ancestralEulerStep(io: SamplerIO, x: Tensor, sigma: number, next: number, eta: number, noiseScale: number, step: number): Promise<Tensor> {
  const { denoised, renoise } = await io.denoise(x, sigma, step);
  using d = denoised;
  using r = renoise;
  const { down, up } = ancestralStep(sigma, next, eta);
  using direction = x.sub(r ?? d);
  using moved = direction.mul(down / sigma);
  const result = d.add(moved);
  if (up === 0 || noiseScale === 0) return result;
  using owned = result;
  using z = io.noise(step);
  using scaled = z.mul(noiseScale * up);
  return owned.add(scaled);
}

/** k-diffusion's sample_euler: churn to σ̂, then x ← D + (σ'/σ̂)·(x̂ − R). */
async function eulerStep(io: SamplerIO, x: Tensor, sigma: number, next: number, step: number, steps: number, options: Churn): Promise<Tensor> {
  const hat = churnedSigma(options, sigma, steps);
  const xHat = churned(x, sigma, hat, options.churnNoise, () => io.noise(step));
  try {
    return await ancestralEulerStep(io, xHat, hat, next, 0, 0, step);
  } finally {
    if (xHat !== x) xHat.dispose();
  }
}

/**
 * The sigma Heun's first evaluation of a step runs at: sigma raised by the
 * churn, σ̂ = σ·(1 + γ). Kept for callers of the earlier API; see evaluationSigmas().
 */
export function heunChurnedSigma(options: Churn, sigma: number, steps: number): number {
  return churnedSigma(options, sigma, steps);
}

async function heunStep(io: SamplerIO, x: Tensor, sigma: number, next: number, step: number, steps: number, options: Churn): Promise<Tensor> {
  const sigmaHat = churnedSigma(options, sigma, steps);
  const xHat = churned(x, sigma, sigmaHat, options.churnNoise, () => io.noise(step));
  try {
    const first = await io.denoise(xHat, sigmaHat, step);
    rejectRenoise(first, 'heun');
    using d1 = derivative(xHat, first.denoised, sigmaHat);
    first.denoised.dispose();
    const dt = next - sigmaHat;
    using step1 = d1.mul(dt);
    const euler = xHat.add(step1);
    if (next === 0) return euler;
    using x2 = euler;
    const second = await io.denoise(x2, next, step);
    rejectRenoise(second, 'heun');
    using d2 = derivative(x2, second.denoised, next);
    second.denoised.dispose();
    using sum = d1.add(d2);
    using average = sum.mul(dt / 2);
    return xHat.add(average);
  } finally {
    if (xHat !== x) xHat.dispose();
  }
}

/** k-diffusion's sample_dpmpp_2m, one step (t = −log σ). */
function dpmpp2mStep(x: Tensor, denoised: Tensor, sigma: number, next: number, previous: { denoised: Tensor; sigma: number } | undefined): Tensor {
  if (next === 0) return denoised.clone();
  const t = -Math.log(sigma);
  const tNext = -Math.log(next);
  const h = tNext - t;
  let target = denoised;
  let ownsTarget = false;
  if (previous) {
    const hLast = t - -Math.log(previous.sigma);
    const r = hLast / h;
    using a = denoised.mul(1 + 1 / (2 * r));
    using b = previous.denoised.mul(1 / (2 * r));
    target = a.sub(b);
    ownsTarget = true;
  }
  try {
    using scaledX = x.mul(next / sigma);
    using scaledD = target.mul(-Math.expm1(-h));
    return scaledX.add(scaledD);
  } finally {
    if (ownsTarget) target.dispose();
  }
}
