/**
 * torch-guidance: TorchScript diffusion models in Node.js, on libtorch.
 */
export { ErrorCodes, TorchGuidanceError, isTorchGuidanceError, type ErrorCode } from './errors.js';
export {
  Model,
  loadModel,
  type CallOptions,
  type ForwardInput,
  type ForwardOutput,
  type LoadModelOptions,
  type ModelDescription,
} from './model.js';
export { liveHandles, runtimeInfo, type RuntimeInfo } from './runtime.js';
export {
  cat,
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
} from './tensor.js';
