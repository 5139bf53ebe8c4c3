/**
 * Setting up a guided denoiser for a batch: the strategies' terms for this
 * model and batch, the denoiser of every model a branch runs on, and the
 * checks that make a term that cannot run fail before any forward (a site
 * selector matching no site, a second model of another contract or device).
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { type Hook, planForward } from '../hooks/forward-plan.js';
import type { Model } from '../model/model.js';
import { checkMaskSource } from './attention-mask.js';
import { modelKey } from './branch.js';
import { Denoiser } from './denoiser.js';
import type { PlanInputs } from './planner.js';
import type { Branch, Strategy, StrategyContext, Term } from './types.js';

/**
 * A batch's condition inputs, in forward order: one for class (int64 labels
 * [N]) and tensor ([N, ...]) conditioning, one per input for named
 * conditioning; undefined for unconditional models.
 */
export interface Conditions {
  /** The requested condition per sample. */
  given?: readonly Tensor[];
  /** The null condition per sample. */
  null?: readonly Tensor[];
}

/** What a guided denoiser is made of: the main model, the strategies, one batch's conditions and seeds. */
export interface GuidedDenoiserOptions {
  main: Denoiser;
  strategies: readonly Strategy[];
  conditions: Conditions;
  /** Every sample has the null condition (unconditional sampling). */
  unconditional: boolean;
  /** Per-sample seeds (random conditions and patches derive from them). */
  seeds: readonly bigint[];
  /** Names for explain(): the main model is 'main'. */
  modelNames?: Map<Model, string>;
  /** Chunks each forward's batch is split into on the CPU (Model.run's `parallel`: a count or 'auto'); default 1. */
  parallel?: number | 'auto';
  /** Check each term and the final prediction for NaN and infinity (ERR_NON_FINITE naming the step and the strategy); default false. */
  checkFinite?: boolean;
  /** Cuts running forwards short (Model.run's signal). */
  signal?: AbortSignal;
}

/** The checked terms, and the denoiser of every model their branches run on (by modelKey; the main one as 'main'). */
export interface GuidedSetup {
  inputs: PlanInputs;
  /** The strategy each term came from, for error messages. */
  strategyOf: Map<Term, Strategy>;
  denoisers: Map<string, Denoiser>;
}

/** The strategies' terms for this batch, each branch's model and sites checked against the models now. */
export function setUpGuidance(options: GuidedDenoiserOptions): GuidedSetup {
  const { main } = options;
  const context: StrategyContext = {
    conditional: !options.unconditional,
    strategies: options.strategies,
    conditioning: main.conditioning.kind,
    sampleShape: main.card.sampleShape,
    attentionSites: main.model.attentionSites,
    moduleSites: main.model.moduleSites,
    ...(main.card.timeEmbedding === undefined ? {} : { timeEmbedding: main.card.timeEmbedding }),
    ...(main.card.guidanceSites === undefined ? {} : { guidanceSites: main.card.guidanceSites }),
  };
  const strategyOf = new Map<Term, Strategy>();
  const terms = options.strategies.flatMap((strategy) => {
    const own = strategy.terms(context);
    for (const term of own) strategyOf.set(term, strategy);
    return own;
  });
  const names = options.modelNames ?? new Map<Model, string>();
  const inputs: PlanInputs = {
    terms,
    strategies: options.strategies,
    context,
    unconditional: options.unconditional,
    modelName: (m) => (m === 'main' ? 'main' : (names.get(m) ?? modelKey(m))),
  };
  const denoisers = new Map<string, Denoiser>([['main', main]]);
  for (const term of terms) {
    for (const branch of [term.positive, term.negative]) {
      addModel(denoisers, main, branch.model);
      checkSites(denoisers, main, term, branch);
    }
  }
  return { inputs, strategyOf, denoisers };
}

/**
 * Resolves a branch's site selectors (its attention and module
 * perturbations, and a SAG degradation's captures on its source) against
 * the model now, so that a selector matching no site fails before any
 * forward (a concurrent forward on another model would otherwise still run),
 * in explain() as in sample(), and names the term rather than an internal
 * hook index only.
 */
function checkSites(denoisers: Map<string, Denoiser>, main: Denoiser, term: Term, branch: Branch): void {
  const check = (model: Branch['model'], hook: Hook, what: string) => {
    const { attentionSites, moduleSites, attentionReport } = denoisers.get(modelKey(model))!.model;
    try {
      planForward([hook], attentionSites, moduleSites, 1, attentionReport);
    } catch (error) {
      if (!(error instanceof TorchGuidanceError)) throw error;
      throw new TorchGuidanceError(error.code, `${term.label}: its sites option (${what}) does not fit this model: ${error.message}`, { cause: error });
    }
  };
  for (const a of branch.attention ?? []) {
    check(branch.model, { sites: a.sites, action: a.action, ...(a.action === 'blur' ? { sigma: a.sigma } : {}) }, a.action);
  }
  for (const m of branch.modules ?? []) {
    check(branch.model, m.action === 'skip' ? m : { ...m, seed: 0 }, m.action);
  }
  const degrade = branch.degrade;
  if (degrade?.maskSource) {
    if (degrade.maskSource.model.device !== main.model.device) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `${term.label}: the mask model is on ${degrade.maskSource.model.device} but the main model is on ${main.model.device}. Fix: load both on one device.`,
      );
    }
    try {
      checkMaskSource(degrade.maskSource);
    } catch (error) {
      if (!(error instanceof TorchGuidanceError)) throw error;
      throw new TorchGuidanceError(error.code, `${term.label}: its mask model's sites do not fit it: ${error.message}`, { cause: error });
    }
  }
  if (degrade?.kind === 'sag' && degrade.sites !== undefined) {
    addModel(denoisers, main, degrade.source.model);
    check(degrade.source.model, { sites: degrade.sites, action: 'capture', self: true }, 'capture');
  }
}

/** Adds a second model's denoiser, after checking it has the main model's contract and device. */
function addModel(denoisers: Map<string, Denoiser>, main: Denoiser, model: Branch['model']): void {
  if (model === 'main' || denoisers.has(modelKey(model))) return;
  const denoiser = Denoiser.of(model, 'second model');
  const card = main.card;
  const same = JSON.stringify(denoiser.card.sampleShape) === JSON.stringify(card.sampleShape) &&
    JSON.stringify(denoiser.card.conditioning) === JSON.stringify(card.conditioning);
  if (!same) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_OPTION,
      `the second model '${denoiser.card.name}' has sample shape ${JSON.stringify(denoiser.card.sampleShape)} and ` +
        `conditioning ${JSON.stringify(denoiser.card.conditioning)}, but the main model has ` +
        `${JSON.stringify(card.sampleShape)} and ${JSON.stringify(card.conditioning)}. Fix: guide with a model of the same contract.`,
    );
  }
  if (denoiser.model.device !== main.model.device) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_OPTION,
      `the second model is on ${denoiser.model.device} but the main model is on ${main.model.device}. Fix: load both on one device.`,
    );
  }
  denoisers.set(modelKey(model), denoiser);
}
