/**
 * Smoothed energy guidance (Hong 2024): the negative branch blurs the queries
 * of the chosen self-attention layers with a 2-D Gaussian over the token grid
 * (done on the attention logits along the query axis, which is the same).
 * sigma Infinity (the default) makes every query the mean query.
 * Term s·(D(c) − D_seg).
 */
import { z } from 'zod';

import { finite, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { sitesSchema } from './selectors.js';

/** The zod schema of {@link SegOptions}. */
export const segSchema = scheduledSchema({
  scale: finite.default(3),
  /** Blur sigma in grid cells; Infinity (default) = the mean query. */
  sigma: z.union([z.number().positive(), z.literal(Infinity)]).default(Infinity),
  sites: sitesSchema,
});

/**
 * Options of {@link seg}: `scale` (s, default 3), `sigma` (the query blur in
 * grid cells, default Infinity: every query the mean query), `sites` (default
 * `'**.mid.*'`), and the scheduling options (`enabled`, `start`, `stop`, `window`).
 */
export type SegOptions = z.input<typeof segSchema>;

/**
 * Smoothed energy guidance (Hong 2024): s·(D(c) − D_seg(c)), where the negative
 * branch blurs the queries of the chosen self-attention over the token grid.
 */
export function seg(options: SegOptions = {}): Strategy {
  return defineStrategy('seg', segSchema, options, ({ scale, sigma, sites }) => ({
    terms: () => [
      {
        label: `seg(s=${scale}, sigma=${sigma})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'given', attention: [{ sites, action: 'blur', sigma }] },
        scale: () => scale,
      },
    ],
  }));
}
