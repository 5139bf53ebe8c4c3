/**
 * A Laplacian pyramid of [N, C, H, W] tensors, the frequency transform of
 * frequency-decoupled guidance. Level 0 holds the highest frequencies, the
 * last level the low-pass residual:
 *
 *   G₀ = x,  G_{i+1} = down(G_i),  L_i = G_i − up(G_{i+1}),  L_last = G_last
 *   down(g) = every other pixel of blur(g)       (size ceil(h/2) × ceil(w/2))
 *   up(g)   = blur(nearest-upsampled g)          (to the finer level's size)
 *   blur    = 5-tap Gaussian, σ = 1, reflect padding
 *
 * Rebuilding (x = L₀ + up(L₁ + up(...))) is exact whatever the filters, so
 * guiding every level with one scale is CFG itself. diffusers builds the
 * pyramid with kornia (the binomial 5-tap kernel, bilinear resampling,
 * padding to a power of two); the split into bands differs a little, the
 * method does not.
 */
import { ErrorCodes, TorchGuidanceError } from '../../core/errors.js';
import type { Tensor } from '../../core/tensor.js';

export const PYRAMID_KERNEL = 5;
export const PYRAMID_SIGMA = 1;

/** The level sizes of a pyramid over h × w, finest first. */
export function levelSizes(height: number, width: number, levels: number): [number, number][] {
  const sizes: [number, number][] = [[height, width]];
  for (let i = 1; i < levels; i++) {
    const [h, w] = sizes[i - 1]!;
    sizes.push([Math.ceil(h / 2), Math.ceil(w / 2)]);
  }
  return sizes;
}

/** The most levels an h × w sample allows: the blur needs every level at least 3 pixels on a side. */
export function maxLevels(height: number, width: number): number {
  let levels = 1;
  while (Math.min(...levelSizes(height, width, levels + 1)[levels]!) >= Math.floor(PYRAMID_KERNEL / 2) + 1) levels++;
  return levels;
}

function blur(t: Tensor): Tensor {
  return t.gaussianBlur(PYRAMID_KERNEL, PYRAMID_SIGMA);
}

function down(t: Tensor): Tensor {
  using blurred = blur(t);
  const [h, w] = t.shape.slice(2) as [number, number];
  return blurred.resizeNearest(Math.ceil(h / 2), Math.ceil(w / 2));
}

function up(t: Tensor, height: number, width: number): Tensor {
  using upsampled = t.resizeNearest(height, width);
  return blur(upsampled);
}

/** The pyramid's levels, finest first (new tensors, owned by the caller). */
export function buildPyramid(x: Tensor, levels: number): Tensor[] {
  if (x.shape.length !== 4) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_ARGUMENT, `a Laplacian pyramid needs [N, C, H, W] samples; got shape ${JSON.stringify(x.shape)}.`);
  }
  const out: Tensor[] = [];
  let current = x;
  for (let i = 0; i < levels - 1; i++) {
    const coarser = down(current);
    const [h, w] = current.shape.slice(2) as [number, number];
    using expanded = up(coarser, h, w);
    out.push(current.sub(expanded));
    if (current !== x) current.dispose();
    current = coarser;
  }
  out.push(current === x ? x.clone() : current);
  return out;
}

/** x from its levels (finest first); the levels are left alone. */
export function rebuildPyramid(levels: readonly Tensor[]): Tensor {
  let image = levels[levels.length - 1]!.clone();
  for (let i = levels.length - 2; i >= 0; i--) {
    const [h, w] = levels[i]!.shape.slice(2) as [number, number];
    using expanded = up(image, h, w);
    image.dispose();
    image = expanded.add(levels[i]!);
  }
  return image;
}
