/**
 * Perturbed-attention guidance (Ahn et al. 2024): the negative branch is the
 * same model with the chosen self-attention maps replaced by the identity
 * (each query attends only to itself: output = V). Term s·(D(c) − D_pag).
 * Adaptive scale: s_t = max(0, s − a·(1000 − t)) on the discrete timestep t.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import { bounded, guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { resolveSites, sitesSchema } from './selectors.js';

/** The zod schema of {@link PagOptions}. */
export const pagSchema = scheduledSchema({
  /** 3 beside CFG, 5 alone in the paper. */
  scale: guidanceScale.default(3),
  sites: sitesSchema,
  adaptiveScale: bounded(0, 1000, 'per timestep; the paper uses small fractions').default(0),
});

/**
 * Options of {@link pag}: `scale` (s, default 3), `sites` (attention site
 * selector, default `'**.mid.*'`), `adaptiveScale` (a, default 0:
 * s_t = max(0, s − a·(1000 − t))), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type PagOptions = z.input<typeof pagSchema>;

/**
 * Perturbed-attention guidance (Ahn et al. 2024): s·(D(c) − D_pag(c)), where
 * the negative branch replaces the chosen self-attention maps by the identity.
 */
export function pag(options: PagOptions = {}): Strategy {
  return defineStrategy('pag', pagSchema, options, ({ scale, sites, adaptiveScale }) => ({
    terms: (context) => [
      {
        label: `pag(s=${scale})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'given', attention: [{ sites: resolveSites(sites, 'pag', context), action: 'identity' }] },
        scale(info) {
          if (adaptiveScale === 0) return scale;
          if (info.timestep === null) {
            throw new TorchGuidanceError(
              ErrorCodes.INVALID_OPTION,
              'pag adaptiveScale needs a discrete timestep, and this model is EDM. Fix: use a window instead.',
            );
          }
          return Math.max(0, scale - adaptiveScale * (1000 - info.timestep));
        },
      },
    ],
  }));
}
