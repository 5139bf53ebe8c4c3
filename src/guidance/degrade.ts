/**
 * The second-stage input of SAG and its ablation baselines (Hong et al. 2023):
 * take x0 = D_source, degrade it, and re-noise it with the model's own noise
 * estimate, x̃ = x0_degraded + (x − x0) (in sigma space x − x0 = σ·eps).
 *
 *   sag           blur x0 only where the captured self-attention is high: the
 *                 head-averaged map summed over queries > threshold (1: keys that
 *                 get more than average attention), nearest-upsampled to the sample;
 *                 or where a second model's attention says (a precomputed `mask`,
 *                 attention-mask.ts)
 *   blur          blur everywhere (global Gaussian blur)
 *   lowpass       keep frequencies within `cutoff` of Nyquist (FFT low-pass), drop the rest
 *   highpass      keep frequencies beyond `cutoff`, drop the low ones: x0 − lowpass(x0)
 *   random-reset  blur random patches covering `fraction` of the area
 *   square-reset  blur one centred square covering `fraction` of the area
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type Tensor, tensor } from '../core/tensor.js';
import { mixSeed, uniformFromSeed } from '../core/seeds.js';
import type { Degradation } from './types.js';

export interface DegradeInputs {
  x: Tensor;
  /** D of the source branch. */
  x0: Tensor;
  /** sag: the captured maps [N, queries, keys] of the chosen sites, with their grids. */
  captures: { map: Tensor; grid: [number, number] }[];
  /** Per-sample seeds and the evaluation index, for the random patches. */
  seeds: readonly bigint[];
  evaluation: number;
  /** sag with a mask model: the mask [N, 1, H, W], computed beforehand (it needs a forward). */
  mask?: Tensor;
}

export function degradedInput(spec: Degradation, inputs: DegradeInputs): Tensor {
  const { x, x0 } = inputs;
  using degraded = degrade(spec, inputs);
  using noise = x.sub(x0);
  return degraded.add(noise);
}

function degrade(spec: Degradation, inputs: DegradeInputs): Tensor {
  const { x0 } = inputs;
  if (spec.kind === 'lowpass') return x0.lowPass(spec.cutoff ?? 0.25);
  if (spec.kind === 'highpass') {
    using low = x0.lowPass(spec.cutoff ?? 0.25);
    return x0.sub(low);
  }
  const blurred = x0.gaussianBlur(spec.kernelSize, spec.blurSigma);
  if (spec.kind === 'blur') return blurred;
  using owned = blurred;
  using mask = maskFor(spec, inputs);
  return x0.lerp(owned, mask);
}

function maskFor(spec: Degradation, inputs: DegradeInputs): Tensor {
  const [batch, , height, width] = inputs.x0.shape as [number, number, number, number];
  if (spec.kind === 'sag' && inputs.mask) return inputs.mask.clone();
  if (spec.kind === 'sag') return attentionMask(inputs.captures, spec.threshold ?? 1, height, width);
  const data = new Float32Array(batch * height * width);
  const fraction = spec.fraction ?? 0.25;
  if (spec.kind === 'square-reset') {
    const side = Math.round(Math.sqrt(fraction * height * width));
    const top = Math.floor((height - side) / 2);
    const left = Math.floor((width - side) / 2);
    for (let n = 0; n < batch; n++)
      for (let y = top; y < top + side; y++) for (let xx = left; xx < left + side; xx++) data[(n * height + y) * width + xx] = 1;
  } else {
    // random-reset: each patch cell is reset with probability `fraction`, seeded per sample and evaluation.
    const patch = spec.patch ?? 4;
    const rows = Math.ceil(height / patch);
    const cols = Math.ceil(width / patch);
    for (let n = 0; n < batch; n++) {
      const seed = mixSeed(inputs.seeds[n]!, 0x5a6_0000n + BigInt(inputs.evaluation));
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) {
          if (uniformFromSeed(seed, r * cols + c) >= fraction) continue;
          for (let y = r * patch; y < Math.min(height, (r + 1) * patch); y++)
            for (let xx = c * patch; xx < Math.min(width, (c + 1) * patch); xx++) data[(n * height + y) * width + xx] = 1;
        }
    }
  }
  return tensor(data, [batch, 1, height, width], { device: inputs.x0.device, dtype: 'float32' });
}

/** The union over sites of (attention summed over queries > threshold), upsampled to the sample. */
function attentionMask(captures: DegradeInputs['captures'], threshold: number, height: number, width: number): Tensor {
  if (captures.length === 0) {
    throw new TorchGuidanceError(ErrorCodes.NO_MATCHING_SITE, 'SAG captured no attention map; check its sites selector.');
  }
  let union: Tensor | undefined;
  for (const { map, grid } of captures) {
    const batch = map.shape[0]!;
    using perKey = map.sumAxis(1);
    using high = perKey.greaterThan(threshold);
    using cells = high.reshape([batch, 1, grid[0], grid[1]]);
    const up = cells.resizeNearest(height, width);
    if (!union) {
      union = up;
      continue;
    }
    using sum = union.add(up);
    up.dispose();
    union.dispose();
    union = sum.clamp(null, 1);
  }
  return union!;
}
