/**
 * Opening a TorchScript archive for loadModel(): its options, the addon's
 * load (checks, graph pass, freeze) and the model card read from the archive.
 */
import { resolve } from 'node:path';

import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError, abortError } from '../core/errors.js';
import { resourceLimits } from '../core/limits.js';
import { native, type NativeModel } from '../core/native/binding.js';
import { parseOptions } from '../core/options.js';
import { deviceSchema } from '../core/tensor.js';
import { checkModelCard, type ModelCard } from './model-card.js';

export const loadOptionsSchema = z
  .object({
    /** 'auto' (default): cuda:0 when CUDA is usable, else the CPU. */
    device: deviceSchema.default('auto'),
    /** Floating dtype of the weights; floating inputs are cast to it. Default float32. */
    dtype: z.enum(['float32', 'float16', 'bfloat16', 'float64']).default('float32'),
    /** Find attention sites and wrap them in hook ops (default true); false loads the graph untouched. */
    attentionHooks: z.boolean().default(true),
    /**
     * 'scan' (default): the file is checked before any of its code runs, and
     * refused (ERR_UNTRUSTED_MODEL) if it could reach outside the model
     * (files, printing, process-wide state, other processes; see
     * docs/reliability.md). 'full': the file is trusted like code you run;
     * only its structure and sizes are checked.
     */
    trust: z.enum(['scan', 'full']).default('scan'),
    /**
     * CPU: the most torch threads one forward of this model splits its batch
     * over with `parallel: 'auto'` (sample()'s default), so that models used
     * at the same time can share the torch threads, or one model keep some
     * free. Default and upper bound: what the split may use process-wide
     * (the torch job threads, fewer under a pinned BLAS count; see
     * splitThreads in src/core/blas.ts). Ignored on CUDA, which never splits.
     */
    threads: z.number().int().min(1).max(4096).optional(),
    /** Rejects with ERR_ABORTED when it fires, also while the file loads. */
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/**
 * Options of {@link loadModel}: `device` (`'auto'`: cuda:0 when usable, else
 * the CPU), `dtype` (of the weights, default float32), `attentionHooks`
 * (default true; false loads the graph untouched), `trust` (`'scan'` or
 * `'full'`), `threads` (the most torch threads a CPU forward splits over),
 * `signal`.
 */
export type LoadModelOptions = z.input<typeof loadOptionsSchema>;

/** An archive the addon loaded, with its card; the caller owns the handle. */
export interface OpenedModel {
  handle: NativeModel;
  card: ModelCard | null;
  /** The archive's absolute path. */
  path: string;
  options: z.output<typeof loadOptionsSchema>;
}

/**
 * Loads the archive natively and checks its card. Rejects with
 * ERR_INVALID_OPTION, ERR_MODEL_CARD, ERR_ABORTED or the addon's own load
 * errors; nothing is left allocated when it rejects.
 */
export async function openModel(path: string, raw: LoadModelOptions): Promise<OpenedModel> {
  const options = parseOptions(loadOptionsSchema, raw, 'loadModel options');
  const { device, dtype, attentionHooks, trust, signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const absolute = resolve(path);
  // The addon opens regular files only (never waiting on a FIFO), checks the
  // archive's sizes against the memory limit and, unless trusted, its code.
  const handle = await native.Model.load(absolute, {
    device,
    dtype,
    attentionHooks,
    trust,
    memoryLimit: resourceLimits().memoryBytes,
    ...(signal ? { signal } : {}),
  });
  try {
    const card = handle.card === null ? null : readCard(handle.card, absolute);
    if (signal?.aborted) throw abortError(signal);
    return { handle, card, path: absolute, options };
  } catch (error) {
    handle.dispose();
    throw error;
  }
}

/** The archive's model.json checked against the card schema (ERR_MODEL_CARD naming the fields). */
function readCard(text: string, absolute: string): ModelCard {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TorchGuidanceError(
      ErrorCodes.MODEL_CARD,
      `the model card (model.json inside '${absolute}') is not valid JSON: ${(error as Error).message}. ` +
        'Fix: re-export with torch.jit.save(..., _extra_files={"model.json": json.dumps(card)}).',
      { cause: error },
    );
  }
  const checked = checkModelCard(parsed);
  if ('problems' in checked) {
    throw new TorchGuidanceError(
      ErrorCodes.MODEL_CARD,
      `the model card (model.json inside '${absolute}') is invalid: ${checked.problems.join('; ')}. ` +
        'Fix: correct those fields and re-export; models/README.md describes each field.',
    );
  }
  return checked.card;
}
