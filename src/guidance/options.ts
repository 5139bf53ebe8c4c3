/** zod pieces every strategy shares: scales and sigma windows. */
import { z } from 'zod';

import type { StepInfo } from './types.js';

/** A finite number; scales may be negative only where a strategy says so. */
export const finite = z.number().refine(Number.isFinite, 'must be a finite number');
export const nonNegativeScale = finite.refine((v) => v >= 0, 'must be at least 0');

/**
 * Guidance scales past this are meaningless (published methods use 1-30;
 * the sweeps here reach 20), and large enough ones overflow float32 into NaN
 * images: 1e308 · (D(c) − D(∅)) is infinite.
 */
export const MAX_SCALE = 1000;
export const guidanceScale = finite.refine((v) => Math.abs(v) <= MAX_SCALE, `must be within ±${MAX_SCALE} (larger scales only overflow)`);

/** A finite number in [min, max], with the reason for the bound in the message. */
export function bounded(min: number, max: number, why: string): z.ZodNumber {
  return z.number().min(min, `must be at least ${min} (${why})`).max(max, `must be at most ${max} (${why})`);
}

/**
 * Apply the term only for sigmaMin < sigma <= sigmaMax (the guidance
 * interval of Kynkäänniemi et al. is this window on CFG).
 */
export const windowSchema = z
  .object({
    sigmaMin: z.number().nonnegative().default(0),
    // zod 4's number() refuses ±Infinity, and an open upper end is the natural way to write it.
    sigmaMax: z.union([z.number().positive(), z.literal(Infinity)]).default(Infinity),
  })
  .strict()
  .refine((w) => w.sigmaMin < w.sigmaMax, { message: 'sigmaMin must be below sigmaMax', path: ['sigmaMin'] });

export type WindowOptions = z.input<typeof windowSchema>;
export type Window = z.output<typeof windowSchema>;

export function inWindow(window: Window | undefined, sigma: number): boolean {
  return window === undefined || (sigma > window.sigmaMin && sigma <= window.sigmaMax);
}

/** A constant scale that is 0 outside the window. */
export function windowed(scale: number, window: Window | undefined): (info: StepInfo) => number {
  return (info) => (inWindow(window, info.sigma) ? scale : 0);
}
