/**
 * k-diffusion's single-step samplers with a second evaluation inside each
 * step (written from k_diffusion/sampling.py; t = −log σ):
 *
 *   dpm_2               DPM-Solver-2 with EDM's churn: an Euler half step to
 *                       σ_mid = sqrt(σ̂·σ'), then the full step with the
 *                       derivative there; Euler on the last step
 *   dpm_2_ancestral     the same to σ_down, then + S_noise·σ_up·z
 *   dpmpp_2s_ancestral  DPM-Solver++(2S) to σ_down (midpoint s = t + h/2 in
 *                       log-sigma), then + S_noise·σ_up·z
 *   dpmpp_sde           DPM-Solver++ stochastic: two ancestral sub-steps (to
 *                       s = t + r·h, then to t'), whose noises are increments
 *                       of one Brownian path
 *
 * Noise is drawn per sample from its seed (SamplerIO.noise). For dpmpp_sde
 * the two increments over [σ_s, σ] and [σ', σ] of a Brownian path W(σ) are
 * built from two independent draws z₁, z₂ of the step:
 *   n₁ = z₁,   n₂ = (sqrt(σ − σ_s)·z₁ + sqrt(σ_s − σ')·z₂) / sqrt(σ − σ'),
 * which is the joint law of k-diffusion's BrownianTreeNoiseSampler (same
 * path, overlapping intervals), without its torchsde tree and its batch-wide
 * entropy: each sample's path comes from its own seed.
 */
import type { Tensor } from '../../core/tensor.js';
import type { SamplerIO } from './samplers.js';
import { type Churn, ancestralStep, churned, churnedSigma, combine, denoisedOnly, derivative } from './step-math.js';

/** The sigmas a dpm_2 step evaluates at: σ̂, and σ_mid unless it is the last step. */
export function dpm2Sigmas(options: Churn, sigma: number, next: number, steps: number): number[] {
  const hat = churnedSigma(options, sigma, steps);
  return next === 0 ? [hat] : [hat, Math.sqrt(hat * next)];
}

export async function dpm2Step(io: SamplerIO, x: Tensor, sigma: number, next: number, step: number, steps: number, options: Churn): Promise<Tensor> {
  const hat = churnedSigma(options, sigma, steps);
  const xHat = churned(x, sigma, hat, options.churnNoise, () => io.noise(step));
  try {
    using d0 = await denoisedOnly(io.denoise(xHat, hat, step), 'dpm_2');
    using d = derivative(xHat, d0, hat);
    if (next === 0) {
      using moved = d.mul(next - hat);
      return xHat.add(moved);
    }
    const mid = Math.sqrt(hat * next); // exp(lerp(log σ̂, log σ', 1/2))
    using half = d.mul(mid - hat);
    using x2 = xHat.add(half);
    using d2Denoised = await denoisedOnly(io.denoise(x2, mid, step), 'dpm_2');
    using d2 = derivative(x2, d2Denoised, mid);
    using full = d2.mul(next - hat);
    return xHat.add(full);
  } finally {
    if (xHat !== x) xHat.dispose();
  }
}

export function dpm2AncestralSigmas(sigma: number, next: number, eta: number): number[] {
  const { down } = ancestralStep(sigma, next, eta);
  return down === 0 ? [sigma] : [sigma, Math.sqrt(sigma * down)];
}

export async function dpm2AncestralStep(io: SamplerIO, x: Tensor, sigma: number, next: number, step: number, eta: number, sNoise: number): Promise<Tensor> {
  const { down, up } = ancestralStep(sigma, next, eta);
  using d0 = await denoisedOnly(io.denoise(x, sigma, step), 'dpm_2_ancestral');
  using d = derivative(x, d0, sigma);
  let result: Tensor;
  if (down === 0) {
    using moved = d.mul(down - sigma);
    result = x.add(moved);
  } else {
    const mid = Math.sqrt(sigma * down);
    using half = d.mul(mid - sigma);
    using x2 = x.add(half);
    using d2Denoised = await denoisedOnly(io.denoise(x2, mid, step), 'dpm_2_ancestral');
    using d2 = derivative(x2, d2Denoised, mid);
    using full = d2.mul(down - sigma);
    result = x.add(full);
  }
  return addNoise(result, io, step, sNoise * up, next > 0);
}

