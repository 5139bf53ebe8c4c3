/**
 * Skip-layer guidance (Stability AI, Stable Diffusion 3.5): the negative
 * branch is the same model and condition with the chosen blocks skipped
 * (each returns its input), or only parts of them (`skip`: their attention,
 * their attention scores, their feed-forward; layer-skip.ts),
 * D(c) + s·(D(c) − D_skip).
 *
 * The reference setting skips SD3.5-M's layers 7–9 with s 2.5–3, active for
 * 1 %–20 % of the steps: here `start` 0.01 and `stop` 0.2 by default (step
 * fractions with diffusers' rounding, as every strategy's). Blocks have no
 * portable default index; the default is the middle block's modules, as for
 * the attention methods. A selected block whose output does not have its
 * input's shape cannot be skipped and is refused (ERR_NOT_SKIPPABLE).
 */
import type { z } from 'zod';

import { guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { dropoutCompatible, dropoutIssue, layerSkipFields, layerSkipPerturbation, skipPartsCompatible, skipPartsIssue } from './layer-skip.js';

/** The zod schema of {@link SlgOptions}. */
export const slgSchema = scheduledSchema({ scale: guidanceScale.default(3), ...layerSkipFields }, { start: 0.01, stop: 0.2 })
  .refine(skipPartsCompatible, skipPartsIssue)
  .refine(dropoutCompatible, dropoutIssue);

/**
 * Options of {@link slg}: `scale` (s, default 3), `blocks` (module selector,
 * default `'**.mid.*'`), `skip` (what of each block is skipped: `'block'`,
 * `'attention'`, `'attention-scores'`, `'feed-forward'`, or a list),
 * `dropout` (1, the default, skips; below 1 drops that fraction of their
 * output elements at random instead, as diffusers' LayerSkipConfig), and the
 * scheduling options (`enabled`, `start` and `stop` default 0.01 and 0.2,
 * `window`).
 */
export type SlgOptions = z.input<typeof slgSchema>;

/**
 * Skip-layer guidance (Stable Diffusion 3.5): s·(D(c) − D_skip(c)), where the
 * negative branch skips the chosen blocks, for part of the run.
 */
export function slg(options: SlgOptions = {}): Strategy {
  return defineStrategy('slg', slgSchema, options, ({ scale, blocks, skip, feedForward, dropout }) => ({
    terms: (context) => [
      {
        label: `slg(s=${scale}${dropout < 1 ? `, dropout=${dropout}` : ''})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'given', ...layerSkipPerturbation('slg', '', { blocks, skip, feedForward, dropout }, context) },
        scale: () => scale,
      },
    ],
  }));
}
