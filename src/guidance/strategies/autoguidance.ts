/**
 * Autoguidance (Karras et al. 2024): guide the main model with a weaker
 * version of itself (fewer parameters and/or less training), same condition:
 * D_guide + w·(D_main − D_guide) = D_main + (w − 1)·(D_main − D_guide).
 * The two models run as concurrent forwards.
 */
import { z } from 'zod';

import { guidanceScale, windowSchema, windowed } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { modelSchema } from './second-model.js';

export const autoguidanceSchema = z
  .object({
    /** The weaker model: same card contract (sample shape, conditioning). */
    guide: modelSchema,
    /** w: 1.7-2.9 in the EDM2 presets. */
    scale: guidanceScale.default(2),
    window: windowSchema.optional(),
  })
  .strict();

export type AutoguidanceOptions = z.input<typeof autoguidanceSchema>;

export function autoguidance(options: AutoguidanceOptions): Strategy {
  return defineStrategy('autoguidance', autoguidanceSchema, options, ({ guide, scale, window }) => ({
    terms: () => [
      {
        label: `autoguidance(w=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: guide, condition: 'given' },
        scale: windowed(scale - 1, window),
      },
    ],
  }));
}
