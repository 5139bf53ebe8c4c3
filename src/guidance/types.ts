/**
 * The vocabulary of guidance. A guided prediction is
 *
 *   D = D_base + Σ_i s_i(sigma) · (D_pos_i − D_neg_i)
 *
 * where D_base is the main model's prediction for the requested condition and
 * every D_* is a Branch: a model, a condition, attention perturbations and an
 * input (x itself, or a degraded x from an earlier stage). A Strategy turns
 * its options into Terms; the planner computes each distinct branch once and
 * batches branches that share a model and an input into one forward.
 */
import type { AttentionSite, SiteSelector } from '../hooks/attention.js';
import type { Model } from '../model/model.js';
import type { ModuleSite } from '../hooks/module-hooks.js';
import type { Tensor } from '../core/tensor.js';

/** An attention perturbation of one branch: PAG's identity, SEG's query blur, or no attention at all (skip). */
export interface BranchAttention {
  sites: SiteSelector;
  action: 'identity' | 'blur' | 'skip';
  /** blur: sigma in grid cells (Infinity: every query is the mean query). */
  sigma?: number;
}

/**
 * A module-output perturbation of one branch (see ModuleSite): skip the
 * selected blocks (skip-layer guidance), or add scale · n to their output
 * with n ~ N(0, I) (time-step guidance on the time embedding). The noise is
 * drawn fresh per model evaluation from each sample's seed, so a sample's
 * noise does not depend on its batch.
 */
export type BranchModule =
  | { modules: SiteSelector; action: 'skip' }
  | { modules: SiteSelector; action: 'noise'; scale: number }
  | { modules: SiteSelector; action: 'dropout'; p: number };

/**
 * The condition a branch sees: the requested one, the null condition, or an
 * independent random one drawn fresh per model evaluation (ICG).
 */
export type BranchCondition = 'given' | 'null' | 'random';

/**
 * SAG's mask from a second model (a ViT such as DINO) run on the predicted
 * clean image instead of the denoiser's own attention (attention-mask.ts).
 */
export interface MaskSource {
  model: Model;
  /** Its attention sites to capture; default its last self-attention site. */
  sites?: SiteSelector;
  /** 'cls': the first token's attention row; 'sum': attention received, summed over queries. */
  reduce: 'cls' | 'sum';
  /** Tokens before the patch tokens (class token, registers). */
  prefixTokens: number;
  /** Masked where the weight exceeds threshold × the mean over patches. */
  threshold: number;
  /** The model sees inputScale · x0 + inputShift. */
  inputScale: number;
  inputShift: number;
}

/** Where a second-stage branch's input comes from: x0 of `source`, degraded, then re-noised. */
export interface Degradation {
  kind: 'sag' | 'blur' | 'lowpass' | 'highpass' | 'random-reset' | 'square-reset';
  source: Branch;
  /** sag: the sites whose attention is captured for the mask. */
  sites?: SiteSelector;
  /** sag: the mask comes from this model's attention instead (then `sites` is unused). */
  maskSource?: MaskSource;
  /** sag: a key cell is degraded when its attention summed over queries exceeds this (1 = above average). */
  threshold?: number;
  /** The Gaussian blur that degrades (sag, blur, the resets). */
  kernelSize: number;
  blurSigma: number;
  /** lowpass: kept radius, highpass: dropped radius, as a fraction of Nyquist. */
  cutoff?: number;
  /** random-reset, square-reset: the fraction of the area degraded. */
  fraction?: number;
  /** random-reset: patch side in pixels. */
  patch?: number;
}

/**
 * One prediction a term needs: a model, a condition, and optional attention
 * or module perturbations or a degraded input. Equal branches are computed once.
 */
export interface Branch {
  /** 'main', or a second model (autoguidance's guide, the SIMS negative). */
  model: 'main' | Model;
  condition: BranchCondition;
  attention?: readonly BranchAttention[];
  modules?: readonly BranchModule[];
  /** A second-stage branch: its input is `degrade`'s output instead of x. */
  degrade?: Degradation;
}

/** Where the sampler is when it asks for a prediction. */
export interface StepInfo {
  /** Sampler step index, 0-based. */
  step: number;
  steps: number;
  sigma: number;
  /** The model's discrete timestep for sigma (fractional), or null for EDM models. */
  timestep: number | null;
}

export interface TermContext extends StepInfo {
  /** The noisy input of this evaluation. */
  x: Tensor;
  /** Per-run state of this term (APG's momentum); survives across steps of one run. */
  state: Map<string, unknown>;
}

/** One term of the guided prediction: scale(σ) · (D_positive − D_negative). */
export interface Term {
  /** Shown by explain() and in reports. */
  label: string;
  positive: Branch;
  negative: Branch;
  /** s_i at this step; 0 switches the term off and its branches are not computed. */
  scale(info: StepInfo): number;
  /**
   * The term's contribution; default scale · (positive − negative). Non-linear
   * terms (APG, CFG-Zero*) override it; returns a new tensor, leaves inputs alone.
   */
  delta?(positive: Tensor, negative: Tensor, scale: number, context: TermContext): Tensor;
}

/** What a strategy knows when it builds its terms. */
export interface StrategyContext {
  /** The samples carry a condition (class labels or a tensor), not only the null one. */
  conditional: boolean;
  /** Every strategy of this guidance list (SAG picks its branch by whether CFG is present). */
  strategies: readonly Strategy[];
  /** The main model's conditioning kind. */
  conditioning: 'none' | 'class' | 'tensor' | 'named';
  /** The main model card's module path of the time embedding, if it names one. */
  timeEmbedding?: string;
  /** The main model card's default sites per strategy (a version 2 card's guidanceSites). */
  guidanceSites?: Readonly<Record<string, string | readonly string[]>>;
  /** One sample's shape, without the batch axis (the main model card's sampleShape). */
  sampleShape: readonly number[];
  /** The main model's attention and module sites (layer-skip options resolve their blocks against them). */
  attentionSites: readonly AttentionSite[];
  moduleSites: readonly ModuleSite[];
}

export interface FinalizeContext extends StepInfo {
  x: Tensor;
  /** The main model's prediction for the requested condition. */
  base: Tensor;
}

/** One guidance method with its settings. Build with the factories (cfg(), pag(), ...) or write your own. */
export interface Strategy {
  readonly name: string;
  /** The settings after defaults, for reports and explain(). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The terms this strategy adds for a guidance list and model. */
  terms(context: StrategyContext): Term[];
  /** A non-linear correction after the terms are summed (guidance rescale, CFG-Zero*'s zero init). */
  finalize?(guided: Tensor, context: FinalizeContext): Tensor | undefined;
  /**
   * CFG++: the branch whose noise estimate the sampler re-noises with at this
   * step (undefined: the guided one, e.g. outside the strategy's window).
   * Called without `info` to ask whether the strategy ever re-noises.
   */
  renoiseBranch?(context: StrategyContext, info?: StepInfo): Branch | undefined;
}

/** What the guided denoiser hands the sampler. */
export interface GuidedPrediction {
  denoised: Tensor;
  /** CFG++: the x0 whose implied noise the sampler uses to re-noise (else denoised). */
  renoise?: Tensor;
}
