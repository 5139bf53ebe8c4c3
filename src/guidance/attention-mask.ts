/**
 * SAG's mask from a second model's attention, the paper's DINO ablation:
 * run a ViT on the predicted clean image x0, capture its head-averaged
 * attention, weigh the patch tokens (the first token's row for 'cls', as
 * DINO's maps; the attention each patch receives summed over the patch
 * queries for 'sum', as SAG's own rule), keep the patches above threshold ×
 * their mean, lay the patch grid over the sample with nearest-neighbour
 * resizing, and take the union over sites. The degradation then blurs x0
 * where the mask is 1 and re-noises, exactly as SAG (degrade.ts).
 *
 * The maps are small (tokens², per sample), so the reduction runs in
 * JavaScript on a host copy; the mask goes back to x0's device.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { type Hook, planForward } from '../hooks/forward-plan.js';
import { disposeOutput, type Model } from '../model/model.js';
import { type Tensor, tensor } from '../core/tensor.js';
import type { SiteSelector } from '../hooks/attention.js';
import type { MaskSource } from './types.js';

/** The selector a mask source captures: its own, or the model's last self-attention site. */
export function maskSites(source: MaskSource): SiteSelector {
  if (source.sites !== undefined) return source.sites;
  const sites = source.model.attentionSites.filter((s) => s.selfAttention !== false);
  const last = sites.at(-1);
  if (!last) {
    throw new TorchGuidanceError(
      ErrorCodes.NO_MATCHING_SITE,
      "sag mask: the mask model has no self-attention site the addon can capture. Fix: use a model with softmax or SDPA attention, or mask: { source: 'self' }.",
    );
  }
  return last.path;
}

/** Checks the mask model's capture selector against its sites (before any forward). */
export function checkMaskSource(source: MaskSource): void {
  const hook: Hook = { sites: maskSites(source), action: 'capture', self: true };
  planForward([hook], source.model.attentionSites, source.model.moduleSites, 1);
}

/** The patch grid [rows, columns] of `patches` tokens over a height × width sample. */
export function patchGrid(patches: number, height: number, width: number): [number, number] {
  const rows = Math.round(Math.sqrt((patches * height) / width));
  const columns = rows > 0 ? Math.round(patches / rows) : 0;
  if (rows < 1 || rows * columns !== patches) {
    throw new TorchGuidanceError(
      ErrorCodes.NO_GRID,
      `sag mask: ${patches} patch tokens do not tile a ${height}×${width} sample in its aspect ratio. ` +
        'Fix: set prefixTokens to the number of tokens before the patches (class token, registers).',
    );
  }
  return [rows, columns];
}

/** The mask [N, 1, H, W] (0 or 1, float32) on x0's device. */
export async function modelAttentionMask(source: MaskSource, x0: Tensor): Promise<Tensor> {
  const [batch, , height, width] = x0.shape as [number, number, number, number];
  const owned: Tensor[] = [];
  try {
    let input = x0;
    if (source.inputScale !== 1 || source.inputShift !== 0) {
      const scaled = x0.mul(source.inputScale);
      owned.push(scaled);
      input = scaled.add(source.inputShift);
      owned.push(input);
    }
    const model: Model = source.model;
    const { output, captures } = await model.run({ inputs: [input], hooks: [{ sites: maskSites(source), action: 'capture', self: true }] });
    disposeOutput(output);
    owned.push(...captures.values());
    if (captures.size === 0) throw new TorchGuidanceError(ErrorCodes.NO_MATCHING_SITE, 'sag mask: the mask model captured no attention map.');
    const mask = new Float32Array(batch * height * width);
    for (const map of captures.values()) {
      const [, queries, keys] = map.shape as [number, number, number];
      const data = (await map.toArray()) as Float32Array;
      const prefix = source.prefixTokens;
      const patches = keys - prefix;
      if (patches < 1 || queries <= prefix) {
        throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `sag mask: prefixTokens ${prefix} leaves no patch tokens of the ${keys} captured.`);
      }
      const [rows, columns] = patchGrid(patches, height, width);
      const weights = new Float64Array(patches);
      for (let n = 0; n < batch; n++) {
        weights.fill(0);
        const at = (q: number, k: number) => data[(n * queries + q) * keys + k]!;
        if (source.reduce === 'cls') {
          for (let k = 0; k < patches; k++) weights[k] = at(0, prefix + k);
        } else {
          for (let q = prefix; q < queries; q++) for (let k = 0; k < patches; k++) weights[k]! += at(q, prefix + k);
        }
        let mean = 0;
        for (const w of weights) mean += w / patches;
        const limit = source.threshold * mean;
        for (let y = 0; y < height; y++) {
          const row = Math.floor((y * rows) / height);
          for (let x = 0; x < width; x++) {
            if (weights[row * columns + Math.floor((x * columns) / width)]! > limit) mask[(n * height + y) * width + x] = 1;
          }
        }
      }
    }
    return tensor(mask, [batch, 1, height, width], { device: x0.device, dtype: 'float32' });
  } finally {
    for (const t of owned) t.dispose();
  }
}
