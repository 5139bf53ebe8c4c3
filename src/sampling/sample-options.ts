/**
 * The options of sample() and explain(), checked by one zod schema, and what
 * sample() reports and returns.
 */
import { z } from 'zod';

import type { Strategy } from '../guidance/types.js';
import { Model } from '../model/model.js';
import { samplerSchema } from './samplers/samplers.js';
import { type Tensor, isTensor } from '../core/tensor.js';

/** What `onProgress` gets after every sampler step. */
export interface SampleProgress {
  /** Samples finished so far, of `count`. */
  done: number;
  count: number;
  /** Batch index (0-based) and count. */
  batch: number;
  batches: number;
  /** Sampler step just finished within the batch, of `steps`. */
  step: number;
  steps: number;
  elapsedMs: number;
}

const strategySchema = z.custom<Strategy>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Strategy).terms === 'function' && typeof (v as Strategy).name === 'string',
  'a guidance strategy (cfg(), pag(), ... or an object with name and terms())',
);

const labelSchema = z.number().int().nonnegative().nullable();

export const sampleSchema = z
  .object({
    model: z.custom<Model>((v) => v instanceof Model, 'a loaded Model'),
    /** Strategies stack: [cfg(...), pag(...)] is one guided prediction. Empty: unguided. */
    guidance: z.array(strategySchema).readonly().default([]),
    sampler: samplerSchema.prefault({ name: 'euler', steps: 30 }),
    /** One label per sample (null: the null label, i.e. unconditional), or use count. */
    labels: z.array(labelSchema).min(1).readonly().optional(),
    count: z.number().int().positive().optional(),
    /** With count: every sample's label; 'random' (default) draws one per sample from its seed. */
    label: z.union([labelSchema, z.literal('random')]).default('random'),
    /**
     * Tensor conditioning: the condition per sample [count, ...shape]. Named
     * conditioning (a version 2 card): `{ name: Tensor }` for every input the
     * card names, each [count, ...shape] or [1, ...shape] (shared).
     */
    conditions: z.union([z.custom<Tensor>(isTensor), z.record(z.string(), z.custom<Tensor>(isTensor))]).optional(),
    /**
     * What the unconditional branches get instead of the null condition (a
     * negative prompt): a tensor like `conditions`, or for named conditioning
     * any of the inputs (the others keep the card's null). Default: the
     * card's nulls (zeros for tensor conditioning).
     */
    nullConditions: z.union([z.custom<Tensor>(isTensor), z.record(z.string(), z.custom<Tensor>(isTensor))]).optional(),
    /**
     * A latent model's decoder stage: true (default when the card names a
     * decoder) runs the decoder on the final latents and returns images;
     * false returns the latents; a Model is used as the decoder.
     */
    decode: z.union([z.boolean(), z.custom<Model>((v) => v instanceof Model, 'a loaded Model')]).optional(),
    /** With a decoder: also return the latents (SampleResult.latents). */
    keepLatents: z.boolean().default(false),
    seed: z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.bigint().nonnegative()]).default(0),
    batchSize: z.number().int().positive().default(16),
    /**
     * CPU: split each forward's batch into up to this many chunks that run at
     * once on the torch threads. 'auto' (default): a multiple of the model's
     * split threads (Model.splitThreads: the torch job threads, default 2,
     * or fewer by loadModel's `threads`) with chunks of 4 to 12 samples where
     * the batch allows (autoChunks in src/model/batch-split.ts, which says
     * why); 1: one forward per batch. Ignored on CUDA.
     */
    parallel: z.union([z.number().int().positive(), z.literal('auto')]).default('auto'),
    /**
     * Clip every guided denoised estimate to this data range, e.g. [-1, 1] for
     * the shipped Fashion-MNIST models: what diffusers' DDPM/DDIM schedulers do
     * for pixel-space models (clip_sample). Small or briefly trained models
     * leave speckle noise without it. Default: no clipping (k-diffusion's).
     */
    clipDenoised: z
      .tuple([z.number().finite(), z.number().finite()])
      .refine(([low, high]) => high > low, 'clipDenoised must be [low, high] with high > low')
      .optional(),
    /**
     * Check every step's guided prediction and new x for NaN and infinity,
     * and stop with ERR_NON_FINITE naming the step and the strategy (default
     * true). One reduction per term and step; on CUDA each check waits for
     * the device, which a launch-bound run may notice.
     */
    checkFinite: z.boolean().default(true),
    /** Called after every sampler step. */
    onProgress: z.custom<(p: SampleProgress) => void>((v) => typeof v === 'function').optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict()
  .refine((o) => (o.labels === undefined) !== (o.count === undefined) || o.conditions !== undefined, {
    message: 'give either labels (one per sample) or count, not both and not neither',
    path: ['count'],
  });

/**
 * Options of {@link sample} and {@link explain}: `model`, `guidance` (strategies;
 * they stack), `sampler`, `labels` or `count` (+ `label`), `conditions` /
 * `nullConditions` (tensor conditioning), `seed` (sample i uses seed + i),
 * `batchSize` (16), `parallel` (CPU batch split, `'auto'`), `clipDenoised`,
 * `onProgress`, `signal`. See docs/guidance.md.
 */
export type SampleOptions = z.input<typeof sampleSchema>;

/** What {@link sample} returns. */
export interface SampleResult {
  /**
   * [count, ...sampleShape] on the model's device, in the model's data range
   * (Fashion-MNIST models: [-1, 1]); for a latent model with its decoder, the
   * decoded images (the decoder's output, e.g. [count, 3, 512, 512] in [-1, 1]).
   */
  images: Tensor;
  /** The latents the decoder decoded, with keepLatents. */
  latents?: Tensor;
  /** The label each sample was drawn for (null: unconditional); empty for unconditional or tensor-conditioned models. */
  labels: (number | null)[];
  seeds: bigint[];
  /** Forwards issued (batched branches count once). */
  forwards: number;
  timings: { totalMs: number; forwardMs: number; mixMs: number; samplerMs: number };
}
