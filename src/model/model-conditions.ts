/**
 * The null conditions a version 2 card stores in its archive (the empty
 * prompt's text embedding, say): float32 records under `nulls/`, read when
 * the model loads and kept on its device for the unconditional branches.
 */
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { ModelCard } from './model-card.js';
import type { NativeModel } from '../core/native/binding.js';
import { tensor, type DeviceName, type Tensor } from '../core/tensor.js';

/** The null tensors [1, ...shape] of the card's named inputs whose null is a record, by input name. */
export function nullConditionsOf(handle: NativeModel, card: ModelCard | null, path: string, device: DeviceName): Map<string, Tensor> {
  const nulls = new Map<string, Tensor>();
  if (!card || !('conditioning' in card) || card.conditioning.kind !== 'named') return nulls;
  try {
    for (const [name, input] of Object.entries(card.conditioning.inputs)) {
      if (typeof input.null !== 'object') continue;
      const record = handle.extraRecord(input.null.file);
      const expected = input.shape.reduce((a, b) => a * b, 1) * 4;
      if (record === null || record.byteLength !== expected) {
        throw new TorchGuidanceError(
          ErrorCodes.MODEL_CARD,
          `the model card (model.json inside '${path}') says the null of ${name} is ${input.null.file}, ` +
            (record === null ? 'which the archive does not hold' : `which holds ${record.byteLength} bytes, not the ${expected} of float32 ${JSON.stringify(input.shape)}`) +
            '. Fix: export again (scripts/export/torch_guidance_export.py stores each null beside the card).',
        );
      }
      const values = new Float32Array(record.buffer.slice(record.byteOffset, record.byteOffset + record.byteLength));
      nulls.set(name, tensor(values, [1, ...input.shape], { device }));
    }
  } catch (error) {
    for (const t of nulls.values()) t.dispose();
    throw error;
  }
  return nulls;
}
