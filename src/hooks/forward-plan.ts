/**
 * A forward's hooks, attention and module ones together, resolved against a
 * model's sites into the addon's plan. Attention `skip` is a module skip of
 * the innermost module that holds the attention and can be skipped (its
 * output has its input's shape): the site's own module (timm's `attn`,
 * nn.MultiheadAttention), or an enclosing block when the attention module
 * changes the shape (ADM's QKVAttentionLegacy takes qkv: its AttentionBlock
 * is skipped). The skipped module returns its input, which is "the
 * attention adds nothing" for blocks that add their own residual, and
 * diffusers' skip_attention (the attention returns its input) where the
 * caller adds it (`x = x + attn(norm(x))`).
 */
import { type AttentionCandidate, type AttentionHook, type AttentionSite, type NativePlanEntry, planHooks } from './attention.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type ModuleHook, type ModuleSite, type NativeModuleEntry, checkSkippable, planModuleHooks } from './module-hooks.js';

/** A hook of one forward: on attention sites (`sites`) or on module outputs (`modules`). */
export type Hook = AttentionHook | ModuleHook;

export function isModuleHook(hook: Hook): hook is ModuleHook {
  return typeof hook === 'object' && hook !== null && 'modules' in hook;
}

/** The module path an attention site belongs to (`mid.attn#1` -> `mid.attn`). */
const ownerPath = (site: AttentionSite) => site.path.replace(/#\d+$/, '');

/** `path` and its ancestors, innermost first (`a.b.c`, `a.b`, `a`). */
function selfAndAncestors(path: string): string[] {
  const segments = path.split('.');
  return segments.map((_, i) => segments.slice(0, segments.length - i).join('.'));
}

/** The module sites around an attention site, innermost first: its own module, then the blocks that hold it. */
export function enclosingModules(site: AttentionSite, moduleSites: readonly ModuleSite[]): ModuleSite[] {
  return selfAndAncestors(ownerPath(site))
    .map((path) => moduleSites.find((m) => m.path === path))
    .filter((m): m is ModuleSite => m !== undefined);
}

/** The module skip that removes an attention site's contribution (see above), or an error naming the fix. */
function skipOwner(site: AttentionSite, moduleSites: readonly ModuleSite[], index: number): ModuleSite {
  const owners = enclosingModules(site, moduleSites);
  const owner = owners.find((m) => m.skippable !== false);
  if (owner) return owner;
  if (owners.length > 0) checkSkippable(owners[0]!, `hooks[${index}]`);
  throw new TorchGuidanceError(
    ErrorCodes.NOT_SKIPPABLE,
    `hooks[${index}]: skip on attention site ${site.path} needs a module hook on ${ownerPath(site)} or a block ` +
      'around it, and there is none (the graph pass tags the model\'s own modules that take and return a tensor). ' +
      'Fix: skip an enclosing block with { modules: ..., action: "skip" }; model.moduleSites lists them.',
  );
}

export function planForward(
  hooks: readonly Hook[],
  attentionSites: readonly AttentionSite[],
  moduleSites: readonly ModuleSite[],
  batch: number,
  attentionCandidates: readonly AttentionCandidate[] = [],
): { entries: NativePlanEntry[]; modules: NativeModuleEntry[] } {
  const entries: NativePlanEntry[] = [];
  const modules: NativeModuleEntry[] = [];
  hooks.forEach((hook, index) => {
    if (isModuleHook(hook)) {
      modules.push(...planModuleHooks([hook], moduleSites, batch, index));
      return;
    }
    for (const entry of planHooks([hook], attentionSites, batch, index, attentionCandidates)) {
      if (entry.action !== 'skip') {
        entries.push(entry);
        continue;
      }
      const owner = skipOwner(attentionSites.find((s) => s.id === entry.site)!, moduleSites, index);
      if (!modules.some((m) => m.site === owner.id && m.action === 'skip' && m.start === entry.start && m.length === entry.length)) {
        modules.push({ site: owner.id, start: entry.start, length: entry.length, action: 'skip' });
      }
    }
  });
  return { entries, modules };
}
