/**
 * Guidance rescale (Lin et al. 2024, "Common diffusion noise schedules and
 * sample steps are flawed"): pull the guided prediction's per-sample std back
 * to the conditional prediction's,
 *   out = φ · out · std(pos) / std(out) + (1 − φ) · out,
 * std over all non-batch axes (unbiased, as torch.std). `space` picks where:
 * 'eps' (the paper's, noise estimates (x − D)/σ) or 'x0' (the denoised images).
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';
import type { Strategy } from '../types.js';
import { scheduledSchema } from '../options.js';
import { defineStrategy } from './define.js';

/** The zod schema of {@link RescaleOptions}. */
export const rescaleSchema = scheduledSchema({
  phi: z.number().min(0).max(1).default(0.7),
  space: z.enum(['eps', 'x0']).default('eps'),
});

/**
 * Options of {@link rescale}: `phi` (φ in [0, 1], default 0.7), `space`
 * (`'eps'`, the paper's, or `'x0'`).
 */
export type RescaleOptions = z.input<typeof rescaleSchema>;

/** φ·out·std(reference)/std(out) + (1 − φ)·out, per sample (std unbiased, over every non-batch axis). */
export function rescaled(out: Tensor, reference: Tensor, phi: number): Tensor {
  using stdRef = reference.stdPerSample(true);
  using stdOut = out.stdPerSample(true);
  using ratio = stdRef.div(stdOut);
  using matched = out.mul(ratio);
  return out.lerp(matched, phi);
}

/**
 * Guidance rescale (Lin et al. 2024): pulls the guided prediction's per-sample
 * std back towards the conditional prediction's. Adds no forward.
 */
export function rescale(options: RescaleOptions = {}): Strategy {
  return defineStrategy('rescale', rescaleSchema, options, ({ phi, space }) => ({
    terms: () => [],
    finalize(guided, { x, base, sigma }) {
      if (space === 'x0') return rescaled(guided, base, phi);
      // eps = (x − D)/σ; rescale eps, then D = x − σ·eps.
      using diffOut = x.sub(guided);
      using epsOut = diffOut.div(sigma);
      using diffRef = x.sub(base);
      using epsRef = diffRef.div(sigma);
      using epsNew = rescaled(epsOut, epsRef, phi);
      using step = epsNew.mul(sigma);
      return x.sub(step);
    },
  }));
}
