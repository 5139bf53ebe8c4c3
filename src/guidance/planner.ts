/**
 * The planner: from a step's active terms to as few forwards as possible.
 *
 * 1. Collect the branches the step needs: the base, both sides of every term
 *    whose scale is not 0, the re-noise branch (CFG++), and the source of
 *    every degraded branch. Branches with the same key are computed once.
 * 2. Stage 0 reads x; a degraded branch (SAG) reads its source's x0 and runs
 *    one stage later.
 * 3. Within a stage, branches on the same model and input form one forward:
 *    the input is repeated once per branch and each branch's attention and
 *    module perturbations (PAG, SEG, TSG's time-embedding noise, SLG's
 *    skipped blocks; SAG's capture) apply to its slice only. Forwards of one
 *    stage run concurrently.
 *
 * Pure: explain() shows the same plan the sampler executes.
 */
import type { SiteSelector } from '../hooks/attention.js';
import { branchKey, branchLabel, inputKey, modelKey } from './branch.js';
import type { Branch, Degradation, StepInfo, Strategy, StrategyContext, Term } from './types.js';

export interface PlannedBranch {
  key: string;
  label: string;
  branch: Branch;
}

export interface PlannedForward {
  model: Branch['model'];
  modelKey: string;
  /** 'x', or the degradation this forward's input comes from. */
  inputKey: string;
  degrade?: Degradation;
  /** Slice i of the batched forward belongs to branches[i]. */
  branches: PlannedBranch[];
  /** Capture hooks: the branch (by slice) and the sites whose attention stage 1 needs. */
  captures: { slice: number; sites: SiteSelector }[];
}

export interface ActiveTerm {
  term: Term;
  scale: number;
  positive: string;
  negative: string;
}

export interface StepPlan {
  stages: PlannedForward[][];
  base: string;
  terms: ActiveTerm[];
  renoise?: string;
}

export interface PlanInputs {
  terms: readonly Term[];
  strategies: readonly Strategy[];
  context: StrategyContext;
  unconditional: boolean;
  modelName: (model: Branch['model']) => string;
}

export const BASE_BRANCH: Branch = { model: 'main', condition: 'given' };

export function planStep(inputs: PlanInputs, info: StepInfo): StepPlan {
  const { unconditional } = inputs;
  const needed = new Map<string, { branch: Branch; stage: number }>();
  const captures = new Map<string, SiteSelector[]>();

  const need = (branch: Branch): string => {
    const key = branchKey(branch, unconditional);
    if (needed.has(key)) return key;
    let stage = 0;
    if (branch.degrade) {
      const sourceKey = need(branch.degrade.source);
      stage = needed.get(sourceKey)!.stage + 1;
      if (branch.degrade.kind === 'sag' && branch.degrade.sites !== undefined) {
        const list = captures.get(sourceKey) ?? [];
        list.push(branch.degrade.sites);
        captures.set(sourceKey, list);
      }
    }
    needed.set(key, { branch, stage });
    return key;
  };

  const base = need(BASE_BRANCH);
  const terms: ActiveTerm[] = [];
  for (const term of inputs.terms) {
    const scale = term.scale(info);
    if (scale === 0) continue;
    terms.push({ term, scale, positive: need(term.positive), negative: need(term.negative) });
  }
  let renoise: string | undefined;
  for (const strategy of inputs.strategies) {
    const branch = strategy.renoiseBranch?.(inputs.context, info);
    if (branch) renoise = need(branch);
  }

  const stages: PlannedForward[][] = [];
  for (const [key, { branch, stage }] of needed) {
    const forwards = (stages[stage] ??= []);
    const mKey = modelKey(branch.model);
    const iKey = inputKey(branch.degrade, unconditional);
    let forward = forwards.find((f) => f.modelKey === mKey && f.inputKey === iKey);
    if (!forward) {
      forward = { model: branch.model, modelKey: mKey, inputKey: iKey, degrade: branch.degrade, branches: [], captures: [] };
      forwards.push(forward);
    }
    const slice = forward.branches.length;
    forward.branches.push({ key, label: branchLabel(branch, unconditional, inputs.modelName), branch });
    for (const sites of captures.get(key) ?? []) forward.captures.push({ slice, sites });
  }
  return { stages, base, terms, renoise };
}

/** A plan as plain data: what explain() returns per step. */
export interface PlanSummary {
  step: number;
  sigma: number;
  /** Forwards per stage, each with its model, batch multiple and branch labels. */
  stages: { model: string; branches: string[]; batchMultiple: number; captures: number }[][];
  forwards: number;
  /** Samples through a model per input sample: the sum of batch multiples. */
  modelEvaluations: number;
  terms: { label: string; scale: number }[];
}

export function summarise(plan: StepPlan, info: StepInfo, modelName: (m: Branch['model']) => string): PlanSummary {
  const stages = plan.stages.map((forwards) =>
    forwards.map((f) => ({
      model: modelName(f.model),
      branches: f.branches.map((b) => b.label),
      batchMultiple: f.branches.length,
      captures: f.captures.length,
    })),
  );
  const flat = stages.flat();
  return {
    step: info.step,
    sigma: info.sigma,
    stages,
    forwards: flat.length,
    modelEvaluations: flat.reduce((sum, f) => sum + f.batchMultiple, 0),
    terms: plan.terms.map((t) => ({ label: t.term.label, scale: t.scale })),
  };
}
