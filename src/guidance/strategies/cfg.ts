/**
 * Classifier-free guidance (Ho & Salimans 2022): D(∅) + w·(D(c) − D(∅)),
 * written as D(c) + (w − 1)·(D(c) − D(∅)) on the conditional base. The
 * 'original' formulation takes w' directly: D(c) + w'·(D(c) − D(∅)), w' = w − 1.
 * With a window, outside it the prediction is D(c) (the guidance interval of
 * Kynkäänniemi et al. 2024); start/stop do the same in step fractions.
 */
import { z } from 'zod';

import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy, requireConditional } from './define.js';

/** The zod schema of {@link CfgOptions}. */
export const cfgSchema = scheduledSchema({
  /** w: 1 is the conditional model alone; small class models like 1.5-4. */
  scale: guidanceScale.default(3),
  formulation: z.enum(['standard', 'original']).default('standard'),
});

/**
 * Options of {@link cfg}: `scale` (w, default 3; 1 is the conditional model
 * alone), `formulation` (`'standard'`: D(c) + (w − 1)·Δ; `'original'`:
 * D(c) + w·Δ), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type CfgOptions = z.input<typeof cfgSchema>;

/** Classifier-free guidance (Ho & Salimans 2022): D(c) + (w − 1)·(D(c) − D(∅)). */
export function cfg(options: CfgOptions = {}): Strategy {
  return defineStrategy('cfg', cfgSchema, options, ({ scale, formulation }) => ({
    terms(context) {
      requireConditional('cfg', context);
      const s = formulation === 'standard' ? scale - 1 : scale;
      return [
        {
          label: `cfg(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'null' },
          scale: () => s,
        },
      ];
    },
  }));
}

/** The guidance interval: CFG applied only for sigmaMin < sigma <= sigmaMax. */
export function guidanceInterval(options: CfgOptions & { window: NonNullable<CfgOptions['window']> }): Strategy {
  return cfg(options);
}