export function dpmpp2sAncestralSigmas(sigma: number, next: number, eta: number): number[] {
  const { down } = ancestralStep(sigma, next, eta);
  return down === 0 ? [sigma] : [sigma, Math.sqrt(sigma * down)];
}

export async function dpmpp2sAncestralStep(
  io: SamplerIO,
  x: Tensor,
  sigma: number,
  next: number,
  step: number,
  eta: number,
  sNoise: number,
): Promise<Tensor> {
  const { down, up } = ancestralStep(sigma, next, eta);
  using denoised = await denoisedOnly(io.denoise(x, sigma, step), 'dpmpp_2s_ancestral');
  let result: Tensor;
  if (down === 0) {
    using d = derivative(x, denoised, sigma);
    using moved = d.mul(down - sigma);
    result = x.add(moved);
  } else {
    const h = Math.log(sigma) - Math.log(down); // t' − t with t = −log σ
    const sigmaS = Math.exp(-(-Math.log(sigma) + h / 2));
    using x2 = combine(x, sigmaS / sigma, denoised, -Math.expm1(-h / 2));
    using denoised2 = await denoisedOnly(io.denoise(x2, sigmaS, step), 'dpmpp_2s_ancestral');
    result = combine(x, down / sigma, denoised2, -Math.expm1(-h));
  }
  return addNoise(result, io, step, sNoise * up, next > 0);
}

/** The midpoint sigma of a dpmpp_sde step: σ_s = exp(−(t + r·h)). */
export function dpmppSdeMidpoint(sigma: number, next: number, r: number): number {
  const t = -Math.log(sigma);
  const h = -Math.log(next) - t;
  return Math.exp(-(t + r * h));
}

export function dpmppSdeSigmas(sigma: number, next: number, r: number): number[] {
  return next === 0 ? [sigma] : [sigma, dpmppSdeMidpoint(sigma, next, r)];
}

export async function dpmppSdeStep(
  io: SamplerIO,
  x: Tensor,
  sigma: number,
  next: number,
  step: number,
  options: { eta: number; sNoise: number; r: number },
): Promise<Tensor> {
  using denoised = await denoisedOnly(io.denoise(x, sigma, step), 'dpmpp_sde');
  if (next === 0) {
    using d = derivative(x, denoised, sigma);
    using moved = d.mul(-sigma);
    return x.add(moved);
  }
  const { eta, sNoise, r } = options;
  const t = -Math.log(sigma);
  const sigmaS = dpmppSdeMidpoint(sigma, next, r);
  const fac = 1 / (2 * r);
  // The Brownian increments of this step (see the file comment).
  using z1 = io.noise(step, 0);
  using z2 = io.noise(step, 1);
  using spread1 = z1.mul(Math.sqrt(sigma - sigmaS));
  using spread2 = z2.mul(Math.sqrt(sigmaS - next));
  using sum = spread1.add(spread2);
  using n2 = sum.div(Math.sqrt(sigma - next));

  // Sub-step 1: ancestral from σ to σ_s.
  const first = ancestralStep(sigma, sigmaS, eta);
  const s1 = -Math.log(first.down);
  using drift1 = combine(x, first.down / sigma, denoised, -Math.expm1(t - s1));
  using noise1 = z1.mul(sNoise * first.up);
  using x2 = drift1.add(noise1);
  using denoised2 = await denoisedOnly(io.denoise(x2, sigmaS, step), 'dpmpp_sde');

  // Sub-step 2: ancestral from σ to σ' with the blended denoised estimate.
  const second = ancestralStep(sigma, next, eta);
  const tNext = -Math.log(second.down);
  using blended = combine(denoised, 1 - fac, denoised2, fac);
  using drift2 = combine(x, second.down / sigma, blended, -Math.expm1(t - tNext));
  using noise2 = n2.mul(sNoise * second.up);
  return drift2.add(noise2);
}

/** x + amount·z (takes ownership of x); nothing added when `when` is false or amount is 0. */
async function addNoise(x: Tensor, io: SamplerIO, step: number, amount: number, when: boolean): Promise<Tensor> {
  if (!when || amount === 0) return x;
  using owned = x;
  using z = io.noise(step);
  using scaled = z.mul(amount);
  return owned.add(scaled);
}
