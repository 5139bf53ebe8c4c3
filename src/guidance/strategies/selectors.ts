/** The site selector option shared by attention strategies (see SiteSelector in src/attention.ts). */
import { z } from 'zod';

import type { SiteSelector } from '../../hooks/attention.js';

const one = z.union([z.string().min(1), z.instanceof(RegExp), z.number().int().nonnegative()]);

/**
 * Default: the middle block's self-attention, where PAG, SEG and SAG perturb
 * or read, at any depth: `**.mid.*` matches `mid.attn` and also a UNet
 * wrapped in a module (`unet.mid.attn`), which `mid.*` would miss.
 */
export const sitesSchema = z.union([one, z.array(one).min(1).readonly()]).default('**.mid.*');

/** The schema's output is a SiteSelector. */
export type Sites = z.output<typeof sitesSchema> & SiteSelector;
