/**
 * CFG++ (Chung et al. 2024): a sampler-level change. The denoised estimate is
 * D(∅) + λ·(D(c) − D(∅)) with λ in [0, 1], and the sampler re-noises with the
 * unconditional noise estimate (x − D(∅))/σ instead of the guided one. Needs a
 * first-order sampler (euler, euler_ancestral, ddim).
 */
import { z } from 'zod';

import { scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

/** The zod schema of {@link CfgppOptions}. */
export const cfgppSchema = scheduledSchema({ scale: z.number().min(0).max(2).default(0.6) });

/** Options of {@link cfgpp}: `scale` (λ in [0, 2], default 0.6), and the scheduling options (`enabled`, `start`, `stop`, `window`). */
export type CfgppOptions = z.input<typeof cfgppSchema>;

/**
 * CFG++ (Chung et al. 2024): D(∅) + λ·(D(c) − D(∅)), re-noised with D(∅)'s
 * noise estimate. Needs a first-order sampler (euler, euler_ancestral, ddim).
 */
export function cfgpp(options: CfgppOptions = {}): Strategy {
  return defineStrategy('cfgpp', cfgppSchema, options, ({ scale }) => ({
    terms(context) {
      requireConditional('cfgpp', context);
      return [
        {
          label: `cfg++(λ=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => scale - 1,
        },
      ];
    },
    // Outside the schedule (defineStrategy drops this there) the step is plain
    // sampling: guided estimate D(c), and re-noising with it too (not with D(∅)).
    renoiseBranch: () => ({ model: 'main', condition: 'null' }),
  }));
}
