/**
 * Mixing a step's branch predictions into the guided prediction,
 *
 *   D = D_base + Σ_i s_i · (D_pos_i − D_neg_i),   then each strategy's finalize,
 *
 * and, when that is not finite, naming where it came from.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { StepPlan } from './planner.js';
import type { GuidedPrediction, StepInfo, Strategy, Term } from './types.js';

/** What the mix reads besides the step's own tensors. */
export interface MixContext {
  strategies: readonly Strategy[];
  /** Per-run state of each term (APG's momentum, ...). */
  state: Map<Term, Map<string, unknown>>;
  strategyOf: Map<Term, Strategy>;
  checkFinite: boolean;
}

/** A step's branch predictions: by branch key, and the input of each branch not predicted from x (SAG's x̃). */
export interface StepResults {
  results: Map<string, Tensor>;
  shiftedInputs: Map<string, Tensor>;
  /** The step's intermediates, freed by the caller; a branch prediction handed to the caller is taken out. */
  owned: Tensor[];
}

/** The guided prediction of one step. The caller owns the returned tensors. */
export function mixPrediction(context: MixContext, plan: StepPlan, x: Tensor, info: StepInfo, step: StepResults): GuidedPrediction {
  const { results, shiftedInputs, owned } = step;
  const base = results.get(plan.base)!;
  let guided = base;
  const replace = (next: Tensor) => {
    if (guided !== base) guided.dispose();
    guided = next;
  };
  // A failing term or check must not leave the partial sum behind.
  try {
    for (const active of plan.terms) {
      const positive = results.get(active.positive)!;
      const negative = results.get(active.negative)!;
      const { term, scale } = active;
      let delta: Tensor;
      const positiveInput = shiftedInputs.get(active.positive) ?? x;
      const negativeInput = shiftedInputs.get(active.negative) ?? x;
      if (term.delta) {
        delta = term.delta(positive, negative, scale, { ...info, x, state: context.state.get(term)! });
      } else if (positiveInput !== negativeInput) {
        // Predictions from different inputs (SAG's x̃ = x0' + (x − x0)) are
        // compared as noise predictions, as the method is defined (eps space):
        // D − input = −σ·eps, so s((D₊ − x₊) − (D₋ − x₋)). Comparing the D
        // themselves would add s·(x0 − x0'), an unsharp mask of the prediction.
        using difference = positive.sub(negative);
        using inputGap = positiveInput.sub(negativeInput);
        using noiseGap = difference.sub(inputGap);
        delta = noiseGap.mul(scale);
      } else {
        using difference = positive.sub(negative);
        delta = difference.mul(scale);
      }
      using owned = delta;
      replace(guided.add(owned));
    }
    for (const strategy of context.strategies) {
      const next = strategy.finalize?.(guided, { ...info, x, base });
      if (next) replace(next);
    }
    // One reduction per step; only a failure pays for finding the culprit.
    if (context.checkFinite && !guided.allFinite()) nonFinite(context, plan, info, results);
  } catch (error) {
    if (guided !== base) (guided as Tensor).dispose();
    throw error;
  }
  // A branch's own prediction (unguided sampling's D, CFG++'s D(∅)) is handed
  // to the caller rather than cloned: one op less per step. Each handle is
  // handed over once; a second use of it is cloned.
  const take = (t: Tensor) => {
    const at = owned.indexOf(t);
    if (at < 0) return t.clone();
    owned.splice(at, 1);
    return t;
  };
  const denoised = guided === base ? take(base) : guided;
  const source = plan.renoise === undefined ? undefined : results.get(plan.renoise)!;
  const renoise = source === undefined ? undefined : source === denoised ? source.clone() : take(source);
  return renoise ? { denoised, renoise } : { denoised };
}

/**
 * Names where a non-finite guided prediction came from: a branch's own
 * prediction (the model), a term's contribution, a strategy's final
 * adjustment, or the sum itself.
 */
function nonFinite(context: MixContext, plan: StepPlan, info: StepInfo, results: Map<string, Tensor>): never {
  const strategyOf = (term: Term) => context.strategyOf.get(term)?.name ?? term.label;
  for (const active of plan.terms) {
    for (const [key, side] of [[active.positive, 'positive'], [active.negative, 'negative']] as const) {
      if (!results.get(key)!.allFinite()) {
        throwNonFinite(info, `the model's prediction for the ${side} branch of ${active.term.label}`, strategyOf(active.term));
      }
    }
  }
  if (plan.terms.length === 0 && !results.get(plan.base)!.allFinite()) throwNonFinite(info, "the model's prediction", 'none (unguided)');
  for (const active of plan.terms) {
    if (active.term.delta || !Number.isFinite(active.scale)) continue;
    using difference = results.get(active.positive)!.sub(results.get(active.negative)!);
    using delta = difference.mul(active.scale);
    if (!delta.allFinite()) throwNonFinite(info, `the term ${active.term.label} (scale ${active.scale})`, strategyOf(active.term));
  }
  const named = plan.terms.find((t) => !Number.isFinite(t.scale) || t.term.delta);
  if (named) throwNonFinite(info, `the term ${named.term.label} (scale ${named.scale})`, strategyOf(named.term));
  const finalizing = context.strategies.filter((st) => st.finalize).map((st) => st.name);
  const names = [...new Set(plan.terms.map((t) => strategyOf(t.term)))];
  throwNonFinite(
    info,
    finalizing.length > 0 ? `the final adjustment of ${finalizing.join(', ')}` : 'the sum of the terms, each finite on its own',
    (finalizing.length > 0 ? finalizing : names).join(', '),
  );
}

function throwNonFinite(info: StepInfo, what: string, strategy: string): never {
  throw new TorchGuidanceError(
    ErrorCodes.NON_FINITE,
    `sampling produced NaN or infinity at step ${info.step + 1} of ${info.steps} (sigma ${info.sigma}) in ${what}; strategy: ${strategy}. ` +
      "Fix: lower that strategy's scale or other settings, or check the model's outputs; sample({ checkFinite: false }) turns this check off.",
  );
}
