/** The site selector option shared by attention strategies (see SiteSelector in src/attention.ts). */
import { z } from 'zod';

import type { SiteSelector } from '../../hooks/attention.js';

const one = z.union([z.string().min(1), z.instanceof(RegExp), z.number().int().nonnegative()]);

/**
 * What a strategy given no sites uses: the model card's default sites for
 * the strategy (a version 2 card's `guidanceSites`, chosen for its
 * architecture), else the middle block's self-attention, where PAG, SEG and
 * SAG perturb or read, at any depth: `**.mid.*` matches `mid.attn` and also a
 * UNet wrapped in a module (`unet.mid.attn`), which `mid.*` would miss.
 * Compared by identity (resolveSites): a selector a user writes out is theirs.
 */
export const DEFAULT_SITES: readonly string[] = Object.freeze(['**.mid.*']);

export const sitesSchema = z.union([one, z.array(one).min(1).readonly()]).default(() => DEFAULT_SITES as string[]);

/** The sites a strategy uses: its own, or for the default the card's sites for `strategy` when it names some. */
export function resolveSites(sites: SiteSelector, strategy: string, context: { guidanceSites?: Readonly<Record<string, string | readonly string[]>> }): SiteSelector {
  if (sites !== DEFAULT_SITES) return sites;
  return context.guidanceSites?.[strategy] ?? sites;
}

/** The schema's output is a SiteSelector. */
export type Sites = z.output<typeof sitesSchema> & SiteSelector;
