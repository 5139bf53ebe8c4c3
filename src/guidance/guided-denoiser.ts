/**
 * The guided denoiser: executes a step's plan and mixes the branches,
 *
 *   D = D_base + Σ_i s_i · (D_pos_i − D_neg_i),   then each strategy's finalize.
 *
 * It owns the condition tensors of a batch (given, null, and the random ones
 * ICG draws per evaluation) and the per-run state of non-linear terms.
 * Every intermediate tensor is disposed before predict() returns. Its terms
 * are set up and checked in guided-setup.ts, mixed in guided-mix.ts, and
 * their conditions made in branch-conditions.ts.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { Streams, mixSeed } from '../core/seeds.js';
import { type Tensor, isTensor } from '../core/tensor.js';
import type { Hook } from '../hooks/forward-plan.js';
import type { Model } from '../model/model.js';
import { modelAttentionMask } from './attention-mask.js';
import { branchKey } from './branch.js';
import { BranchConditions } from './branch-conditions.js';
import { degradedInput } from './degrade.js';
import type { Denoiser } from './denoiser.js';
import { type MixContext, mixPrediction } from './guided-mix.js';
import { type GuidedDenoiserOptions, setUpGuidance } from './guided-setup.js';
import { type PlanInputs, type PlanSummary, type StepPlan, planStep, summarise } from './planner.js';
import type { Branch, GuidedPrediction, StepInfo, Term } from './types.js';

export type { Conditions, GuidedDenoiserOptions } from './guided-setup.js';

/** Where a guided denoiser's time went, in ms, summed over its steps. */
export interface PhaseTimes {
  forwardMs: number;
  mixMs: number;
}

/** One batch's guided prediction per step: plans each step, runs its forwards and mixes their results. */
export class GuidedDenoiser {
  readonly main: Denoiser;
  readonly #inputs: PlanInputs;
  readonly #conditions: BranchConditions;
  readonly #seeds: readonly bigint[];
  readonly #parallel: number | 'auto';
  readonly #signal: AbortSignal | undefined;
  readonly #denoisers: Map<string, Denoiser>;
  readonly #state = new Map<Term, Map<string, unknown>>();
  readonly #mixContext: MixContext;
  #evaluation = 0;
  /** Forwards issued and time spent, for timings and tests. */
  readonly times: PhaseTimes = { forwardMs: 0, mixMs: 0 };
  forwards = 0;

  constructor(options: GuidedDenoiserOptions) {
    this.main = options.main;
    this.#seeds = options.seeds;
    this.#parallel = options.parallel ?? 1;
    this.#signal = options.signal;
    const { inputs, strategyOf, denoisers } = setUpGuidance(options);
    this.#inputs = inputs;
    this.#denoisers = denoisers;
    for (const term of inputs.terms) this.#state.set(term, new Map());
    this.#conditions = new BranchConditions(options.main, options.conditions, options.seeds, options.unconditional);
    this.#mixContext = { strategies: options.strategies, state: this.#state, strategyOf, checkFinite: options.checkFinite ?? false };
  }

  /** Whether a strategy asks the sampler to re-noise with another branch (CFG++: first-order samplers only). */
  get renoises(): boolean {
    return this.#inputs.strategies.some((s) => s.renoiseBranch?.(this.#inputs.context) !== undefined);
  }

  /** Frees per-run state (APG's momentum, the joined conditions). */
  dispose(): void {
    this.#conditions.dispose();
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
            const conditions = this.#conditions.forBranches(forward.branches.map((b) => b.branch), evaluation, owned);
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
      const prediction = mixPrediction(this.#mixContext, plan, x, info, { results, shiftedInputs, owned });
      this.times.mixMs += performance.now() - mixStart;
      return prediction;
    } finally {
      for (const t of owned) t.dispose();
    }
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
    for (const [index, m] of (branch.modules ?? []).entries()) {
      if (m.action === 'skip') {
        hooks.push({ modules: m.modules, action: 'skip', start, length });
      } else if (m.action === 'dropout') {
        // A fresh mask per model evaluation and module entry (layer skip gives
        // each module its own, so masks are independent across layers), one
        // seed per sample: batch-invariant.
        const seed = this.#seeds.map((s) => mixSeed(mixSeed(s, Streams.moduleDropout + BigInt(evaluation)), BigInt(index)));
        hooks.push({ modules: m.modules, action: 'dropout', p: m.p, seed, start, length });
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
}
