/**
 * Sampling schedules: the decreasing sigmas a sampler visits, ending in 0.
 * karras, exponential and polyexponential (k-diffusion's get_sigmas_*) span
 * the model's sigma range unless given one; vp is k-diffusion's continuous
 * VP schedule (its own range, set by betaD, betaMin and epsS: the DDPM
 * linear betas 1e-4..0.02 over 1000 steps are betaMin 0.1, betaD 19.9);
 * discrete (the timesteps diffusers' DDIM/Euler pick, 'leading' or
 * 'trailing' spacing) needs a discrete VP schedule.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { NoiseSchedule } from '../../model/noise-schedule.js';

/** A noise level: positive, and small enough that sigma² stays finite in float32 (1e6² = 1e12). */
const sigma = z.number().positive().max(1e6, 'must be at most 1e6 (larger sigmas overflow float32)');

/** The zod schema of {@link SigmaScheduleOptions}. */
export const sigmaScheduleSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('karras'),
      rho: z.number().positive().max(1000).default(7),
      sigmaMin: sigma.optional(),
      sigmaMax: sigma.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('exponential'),
      sigmaMin: sigma.optional(),
      sigmaMax: sigma.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('polyexponential'),
      /** The ramp's power in log-sigma: 1 is the exponential schedule; above 1 spends more steps at low noise. */
      rho: z.number().positive().default(1),
      sigmaMin: z.number().positive().optional(),
      sigmaMax: z.number().positive().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('vp'),
      /** β(t) = betaMin + betaD·t over t from 1 down to epsS (k-diffusion's get_sigmas_vp defaults). */
      betaD: z.number().positive().default(19.9),
      betaMin: z.number().nonnegative().default(0.1),
      epsS: z.number().positive().lt(1).default(1e-3),
    })
    .strict(),
  z
    .object({
      kind: z.literal('discrete'),
      spacing: z.enum(['leading', 'trailing']).default('trailing'),
    })
    .strict(),
]);

/**
 * The σ schedule of a sampling run: `karras` (`rho`, default 7),
 * `exponential`, or `discrete` (`spacing`: `'trailing'` or `'leading'`);
 * sigmaMin/sigmaMax default to the model's range.
 */
export type SigmaScheduleOptions = z.input<typeof sigmaScheduleSchema>;
export type SigmaSchedule = z.output<typeof sigmaScheduleSchema>;

/** steps + 1 sigmas, decreasing, the last one 0. */
export function sigmasFor(schedule: SigmaSchedule, steps: number, noise: NoiseSchedule): number[] {
  const out: number[] = [];
  if (schedule.kind === 'discrete') {
    if (noise.kind !== 'discrete') {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_ARGUMENT,
        "schedule 'discrete' needs a model with a discrete VP schedule; this one is EDM. Fix: use schedule { kind: 'karras' }.",
      );
    }
    const T = noise.sigmas.length;
    if (steps > T) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `steps (${steps}) exceeds the model's ${T} timesteps.`);
    }
    const timesteps: number[] = [];
    if (schedule.spacing === 'leading') {
      const ratio = Math.floor(T / steps);
      for (let i = steps - 1; i >= 0; i--) timesteps.push(i * ratio);
    } else {
      const ratio = T / steps;
      for (let i = 0; i < steps; i++) timesteps.push(Math.round(T - i * ratio) - 1);
    }
    for (const t of timesteps) out.push(noise.sigmas[t]!);
  } else if (schedule.kind === 'vp') {
    // sigma(t) = sqrt(exp(βd·t²/2 + βmin·t) − 1), t = linspace(1, epsS, steps).
    for (let i = 0; i < steps; i++) {
      const t = steps === 1 ? 1 : 1 + (i / (steps - 1)) * (schedule.epsS - 1);
      out.push(Math.sqrt(Math.expm1((schedule.betaD * t * t) / 2 + schedule.betaMin * t)));
    }
  } else {
    const sigmaMin = schedule.sigmaMin ?? noise.sigmaMin;
    const sigmaMax = schedule.sigmaMax ?? noise.sigmaMax;
    if (!(sigmaMin < sigmaMax)) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `schedule sigmaMin (${sigmaMin}) must be below sigmaMax (${sigmaMax}).`);
    }
    for (let i = 0; i < steps; i++) {
      const ramp = steps === 1 ? 0 : i / (steps - 1);
      if (schedule.kind === 'karras') {
        const invRho = 1 / schedule.rho;
        out.push((sigmaMax ** invRho + ramp * (sigmaMin ** invRho - sigmaMax ** invRho)) ** schedule.rho);
      } else if (schedule.kind === 'polyexponential') {
        // exp(r^ρ·(log σmax − log σmin) + log σmin), r = linspace(1, 0, steps).
        const r = (1 - ramp) ** schedule.rho;
        out.push(Math.exp(r * (Math.log(sigmaMax) - Math.log(sigmaMin)) + Math.log(sigmaMin)));
      } else {
        out.push(Math.exp(Math.log(sigmaMax) + ramp * (Math.log(sigmaMin) - Math.log(sigmaMax))));
      }
    }
  }
  out.push(0);
  return out;
}
