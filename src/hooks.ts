/**
 * A forward's hooks, attention and module ones together, resolved against a
 * model's sites into the addon's plan. Attention `skip` is a module skip of
 * the module that holds the attention: it returns its input. That is "the
 * attention adds nothing" for blocks that add their own residual (ADM's
 * AttentionBlock, the fixtures); where the caller adds the residual
 * (diffusers' `x = x + attn(norm(x))`), skip the enclosing block instead.
 */
import { type AttentionHook, type AttentionSite, type NativePlanEntry, planHooks } from './attention.js';
import { ErrorCodes, TorchGuidanceError } from './errors.js';
import { type ModuleHook, type ModuleSite, type NativeModuleEntry, checkSkippable, planModuleHooks } from './module-hooks.js';

/** A hook of one forward: on attention sites (`sites`) or on module outputs (`modules`). */
export type Hook = AttentionHook | ModuleHook;

export function isModuleHook(hook: Hook): hook is ModuleHook {
  return typeof hook === 'object' && hook !== null && 'modules' in hook;
}

/** The module path an attention site belongs to (`mid.attn#1` -> `mid.attn`). */
const ownerPath = (site: AttentionSite) => site.path.replace(/#\d+$/, '');

export function planForward(
  hooks: readonly Hook[],
  attentionSites: readonly AttentionSite[],
  moduleSites: readonly ModuleSite[],
  batch: number,
): { entries: NativePlanEntry[]; modules: NativeModuleEntry[] } {
  const entries: NativePlanEntry[] = [];
  const modules: NativeModuleEntry[] = [];
  hooks.forEach((hook, index) => {
    if (isModuleHook(hook)) {
      modules.push(...planModuleHooks([hook], moduleSites, batch, index));
      return;
    }
    for (const entry of planHooks([hook], attentionSites, batch, index)) {
      if (entry.action !== 'skip') {
        entries.push(entry);
        continue;
      }
      const site = attentionSites.find((s) => s.id === entry.site)!;
      const owner = moduleSites.find((m) => m.path === ownerPath(site));
      if (!owner) {
        throw new TorchGuidanceError(
          ErrorCodes.NOT_SKIPPABLE,
          `hooks[${index}]: skip on attention site ${site.path} needs a module hook on ${ownerPath(site)}, and there is ` +
            'none (its module is called in a way the graph pass does not tag). Fix: skip an enclosing block with ' +
            '{ modules: ..., action: "skip" }; model.moduleSites lists them.',
        );
      }
      checkSkippable(owner, `hooks[${index}]`);
      if (!modules.some((m) => m.site === owner.id && m.action === 'skip' && m.start === entry.start && m.length === entry.length)) {
        modules.push({ site: owner.id, start: entry.start, length: entry.length, action: 'skip' });
      }
    }
  });
  return { entries, modules };
}
