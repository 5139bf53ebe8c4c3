/**
 * CFG-Zero* (Fan et al. 2025), in x0 space: an optimised per-sample scale on
 * the unconditional prediction, α = <D(c), D(∅)> / ‖D(∅)‖², then
 *   D = α·D(∅) + w·(D(c) − α·D(∅)) = D(c) + (w − 1)·(D(c) − α·D(∅)),
 * and "zero init": the first `zeroSteps` steps predict zero velocity, i.e.
 * D = x, so the sampler leaves x unchanged there.
 */
import { z } from 'zod';

import type { Tensor } from '../../tensor.js';
import { guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

export const cfgZeroStarSchema = z
  .object({
    scale: guidanceScale.default(3),
    zeroSteps: z.number().int().nonnegative().max(10_000).default(1),
    window: windowSchema.optional(),
  })
  .strict();

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

export function cfgZeroStar(options: CfgZeroStarOptions = {}): Strategy {
  return defineStrategy('cfg-zero-star', cfgZeroStarSchema, options, ({ scale, zeroSteps, window }) => ({
    terms(context) {
      requireConditional('cfg-zero-star', context);
      return [
        {
          label: `cfg-zero*(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: windowed(scale - 1, window),
          delta: (pos: Tensor, neg: Tensor, s: number) => cfgZeroStarDelta(pos, neg, s),
        },
      ];
    },
    finalize: (_guided, { step, x }) => (step < zeroSteps ? x.clone() : undefined),
  }));
}
