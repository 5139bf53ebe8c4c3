/**
 * Independent-condition guidance (Sadat et al. 2024): replace CFG's null
 * condition by an independent random one, drawn fresh per model evaluation
 * (a uniform class label, or for tensor conditions a Gaussian vector with the
 * condition's per-sample mean and std): D(ĉ) + w·(D(c) − D(ĉ)). Works on
 * models trained without condition dropout.
 */
import { z } from 'zod';

import { guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

export const icgSchema = z.object({ scale: guidanceScale.default(3), window: windowSchema.optional() }).strict();

export type IcgOptions = z.input<typeof icgSchema>;

export function icg(options: IcgOptions = {}): Strategy {
  return defineStrategy('icg', icgSchema, options, ({ scale, window }) => ({
    terms(context) {
      requireConditional('icg', context);
      return [
        {
          label: `icg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'random' },
          scale: windowed(scale - 1, window),
        },
      ];
    },
  }));
}
