/** Guidance strategies and the pieces to write new ones. */
export { apg, apgSchema, type ApgOptions } from './strategies/apg.js';
export { autoguidance, autoguidanceSchema, type AutoguidanceOptions } from './strategies/autoguidance.js';
export { cfg, cfgSchema, guidanceInterval, type CfgOptions } from './strategies/cfg.js';
export { cfgZeroStar, cfgZeroStarSchema, type CfgZeroStarOptions } from './strategies/cfg-zero-star.js';
export { cfgpp, cfgppSchema, type CfgppOptions } from './strategies/cfgpp.js';
export { icg, icgSchema, type IcgOptions } from './strategies/icg.js';
export { pag, pagSchema, type PagOptions } from './strategies/pag.js';
export { rescale, rescaleSchema, type RescaleOptions } from './strategies/rescale.js';
export {
  blurGuidance,
  lowPassGuidance,
  randomResetGuidance,
  sag,
  sagSchema,
  squareResetGuidance,
  type BlurGuidanceOptions,
  type LowPassGuidanceOptions,
  type ResetGuidanceOptions,
  type SagOptions,
} from './strategies/sag.js';
export { seg, segSchema, type SegOptions } from './strategies/seg.js';
export { sims, simsSchema, type SimsOptions } from './strategies/sims.js';
export { slg, slgSchema, type SlgOptions } from './strategies/slg.js';
export { tsg, tsgSchema, type TsgOptions } from './strategies/tsg.js';
export { defineStrategy } from './strategies/define.js';
export { windowed, inWindow, windowSchema, type WindowOptions } from './options.js';
export { Denoiser, type Scalings } from './denoiser.js';
export type { PlanSummary } from './planner.js';
export type {
  Branch,
  BranchAttention,
  BranchCondition,
  BranchModule,
  Degradation,
  FinalizeContext,
  GuidedPrediction,
  StepInfo,
  Strategy,
  StrategyContext,
  Term,
  TermContext,
} from './types.js';
