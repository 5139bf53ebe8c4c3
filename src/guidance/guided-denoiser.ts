/**
 * The guided denoiser: executes a step's plan and mixes the branches,
 *
 *   D = D_base + Σ_i s_i · (D_pos_i − D_neg_i),   then each strategy's finalize.
 *
 * It owns the condition tensors of a batch (given, null, and the random ones
 * ICG draws per evaluation) and the per-run state of non-linear terms.
 * Every intermediate tensor is disposed before predict() returns.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type Hook, planForward } from '../hooks/forward-plan.js';
import type { Model } from '../model/model.js';
import { Streams, mixSeed, uniformFromSeed } from '../core/seeds.js';
import { type Tensor, cat, isTensor, randn, tensor } from '../core/tensor.js';
import { branchKey, modelKey } from './branch.js';
import { checkMaskSource, modelAttentionMask } from './attention-mask.js';
import { degradedInput } from './degrade.js';
import { Denoiser } from './denoiser.js';
import { type PlanInputs, type PlanSummary, type StepPlan, planStep, summarise } from './planner.js';
import type { Branch, GuidedPrediction, StepInfo, Strategy, StrategyContext, Term } from './types.js';

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

export interface PhaseTimes {
  forwardMs: number;
  mixMs: number;
}

export class GuidedDenoiser {
  readonly main: Denoiser;
  readonly #inputs: PlanInputs;
  readonly #conditions: Conditions;
  readonly #seeds: readonly bigint[];
  readonly #parallel: number | 'auto';
  readonly #checkFinite: boolean;
  readonly #signal: AbortSignal | undefined;
  /** The strategy each term came from, for error messages. */
  readonly #strategyOf = new Map<Term, Strategy>();
  readonly #denoisers = new Map<string, Denoiser>();
  readonly #state = new Map<Term, Map<string, unknown>>();
  /** Joined given/null conditions per branch layout, kept for the run (#batchConditions). */
  readonly #joinedConditions = new Map<string, readonly Tensor[]>();
  #evaluation = 0;
  /** Forwards issued and time spent, for timings and tests. */
  readonly times: PhaseTimes = { forwardMs: 0, mixMs: 0 };
  forwards = 0;

  constructor(options: GuidedDenoiserOptions) {
    this.main = options.main;
    this.#conditions = options.conditions;
    this.#seeds = options.seeds;
    this.#parallel = options.parallel ?? 1;
    this.#checkFinite = options.checkFinite ?? false;
    this.#signal = options.signal;
    const context: StrategyContext = {
      conditional: !options.unconditional,
      strategies: options.strategies,
      conditioning: options.main.conditioning.kind,
      sampleShape: options.main.card.sampleShape,
      attentionSites: options.main.model.attentionSites,
      moduleSites: options.main.model.moduleSites,
      ...(options.main.card.timeEmbedding === undefined ? {} : { timeEmbedding: options.main.card.timeEmbedding }),
      ...(options.main.card.guidanceSites === undefined ? {} : { guidanceSites: options.main.card.guidanceSites }),
    };
    const terms = options.strategies.flatMap((strategy) => {
      const own = strategy.terms(context);
      for (const term of own) this.#strategyOf.set(term, strategy);
      return own;
    });
    const names = options.modelNames ?? new Map<Model, string>();
    this.#inputs = {
      terms,
      strategies: options.strategies,
      context,
      unconditional: options.unconditional,
      modelName: (m) => (m === 'main' ? 'main' : (names.get(m) ?? modelKey(m))),
    };
    this.#denoisers.set('main', options.main);
    for (const term of terms) {
      for (const branch of [term.positive, term.negative]) {
        this.#checkModel(branch.model);
        this.#checkSites(term, branch);
      }
      this.#state.set(term, new Map());
    }
  }

  /** Whether a strategy asks the sampler to re-noise with another branch (CFG++: first-order samplers only). */
  get renoises(): boolean {
    return this.#inputs.strategies.some((s) => s.renoiseBranch?.(this.#inputs.context) !== undefined);
  }

  /**
   * Resolves a branch's site selectors (its attention and module
   * perturbations, and a SAG degradation's captures on its source) against
   * the model now, so that a
   * selector matching no site fails before any forward (a concurrent forward on
   * another model would otherwise still run), in explain() as in sample(), and
   * names the term rather than an internal hook index only.
   */
  #checkSites(term: Term, branch: Branch): void {
    const check = (model: Branch['model'], hook: Hook, what: string) => {
      const { attentionSites, moduleSites, attentionReport } = this.#denoisers.get(modelKey(model))!.model;
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
      check(branch.model, m.action === 'noise' ? { ...m, seed: 0 } : m, m.action);
    }
    const degrade = branch.degrade;
    if (degrade?.maskSource) {
      if (degrade.maskSource.model.device !== this.main.model.device) {
        throw new TorchGuidanceError(
          ErrorCodes.INVALID_OPTION,
          `${term.label}: the mask model is on ${degrade.maskSource.model.device} but the main model is on ${this.main.model.device}. Fix: load both on one device.`,
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
      this.#checkModel(degrade.source.model);
      check(degrade.source.model, { sites: degrade.sites, action: 'capture', self: true }, 'capture');
    }
  }

  #checkModel(model: Branch['model']): void {
    if (model === 'main' || this.#denoisers.has(modelKey(model))) return;
    const denoiser = Denoiser.of(model, 'second model');
    const main = this.main.card;
    const same = JSON.stringify(denoiser.card.sampleShape) === JSON.stringify(main.sampleShape) &&
      JSON.stringify(denoiser.card.conditioning) === JSON.stringify(main.conditioning);
    if (!same) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `the second model '${denoiser.card.name}' has sample shape ${JSON.stringify(denoiser.card.sampleShape)} and ` +
          `conditioning ${JSON.stringify(denoiser.card.conditioning)}, but the main model has ` +
          `${JSON.stringify(main.sampleShape)} and ${JSON.stringify(main.conditioning)}. Fix: guide with a model of the same contract.`,
      );
    }
    if (denoiser.model.device !== this.main.model.device) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `the second model is on ${denoiser.model.device} but the main model is on ${this.main.model.device}. Fix: load both on one device.`,
      );
    }
    this.#denoisers.set(modelKey(model), denoiser);
  }

  /** Frees per-run state (APG's momentum, the joined conditions). */
  dispose(): void {
    for (const joined of this.#joinedConditions.values()) for (const t of joined) t.dispose();
    this.#joinedConditions.clear();
    for (const state of this.#state.values()) {
      for (const value of state.values()) if (isTensor(value)) value.dispose();
      state.clear();
    }
  }

  stepInfo(step: number, steps: number, sigma: number): StepInfo {
    return { step, steps, sigma, timestep: this.main.timestep(sigma) };
  }

  plan(info: StepInfo): StepPlan {
    return planStep(this.#inputs, info);
  }

  explain(info: StepInfo): PlanSummary {
    return summarise(this.plan(info), info, this.#inputs.modelName);
  }

  /** The guided prediction at (x, sigma). The caller owns the returned tensors. */
  async predict(x: Tensor, info: StepInfo): Promise<GuidedPrediction> {
    const plan = this.plan(info);
    const evaluation = this.#evaluation++;
    const results = new Map<string, Tensor>();
    // The input of each branch predicted from something other than x (SAG's x̃).
    const shiftedInputs = new Map<string, Tensor>();
    const owned: Tensor[] = [];
    const captured = new Map<string, { map: Tensor; grid: [number, number] }[]>();
    try {
      for (const forwards of plan.stages) {
        const started = performance.now();
        // allSettled: a failing forward must not leave a sibling's outputs undisposed.
        const settled = await Promise.allSettled(
          forwards.map(async (forward) => {
            const denoiser = this.#denoisers.get(forward.modelKey)!;
            const input = forward.degrade ? await this.#degraded(forward.degrade, x, results, captured, evaluation) : x;
            if (input !== x) owned.push(input);
            const k = forward.branches.length;
            const batch = input.shape[0]!;
            const repeated = k === 1 ? input : input.repeat(k);
            if (repeated !== input) owned.push(repeated);
            const conditions = this.#batchConditions(forward.branches.map((b) => b.branch), evaluation, owned);
            const inputs = denoiser.preconditionedInputs(repeated, conditions);
            const hooks: Hook[] = forward.branches.flatMap((b, slice) => this.#branchHooks(b.branch, slice * batch, batch, evaluation));
            for (const c of forward.captures) {
              hooks.push({ sites: c.sites, action: 'capture', self: true, start: c.slice * batch, length: batch });
            }
            this.forwards++;
            // D itself: the input and output scaling run on the torch thread (Denoiser.preconditioning).
            const { output: denoised, captures } = await denoiser.model.run<Tensor>({
              inputs,
              hooks,
              parallel: this.#parallel,
              preconditioning: denoiser.preconditioning(info.sigma),
              ...(this.#signal ? { signal: this.#signal } : {}),
            });
            owned.push(denoised);
            for (const map of captures.values()) owned.push(map);
            forward.branches.forEach((b, slice) => {
              const part = k === 1 ? denoised : denoised.narrow(slice * batch, batch);
              if (part !== denoised) owned.push(part);
              results.set(b.key, part);
              if (input !== x) shiftedInputs.set(b.key, input);
            });
            for (const c of forward.captures) {
              const key = forward.branches[c.slice]!.key;
              const list = captured.get(key) ?? [];
              for (const [path, map] of captures) list.push({ map, grid: this.#grid(denoiser.model, path) });
              captured.set(key, list);
            }
          }),
        );
        this.times.forwardMs += performance.now() - started;
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
      const mixStart = performance.now();
      const prediction = this.#mix(plan, x, info, results, shiftedInputs, owned);
      this.times.mixMs += performance.now() - mixStart;
      return prediction;
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  #mix(
    plan: StepPlan,
    x: Tensor,
    info: StepInfo,
    results: Map<string, Tensor>,
    shiftedInputs: Map<string, Tensor>,
    owned: Tensor[],
  ): GuidedPrediction {
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
          delta = term.delta(positive, negative, scale, { ...info, x, state: this.#state.get(term)! });
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
      for (const strategy of this.#inputs.strategies) {
        const next = strategy.finalize?.(guided, { ...info, x, base });
        if (next) replace(next);
      }
      // One reduction per step; only a failure pays for finding the culprit.
      if (this.#checkFinite && !guided.allFinite()) this.#nonFinite(plan, info, results);
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
  #nonFinite(plan: StepPlan, info: StepInfo, results: Map<string, Tensor>): never {
    const strategyOf = (term: Term) => this.#strategyOf.get(term)?.name ?? term.label;
    for (const active of plan.terms) {
      for (const [key, side] of [[active.positive, 'positive'], [active.negative, 'negative']] as const) {
        if (!results.get(key)!.allFinite()) {
          this.#throwNonFinite(info, `the model's prediction for the ${side} branch of ${active.term.label}`, strategyOf(active.term));
        }
      }
    }
    if (plan.terms.length === 0 && !results.get(plan.base)!.allFinite()) this.#throwNonFinite(info, "the model's prediction", 'none (unguided)');
    for (const active of plan.terms) {
      if (active.term.delta || !Number.isFinite(active.scale)) continue;
      using difference = results.get(active.positive)!.sub(results.get(active.negative)!);
      using delta = difference.mul(active.scale);
      if (!delta.allFinite()) this.#throwNonFinite(info, `the term ${active.term.label} (scale ${active.scale})`, strategyOf(active.term));
    }
    const named = plan.terms.find((t) => !Number.isFinite(t.scale) || t.term.delta);
    if (named) this.#throwNonFinite(info, `the term ${named.term.label} (scale ${named.scale})`, strategyOf(named.term));
    const finalizing = this.#inputs.strategies.filter((st) => st.finalize).map((st) => st.name);
    const names = [...new Set(plan.terms.map((t) => strategyOf(t.term)))];
    this.#throwNonFinite(
      info,
      finalizing.length > 0 ? `the final adjustment of ${finalizing.join(', ')}` : 'the sum of the terms, each finite on its own',
      (finalizing.length > 0 ? finalizing : names).join(', '),
    );
  }

  #throwNonFinite(info: StepInfo, what: string, strategy: string): never {
    throw new TorchGuidanceError(
      ErrorCodes.NON_FINITE,
      `sampling produced NaN or infinity at step ${info.step + 1} of ${info.steps} (sigma ${info.sigma}) in ${what}; strategy: ${strategy}. ` +
        "Fix: lower that strategy's scale or other settings, or check the model's outputs; sample({ checkFinite: false }) turns this check off.",
    );
  }

  /** One branch's attention and module hooks on its slice [start, start + length) of a batched forward. */
  #branchHooks(branch: Branch, start: number, length: number, evaluation: number): Hook[] {
    const hooks: Hook[] = (branch.attention ?? []).map((a) => ({
      sites: a.sites,
      action: a.action,
      ...(a.action === 'blur' ? { sigma: a.sigma } : {}),
      start,
      length,
    }));
    for (const m of branch.modules ?? []) {
      if (m.action === 'skip') {
        hooks.push({ modules: m.modules, action: 'skip', start, length });
      } else {
        // Fresh noise per model evaluation, one seed per sample: batch-invariant.
        const seed = this.#seeds.map((s) => mixSeed(s, Streams.moduleNoise + BigInt(evaluation)));
        hooks.push({ modules: m.modules, action: 'noise', scale: m.scale, seed, start, length });
      }
    }
    return hooks;
  }

  #grid(model: Model, path: string): [number, number] {
    const site = model.attentionSites.find((s) => s.path === path);
    if (!site?.grid) {
      throw new TorchGuidanceError(
        ErrorCodes.NO_GRID,
        `the attention site '${path}' has no known query grid, so its map cannot be laid over the sample. ` +
          'Fix: probe the model with real inputs (model.probe(...)) or add a model card.',
      );
    }
    return site.grid;
  }

  async #degraded(
    spec: NonNullable<Branch['degrade']>,
    x: Tensor,
    results: Map<string, Tensor>,
    captured: Map<string, { map: Tensor; grid: [number, number] }[]>,
    evaluation: number,
  ): Promise<Tensor> {
    const sourceKey = this.#plannedKey(spec.source);
    const x0 = results.get(sourceKey)!;
    // SAG with a mask model: its forward on x0 first (a third model, run here, between the stages).
    using mask = spec.maskSource ? await modelAttentionMask(spec.maskSource, x0) : undefined;
    return degradedInput(spec, {
      x,
      x0,
      captures: captured.get(sourceKey) ?? [],
      seeds: this.#seeds,
      evaluation,
      ...(mask ? { mask } : {}),
    });
  }

  #plannedKey(branch: Branch): string {
    return branchKey(branch, this.#inputs.unconditional);
  }

  /** The conditions of a batched forward, one slice per branch (the one place that repeats side inputs). */
  #batchConditions(branches: Branch[], evaluation: number, owned: Tensor[]): readonly Tensor[] | undefined {
    if (this.main.conditioning.kind === 'none') return undefined;
    // Given and null conditions are the same at every step: join them once
    // per run (one op less per forward); random ones (ICG) are fresh per step.
    const fixed = branches.every((b) => b.condition !== 'random');
    const key = branches.map((b) => b.condition).join(',');
    const cached = fixed ? this.#joinedConditions.get(key) : undefined;
    if (cached) return cached;
    const parts = branches.map((b) => this.#condition(b.condition, evaluation, owned));
    if (parts.length === 1) return parts[0];
    // Input by input: each forward input is the branches' slices joined.
    const joined = parts[0]!.map((_, input) => cat(parts.map((p) => p[input]!)));
    if (fixed) this.#joinedConditions.set(key, joined);
    else owned.push(...joined);
    return joined;
  }

  #condition(kind: Branch['condition'], evaluation: number, owned: Tensor[]): readonly Tensor[] {
    const resolved = this.#inputs.unconditional && kind === 'given' ? 'null' : kind;
    if (resolved === 'given') return this.#conditions.given!;
    if (resolved === 'null') return this.#conditions.null!;
    const conditioning = this.main.conditioning;
    const device = this.main.model.device;
    const streams = this.#seeds.map((s) => mixSeed(s, Streams.randomCondition + BigInt(evaluation)));
    if (conditioning.kind === 'class') {
      const labels = streams.map((s) => BigInt(Math.floor(uniformFromSeed(s, 0) * conditioning.numClasses)));
      const random = tensor(BigInt64Array.from(labels), [labels.length], { device });
      owned.push(random);
      return [random];
    }
    // A Gaussian per sample and input with the requested condition's
    // per-sample mean and std (ICG for tensor conditions); inputs the null
    // branch shares with the given one (a card's 'same': SDXL's size ids) and
    // integer inputs keep the given value.
    const kept = conditioning.kind === 'named' ? Object.values(conditioning.inputs).map((i) => i.null === 'same' || i.dtype.startsWith('int')) : [false];
    return this.#conditions.given!.map((given, input) => {
      if (kept[input]) return given;
      // Input 0 draws from the stream itself, as single-input models always
      // have (their samples stay reproducible); further inputs mix in their index.
      using noise = randn(given.shape, { seed: input === 0 ? streams : streams.map((s) => mixSeed(s, BigInt(input))), device });
      using std = given.stdPerSample(true);
      using mean = given.meanPerSample(true);
      using scaled = noise.mul(std);
      const random = scaled.add(mean);
      owned.push(random);
      return random;
    });
  }
}
