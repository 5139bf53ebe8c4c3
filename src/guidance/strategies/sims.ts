/**
 * SIMS (Alemohammad et al. 2024, "Self-improving diffusion models with
 * synthetic data"): the negative is the base model fine-tuned on its own
 * samples; extrapolate away from it: D_base + w·(D_base − D_sims).
 * models/train/make_sims.py makes the negative for the shipped model.
 */
import { z } from 'zod';

import { guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { modelSchema } from './second-model.js';

export const simsSchema = z
  .object({
    /** The base model fine-tuned on its own samples. */
    negative: modelSchema,
    scale: guidanceScale.default(1),
    window: windowSchema.optional(),
  })
  .strict();

export type SimsOptions = z.input<typeof simsSchema>;

export function sims(options: SimsOptions): Strategy {
  return defineStrategy('sims', simsSchema, options, ({ negative, scale, window }) => ({
    terms: () => [
      {
        label: `sims(w=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: negative, condition: 'given' },
        scale: windowed(scale, window),
      },
    ],
  }));
}
