/**
 * The in-memory picture every image function takes and returns: 8-bit
 * channels, row-major, no padding. Kept apart from the PNG codec so that
 * drawing code depends on the pixels, not on a file format.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';

/** 8-bit pixels, row-major HWC: `data[(y * width + x) * channels + c]`. */
export interface RasterImage {
  width: number;
  height: number;
  /** 1 gray, 3 RGB, 4 RGBA (alpha not premultiplied). */
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/**
 * Throws unless `image` is a well-formed RasterImage (positive integer sizes,
 * a supported channel count, exactly width*height*channels bytes). Every
 * function taking a RasterImage calls this first, so a bad image fails where
 * it enters rather than as a garbled picture.
 */
export function checkRaster(image: RasterImage, what = 'image'): void {
  const { width, height, channels, data } = image;
  const fail = (why: string) => {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `${what}: ${why}`);
  };
  if (!Number.isInteger(width) || width <= 0 || width > 0x7fffffff) fail(`width must be a positive integer, got ${width}`);
  if (!Number.isInteger(height) || height <= 0 || height > 0x7fffffff) fail(`height must be a positive integer, got ${height}`);
  if (channels !== 1 && channels !== 3 && channels !== 4) fail(`channels must be 1, 3 or 4, got ${String(channels)}`);
  if (!(data instanceof Uint8Array)) fail('data must be a Uint8Array');
  if (data.length !== width * height * channels) {
    fail(`data has ${data.length} bytes; ${width}x${height}x${channels} needs ${width * height * channels}`);
  }
}
