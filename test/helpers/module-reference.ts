/** Runs test/reference/module_hooks.py: a fixture in eager PyTorch with module outputs perturbed by forward hooks. */
import { runReference } from './python.js';

export interface ModuleReferenceEntry {
  path: string;
  start: number;
  length: number;
  action: 'noise' | 'skip' | 'dropout';
  scale?: number;
  /** dropout: the chance an element is zeroed. */
  p?: number;
  /** noise, dropout: one seed for the slice, or one per sample (perSample). */
  seeds?: (number | bigint)[];
  perSample?: boolean;
}

export function moduleReference(
  model: 'tiny-unet' | 'attn-zoo',
  inputs: { x: Float32Array; t: Float32Array; label: BigInt64Array; batch: number },
  entries: ModuleReferenceEntry[],
): Float32Array {
  // Seeds travel as decimal strings: JSON numbers lose BigInt precision.
  const spec = entries.map((e) => ({ ...e, seeds: (e.seeds ?? []).map(String), perSample: e.perSample ?? false }));
  return runReference('module_hooks.py', { model, batch: inputs.batch, entries: spec }, { x: inputs.x, t: inputs.t, label: inputs.label }).output;
}
