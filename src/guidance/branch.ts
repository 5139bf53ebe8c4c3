/**
 * Branch identity: two branches with the same key are the same computation
 * and run once. Keys are strings so the planner can use Maps; a model is
 * keyed by a per-instance number.
 */
import type { Model } from '../model/model.js';
import type { Branch, BranchAttention, BranchModule, Degradation } from './types.js';

const modelIds = new WeakMap<Model, number>();
let nextModelId = 1;

export function modelKey(model: Branch['model']): string {
  if (model === 'main') return 'main';
  let id = modelIds.get(model);
  if (id === undefined) {
    id = nextModelId++;
    modelIds.set(model, id);
  }
  return `model#${id}`;
}

function selectorKey(sites: BranchAttention['sites']): string {
  const list = Array.isArray(sites) ? sites : [sites];
  return list.map((s) => (s instanceof RegExp ? `/${s.source}/${s.flags}` : String(s))).join('|');
}

function attentionKey(attention: readonly BranchAttention[] | undefined): string {
  if (!attention || attention.length === 0) return '';
  return attention.map((a) => `${a.action}${a.action === 'blur' ? `(${a.sigma})` : ''}[${selectorKey(a.sites)}]`).join(',');
}

function modulesKey(modules: readonly BranchModule[] | undefined): string {
  if (!modules || modules.length === 0) return '';
  return modules.map((m) => `${m.action}${m.action === 'noise' ? `(${m.scale})` : ''}{${selectorKey(m.modules)}}`).join(',');
}

/**
 * `unconditional`: every sample has the null condition, so 'given' and
 * 'null' are the same branch.
 */
export function conditionKey(branch: Branch, unconditional: boolean): string {
  return unconditional && branch.condition === 'given' ? 'null' : branch.condition;
}

/** The input a branch reads: 'x', or the degradation it is computed on. */
export function inputKey(degrade: Degradation | undefined, unconditional: boolean): string {
  if (!degrade) return 'x';
  const { source, kind, kernelSize, blurSigma, cutoff, fraction, patch, threshold, sites, maskSource } = degrade;
  const params = [kind, kernelSize, blurSigma, cutoff, fraction, patch, threshold, sites === undefined ? '' : selectorKey(sites)];
  if (maskSource) {
    const { model, sites: maskSites, reduce, prefixTokens, threshold: limit, inputScale, inputShift } = maskSource;
    params.push(`mask(${modelKey(model)}:${maskSites === undefined ? 'last' : selectorKey(maskSites)}:${reduce}:${prefixTokens}:${limit}:${inputScale}:${inputShift})`);
  }
  return `${params.join(':')}<${branchKey(source, unconditional)}>`;
}

export function branchKey(branch: Branch, unconditional: boolean): string {
  return [
    modelKey(branch.model),
    conditionKey(branch, unconditional),
    attentionKey(branch.attention),
    modulesKey(branch.modules),
    inputKey(branch.degrade, unconditional),
  ].join(' ');
}

/**
 * A short human label: `main(given)`, `main(given)+identity[mid.*]`,
 * `main(given)+noise(0.5){time_embed}`, `main(given)+skip{mid.attn}`, `guide(given)`, `main(null)@sag`.
 */
export function branchLabel(branch: Branch, unconditional: boolean, modelName: (m: Branch['model']) => string): string {
  const attention = attentionKey(branch.attention);
  const modules = modulesKey(branch.modules);
  return (
    `${modelName(branch.model)}(${conditionKey(branch, unconditional)})` +
    (attention ? `+${attention}` : '') +
    (modules ? `+${modules}` : '') +
    (branch.degrade ? `@${branch.degrade.kind}` : '')
  );
}
