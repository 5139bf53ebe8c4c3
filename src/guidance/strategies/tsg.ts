/**
 * Time-step guidance (Sadat et al. 2024, "No Training, No Problem"): the
 * negative branch is the same model and condition with its time embedding
 * perturbed, emb + k·n with n ~ N(0, I) drawn fresh per model evaluation
 * (from each sample's seed, so batch-invariant):
 *
 *   D(t̃) + w·(D(t) − D(t̃)) = D(t) + (w − 1)·(D(t) − D(t̃)).
 *
 * It needs no condition, so it works for unconditional models. The perturbed
 * module is the card's `timeEmbedding` (or `module`); k is in the units of
 * that module's output, so tune it to the embedding's scale.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import { bounded, guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';

/** The zod schema of {@link TsgOptions}. */
export const tsgSchema = scheduledSchema({
  /** w, as in CFG: 1 is the model alone. The method table gives no default; 3 as for cfg and icg. */
  scale: guidanceScale.default(3),
  /** k: the standard deviation of the noise added to the embedding. */
  noiseScale: bounded(0, 1000, 'noise that large drowns the time embedding and overflows').refine((v) => v > 0, 'must be positive').default(1),
  /** The module whose output is perturbed; default the model card's timeEmbedding. */
  module: z.string().min(1).optional(),
});

/**
 * Options of {@link tsg}: `scale` (w, default 3), `noiseScale` (k, the noise
 * std in the embedding's units, default 1), `module` (default the card's
 * `timeEmbedding`), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type TsgOptions = z.input<typeof tsgSchema>;

/**
 * Time-step guidance (Sadat et al. 2024): (w − 1)·(D(t) − D(t̃)), where the
 * negative branch adds noise to the time embedding. Needs no condition.
 */
export function tsg(options: TsgOptions = {}): Strategy {
  return defineStrategy('tsg', tsgSchema, options, ({ scale, noiseScale, module }) => ({
    terms(context) {
      const path = module ?? context.timeEmbedding;
      if (path === undefined) {
        throw new TorchGuidanceError(
          ErrorCodes.MODEL_CARD,
          'tsg perturbs the time embedding, but the model card names none (timeEmbedding). Fix: add ' +
            '"timeEmbedding": "<module path>" to the card, or pass tsg({ module: "<module path>" }) ' +
            '(model.moduleSites lists the paths).',
        );
      }
      return [
        {
          label: `tsg(w=${scale}, k=${noiseScale})`,
          positive: { model: 'main', condition: 'given' },
          negative: { model: 'main', condition: 'given', modules: [{ modules: path, action: 'noise', scale: noiseScale }] },
          scale: () => scale - 1,
        },
      ];
    },
  }));
}
