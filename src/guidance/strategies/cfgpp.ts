/**
 * CFG++ (Chung et al. 2024): a sampler-level change. The denoised estimate is
 * D(∅) + λ·(D(c) − D(∅)) with λ in [0, 1], and the sampler re-noises with the
 * unconditional noise estimate (x − D(∅))/σ instead of the guided one. Needs a
 * first-order sampler (euler, euler_ancestral, ddim).
 */
import { z } from 'zod';

import { inWindow, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

/** The zod schema of {@link CfgppOptions}. */
export const cfgppSchema = z
  .object({ scale: z.number().min(0).max(2).default(0.6), window: windowSchema.optional() })
  .strict();

/** Options of {@link cfgpp}: `scale` (λ in [0, 2], default 0.6), `window`. */
export type CfgppOptions = z.input<typeof cfgppSchema>;

/**
 * CFG++ (Chung et al. 2024): D(∅) + λ·(D(c) − D(∅)), re-noised with D(∅)'s
 * noise estimate. Needs a first-order sampler (euler, euler_ancestral, ddim).
 */
export function cfgpp(options: CfgppOptions = {}): Strategy {
  return defineStrategy('cfgpp', cfgppSchema, options, ({ scale, window }) => ({
    terms(context) {
      requireConditional('cfgpp', context);
      return [
        {
          label: `cfg++(λ=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: windowed(scale - 1, window),
        },
      ];
    },
    // Outside the window the step is plain sampling: guided estimate D(c), and
    // re-noising with it too (not with D(∅)).
    renoiseBranch: (_context, info) =>
      info === undefined || inWindow(window, info.sigma) ? { model: 'main', condition: 'null' } : undefined,
  }));
}
