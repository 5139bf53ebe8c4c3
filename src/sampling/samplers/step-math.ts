/**
 * Pieces the k-diffusion samplers share: the ODE derivative, the ancestral
 * split of a step, the churn of EDM's stochastic samplers, and the rule that
 * only first-order samplers may re-noise with another branch (CFG++).
 */
import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { GuidedPrediction } from '../../guidance/types.js';
import type { Tensor } from '../../core/tensor.js';

/** d = (x − D)/σ, the probability-flow ODE's derivative dx/dσ. */
export function derivative(x: Tensor, denoised: Tensor, sigma: number): Tensor {
  using difference = x.sub(denoised);
  return difference.div(sigma);
}

/** k-diffusion's get_ancestral_step: the sigma to step down to and the noise to add back. */
export function ancestralStep(sigma: number, next: number, eta: number): { down: number; up: number } {
  if (eta === 0 || next === 0) return { down: next, up: 0 };
  const up = Math.min(next, eta * Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma)));
  return { down: Math.sqrt(next * next - up * up), up };
}

/** EDM's churn settings (S_churn, S_tmin, S_tmax, S_noise), as euler, heun and dpm_2 take them. */
export interface Churn {
  churn: number;
  churnSigmaMin: number;
  churnSigmaMax: number;
  churnNoise: number;
}

/** σ̂ = σ(1 + γ), γ = min(S_churn/steps, √2 − 1) inside [S_tmin, S_tmax], else 0. */
export function churnedSigma(options: Churn, sigma: number, steps: number): number {
  const inRange = sigma >= options.churnSigmaMin && sigma <= options.churnSigmaMax;
  const gamma = inRange ? Math.min(options.churn / steps, Math.SQRT2 - 1) : 0;
  return sigma * (gamma + 1);
}

/** x̂ = x + S_noise·sqrt(σ̂² − σ²)·z (a new tensor, or x itself when σ̂ = σ). */
export function churned(x: Tensor, sigma: number, sigmaHat: number, churnNoise: number, noise: () => Tensor): Tensor {
  if (!(sigmaHat > sigma)) return x;
  using z = noise();
  using scaled = z.mul(churnNoise * Math.sqrt(sigmaHat * sigmaHat - sigma * sigma));
  return x.add(scaled);
}

/** Refuses a CFG++ prediction in a sampler that is not first order (frees it first). */
export function rejectRenoise(prediction: GuidedPrediction, name: string): void {
  if (!prediction.renoise) return;
  prediction.denoised.dispose();
  prediction.renoise.dispose();
  throw new TorchGuidanceError(
    ErrorCodes.INVALID_OPTION,
    `CFG++ re-noises with the unconditional estimate, which needs a first-order sampler; '${name}' is not one. ` +
      "Fix: use sampler { name: 'euler' }, 'euler_ancestral' or 'ddim'.",
  );
}

/** The guided D alone, for samplers that take no re-noise branch. */
export async function denoisedOnly(prediction: Promise<GuidedPrediction>, name: string): Promise<Tensor> {
  const p = await prediction;
  rejectRenoise(p, name);
  return p.denoised;
}

/** a·x + b·y as one new tensor. */
export function combine(x: Tensor, a: number, y: Tensor, b: number): Tensor {
  using ax = x.mul(a);
  using by = y.mul(b);
  return ax.add(by);
}
