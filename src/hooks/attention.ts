/**
 * Attention sites and hook plans.
 *
 * The addon finds every attention site of a model's forward at load (softmax
 * attention written out in any of the ways real code writes it, fused
 * scaled_dot_product_attention, fused nn.MultiheadAttention) and wraps it in
 * hook ops (native/src/jit/attention_pass.h); it reports every softmax and fused
 * attention op it saw, with the reason for those it left alone
 * (AttentionCandidate). A probe forward then
 * records each site's shape, from which the query grid and the self/cross
 * flag follow. A forward may carry hooks: per site and batch slice, replace
 * the probabilities by the identity (PAG), blur the queries over the grid
 * (SEG), capture the head-averaged probabilities (SAG, attention maps), or
 * skip the attention block (src/hooks.ts does that with a module hook).
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type SiteSelector, selectSites, selectorSchema, selectorText } from './site-selectors.js';
import { parseOptions } from '../core/options.js';

export { globToRegExp, type SiteSelector } from './site-selectors.js';

/** One attention site of a model's forward, as the addon found it and a probe measured it. */
export interface AttentionSite {
  /** The addon's index of the site. */
  id: number;
  /**
   * The path of the attention module, as PyTorch's named_modules() names it:
   * the innermost module whose code holds both the softmax and the product
   * with the values (`blocks.3.attn`, also when the softmax is an nn.Softmax
   * child), or that calls the fused op; `#1` for a second site in a module.
   */
  path: string;
  /**
   * softmax: attention written out (softmax, then a product with the values);
   * sdpa: a fused scaled_dot_product_attention; mha: a fused
   * nn.MultiheadAttention (when its explicit path may run instead, both are
   * this one site).
   */
  kind: 'softmax' | 'sdpa' | 'mha';
  /** Query and key counts equal; null when the model could not be probed. */
  selfAttention: boolean | null;
  /** Query and key token counts; null when not probed. */
  tokens: { queries: number; keys: number } | null;
  /** The query grid [height, width], from the model's sample shape; null when unknown. */
  grid: [number, number] | null;
}

/** A softmax or fused attention op the attention pass saw, hooked or not (Model.attentionReport). */
export interface AttentionCandidate {
  /** The site's path when hooked; else the path of the module whose code the op is. */
  path: string;
  /** The TorchScript op, e.g. `aten::softmax`, `aten::_native_multi_head_attention`. */
  op: string;
  /** The site it belongs to (AttentionSite.id) when hooked, else null. */
  site: number | null;
  /** Why it was left alone; null when hooked. */
  reason: string | null;
  /**
   * Attention that is not hooked (an op the pass does not follow between the
   * softmax and the product, or a fused kernel without a hook): a hook whose
   * selector reaches it fails with ERR_UNHOOKED_ATTENTION rather than perturb
   * part of the model's attention. False for softmaxes that are not attention.
   */
  attention: boolean;
}

export const hookSchema = z
  .object({
    /**
     * Path globs match whole dot-separated segments: `*` one segment, `**` any
     * number (`down.**.attn`); `blocks.1` never matches `blocks.10`. A module
     * path also matches its further sites (`mid.attn#1`).
     */
    sites: selectorSchema,
    /** skip: the attention block adds nothing (its module returns its input for the slice). */
    action: z.enum(['identity', 'blur', 'capture', 'skip']),
    /** blur only: the Gaussian's sigma in grid cells; Infinity makes every query the mean query. */
    sigma: z.union([z.number().positive(), z.custom<number>((v) => v === Infinity, 'Infinity')]).optional(),
    /** Only self-attention sites (default true for identity and blur, false for capture and skip). */
    self: z.boolean().optional(),
    /** The batch slice [start, start + length) in samples; default the whole batch. */
    start: z.number().int().nonnegative().default(0),
    length: z.number().int().positive().optional(),
  })
  .strict()
  .refine((hook) => hook.action !== 'blur' || hook.sigma !== undefined, {
    message: 'blur needs sigma (a positive number, or Infinity)',
    path: ['sigma'],
  });

/** A hook on attention sites (see Hook in src/hooks.ts for module hooks too). */
export type AttentionHook = z.input<typeof hookSchema>;

/**
 * What the addon takes: one entry per (site, slice, action). `skip` entries
 * never reach it: src/hooks.ts turns them into module skips.
 */
export interface NativePlanEntry {
  site: number;
  start: number;
  length: number;
  action: 'identity' | 'blur' | 'capture' | 'skip';
  sigma?: number;
  gridHeight?: number;
  gridWidth?: number;
}

function describeSites(sites: readonly AttentionSite[]): string {
  if (sites.length === 0) return 'this model has no attention sites';
  return `the sites are: ${sites
    .map((s) => `${s.id} ${s.path} (${s.selfAttention === null ? 'unprobed' : s.selfAttention ? 'self' : 'cross'})`)
    .join(', ')}`;
}

function isPathPrefix(prefix: string, path: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(`${prefix}.`);
}

/**
 * Refuses a selector that reaches attention the pass left alone: one the
 * selector matches itself, or one in the module of (or inside) a site it
 * selected. Without this, `'**'` on a model with one unhookable attention
 * would perturb the others and say nothing.
 */
