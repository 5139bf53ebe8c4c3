/**
 * torch-guidance: TorchScript diffusion models in Node.js, on libtorch. The
 * root entry is the sampling API: models and their hooks, guidance
 * strategies, sample() and explain(), samplers, tensors, errors and runtime
 * information. The tools have entries of their own: `torch-guidance/image`
 * (images from samples, PNG, figures), `torch-guidance/metrics` (the
 * evaluation classifier, FD, precision/recall), `torch-guidance/io` (image
 * sets from disk) and `torch-guidance/queue` (runs spread over machines).
 *
 * @module torch-guidance
 */
export { globToRegExp, type AttentionCandidate, type AttentionHook, type AttentionSite, type SiteSelector } from './hooks/attention.js';
export type { Hook } from './hooks/forward-plan.js';
export type { ModuleHook, ModuleSite } from './hooks/module-hooks.js';
export { ErrorCodes, TorchGuidanceError, isTorchGuidanceError, type ErrorCode } from './core/errors.js';
export {
  Model,
  disposeOutput,
  loadModel,
  type CallOptions,
  type ForwardInput,
  type ForwardOutput,
  type LoadModelOptions,
  type ModelDescription,
  type Preconditioning,
  type RunOptions,
  type RunResult,
} from './model/model.js';
export {
  checkModelCard,
  classifierCardSchema,
  decoderCardSchema,
  denoiserCardSchema,
  type ClassifierCard,
  type DecoderCard,
  type DenoiserCard,
  type ModelCard,
} from './model/model-card.js';
export * from './guidance/index.js';
export { explain } from './sampling/explain.js';
export { sample, type SampleOptions, type SampleProgress, type SampleResult } from './sampling/sample.js';
export { samplerSchema, type SamplerName, type SamplerOptions } from './sampling/samplers/samplers.js';
export { sigmaScheduleSchema, sigmasFor, type SigmaScheduleOptions } from './sampling/samplers/sigma-schedules.js';
export { noiseScheduleFromCard, sigmaToTimestep, timestepToSigma, type NoiseSchedule } from './model/noise-schedule.js';
export {
  cudaMemory,
  jobTimes,
  liveHandles,
  runtimeInfo,
  setBlasThreads,
  setThreads,
  type BlasInfo,
  type CudaMemory,
  type JobTimes,
  type RuntimeInfo,
  type ThreadSettings,
} from './core/runtime.js';
export { REFERENCE_BLAS_WARNING } from './core/blas-warning.js';
export { resourceLimits, setResourceLimits, type ResourceLimits } from './core/limits.js';
export {
  cat,
  full,
  isTensor,
  randn,
  tensor,
  type AnyTypedArray,
  type DeviceName,
  type Dtype,
  type RandnOptions,
  type ResolvedDevice,
  type Tensor,
  type TensorOptions,
  type TypedArrayFor,
} from './core/tensor.js';
