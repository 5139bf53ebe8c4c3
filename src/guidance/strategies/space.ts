/**
 * Where a non-linear guider does its arithmetic. A linear combination of
 * predictions at the same x and sigma is the same in every space, but
 * projections, norms and std ratios are not: each non-linear strategy takes
 * `space` and defaults to the one its paper uses.
 *
 *   'x0'   the denoised predictions D themselves
 *   'eps'  the noise estimates (x − D)/σ (what an eps-prediction model outputs,
 *          and what diffusers' guiders see for such models)
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';

/** The zod schema of {@link Space}. */
export const spaceSchema = z.enum(['x0', 'eps']);
/** Where a non-linear guider works: on the clean-image predictions (`'x0'`) or on the noise predictions (`'eps'`). */
export type Space = z.output<typeof spaceSchema>;

/** D in `space` (a new tensor). */
export function toSpace(denoised: Tensor, space: Space, at: { x: Tensor; sigma: number }): Tensor {
  if (space === 'x0') return denoised.clone();
  using difference = at.x.sub(denoised);
  return difference.div(at.sigma);
}

/** Back from `space` to D (a new tensor): eps → x − σ·eps. */
export function fromSpace(value: Tensor, space: Space, at: { x: Tensor; sigma: number }): Tensor {
  if (space === 'x0') return value.clone();
  using scaled = value.mul(at.sigma);
  return at.x.sub(scaled);
}
