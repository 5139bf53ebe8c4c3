/**
 * Tensor factories. A Tensor is a handle to data on its device; see
 * NativeTensor for the ops.
 */
import { z } from 'zod';

import { native } from './native/binding.js';
import type { AnyTypedArray, DeviceName, NativeTensor } from './native/tensor-types.js';
import { parseOptions } from './options.js';

export type { AnyTypedArray, DeviceName, Dtype, ResolvedDevice, TypedArrayFor } from './native/tensor-types.js';
/**
 * An immutable handle to a libtorch tensor on a device. Every op returns a new
 * handle; dispose handles you are done with (or `using`).
 */
export type Tensor = NativeTensor;

export const dtypeSchema = z.enum([
  'float32',
  'float64',
  'float16',
  'bfloat16',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
]);

/**
 * Device names are checked natively (auto, cpu, cuda, cuda:N), so that an
 * unknown name and a missing CUDA get their own error codes
 * (ERR_UNKNOWN_DEVICE, ERR_CUDA_UNAVAILABLE).
 */
export const deviceSchema = z.custom<DeviceName>((value) => typeof value === 'string', 'a device name (auto, cpu, cuda or cuda:N)');

const shapeSchema = z.array(z.number().int().nonnegative()).readonly();

const tensorOptionsSchema = z
  .object({
    /** Defaults to the TypedArray's natural dtype (Uint16Array: float16, Uint8Array: uint8). */
    dtype: dtypeSchema.optional(),
    /** Defaults to 'cpu'. */
    device: deviceSchema.optional(),
  })
  .strict();

const seedSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.bigint().nonnegative()]);

const randnOptionsSchema = z
  .object({
    /** One seed for the whole tensor, or one per sample (batch-invariant noise). */
    seed: z.union([seedSchema, z.array(seedSchema).readonly()]),
    /** A floating dtype; defaults to float32. */
    dtype: dtypeSchema.optional(),
    /** Defaults to 'cpu'. */
    device: deviceSchema.optional(),
  })
  .strict();

/** Options of {@link tensor}: `dtype` (default from the TypedArray), `device` (default cpu). */
export type TensorOptions = z.input<typeof tensorOptionsSchema>;
/**
 * Options of {@link randn}: `seed` (one, or one per sample), `dtype`
 * (floating, default float32), `device` (default cpu).
 */
export type RandnOptions = z.input<typeof randnOptionsSchema>;

/**
 * Copies `data` into a new tensor of `shape`. The dtype follows the TypedArray
 * (Float32Array: float32, BigInt64Array: int64, Uint16Array: float16 bits, ...)
 * unless `options.dtype` picks another with the same TypedArray
 * (bfloat16 for Uint16Array, bool for Uint8Array).
 */
export function tensor(data: AnyTypedArray, shape: readonly number[], options: TensorOptions = {}): Tensor {
  const parsedShape = parseOptions(shapeSchema, shape, 'shape');
  return native.Tensor.fromArray(data, parsedShape, parseOptions(tensorOptionsSchema, options, 'tensor options'));
}

/**
 * Standard normal noise from an explicit generator. The noise is drawn on the
 * CPU in float32 and then moved: the same seed gives the same noise on every
 * device. With one seed per sample, sample i is the same in any batch.
 */
export function randn(shape: readonly number[], options: RandnOptions): Tensor {
  const parsedShape = parseOptions(shapeSchema, shape, 'shape');
  return native.Tensor.randn(parsedShape, parseOptions(randnOptionsSchema, options, 'randn options'));
}

/**
 * A tensor of `shape` filled with `value` (dtype float32 unless given),
 * made on its device: on CUDA a fill kernel, with no copy from the host.
 */
export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  const parsedShape = parseOptions(shapeSchema, shape, 'shape');
  const parsedValue = parseOptions(z.number().finite(), value, 'full value');
  return native.Tensor.full(parsedShape, parsedValue, parseOptions(tensorOptionsSchema, options, 'tensor options'));
}

/** Concatenates tensors along the batch axis. */
export function cat(tensors: readonly Tensor[]): Tensor {
  return native.Tensor.cat(tensors);
}

/** Whether `value` is a tensor handle. */
export function isTensor(value: unknown): value is Tensor {
  return value instanceof (native.Tensor as unknown as new () => object);
}

