/**
 * Smoothed energy guidance (Hong 2024): the negative branch blurs the queries
 * of the chosen self-attention layers with a 2-D Gaussian over the token grid
 * (done on the attention logits along the query axis, which is the same).
 * sigma Infinity (the default) makes every query the mean query.
 * Term s·(D(c) − D_seg).
 */
import { z } from 'zod';

import { bounded, guidanceScale, scheduledSchema } from '../options.js';
import type { Strategy } from '../types.js';
import { defineStrategy } from './define.js';
import { resolveSites, sitesSchema } from './selectors.js';

/** The zod schema of {@link SegOptions}. */
export const segSchema = scheduledSchema({
  scale: guidanceScale.default(3),
  /** Blur sigma in grid cells; Infinity (default) = the mean query. */
  // Past a grid's size a finite sigma already blurs to the mean; Infinity says so exactly.
  sigma: z
    .union([bounded(0, 1e6, 'beyond any grid: use Infinity for the mean query').refine((v) => v > 0, 'must be positive'), z.literal(Infinity)])
    .default(Infinity),
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
    terms: (context) => [
      {
        label: `seg(s=${scale}, sigma=${sigma})`,
        positive: { model: 'main', condition: 'given' },
        negative: { model: 'main', condition: 'given', attention: [{ sites: resolveSites(sites, 'seg', context), action: 'blur', sigma }] },
        scale: () => scale,
      },
    ],
  }));
}