function checkNoUnhookedAttention(
  index: number,
  selector: SiteSelector,
  selected: readonly AttentionSite[],
  candidates: readonly AttentionCandidate[],
): void {
  for (const candidate of candidates) {
    if (candidate.site !== null || !candidate.attention) continue;
    const owner = candidate.path;
    const reached =
      selectSites(selector, [{ id: -1, path: owner }]).length > 0 ||
      selected.some((site) => {
        const path = site.path.replace(/#\d+$/, '');
        return isPathPrefix(owner, path) || isPathPrefix(path, owner);
      });
    if (reached) {
      throw new TorchGuidanceError(
        ErrorCodes.UNHOOKED_ATTENTION,
        `hooks[${index}].sites ${selectorText(selector)} reaches attention the graph pass could not hook: ` +
          `${candidate.op} in ${owner || 'the top-level module'} (${candidate.reason}). The hook would perturb only part ` +
          "of the model's attention. Fix: select the hooked sites you mean explicitly (model.attentionSites lists " +
          'them; model.attentionReport lists what was left alone and why), or export that attention in a form the ' +
          'pass follows.',
      );
    }
  }
}

/**
 * Resolves hooks against a model's sites into the addon's plan entries.
 * `candidates` (the model's attention report) makes a selector that reaches
 * unhooked attention fail with ERR_UNHOOKED_ATTENTION.
 */
export function planHooks(
  hooks: readonly AttentionHook[],
  sites: readonly AttentionSite[],
  batch: number,
  first = 0,
  candidates: readonly AttentionCandidate[] = [],
): NativePlanEntry[] {
  const entries: NativePlanEntry[] = [];
  hooks.forEach((raw, offset) => {
    // `first`: the index of hooks[0] in the caller's list, for messages.
    const index = first + offset;
    const hook = parseOptions(hookSchema, raw, `hooks[${index}]`);
    // skip removes the attention block's contribution (module hooks do it,
    // see src/hooks.ts); it needs no grid and works on cross-attention too.
    const perturbs = hook.action === 'identity' || hook.action === 'blur';
    const onlySelf = hook.self ?? perturbs;
    const selected = selectSites(hook.sites as SiteSelector, sites);
    checkNoUnhookedAttention(index, hook.sites as SiteSelector, selected, candidates);
    if (selected.length === 0) {
      throw new TorchGuidanceError(
        ErrorCodes.NO_MATCHING_SITE,
        `hooks[${index}].sites ${String(hook.sites)} matches no attention site; ${describeSites(sites)}.`,
      );
    }
    const chosen = onlySelf ? selected.filter((site) => site.selfAttention !== false) : selected;
    if (chosen.length === 0) {
      throw new TorchGuidanceError(
        ErrorCodes.NO_MATCHING_SITE,
        `hooks[${index}].sites ${String(hook.sites)} matches only cross-attention sites, and self: true is in force; ` +
          `${describeSites(sites)}.`,
      );
    }
    const length = hook.length ?? batch - hook.start;
    if (hook.start + length > batch || length < 1) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `hooks[${index}]: the slice [${hook.start}, ${hook.start + length}) is outside the batch of ${batch}.`,
      );
    }
    for (const site of chosen) {
      if (perturbs && site.selfAttention === false) {
        throw new TorchGuidanceError(
          ErrorCodes.CROSS_ATTENTION,
          `hooks[${index}]: ${hook.action} needs self-attention, but ${site.path} is cross-attention. ` +
            'Fix: select self-attention sites only.',
        );
      }
      const entry: NativePlanEntry = { site: site.id, start: hook.start, length, action: hook.action };
      if (hook.action === 'blur') {
        if (!site.grid) {
          throw new TorchGuidanceError(
            ErrorCodes.NO_GRID,
            `hooks[${index}]: blur needs the query grid of ${site.path}, which is unknown: the model could not be ` +
              'probed (it needs a model card with sampleShape). Fix: add a card, or call model.probe().',
          );
        }
        entry.sigma = hook.sigma!;
        [entry.gridHeight, entry.gridWidth] = site.grid;
      }
      entries.push(entry);
    }
  });
  return entries;
}

/**
 * Site facts from a probe: the logits shape [.., Nq, Nk] and the sample's
 * spatial size give the grid. The grid keeps the sample's aspect ratio
 * (H = sqrt(Nq * H0 / W0)) and must hold exactly Nq queries; otherwise it is
 * left unknown rather than guessed.
 */
export function siteFromProbe(
  base: { id: number; path: string; kind: AttentionSite['kind'] },
  logitsShape: readonly number[] | undefined,
  spatial: readonly [number, number] | undefined,
): AttentionSite {
  if (!logitsShape || logitsShape.length < 3) return { ...base, selfAttention: null, tokens: null, grid: null };
  const queries = logitsShape.at(-2)!;
  const keys = logitsShape.at(-1)!;
  let grid: [number, number] | null = null;
  if (spatial) {
    const [h0, w0] = spatial;
    const height = Math.round(Math.sqrt((queries * h0) / w0));
    const width = Math.round(queries / height);
    if (height > 0 && height * width === queries) grid = [height, width];
  }
  return { ...base, selfAttention: queries === keys, tokens: { queries, keys }, grid };
}
