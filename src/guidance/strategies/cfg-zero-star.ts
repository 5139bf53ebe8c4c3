/**
 * CFG-Zero* (Fan et al. 2025), in x0 space: an optimised per-sample scale on
 * the unconditional prediction, α = <D(c), D(∅)> / ‖D(∅)‖², then
 *   D = α·D(∅) + w·(D(c) − α·D(∅)) = D(c) + (w − 1)·(D(c) − α·D(∅)),
 * and "zero init": the first `zeroSteps` steps predict zero velocity, i.e.
 * D = x, so the sampler leaves x unchanged there.
 */
import { z } from 'zod';

import type { Tensor } from '../../core/tensor.js';
import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

/** The zod schema of {@link CfgZeroStarOptions}. */
export const cfgZeroStarSchema = scheduledSchema({
  scale: guidanceScale.default(3),
  /** Steps (a count, as diffusers' zero_init_steps) that predict D = x; not a window. */
  zeroSteps: z.number().int().nonnegative().max(10_000).default(1),
});

/**
 * Options of {@link cfgZeroStar}: `scale` (w, default 3), `zeroSteps` (steps
 * that predict zero velocity at the start, default 1), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type CfgZeroStarOptions = z.input<typeof cfgZeroStarSchema>;

export function cfgZeroStarDelta(positive: Tensor, negative: Tensor, scale: number): Tensor {
  using product = positive.mul(negative);
  using dot = product.sumPerSample(true);
  using squared = negative.mul(negative);
  using energy = squared.sumPerSample(true);
  using safe = energy.clamp(1e-12, null);
  using alpha = dot.div(safe);
  using scaledNegative = negative.mul(alpha);
  using difference = positive.sub(scaledNegative);
  return difference.mul(scale);
}

/**
 * CFG-Zero* (Fan et al. 2025): CFG with an optimised per-sample scale α on the
 * unconditional prediction, D(c) + (w − 1)·(D(c) − α·D(∅)), and the first
 * `zeroSteps` steps zeroed.
 */
export function cfgZeroStar(options: CfgZeroStarOptions = {}): Strategy {
  return defineStrategy('cfg-zero-star', cfgZeroStarSchema, options, ({ scale, zeroSteps }) => ({
    terms(context) {
      requireConditional('cfg-zero-star', context);
      return [
        {
          label: `cfg-zero*(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => scale - 1,
          delta: (pos: Tensor, neg: Tensor, s: number) => cfgZeroStarDelta(pos, neg, s),
        },
      ];
    },
    finalize: (_guided, { step, x }) => (step < zeroSteps ? x.clone() : undefined),
  }));
}
