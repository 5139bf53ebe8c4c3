/**
 * Which parts of the chosen blocks a layer-skip branch removes (diffusers'
 * LayerSkipConfig, used by skip-layer guidance and by autoguidance built from
 * the main model itself):
 *
 *   'block'             the whole block returns its input (diffusers' skip_attention + skip_ff)
 *   'attention'         each self-attention module inside the block returns its input
 *                       (cross-attention is kept, as diffusers keeps it)
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
 *
 * `dropout` below 1 keeps those modules but drops their outputs at random
 * instead, as diffusers does: each element is zeroed with that chance and
 * the rest scaled by 1 / (1 − dropout) (torch's dropout in training mode),
 * with a fresh mask per model evaluation, module and sample (seeded from the
 * sample's seed: a sample's result does not depend on its batch). 0 keeps
 * the outputs whole; 1 (the default) is the skip above. Not with
 * 'attention-scores', which has no output to drop (diffusers refuses it too).
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { AttentionSite, SiteSelector } from '../../hooks/attention.js';
import { enclosingModules } from '../../hooks/forward-plan.js';
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
  /** The chance each element of a skipped part's output is dropped: 1 (default) skips the part, below 1 is dropout. */
  dropout: z.number().min(0).max(1).default(1),
};

/** diffusers refuses skipping attention and its scores together: the second would have nothing to act on. */
export function skipPartsCompatible(options: { skip?: unknown }): boolean {
  return !(Array.isArray(options.skip) && options.skip.includes('attention') && options.skip.includes('attention-scores'));
}

export const skipPartsIssue = {
  message: "'attention' and 'attention-scores' cannot both be skipped (choose one, as diffusers requires)",
  path: ['skip'],
};

/** Attention scores have no output to drop: dropout below 1 needs the other parts (diffusers refuses it too). */
export function dropoutCompatible(options: { skip?: unknown; dropout?: unknown }): boolean {
  const parts = Array.isArray(options.skip) ? options.skip : [options.skip];
  return !(typeof options.dropout === 'number' && options.dropout < 1 && parts.includes('attention-scores'));
}

export const dropoutIssue = {
  message: "dropout below 1 cannot apply to 'attention-scores' (the identity map has no output to drop). Fix: skip 'attention' instead, or set dropout to 1",
  path: ['dropout'],
};

/** The zod schema of {@link LayerSkipOptions}. */
export const layerSkipSchema = z
  .object(layerSkipFields)
  .strict()
  .refine(skipPartsCompatible, skipPartsIssue)
  .refine(dropoutCompatible, dropoutIssue);

/**
 * Which layers a skip removes: `blocks` (module selector), `skip` (`'block'`, or a {@link SkipPart} or a
 * list of them), `feedForward` (the module paths that count as feed-forwards) and `dropout` (1, the
 * default, skips; below 1 drops that fraction of the parts' output elements at random instead).
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
  const drop = config.dropout < 1;
  // A whole-block skip keeps the selector: the forward plan resolves it (and names a miss).
  if (parts.includes('block') && !drop) return { modules: [{ modules: config.blocks as SiteSelector, action: 'skip' }] };
  const blocks = selectSites(config.blocks as SiteSelector, context.moduleSites).map((s) => s.path.replace(/#\d+$/, ''));
  requireBlocks(blocks, config, context, at);
  if (parts.includes('block')) return { modules: dropouts(unique(blocks), config.dropout) };
  const inBlocks = (path: string) => blocks.some((block) => within(path, block));
  const attention: BranchAttention[] = [];
  const modules: BranchModule[] = [];
  for (const part of parts) {
    if (part === 'attention' || part === 'attention-scores') {
      // Self-attention only, for both parts: diffusers keeps cross-attention.
      const sites = context.attentionSites.filter((s) => inBlocks(s.path) && s.selfAttention !== false);
      if (sites.length === 0) {
        throw new TorchGuidanceError(
          ErrorCodes.INVALID_OPTION,
          `${at('skip')}: '${part}', but the blocks ${blocks.join(', ')} hold no self-attention site ` +
            `(the model's: ${context.attentionSites.map((s) => s.path).join(', ') || 'none'}). Fix: choose blocks with self-attention, or skip 'block'.`,
        );
      }
      if (drop) {
        modules.push(...dropouts(unique(sites.map((s) => attentionModule(s, context, at))), config.dropout));
      } else {
        attention.push({ sites: unique(sites.map((s) => s.path)), action: part === 'attention' ? 'skip' : 'identity' });
      }
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
      const paths = unique(feedForwards.map((s) => s.path));
      modules.push(...(drop ? dropouts(paths, config.dropout) : [{ modules: paths, action: 'skip' as const }]));
    }
  }
  return { ...(attention.length ? { attention } : {}), ...(modules.length ? { modules } : {}) };
}

function requireBlocks(blocks: string[], config: LayerSkip, context: StrategyContext, at: (key: string) => string): void {
  if (blocks.length > 0) return;
  throw new TorchGuidanceError(
    ErrorCodes.NO_MATCHING_SITE,
    `${at('blocks')}: ${selectorText(config.blocks as SiteSelector)} matches no module of the model ` +
      `(its modules: ${context.moduleSites.map((s) => s.path).join(', ') || 'none'}).`,
  );
}

/** One dropout entry per module, so each draws its own mask (the engine seeds them by position). */
const dropouts = (paths: readonly string[], p: number): BranchModule[] => paths.map((path) => ({ modules: path, action: 'dropout', p }));

/**
 * The module whose output an attention site's dropout drops: the innermost
 * module site around it (the attention module itself where the graph pass
 * tagged it, as diffusers drops the attention processor's output).
 */
function attentionModule(site: AttentionSite, context: StrategyContext, at: (key: string) => string): string {
  const innermost = enclosingModules(site, context.moduleSites)[0];
  if (innermost) return innermost.path;
  throw new TorchGuidanceError(
    ErrorCodes.INVALID_OPTION,
    `${at('dropout')}: the attention ${site.path} has no module output to drop (the graph pass tags the model's own ` +
      "modules that take and return a tensor). Fix: drop whole blocks (skip: 'block'), or set dropout to 1.",
  );
}
