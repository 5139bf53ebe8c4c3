/**
 * Turning scalar fields (guidance differences, attention maps, per-pixel
 * error) into pictures: a perceptually uniform colormap, so equal steps in
 * value look like equal steps in colour, and an overlay onto the sample.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { checkRaster, type RasterImage } from './raster.js';

type Stop = readonly [number, number, number];

/** matplotlib's viridis at 16 evenly spaced points (0 -> #440154, 1 -> #fde725). */
export const VIRIDIS: readonly Stop[] = [
  [68, 1, 84], [72, 26, 108], [71, 47, 125], [65, 68, 135], [57, 86, 140], [49, 104, 142], [42, 120, 142], [35, 136, 142],
  [31, 152, 139], [34, 168, 132], [53, 183, 121], [84, 197, 104], [122, 209, 81], [165, 219, 54], [210, 226, 27], [253, 231, 37],
];

/** matplotlib's magma at 16 evenly spaced points (0 -> near black, 1 -> pale yellow). */
export const MAGMA: readonly Stop[] = [
  [0, 0, 4], [11, 9, 36], [32, 17, 75], [59, 15, 112], [87, 21, 126], [114, 31, 129], [140, 41, 129], [168, 50, 125],
  [196, 60, 117], [222, 73, 104], [241, 96, 93], [250, 127, 94], [254, 159, 109], [254, 191, 132], [253, 222, 160], [252, 253, 191],
];

const MAPS = { viridis: VIRIDIS, magma: MAGMA } as const;

/** Options of {@link heatmap}. */
export interface HeatmapOptions {
  /** Value drawn as the first stop; default the smallest finite value. */
  min?: number;
  /** Value drawn as the last stop; default the largest finite value. */
  max?: number;
  /** Default 'viridis'. */
  colormap?: keyof typeof MAPS;
}

/** The colour at t in [0, 1] (clamped), interpolated linearly between stops. */
export function colormapColor(t: number, stops: readonly Stop[] = VIRIDIS): [number, number, number] {
  const clamped = Number.isNaN(t) ? 0 : Math.min(1, Math.max(0, t));
  const pos = clamped * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(pos));
  const f = pos - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + (b[c]! - a[c]!) * f)) as [number, number, number];
}

/**
 * Colours a row-major `width` x `height` field: `min` maps to the first stop,
 * `max` to the last, values outside are clamped, NaN is drawn as `min`. If
 * max <= min every value draws as the first stop.
 */
export function heatmap(values: Float32Array, width: number, height: number, options: HeatmapOptions = {}): RasterImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || values.length !== width * height) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `heatmap: ${values.length} values do not make a ${width}x${height} image`);
  }
  const stops = MAPS[options.colormap ?? 'viridis'];
  if (stops === undefined) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `heatmap: unknown colormap ${String(options.colormap)}`);
  let lo = Infinity;
  let hi = -Infinity;
  if (options.min === undefined || options.max === undefined) {
    for (const v of values) {
      if (Number.isFinite(v)) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    }
  }
  const min = options.min ?? (lo === Infinity ? 0 : lo);
  const max = options.max ?? (hi === -Infinity ? 0 : hi);
  const range = max - min;
  const data = new Uint8Array(width * height * 3);
  values.forEach((v, i) => {
    const t = range > 0 ? (v - min) / range : 0;
    data.set(colormapColor(t, stops), i * 3);
  });
  return { width, height, channels: 3, data };
}

/**
 * `heat` over `base` with opacity `alpha` in [0, 1]: RGB result
 * round((1 - alpha) * base + alpha * heat) per channel. Gray inputs are
 * replicated to RGB; an alpha channel is ignored. Sizes must match.
 */
export function overlay(base: RasterImage, heat: RasterImage, alpha: number): RasterImage {
  checkRaster(base, 'overlay base');
  checkRaster(heat, 'overlay heat');
  if (base.width !== heat.width || base.height !== heat.height) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_ARGUMENT,
      `overlay: base is ${base.width}x${base.height} but heat is ${heat.width}x${heat.height}`,
    );
  }
  if (!(alpha >= 0 && alpha <= 1)) throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `overlay: alpha must be in [0, 1], got ${alpha}`);
  const n = base.width * base.height;
  const data = new Uint8Array(n * 3);
  const channel = (image: RasterImage, i: number, c: number) => image.data[i * image.channels + (image.channels === 1 ? 0 : c)]!;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      data[i * 3 + c] = Math.round((1 - alpha) * channel(base, i, c) + alpha * channel(heat, i, c));
    }
  }
  return { width: base.width, height: base.height, channels: 3, data };
}
