/**
 * Sampling schedules: the decreasing sigmas a sampler visits, ending in 0.
 * karras and exponential work for every model; discrete (the timesteps
 * diffusers' DDIM/Euler pick, 'leading' or 'trailing' spacing) needs a
 * discrete VP schedule.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import type { NoiseSchedule } from './noise-schedule.js';

/** A noise level: positive, and small enough that sigma² stays finite in float32 (1e6² = 1e12). */
const sigma = z.number().positive().max(1e6, 'must be at most 1e6 (larger sigmas overflow float32)');

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
      kind: z.literal('discrete'),
      spacing: z.enum(['leading', 'trailing']).default('trailing'),
    })
    .strict(),
]);

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
      } else {
        out.push(Math.exp(Math.log(sigmaMax) + ramp * (Math.log(sigmaMin) - Math.log(sigmaMax))));
      }
    }
  }
  out.push(0);
  return out;
}
