/**
 * Samples (a [N, C, H, W] tensor in the model's data range) to 8-bit images:
 * the bridge between sample() and the PNG, grid and .npz writers. The one
 * copy to the host happens here, when the caller asks for pixels.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { RasterImage } from './raster.js';

/** Options of {@link toImages} and {@link toUint8Batch}. */
export interface ToImagesOptions {
  /**
   * The data range mapped to 0..255 (default [-1, 1], the range of the shipped
   * Fashion-MNIST models); values outside it are clipped.
   */
  range?: readonly [number, number];
}

/** 8-bit NHWC bytes of a [N, C, H, W] sample batch, and its sizes. */
export interface UInt8Batch {
  count: number;
  height: number;
  width: number;
  channels: 1 | 3 | 4;
  /** `data[((n * height + y) * width + x) * channels + c]`. */
  data: Uint8Array;
}

function checkSamples(samples: Tensor): [number, 1 | 3 | 4, number, number] {
  const shape = samples.shape;
  if (shape.length !== 4 || ![1, 3, 4].includes(shape[1]!)) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_ARGUMENT,
      `images need a [N, C, H, W] tensor with C = 1, 3 or 4; got shape [${shape.join(', ')}]. ` +
        'Fix: pass sample().images, or reshape to that layout.',
    );
  }
  return [shape[0]!, shape[1] as 1 | 3 | 4, shape[2]!, shape[3]!];
}

function checkRange(range: readonly [number, number]): void {
  const [low, high] = range;
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(high > low)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `range must be two finite numbers [low, high] with high > low; got [${low}, ${high}].`);
  }
}

/** The whole batch as uint8 NHWC (the layout FID tools read from .npz files). */
export async function toUint8Batch(samples: Tensor, options: ToImagesOptions = {}): Promise<UInt8Batch> {
  const [count, channels, height, width] = checkSamples(samples);
  const range = options.range ?? [-1, 1];
  checkRange(range);
  const values = await samples.toArray();
  const [low, high] = range;
  const scale = 255 / (high - low);
  const plane = height * width;
  const data = new Uint8Array(count * plane * channels);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < channels; c++) {
      const source = (n * channels + c) * plane;
      for (let p = 0; p < plane; p++) {
        const v = (Number(values[source + p]) - low) * scale;
        // Round half up after clipping; NaN becomes 0 (black), never garbage.
        data[(n * plane + p) * channels + c] = v > 0 ? (v < 255 ? Math.round(v) : 255) : 0;
      }
    }
  }
  return { count, height, width, channels, data };
}

/** One RasterImage per sample. */
export async function toImages(samples: Tensor, options: ToImagesOptions = {}): Promise<RasterImage[]> {
  const batch = await toUint8Batch(samples, options);
  const size = batch.height * batch.width * batch.channels;
  return Array.from({ length: batch.count }, (_, n) => ({
    width: batch.width,
    height: batch.height,
    channels: batch.channels,
    data: batch.data.slice(n * size, (n + 1) * size),
  }));
}
