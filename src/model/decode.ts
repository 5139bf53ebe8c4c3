/**
 * The decoder stage of a latent model: sample() denoises latents, then runs
 * the decoder the card names (`decoder.file`, beside the model file) on them,
 * z = latents / scalingFactor + shiftFactor, on the torch threads, split into
 * chunks on the CPU like any forward.
 */
import { dirname, resolve } from 'node:path';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { DenoiserCard } from './model-card.js';
import type { LoadModelOptions, Model } from './model.js';
import type { Tensor } from '../core/tensor.js';

type DecoderRef = NonNullable<DenoiserCard['decoder']>;

/** The decoder file a card names, resolved next to the model file. */
export function decoderPath(modelPath: string, ref: DecoderRef): string {
  return resolve(dirname(modelPath), ref.file);
}

/** Loads the decoder a denoiser's card names, with the denoiser's device, dtype and trust; checks its card. */
export async function loadDecoderFor(path: string, ref: DecoderRef, options: LoadModelOptions, load: (path: string, options: LoadModelOptions) => Promise<Model>): Promise<Model> {
  const decoder = await load(decoderPath(path, ref), options);
  const card = decoder.card;
  if (card && !('kind' in card && card.kind === 'decoder')) {
    decoder.dispose();
    throw new TorchGuidanceError(
      ErrorCodes.MODEL_CARD,
      `the decoder '${decoderPath(path, ref)}' that the card of '${path}' names has a ${'kind' in card ? card.kind : 'denoiser'} card. ` +
        'Fix: export the decoder with export_decoder (scripts/export), or point the card at the decoder file.',
    );
  }
  return decoder;
}

/** The decoded images of a batch of latents (a new tensor on the decoder's device). */
export async function decode(decoder: Model, ref: DecoderRef, latents: Tensor, signal?: AbortSignal): Promise<Tensor> {
  using scaled = latents.div(ref.scalingFactor);
  using z = ref.shiftFactor === 0 ? scaled.clone() : scaled.add(ref.shiftFactor);
  const { output } = await decoder.run<Tensor>({ inputs: [z], parallel: 'auto', ...(signal ? { signal } : {}) });
  return output;
}
