/**
 * Skip-layer guidance (Stability AI, Stable Diffusion 3.5): the negative
 * branch is the same model and condition with the chosen blocks skipped
 * (each returns its input), D(c) + s·(D(c) − D_skip).
 *
 * The reference setting skips SD3.5-M's layers 7–9 with s 2.5–3, active for
 * 1 %–20 % of the steps: here `steps` (default 0.01–0.2 of the run) and an
 * optional sigma window like every term. Blocks have no portable default
 * index; the default is the middle block's modules, as for the attention
 * methods. A selected block whose output does not have its input's shape
 * cannot be skipped and is refused (ERR_NOT_SKIPPABLE).
 */
import { z } from 'zod';

import { guidanceScale, inWindow, windowSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { sitesSchema } from './selectors.js';

export const slgSchema = z
  .object({
    scale: guidanceScale.default(3),
    /** Module paths to skip (globs over whole segments, RegExps, module site indices); see model.moduleSites. */
    blocks: sitesSchema,
    /**
     * The part of the run the term is active in: step / steps in [start, end).
     * SD3.5's reference: 0.01 to 0.2. { start: 0, end: 1 } keeps it on.
     */
    steps: z
      .object({ start: z.number().min(0).max(1).default(0.01), end: z.number().min(0).max(1).default(0.2) })
      .strict()
      .refine((r) => r.start < r.end, { message: 'start must be below end', path: ['start'] })
      .default({ start: 0.01, end: 0.2 }),
    window: windowSchema.optional(),
  })
  .strict();

export type SlgOptions = z.input<typeof slgSchema>;

export function slg(options: SlgOptions = {}): Strategy {
  return defineStrategy('slg', slgSchema, options, ({ scale, blocks, steps, window }) => ({
    terms: () => [
      {
        label: `slg(s=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'given', modules: [{ modules: blocks, action: 'skip' }] },
        scale(info) {
          const progress = info.step / info.steps;
          const active = progress >= steps.start && progress < steps.end && inWindow(window, info.sigma);
          return active ? scale : 0;
        },
      },
    ],
  }));
}
