/**
 * Which parts of the chosen blocks a layer-skip branch removes (diffusers'
 * LayerSkipConfig, used by skip-layer guidance and by autoguidance built from
 * the main model itself):
 *
 *   'block'             the whole block returns its input (diffusers' skip_attention + skip_ff)
 *   'attention'         each attention module inside the block returns its input
 *   'attention-scores'  each self-attention inside uses the identity map: output = V
 *                       (diffusers' skip_attention_scores; PAG's perturbation)
 *   'feed-forward'      each feed-forward module inside returns its input
 *
 * 'attention' and 'feed-forward' may be combined, as may 'attention-scores'
 * and 'feed-forward'. TorchScript keeps module paths but not classes, so a
 * feed-forward module is found by its path (`feedForward`, default the usual
 * names ff, mlp, feed_forward, ffn); attention modules are the ones that
 * hold an attention site. Skipping a module needs its output to have its
 * input's shape (model.moduleSites says which do).
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { SiteSelector } from '../../hooks/attention.js';
import { selectSites, selectorSchema, selectorText } from '../../hooks/site-selectors.js';
import type { Branch, BranchAttention, BranchModule, StrategyContext } from '../types.js';
import { resolveSites, sitesSchema } from './selectors.js';

/** The zod schema of {@link SkipPart}. */
export const skipPartSchema = z.enum(['attention', 'attention-scores', 'feed-forward']);
/** A part of a block to skip: its attention, its attention scores (the identity, as PAG), or its feed-forward. */
export type SkipPart = z.output<typeof skipPartSchema>;

/** The usual module names of a transformer block's feed-forward (diffusers' FeedForward lives under `ff`). */
export const FEED_FORWARD_NAMES = ['**.ff', '**.mlp', '**.feed_forward', '**.ffn'] as const;

/** The layer-skip fields, to spread into a strategy's schema. */
export const layerSkipFields = {
  /** The blocks (module paths: globs over whole segments, RegExps, module site indices); see model.moduleSites. */
  blocks: sitesSchema,
  /** What to remove from each block: 'block' (default), or parts of it. */
  skip: z.union([z.literal('block'), skipPartSchema, z.array(skipPartSchema).min(1).readonly()]).default('block'),
  /** 'feed-forward': the module paths that are feed-forwards (matched inside the blocks). */
  feedForward: selectorSchema.default([...FEED_FORWARD_NAMES]),
};

/** diffusers refuses skipping attention and its scores together: the second would have nothing to act on. */
export function skipPartsCompatible(options: { skip?: unknown }): boolean {
  return !(Array.isArray(options.skip) && options.skip.includes('attention') && options.skip.includes('attention-scores'));
}

export const skipPartsIssue = {
  message: "'attention' and 'attention-scores' cannot both be skipped (choose one, as diffusers requires)",
  path: ['skip'],
};

/** The zod schema of {@link LayerSkipOptions}. */
export const layerSkipSchema = z.object(layerSkipFields).strict().refine(skipPartsCompatible, skipPartsIssue);

/**
 * Which layers a skip removes: `blocks` (module selector), `skip` (`'block'`, or a {@link SkipPart} or a
 * list of them) and `feedForward` (the module paths that count as feed-forwards).
 */
export type LayerSkipOptions = z.input<typeof layerSkipSchema>;
export type LayerSkip = z.output<typeof layerSkipSchema>;

/** Exact paths as selectors (a path is a glob of itself): readable in explain()'s branch labels. */
const unique = (paths: string[]) => [...new Set(paths)];

const within = (path: string, block: string) => {
  const bare = path.replace(/#\d+$/, '');
  return bare === block || bare.startsWith(`${block}.`);
};

/**
 * The perturbations of a branch that skips `config` in the main model,
 * resolved against its sites; errors name `${field}.blocks`, `.skip` or `.feedForward`.
 */
export function layerSkipPerturbation(
  name: string,
  field: string,
  config: LayerSkip,
  context: StrategyContext,
): Pick<Branch, 'attention' | 'modules'> {
  const at = (key: string) => `invalid ${name} options: ${field ? `${field}.` : ''}${key}`;
  config = { ...config, blocks: resolveSites(config.blocks as SiteSelector, name, context) as LayerSkip['blocks'] };
  const parts: readonly ('block' | SkipPart)[] = typeof config.skip === 'string' ? [config.skip] : config.skip;
  if (parts.includes('block')) return { modules: [{ modules: config.blocks as SiteSelector, action: 'skip' }] };
  const blocks = selectSites(config.blocks as SiteSelector, context.moduleSites).map((s) => s.path.replace(/#\d+$/, ''));
  if (blocks.length === 0) {
    throw new TorchGuidanceError(
      ErrorCodes.NO_MATCHING_SITE,
      `${at('blocks')}: ${selectorText(config.blocks as SiteSelector)} matches no module of the model ` +
        `(its modules: ${context.moduleSites.map((s) => s.path).join(', ') || 'none'}).`,
    );
  }
  const inBlocks = (path: string) => blocks.some((block) => within(path, block));
  const attention: BranchAttention[] = [];
  const modules: BranchModule[] = [];
  for (const part of parts) {
    if (part === 'attention' || part === 'attention-scores') {
      const sites = context.attentionSites.filter((s) => inBlocks(s.path) && (part === 'attention' || s.selfAttention !== false));
      if (sites.length === 0) {
        throw new TorchGuidanceError(
          ErrorCodes.INVALID_OPTION,
          `${at('skip')}: '${part}', but the blocks ${blocks.join(', ')} hold no ${part === 'attention' ? '' : 'self-'}attention site ` +
            `(the model's: ${context.attentionSites.map((s) => s.path).join(', ') || 'none'}). Fix: choose blocks with attention, or skip 'block'.`,
        );
      }
      attention.push({ sites: unique(sites.map((s) => s.path)), action: part === 'attention' ? 'skip' : 'identity' });
    } else {
      const candidates = selectSites(config.feedForward as SiteSelector, context.moduleSites);
      const feedForwards = candidates.filter((s) => inBlocks(s.path) && !blocks.includes(s.path.replace(/#\d+$/, '')));
      if (feedForwards.length === 0) {
        throw new TorchGuidanceError(
          ErrorCodes.INVALID_OPTION,
          `${at('feedForward')}: no module matching ${selectorText(config.feedForward as SiteSelector)} inside the blocks ` +
            `${blocks.join(', ')}. Fix: name the feed-forward modules (model.moduleSites lists the paths).`,
        );
      }
      modules.push({ modules: unique(feedForwards.map((s) => s.path)), action: 'skip' });
    }
  }
  return { ...(attention.length ? { attention } : {}), ...(modules.length ? { modules } : {}) };
}
