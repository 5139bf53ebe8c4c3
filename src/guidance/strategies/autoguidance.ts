/**
 * Autoguidance (Karras et al. 2024): guide the main model with a weaker
 * version of itself, same condition:
 * D_guide + w·(D_main − D_guide) = D_main + (w − 1)·(D_main − D_guide).
 *
 * The weaker model is either a second network (`guide`: fewer parameters
 * and/or less training; the two models run as concurrent forwards), or the
 * main model with layers skipped (`layers`, diffusers' AutoGuidance with a
 * LayerSkipConfig; layer-skip.ts), which costs no second model and batches
 * with the main forward. `guideCondition` 'null' gives the guide branch the
 * null condition, as diffusers' AutoGuidance does (its "unconditional"
 * branch is the layer-skipped one); the paper's definition, the default,
 * keeps the condition.
 */
import { z } from 'zod';

import { guidanceScale, scheduledSchema } from '../options.js';
import type { Branch, Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { layerSkipPerturbation, layerSkipSchema } from './layer-skip.js';
import { modelSchema } from './second-model.js';

/** The zod schema of {@link AutoguidanceOptions}. */
export const autoguidanceSchema = scheduledSchema({
  /** The weaker model: same card contract (sample shape, conditioning). */
  guide: modelSchema.optional(),
  /** Or: the main model with these layers skipped. */
  layers: layerSkipSchema.optional(),
  /** The guide branch's condition: 'given' (the paper) or 'null' (diffusers). */
  guideCondition: z.enum(['given', 'null']).default('given'),
  /** w: 1.7-2.9 in the EDM2 presets. */
  scale: guidanceScale.default(2),
}).refine((o) => (o.guide === undefined) !== (o.layers === undefined), {
  message: 'give either guide (a weaker model) or layers (skip layers of the main model), not both and not neither',
  path: ['guide'],
});

/**
 * Options of {@link autoguidance}: `guide` (the weaker model, required), `scale`
 * (w, default 2; 1.7-2.9 in the EDM2 presets), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type AutoguidanceOptions = z.input<typeof autoguidanceSchema>;

/**
 * Autoguidance (Karras et al. 2024): guide the model with a weaker version of
 * itself, D(c) + (w − 1)·(D(c) − D_guide(c)). The two models run concurrently.
 */
export function autoguidance(options: AutoguidanceOptions): Strategy {
  return defineStrategy('autoguidance', autoguidanceSchema, options, ({ guide, layers, guideCondition, scale }) => ({
    terms(context) {
      const negative: Branch = guide
        ? { model: guide, condition: guideCondition }
        : { model: 'main', condition: guideCondition, ...layerSkipPerturbation('autoguidance', 'layers', layers!, context) };
      return [
        {
          label: `autoguidance(w=${scale})`,
          positive: { model: 'main', condition: 'given' },
          negative,
          scale: () => scale - 1,
        },
      ];
    },
  }));
}
