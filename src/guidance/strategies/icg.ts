/**
 * Independent-condition guidance (Sadat et al. 2024): replace CFG's null
 * condition by an independent random one, drawn fresh per model evaluation
 * (a uniform class label, or for tensor conditions a Gaussian vector with the
 * condition's per-sample mean and std): D(ĉ) + w·(D(c) − D(ĉ)). Works on
 * models trained without condition dropout.
 */
import { z } from 'zod';

import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

/** The zod schema of {@link IcgOptions}. */
export const icgSchema = scheduledSchema({ scale: guidanceScale.default(3) });

/** Options of {@link icg}: `scale` (w, default 3), and the scheduling options (`enabled`, `start`, `stop`, `window`). */
export type IcgOptions = z.input<typeof icgSchema>;

/**
 * Independent-condition guidance (Sadat et al. 2024): CFG with a random
 * condition instead of the null one, D(c) + (w − 1)·(D(c) − D(ĉ)). Works on
 * models trained without condition dropout.
 */
export function icg(options: IcgOptions = {}): Strategy {
  return defineStrategy('icg', icgSchema, options, ({ scale }) => ({
    terms(context) {
      requireConditional('icg', context);
      return [
        {
          label: `icg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'random' },
          scale: () => scale - 1,
        },
      ];
    },
  }));
}
