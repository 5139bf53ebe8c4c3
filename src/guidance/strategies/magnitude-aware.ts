/**
 * Magnitude-aware guidance (MAMBO-G; "Magnitude-Aware Mitigation for Boosted
 * Guidance", arXiv 2508.03442, diffusers' MagnitudeAwareGuidance): CFG whose
 * scale shrinks when the guidance update is large relative to the
 * unconditional prediction, per sample:
 *
 *   ρ = ‖c − u‖ / ‖u‖,   w' = 1 + (w − 1)·exp(−α·ρ),   D = u + w'·(c − u)
 *   ('original': w' = w·exp(−α·ρ), D = c + w'·(c − u))
 *
 * The norms make it space-dependent: `space` 'eps' (default; diffusers
 * applies it to the model's raw output, noise for eps models) measures
 * ρ = ‖D(c) − D(∅)‖ / ‖x − D(∅)‖, 'x0' measures it on the denoised
 * predictions. The combination itself is linear, so it is done on D.
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';
import { bounded, guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy, TermContext } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';
import { expOf } from './scalar-math.js';
import { spaceSchema, toSpace } from './space.js';

/** The zod schema of {@link MagnitudeAwareOptions}. */
export const magnitudeAwareSchema = scheduledSchema({
  /** w, as in cfg (diffusers' default 10 is for large text-to-image models). */
  scale: guidanceScale.default(3),
  /** α: how fast the scale falls with the relative update size (diffusers' 8). */
  alpha: bounded(0, 1000, 'beyond it the scale is 1 at any update size').default(8),
  formulation: z.enum(['standard', 'original']).default('standard'),
  space: spaceSchema.default('eps'),
});

/** Options of {@link magnitudeAware}: `scale` (w, default 3), `alpha` (α, default 8), `formulation`, `space`, and the scheduling options. */
export type MagnitudeAwareOptions = z.input<typeof magnitudeAwareSchema>;

/**
 * Magnitude-aware guidance (diffusers' guider): classifier-free guidance whose scale falls with the
 * relative size of the update, w' = 1 + (w − 1)·exp(−α‖c − u‖ / ‖u‖).
 */
export function magnitudeAware(options: MagnitudeAwareOptions = {}): Strategy {
  return defineStrategy('magnitude-aware', magnitudeAwareSchema, options, ({ scale, alpha, formulation, space }) => ({
    terms(context) {
      requireConditional('magnitude-aware', context);
      const identity = formulation === 'standard' ? 1 : 0;
      return [
        {
          label: `magnitude-aware(w=${scale}, α=${alpha})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => (scale === identity ? 0 : scale),
          delta: (pos: Tensor, neg: Tensor, w: number, ctx: TermContext) => {
            using c = toSpace(pos, space, ctx);
            using u = toSpace(neg, space, ctx);
            using shift = c.sub(u);
            using shiftNorm = shift.normPerSample(true);
            using baseNorm = u.normPerSample(true);
            using safe = baseNorm.clamp(1e-12, null);
            using ratio = shiftNorm.div(safe);
            using exponent = ratio.mul(-alpha);
            using damping = expOf(exponent);
            // D − c: standard u + w'(c − u) − c = (w' − 1)(c − u); original: w'(c − u).
            using weight = formulation === 'standard' ? damping.mul(w - 1) : damping.mul(w);
            using difference = pos.sub(neg);
            return difference.mul(weight);
          },
        },
      ];
    },
  }));
}
