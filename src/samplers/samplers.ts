/**
 * Samplers in sigma space (x = x0 + σ·eps), after k-diffusion and EDM:
 *
 *   euler            x ← D + (σ'/σ)·(x − D)                      (first order, ODE)
 *   heun             EDM's 2nd-order sampler with optional churn (S_churn, S_tmin, S_tmax, S_noise)
 *   ddim             x ← D + (σ_down/σ)·(x − D) + σ_up·z with
 *                    σ_up = min(σ', η·sqrt(σ'²(σ² − σ'²)/σ²)), σ_down = sqrt(σ'² − σ_up²);
 *                    for a VP model this is exactly DDIM(η) written in sigma space
 *                    (DDIM's σ_t(η)/sqrt(ᾱ') equals σ_up), η = 0 the deterministic DDIM
 *   euler_ancestral  the same update with η = 1 by default (k-diffusion's)
 *   dpmpp_2m         DPM-Solver++(2M), k-diffusion's sample_dpmpp_2m
 *
 * A prediction may carry `renoise` (CFG++): first-order samplers then take
 * the noise direction from it, x ← D + (σ_down/σ)·(x − D_renoise).
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import type { GuidedPrediction } from '../guidance/types.js';
import type { Tensor } from '../tensor.js';
import { sigmaScheduleSchema } from './sigma-schedules.js';

const steps = z.number().int().positive().max(10_000).default(30);
const schedule = sigmaScheduleSchema.default({ kind: 'karras', rho: 7 });

export const samplerSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('euler'), steps, schedule }).strict(),
  z
    .object({
      name: z.literal('heun'),
      steps,
      schedule,
      churn: z.number().nonnegative().max(1e6).default(0),
      churnSigmaMin: z.number().nonnegative().default(0),
      churnSigmaMax: z.number().positive().default(Infinity),
      churnNoise: z.number().positive().max(1000, 'must be at most 1000 (EDM uses about 1)').default(1),
    })
    .strict(),
  z.object({ name: z.literal('ddim'), steps, schedule, eta: z.number().min(0).max(1).default(0) }).strict(),
  z.object({ name: z.literal('euler_ancestral'), steps, schedule, eta: z.number().min(0).max(1).default(1) }).strict(),
  z.object({ name: z.literal('dpmpp_2m'), steps, schedule }).strict(),
]);

export type SamplerOptions = z.input<typeof samplerSchema>;
export type Sampler = z.output<typeof samplerSchema>;
export type SamplerName = Sampler['name'];

export interface SamplerIO {
  /** The guided denoiser at (x, sigma) for sampler step `step`. */
  denoise(x: Tensor, sigma: number, step: number): Promise<GuidedPrediction>;
  /** Fresh per-sample noise for step `step` (ancestral steps, churn). */
  noise(step: number): Tensor;
  /** Called after each step with the new x (which the sampler still owns). */
  afterStep?(step: number, x: Tensor): void | Promise<void>;
}

/** Runs the sampler from x (noise already scaled to sigmas[0]); takes ownership of x and returns the result. */
export async function runSampler(sampler: Sampler, sigmas: readonly number[], x: Tensor, io: SamplerIO): Promise<Tensor> {
  let current = x;
  const replace = (next: Tensor) => {
    current.dispose();
    current = next;
  };
  const n = sigmas.length - 1;
  let previous: { denoised: Tensor; sigma: number } | undefined;
  try {
    for (let i = 0; i < n; i++) {
      const sigma = sigmas[i]!;
      const next = sigmas[i + 1]!;
      switch (sampler.name) {
        case 'euler':
          replace(await ancestralStep(io, current, sigma, next, 0, i));
          break;
        case 'ddim':
        case 'euler_ancestral':
          replace(await ancestralStep(io, current, sigma, next, sampler.eta, i));
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
      }
      await io.afterStep?.(i, current);
    }
    return current;
  } catch (error) {
    current.dispose();
    throw error;
  } finally {
    previous?.denoised.dispose();
  }
}

function rejectRenoise(prediction: GuidedPrediction, name: string): void {
  if (!prediction.renoise) return;
  prediction.denoised.dispose();
  prediction.renoise.dispose();
  throw new TorchGuidanceError(
    ErrorCodes.INVALID_OPTION,
    `CFG++ re-noises with the unconditional estimate, which needs a first-order sampler; '${name}' is not one. ` +
      "Fix: use sampler { name: 'euler' }, 'euler_ancestral' or 'ddim'.",
  );
}

/** x ← D + (σ_down/σ)·(x − R) + σ_up·z; η = 0 is Euler. */
async function ancestralStep(io: SamplerIO, x: Tensor, sigma: number, next: number, eta: number, step: number): Promise<Tensor> {
  const { denoised, renoise } = await io.denoise(x, sigma, step);
  using d = denoised;
  using r = renoise;
  const sigmaUp = next === 0 ? 0 : Math.min(next, eta * Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma)));
  const sigmaDown = Math.sqrt(next * next - sigmaUp * sigmaUp);
  using direction = x.sub(r ?? d);
  using moved = direction.mul(sigmaDown / sigma);
  const result = d.add(moved);
  if (sigmaUp === 0) return result;
  using owned = result;
  using z = io.noise(step);
  using scaled = z.mul(sigmaUp);
  return owned.add(scaled);
}

/**
 * The sigma Heun's first evaluation of a step runs at: sigma raised by the
 * churn, σ̂ = σ·(1 + γ). Exported so that explain() plans at the sigma the
 * sampler really evaluates (a term window between σ and σ̂ changes the plan).
 */
export function heunChurnedSigma(options: Extract<Sampler, { name: 'heun' }>, sigma: number, steps: number): number {
  const inRange = sigma >= options.churnSigmaMin && sigma <= options.churnSigmaMax;
  const gamma = inRange ? Math.min(options.churn / steps, Math.SQRT2 - 1) : 0;
  return sigma * (gamma + 1);
}

async function heunStep(
  io: SamplerIO,
  x: Tensor,
  sigma: number,
  next: number,
  step: number,
  steps: number,
  options: Extract<Sampler, { name: 'heun' }>,
): Promise<Tensor> {
  const sigmaHat = heunChurnedSigma(options, sigma, steps);
  let xHat = x;
  if (sigmaHat > sigma) {
    using z = io.noise(step);
    using scaled = z.mul(options.churnNoise * Math.sqrt(sigmaHat * sigmaHat - sigma * sigma));
    xHat = x.add(scaled);
  }
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

function derivative(x: Tensor, denoised: Tensor, sigma: number): Tensor {
  using difference = x.sub(denoised);
  return difference.div(sigma);
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
