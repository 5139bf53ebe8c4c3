/**
 * SIMS (Alemohammad et al. 2024, "Self-improving diffusion models with
 * synthetic data"): the negative is the base model fine-tuned on its own
 * samples; extrapolate away from it: D_base + w·(D_base − D_sims).
 * models/train/make_sims.py makes the negative for the shipped model.
 */
import type { z } from 'zod';

import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { modelSchema } from './second-model.js';

/** The zod schema of {@link SimsOptions}. */
export const simsSchema = scheduledSchema({
  /** The base model fine-tuned on its own samples. */
  negative: modelSchema,
  scale: guidanceScale.default(1),
});

/**
 * Options of {@link sims}: `negative` (the model fine-tuned on its own samples,
 * required), `scale` (w, default 1), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type SimsOptions = z.input<typeof simsSchema>;

/**
 * SIMS (Alemohammad et al. 2024): extrapolate away from a model fine-tuned on
 * its own samples, D + w·(D − D_sims). The two models run concurrently.
 */
export function sims(options: SimsOptions): Strategy {
  return defineStrategy('sims', simsSchema, options, ({ negative, scale }) => ({
    terms: () => [
      {
        label: `sims(w=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: negative, condition: 'given' },
        scale: () => scale,
      },
    ],
  }));
}
