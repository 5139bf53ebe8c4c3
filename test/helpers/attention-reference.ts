/** Runs test/reference/attention_hooks.py: tiny-unet in eager PyTorch with its attention perturbed explicitly. */
import { runReference } from './python.js';

export interface ReferenceEntry {
  path: string;
  start: number;
  length: number;
  action: 'identity' | 'blur' | 'capture';
  sigma?: number;
}

export function attentionReference(
  inputs: { x: Float32Array; t: Float32Array; label: BigInt64Array; batch: number },
  entries: ReferenceEntry[],
): { output: Float32Array; captures: Float32Array } {
  return runReference('attention_hooks.py', { batch: inputs.batch, entries }, { x: inputs.x, t: inputs.t, label: inputs.label });
}
