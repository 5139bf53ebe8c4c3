/** Guidance strategies and the pieces to write new ones. */
export { apg, apgSchema, type ApgOptions } from './strategies/apg.js';
export { apgMix, apgMixSchema, type ApgMixOptions } from './strategies/apg-mix.js';
export { fdg, fdgSchema, type FdgOptions } from './strategies/fdg.js';
export { magnitudeAware, magnitudeAwareSchema, type MagnitudeAwareOptions } from './strategies/magnitude-aware.js';
export { tcfg, tcfgSchema, type TcfgOptions } from './strategies/tcfg.js';
export { layerSkipSchema, FEED_FORWARD_NAMES, type LayerSkipOptions, type SkipPart } from './strategies/layer-skip.js';
export { spaceSchema, type Space } from './strategies/space.js';
export { autoguidance, autoguidanceSchema, type AutoguidanceOptions } from './strategies/autoguidance.js';
export { cfg, cfgSchema, guidanceInterval, type CfgOptions } from './strategies/cfg.js';
export { cfgZeroStar, cfgZeroStarSchema, type CfgZeroStarOptions } from './strategies/cfg-zero-star.js';
export { cfgpp, cfgppSchema, type CfgppOptions } from './strategies/cfgpp.js';
export { icg, icgSchema, type IcgOptions } from './strategies/icg.js';
export { pag, pagSchema, type PagOptions } from './strategies/pag.js';
export { rescale, rescaleSchema, type RescaleOptions } from './strategies/rescale.js';
export {
  blurGuidance,
  highPassGuidance,
  lowPassGuidance,
  maskSourceSchema,
  randomResetGuidance,
  sag,
  sagSchema,
  squareResetGuidance,
  type BlurGuidanceOptions,
  type HighPassGuidanceOptions,
  type LowPassGuidanceOptions,
  type MaskSourceOptions,
  type ResetGuidanceOptions,
  type SagOptions,
} from './strategies/sag.js';
export { seg, segSchema, type SegOptions } from './strategies/seg.js';
export { sims, simsSchema, type SimsOptions } from './strategies/sims.js';
export { slg, slgSchema, type SlgOptions } from './strategies/slg.js';
export { tsg, tsgSchema, type TsgOptions } from './strategies/tsg.js';
export { defineStrategy, isFactoryStrategy } from './strategies/define.js';
export {
  GUIDANCE_FORMAT,
  GUIDANCE_VERSION,
  guidanceFromJSON,
  guidanceToJSON,
  type GuidanceDataOptions,
  type GuidanceDocument,
  type GuidanceJson,
} from './serialize.js';
export { guidanceFromSpec, guidanceSpecNames, type GuidanceSpecOptions } from './spec.js';
export { windowed, inWindow, inSteps, isActive, scheduleFields, windowSchema, type Schedule, type WindowOptions } from './options.js';
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
  MaskSource,
  StepInfo,
  Strategy,
  StrategyContext,
  Term,
  TermContext,
} from './types.js';
