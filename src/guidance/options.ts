/**
 * zod pieces every strategy shares: scales, and when a strategy is on.
 *
 * Every strategy takes the same four scheduling options, spelt the same way:
 *
 *   enabled   false switches the strategy off (no terms, no branches computed)
 *   start     step fraction where it starts:  floor(start · steps) <= step
 *   stop      step fraction where it stops:   step < floor(stop · steps)
 *   window    { sigmaMin, sigmaMax }: sigmaMin < sigma <= sigmaMax
 *
 * The step rule is diffusers' (BaseGuidance): fractions of the sampler's
 * steps, rounded down, so start 0.01 on a 20-step run still includes step 0.
 * Outside its schedule a strategy's terms are off (D = D(c) for them) and
 * their branches are not computed. defineStrategy() applies the schedule to
 * every term, finalize and re-noise hook, so factories need not.
 */
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

/**
 * A term's σ window: `{ sigmaMin?, sigmaMax? }`; the term applies for
 * sigmaMin < σ ≤ sigmaMax (defaults 0 and Infinity).
 */
export type WindowOptions = z.input<typeof windowSchema>;
export type Window = z.output<typeof windowSchema>;

/** A step fraction in [0, 1]. */
export const stepFraction = z.number().min(0).max(1);

/**
 * The scheduling options, to spread into a strategy's z.object({...}).
 * `start`/`stop` defaults can be overridden per strategy (SLG: 0.01–0.2).
 */
export function scheduleFields(defaults: { start?: number; stop?: number } = {}) {
  return {
    /** false: the strategy does nothing (handy to keep a stack and toggle one entry). */
    enabled: z.boolean().default(true),
    /** Step fraction the strategy starts at (diffusers' `start`). */
    start: stepFraction.default(defaults.start ?? 0),
    /** Step fraction the strategy stops at, exclusive (diffusers' `stop`). */
    stop: stepFraction.default(defaults.stop ?? 1),
    /** The sigma range it is on in: sigmaMin < sigma <= sigmaMax. */
    window: windowSchema.optional(),
  };
}

/** Numbers only: per-level arrays (FDG) check their own pairs. Equal start and stop would never run: refused. */
export function startBeforeStop(value: { start?: unknown; stop?: unknown }): boolean {
  return typeof value.start !== 'number' || typeof value.stop !== 'number' || value.start < value.stop;
}

export const startBeforeStopIssue = { message: 'start must be below stop', path: ['start'] };

/**
 * A strategy's options schema: its own fields plus the scheduling ones,
 * strict (a misspelt option is an error naming it), start below stop.
 */
export function scheduledSchema<T extends z.ZodRawShape>(shape: T, defaults: { start?: number; stop?: number } = {}) {
  return z
    .object({ ...shape, ...scheduleFields(defaults) })
    .strict()
    .refine(startBeforeStop, startBeforeStopIssue);
}

/** A strategy's schedule, as read from its settings (per-level arrays count by their widest range). */
export interface Schedule {
  enabled: boolean;
  start: number;
  stop: number;
  window?: Window;
}

export function scheduleOf(settings: Record<string, unknown>): Schedule {
  const pick = (value: unknown, fallback: number, reduce: (a: number, b: number) => number) =>
    typeof value === 'number' ? value : Array.isArray(value) && value.length > 0 ? (value as number[]).reduce((a, b) => reduce(a, b)) : fallback;
  return {
    enabled: settings.enabled !== false,
    start: pick(settings.start, 0, Math.min),
    stop: pick(settings.stop, 1, Math.max),
    ...(settings.window === undefined ? {} : { window: settings.window as Window }),
  };
}

/** Whether `sigma` lies in the window (sigmaMin < σ ≤ sigmaMax); true without a window. */
export function inWindow(window: Window | undefined, sigma: number): boolean {
  return window === undefined || (sigma > window.sigmaMin && sigma <= window.sigmaMax);
}

/** diffusers' step rule: floor(start · steps) <= step < floor(stop · steps). */
export function inSteps(start: number, stop: number, info: Pick<StepInfo, 'step' | 'steps'>): boolean {
  return Math.floor(start * info.steps) <= info.step && info.step < Math.floor(stop * info.steps);
}

/** Whether a schedule is on at this step. */
export function isActive(schedule: Schedule, info: StepInfo): boolean {
  return schedule.enabled && inSteps(schedule.start, schedule.stop, info) && inWindow(schedule.window, info.sigma);
}

/** A constant scale that is 0 outside the window. */
export function windowed(scale: number, window: Window | undefined): (info: StepInfo) => number {
  return (info) => (inWindow(window, info.sigma) ? scale : 0);
}
