/**
 * Classifier-free guidance (Ho & Salimans 2022): D(∅) + w·(D(c) − D(∅)),
 * written as D(c) + (w − 1)·(D(c) − D(∅)) on the conditional base. The
 * 'original' formulation takes w' directly: D(c) + w'·(D(c) − D(∅)), w' = w − 1.
 * With a window, outside it the prediction is D(c) (the guidance interval of
 * Kynkäänniemi et al. 2024).
 */
import { z } from 'zod';

import { guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

export const cfgSchema = z
  .object({
    /** w: 1 is the conditional model alone; small class models like 1.5-4. */
    scale: guidanceScale.default(3),
    formulation: z.enum(['standard', 'original']).default('standard'),
    window: windowSchema.optional(),
  })
  .strict();

export type CfgOptions = z.input<typeof cfgSchema>;

export function cfg(options: CfgOptions = {}): Strategy {
  return defineStrategy('cfg', cfgSchema, options, ({ scale, formulation, window }) => ({
    terms(context) {
      requireConditional('cfg', context);
      const s = formulation === 'standard' ? scale - 1 : scale;
      return [
        {
          label: `cfg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: windowed(s, window),
        },
      ];
    },
  }));
}

/** The guidance interval: CFG applied only for sigmaMin < sigma <= sigmaMax. */
export function guidanceInterval(options: CfgOptions & { window: NonNullable<CfgOptions['window']> }): Strategy {
  return cfg(options);
}
