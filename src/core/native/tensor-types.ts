/** Types of the native Tensor handle (native/src/napi/tensor.h). */

/** The dtype table: each name and the TypedArray that carries its bytes. */
export type Dtype =
  | 'float32' // Float32Array
  | 'float64' // Float64Array
  | 'float16' // Uint16Array (IEEE half bits)
  | 'bfloat16' // Uint16Array (bfloat16 bits)
  | 'int64' // BigInt64Array
  | 'int32' // Int32Array
  | 'int16' // Int16Array
  | 'int8' // Int8Array
  | 'uint8' // Uint8Array
  | 'bool'; // Uint8Array (0 or 1)

/** A device to put a tensor or model on: `'auto'`, `'cpu'`, `'cuda'`, `'cuda:N'`. */
export type DeviceName = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;
/** Where a tensor or model actually is. */
export type ResolvedDevice = 'cpu' | `cuda:${number}`;

/** The TypedArray that carries the bytes of dtype `D`. */
export type TypedArrayFor<D extends Dtype> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'float16' | 'bfloat16'
      ? Uint16Array
      : D extends 'int64'
        ? BigInt64Array
        : D extends 'int32'
          ? Int32Array
          : D extends 'int16'
            ? Int16Array
            : D extends 'int8'
              ? Int8Array
              : Uint8Array;

/** Any TypedArray a tensor can be made from or copied to. */
export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/**
 * A handle to a tensor that lives on its device (CPU or CUDA). Handles are
 * immutable: every op returns a new handle. Free a handle with dispose() (or
 * `using`); the garbage collector only frees forgotten ones, late.
 */
export interface NativeTensor extends Disposable {
  readonly shape: number[];
  readonly dtype: Dtype;
  readonly device: ResolvedDevice;
  readonly numel: number;
  readonly disposed: boolean;

  /** Elementwise with broadcasting, or with a number. */
  add(other: NativeTensor | number): NativeTensor;
  sub(other: NativeTensor | number): NativeTensor;
  mul(other: NativeTensor | number): NativeTensor;
  div(other: NativeTensor | number): NativeTensor;
  neg(): NativeTensor;
  sqrt(): NativeTensor;
  /** this + weight * (end - this) */
  lerp(end: NativeTensor, weight: NativeTensor | number): NativeTensor;

  /** Mean over every axis but the batch axis: shape [N] (or [N, 1, ...] with keepDim). */
  meanPerSample(keepDim?: boolean): NativeTensor;
  /** Unbiased standard deviation (N - 1) over every axis but the batch axis. */
  stdPerSample(keepDim?: boolean): NativeTensor;
  /** L2 norm over every axis but the batch axis. */
  normPerSample(keepDim?: boolean): NativeTensor;

  /** Sum over every axis but the batch axis (per-sample dot products: a.mul(b).sumPerSample()). */
  sumPerSample(keepDim?: boolean): NativeTensor;
  /** Whether every value is finite (no NaN, no ±infinity): one reduction; on CUDA it waits for the device. */
  allFinite(): boolean;
  /** Sum or mean over one axis (negative counts from the end). */
  sumAxis(axis: number, keepDim?: boolean): NativeTensor;
  meanAxis(axis: number, keepDim?: boolean): NativeTensor;
  /** 1 where this > value, else 0, as a floating tensor. */
  greaterThan(value: number): NativeTensor;
  /** Clamps to [min, max]; pass null for an open side. */
  clamp(min: number | null, max?: number | null): NativeTensor;

  /** Separable Gaussian blur over H, W of [N, C, H, W] with reflect padding (odd kernelSize). */
  gaussianBlur(kernelSize: number, sigma: number): NativeTensor;
  /** Keeps spatial frequencies within `cutoff` (fraction of Nyquist, (0, 1]) of [N, C, H, W]. */
  lowPass(cutoff: number): NativeTensor;
  /** Nearest-neighbour resize of [N, C, h, w] to [N, C, height, width]. */
  resizeNearest(height: number, width: number): NativeTensor;

  /** Samples [start, start + length) of the batch axis (a view, no copy). */
  narrow(start: number, length: number): NativeTensor;
  /** The whole batch `times` times over: [a, b] -> [a, b, a, b]. */
  repeat(times: number): NativeTensor;
  /** New shape with the same element count; one entry may be -1. */
  reshape(shape: readonly number[]): NativeTensor;
  /** A copy on another device and/or in another dtype. */
  to(options: { device?: DeviceName; dtype?: Dtype }): NativeTensor;
  clone(): NativeTensor;

  /** Copies the data to JS off the main thread (device -> host when needed). */
  toArray(): Promise<AnyTypedArray>;
  /** Frees the handle's reference now. Idempotent. */
  dispose(): void;
}
