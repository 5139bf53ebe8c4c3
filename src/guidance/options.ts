/** zod pieces every strategy shares: scales and sigma windows. */
import { z } from 'zod';

import type { StepInfo } from './types.js';

/** A finite number; scales may be negative only where a strategy says so. */
export const finite = z.number().refine(Number.isFinite, 'must be a finite number');
export const nonNegativeScale = finite.refine((v) => v >= 0, 'must be at least 0');

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

/**
 * A term's σ window: `{ sigmaMin?, sigmaMax? }`; the term applies for
 * sigmaMin < σ ≤ sigmaMax (defaults 0 and Infinity).
 */
export type WindowOptions = z.input<typeof windowSchema>;
export type Window = z.output<typeof windowSchema>;

/** Whether `sigma` lies in the window (sigmaMin < σ ≤ sigmaMax); true without a window. */
export function inWindow(window: Window | undefined, sigma: number): boolean {
  return window === undefined || (sigma > window.sigmaMin && sigma <= window.sigmaMax);
}

/** A constant scale that is 0 outside the window. */
export function windowed(scale: number, window: Window | undefined): (info: StepInfo) => number {
  return (info) => (inWindow(window, info.sigma) ? scale : 0);
}
