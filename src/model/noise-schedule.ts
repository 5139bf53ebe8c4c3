/**
 * The model's noise schedule in sigma space (x = x0 + sigma * eps), from its
 * card: a discrete VP schedule (betas over T timesteps) or an EDM sigma range.
 * Samplers only see sigmas; the denoiser maps sigma back to the model's time
 * input. Computed in float64, like the reference implementations.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { DenoiserCard } from './model-card.js';

export interface DiscreteSchedule {
  kind: 'discrete';
  /** sigma_t = sqrt((1 - alphaBar_t) / alphaBar_t), t = 0 .. T-1, increasing. */
  sigmas: Float64Array;
  sigmaMin: number;
  sigmaMax: number;
}

export interface EdmSchedule {
  kind: 'edm';
  sigmaMin: number;
  sigmaMax: number;
  sigmaData: number;
}

/** A model's noise schedule in σ terms: discrete VP (its σ table) or EDM. */
export type NoiseSchedule = DiscreteSchedule | EdmSchedule;

/** The noise schedule a denoiser card describes. */
export function noiseScheduleFromCard(card: DenoiserCard): NoiseSchedule {
  const s = card.schedule;
  if (s.kind === 'edm') return { kind: 'edm', sigmaMin: s.sigmaMin, sigmaMax: s.sigmaMax, sigmaData: s.sigmaData };
  const sigmas = new Float64Array(s.timesteps);
  let alphaBar = 1;
  for (let t = 0; t < s.timesteps; t++) {
    const f = s.timesteps === 1 ? 0 : t / (s.timesteps - 1);
    const beta =
      s.betas === 'linear'
        ? s.betaStart + f * (s.betaEnd - s.betaStart)
        : (Math.sqrt(s.betaStart) + f * (Math.sqrt(s.betaEnd) - Math.sqrt(s.betaStart))) ** 2;
    alphaBar *= 1 - beta;
    sigmas[t] = Math.sqrt((1 - alphaBar) / alphaBar);
  }
  const sigmaMax = sigmas[s.timesteps - 1]!;
  if (!Number.isFinite(sigmaMax) || sigmaMax > 1e6) {
    // alphaBar underflows: so many timesteps of such betas leave no signal.
    throw new TorchGuidanceError(
      ErrorCodes.MODEL_CARD,
      `the model card's schedule (${s.betas} betas ${s.betaStart}..${s.betaEnd} over ${s.timesteps} timesteps) reaches sigma ${sigmaMax}, ` +
        'beyond 1e6, where sampling in float32 overflows. Fix: give the betas and timesteps the model was trained with.',
    );
  }
  return { kind: 'discrete', sigmas, sigmaMin: sigmas[0]!, sigmaMax };
}

/**
 * The (fractional) timestep whose sigma is `sigma`, by linear interpolation
 * of log-sigma between neighbouring timesteps (k-diffusion's sigma_to_t),
 * clamped to [0, T - 1].
 */
export function sigmaToTimestep(schedule: DiscreteSchedule, sigma: number): number {
  const { sigmas } = schedule;
  const logSigma = Math.log(sigma);
  if (logSigma <= Math.log(sigmas[0]!)) return 0;
  const last = sigmas.length - 1;
  if (logSigma >= Math.log(sigmas[last]!)) return last;
  let low = 0;
  let high = last;
  while (high - low > 1) {
    const mid = (low + high) >> 1;
    if (Math.log(sigmas[mid]!) <= logSigma) low = mid;
    else high = mid;
  }
  const lo = Math.log(sigmas[low]!);
  const hi = Math.log(sigmas[high]!);
  const w = (logSigma - lo) / (hi - lo);
  return low + w;
}

/** sigma at a (fractional) timestep: log-linear interpolation. */
export function timestepToSigma(schedule: DiscreteSchedule, t: number): number {
  const { sigmas } = schedule;
  const clamped = Math.min(Math.max(t, 0), sigmas.length - 1);
  const low = Math.floor(clamped);
  const high = Math.min(low + 1, sigmas.length - 1);
  const w = clamped - low;
  return Math.exp((1 - w) * Math.log(sigmas[low]!) + w * Math.log(sigmas[high]!));
}
