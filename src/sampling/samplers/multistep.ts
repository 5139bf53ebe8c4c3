/**
 * k-diffusion's multistep samplers, which reuse the denoised estimates (or
 * derivatives) of earlier steps (written from k_diffusion/sampling.py;
 * t = −log σ, h = t' − t):
 *
 *   lms           linear multistep on d = (x − D)/σ: x' = x + Σ_j c_j·d_{i−j}, c_j the
 *                 integral over [σ_i, σ_{i+1}] of the Lagrange basis polynomial
 *                 through the last `order` sigmas (lms-coefficients.ts)
 *   dpmpp_2m_sde  DPM-Solver++(2M) SDE, 'midpoint' or 'heun' correction:
 *                 x' = (σ'/σ)e^{−ηh}x + (1 − e^{−h−ηh})D + correction
 *                      + S_noise·σ'·sqrt(1 − e^{−2ηh})·z
 *   dpmpp_3m_sde  DPM-Solver++(3M) SDE: the third-order version
 *
 * Their noise per step is one increment of a Brownian path over a step of
 * its own, independent of the others: a fresh per-sample draw (SamplerIO.noise)
 * has the law of k-diffusion's BrownianTreeNoiseSampler. The last step (to
 * σ = 0) returns D.
 */
import type { Tensor } from '../../core/tensor.js';
import { lmsCoefficients } from './lms-coefficients.js';
import type { SamplerIO } from './samplers.js';
import { combine, denoisedOnly, derivative } from './step-math.js';

/** What a multistep sampler carries from step to step; dispose() frees it. */
export class History {
  readonly denoised: Tensor[] = [];
  readonly derivatives: Tensor[] = [];
  readonly h: number[] = [];

  /** Keeps the newest `keep` entries of a list, freeing the rest. */
  static trim(list: Tensor[], keep: number): void {
    while (list.length > keep) list.shift()!.dispose();
  }

  dispose(): void {
    for (const t of [...this.denoised, ...this.derivatives]) t.dispose();
    this.denoised.length = 0;
    this.derivatives.length = 0;
  }
}

export async function lmsStep(io: SamplerIO, x: Tensor, sigmas: readonly number[], step: number, order: number, history: History): Promise<Tensor> {
  const sigma = sigmas[step]!;
  using denoised = await denoisedOnly(io.denoise(x, sigma, step), 'lms');
  history.derivatives.push(derivative(x, denoised, sigma));
  History.trim(history.derivatives, order);
  const current = Math.min(step + 1, order);
  const coefficients = lmsCoefficients(current, sigmas, step);
  let result = x.clone();
  // Newest derivative first: c_0 goes with d_i, c_1 with d_{i−1}, ...
  const ds = history.derivatives;
  coefficients.forEach((c, j) => {
    using term = ds[ds.length - 1 - j]!.mul(c);
    const next = result.add(term);
    result.dispose();
    result = next;
  });
  return result;
}

export async function dpmpp2mSdeStep(
  io: SamplerIO,
  x: Tensor,
  sigma: number,
  next: number,
  step: number,
  options: { eta: number; sNoise: number; solverType: 'midpoint' | 'heun' },
  history: History,
): Promise<Tensor> {
  const denoised = await denoisedOnly(io.denoise(x, sigma, step), 'dpmpp_2m_sde');
  try {
    if (next === 0) return denoised.clone();
    const h = Math.log(sigma) - Math.log(next);
    const etaH = options.eta * h;
    const blend = -Math.expm1(-h - etaH);
    let result = combine(x, (next / sigma) * Math.exp(-etaH), denoised, blend);
    const old = history.denoised.at(-1);
    if (old !== undefined) {
      const r = history.h.at(-1)! / h;
      const factor = options.solverType === 'heun' ? (blend / (-h - etaH) + 1) * (1 / r) : 0.5 * blend * (1 / r);
      using change = denoised.sub(old);
      using correction = change.mul(factor);
      const corrected = result.add(correction);
      result.dispose();
      result = corrected;
    }
    if (options.eta !== 0) {
      using z = io.noise(step);
      using scaled = z.mul(next * Math.sqrt(-Math.expm1(-2 * etaH)) * options.sNoise);
      const noisy = result.add(scaled);
      result.dispose();
      result = noisy;
    }
    history.h.push(h);
    return result;
  } finally {
    history.denoised.push(denoised);
    History.trim(history.denoised, 1);
  }
}

export async function dpmpp3mSdeStep(
  io: SamplerIO,
  x: Tensor,
  sigma: number,
  next: number,
  step: number,
  options: { eta: number; sNoise: number },
  history: History,
): Promise<Tensor> {
  const denoised = await denoisedOnly(io.denoise(x, sigma, step), 'dpmpp_3m_sde');
  try {
    if (next === 0) return denoised.clone();
    const h = Math.log(sigma) - Math.log(next);
    const hEta = h * (options.eta + 1);
    let result = combine(x, Math.exp(-hEta), denoised, -Math.expm1(-hEta));
    const add = (t: Tensor) => {
      const sum = result.add(t);
      result.dispose();
      result = sum;
    };
    const [d2, d1] = history.denoised.length >= 2 ? history.denoised.slice(-2) : [undefined, history.denoised.at(-1)];
    if (d1 !== undefined && d2 !== undefined) {
      const r0 = history.h.at(-1)! / h;
      const r1 = history.h.at(-2)! / h;
      // d1_0 = (D − D₁)/r0, d1_1 = (D₁ − D₂)/r1, d1 = d1_0 + (d1_0 − d1_1)·r0/(r0 + r1), d2 = (d1_0 − d1_1)/(r0 + r1).
      using diff0 = denoised.sub(d1);
      using d10 = diff0.div(r0);
      using diff1 = d1.sub(d2);
      using d11 = diff1.div(r1);
      using spread = d10.sub(d11);
      using firstOrder = combine(d10, 1, spread, r0 / (r0 + r1));
      using secondOrder = spread.div(r0 + r1);
      // x += φ₂·d1 − φ₃·d2, φ₂ = expm1(−hη')/hη' + 1, φ₃ = φ₂/hη' − 1/2 (hη' = h(η + 1)), as k-diffusion writes them.
      const p2 = Math.expm1(-hEta) / hEta + 1;
      const p3 = p2 / hEta - 0.5;
      using correction = combine(firstOrder, p2, secondOrder, -p3);
      add(correction);
    } else if (d1 !== undefined) {
      const r = history.h.at(-1)! / h;
      using diff = denoised.sub(d1);
      using d = diff.div(r);
      using correction = d.mul(Math.expm1(-hEta) / hEta + 1);
      add(correction);
    }
    if (options.eta !== 0) {
      using z = io.noise(step);
      using scaled = z.mul(next * Math.sqrt(-Math.expm1(-2 * h * options.eta)) * options.sNoise);
      add(scaled);
    }
    history.h.push(h);
    if (history.h.length > 2) history.h.shift();
    return result;
  } finally {
    history.denoised.push(denoised);
    History.trim(history.denoised, 2);
  }
}
