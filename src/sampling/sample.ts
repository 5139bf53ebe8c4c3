/**
 * sample(): draws images from a denoiser with any stack of guidance
 * strategies. Samples run in batches; sample i of a run with seed s uses seed
 * s + i for all of its noise, so its result does not depend on its batch.
 */
import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError, abortError, isTorchGuidanceError } from '../core/errors.js';
import { Denoiser } from '../guidance/denoiser.js';
import { GuidedDenoiser } from '../guidance/guided-denoiser.js';
import type { PlanSummary } from '../guidance/planner.js';
import type { Strategy } from '../guidance/types.js';
import { checkMemory, resourceLimits } from '../core/limits.js';
import { decode } from '../model/decode.js';
import type { DenoiserCard } from '../model/model-card.js';
import { Model } from '../model/model.js';
import { type NamedConditions, namedBatch, namedCount } from './named-conditions.js';
import { estimateSampleMemory } from './sample-memory.js';
import { Streams, mixSeed, sampleSeed, sampleSeeds } from '../core/seeds.js';
import { FIRST_ORDER_SAMPLERS, type Sampler, evaluationSigmas, samplerSchema, runSampler } from './samplers/samplers.js';
import { sigmasFor } from './samplers/sigma-schedules.js';
import { type Tensor, cat, isTensor, randn, tensor } from '../core/tensor.js';
import { parseOptions } from '../core/options.js';

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

const sampleSchema = z
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
     * once on the torch threads. 'auto' (default): a multiple of the torch
     * threads (TORCH_GUIDANCE_JOB_THREADS, default 2) with chunks of 4 to 12
     * samples where the batch allows (autoChunks in src/batch-split.ts, which
     * says why); 1: one forward per batch. Ignored on CUDA.
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

interface Prepared {
  options: z.output<typeof sampleSchema>;
  main: Denoiser;
  sampler: Sampler;
  sigmas: number[];
  count: number;
  /** The labels given one per sample; undefined with count (then labelAt computes them) or tensor conditions. */
  given: readonly (number | null)[] | undefined;
}

/**
 * The label of sample `i` (null: unconditional); undefined for models without
 * class conditioning. With count, labels are computed per sample from its
 * seed, never held for the whole run.
 */
function labelAt(prep: Prepared, i: number): number | null | undefined {
  if (prep.given) return prep.given[i]!;
  const conditioning = prep.main.conditioning;
  if (conditioning.kind !== 'class') return undefined;
  const { label, seed } = prep.options;
  return label === 'random' ? Number(mixSeed(sampleSeed(seed, i), 0xc1a55n) % BigInt(conditioning.numClasses)) : label;
}

/** Labels of samples [first, first + n); empty for models without class conditioning. */
function labelsFor(prep: Prepared, first: number, n: number): (number | null)[] {
  if (prep.given) return prep.given.slice(first, first + n);
  if (prep.main.conditioning.kind !== 'class') return [];
  return Array.from({ length: n }, (_, k) => labelAt(prep, first + k)!);
}

/** The decoder stage sample() runs, if any: `decode` false skips it; a Model replaces the card's decoder. */
async function decoderOf(model: Model, option: boolean | Model | undefined): Promise<{ decoder: Model; ref: NonNullable<DenoiserCard['decoder']> } | undefined> {
  const card = model.card as DenoiserCard;
  if (option === false) return undefined;
  if (option instanceof Model) return { decoder: option, ref: card.decoder ?? { file: '', scalingFactor: 1, shiftFactor: 0 } };
  const decoder = await model.loadDecoder();
  return decoder && card.decoder ? { decoder, ref: card.decoder } : undefined;
}

function prepare(raw: SampleOptions): Prepared {
  const options = parseOptions(sampleSchema, raw, 'sample options');
  const main = Denoiser.of(options.model, 'model');
  const sampler = options.sampler;
  const sigmas = sigmasFor(sampler.schedule, sampler.steps, main.noise);
  const conditioning = main.conditioning;
  let count: number;
  let given: readonly (number | null)[] | undefined;
  if (conditioning.kind === 'named') {
    count = namedCount(conditioning, options.conditions, options.nullConditions, options.count);
  } else if (conditioning.kind === 'tensor') {
    if (!isTensor(options.conditions)) {
      throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, 'invalid sample options: conditions: this model takes a tensor condition; pass conditions [count, ...shape].');
    }
    count = options.conditions.shape[0]!;
  } else if (options.labels) {
    count = options.labels.length;
    given = options.labels;
  } else {
    count = options.count!;
  }
  if (conditioning.kind === 'class') {
    const valid = (l: number | null) => l === null || l < conditioning.numClasses || l === conditioning.nullLabel;
    const bad = given ? given.findIndex((l) => !valid(l)) : valid(options.label === 'random' ? null : options.label) ? -1 : 0;
    if (bad >= 0) {
      const value = given ? given[bad] : options.label;
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `invalid sample options: ${given ? `labels.${bad}` : 'label'}: ${value} is not a class of this model (0..${conditioning.numClasses - 1}, ` +
          `or null / ${conditioning.nullLabel} for unconditional).`,
      );
    }
  } else if (conditioning.kind === 'none' && options.labels?.some((l) => l !== null)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, 'invalid sample options: labels: this model is unconditional; use count.');
  }
  return { options, main, sampler, sigmas, count, given };
}

/** Every sample of the batch [first, first + n) has the null condition (or the model takes none). */
function batchIsUnconditional(prep: Prepared, first: number, n: number): boolean {
  const conditioning = prep.main.conditioning;
  if (conditioning.kind === 'none') return true;
  if (conditioning.kind !== 'class') return false;
  const isNull = (l: number | null | undefined) => l === null || l === conditioning.nullLabel;
  // With count every label is the same option ('random' draws real classes).
  if (!prep.given) return prep.options.label !== 'random' && isNull(prep.options.label);
  return prep.given.slice(first, first + n).every(isNull);
}

/**
 * The run's batches grouped by what their plan depends on (size and whether
 * all labels are null), each group once with its count: with count, a run of
 * any size is at most two groups, so nothing here grows with it.
 */
function batchGroups(prep: Prepared): { start: number; n: number; batches: number }[] {
  const { count } = prep;
  const batchSize = Math.min(prep.options.batchSize, count);
  const full = Math.floor(count / batchSize);
  const rest = count - full * batchSize;
  if (prep.given) {
    return Array.from({ length: full + (rest > 0 ? 1 : 0) }, (_, b) => ({ start: b * batchSize, n: b < full ? batchSize : rest, batches: 1 }));
  }
  const groups = [{ start: 0, n: batchSize, batches: full }];
  if (rest > 0) groups.push({ start: full * batchSize, n: rest, batches: 1 });
  return groups;
}

/**
 * Refuses (ERR_OUT_OF_MEMORY, naming the limit) a run whose result or
 * whose batches cannot fit the memory limit, before anything is allocated.
 */
function checkPreparedMemory(prep: Prepared): void {
  const { options, main, count } = prep;
  const model = options.model;
  // Rows per input sample, from a one-sample plan (multiples do not depend on the batch size).
  const owned: Tensor[] = [];
  let rowsPerSample = 1;
  try {
    const guided = guidedFor(prep, 0, 1, owned);
    for (let i = 0; i < prep.sigmas.length - 1; i++) {
      rowsPerSample = Math.max(rowsPerSample, guided.explain(guided.stepInfo(i, prep.sampler.steps, prep.sigmas[i]!)).modelEvaluations);
    }
  } finally {
    for (const t of owned) t.dispose();
  }
  const shape = main.card.sampleShape as number[];
  const memory = estimateSampleMemory({
    count,
    batchSize: options.batchSize,
    sampleElements: shape.reduce((a, b) => a * b, 1),
    elementBytes: { float64: 8, float32: 4, float16: 2, bfloat16: 2 }[model.dtype as string] ?? 4,
    rowsPerSample,
    parallel: options.parallel,
    cpu: model.device === 'cpu',
  });
  checkMemory(
    memory.resultBytes,
    `sample(): the result of ${count} samples of [${shape.join(', ')}]`,
    'ask for fewer samples per call (the CLI writes a run of any size in shards, one batch at a time)',
  );
  const batch = Math.min(options.batchSize, count);
  const largest = memory.largestBatchWithin(resourceLimits().memoryBytes);
  checkMemory(
    memory.batchBytes,
    `sample(): a batch of ${batch} samples (${rowsPerSample} forward rows each, sampler state and activations)`,
    largest > 0 ? `use batchSize ${largest} or less` : 'use a smaller sample shape',
  );
}

function guidedFor(prep: Prepared, first: number, n: number, owned: Tensor[]): GuidedDenoiser {
  const { main, options } = prep;
  const device = options.model.device;
  const seeds = sampleSeeds(options.seed, first, n);
  const conditioning = main.conditioning;
  let given: Tensor[] | undefined;
  let nullConditions: Tensor[] | undefined;
  const unconditional = batchIsUnconditional(prep, first, n);
  if (conditioning.kind === 'class') {
    const slice = labelsFor(prep, first, n);
    given = [tensor(BigInt64Array.from(slice.map((l) => BigInt(l ?? conditioning.nullLabel))), [n], { device })];
    nullConditions = [tensor(new BigInt64Array(n).fill(BigInt(conditioning.nullLabel)), [n], { device })];
    owned.push(...given, ...nullConditions);
  } else if (conditioning.kind === 'tensor') {
    const condition = (options.conditions as Tensor).narrow(first, n);
    given = [condition];
    owned.push(condition);
    const negative = isTensor(options.nullConditions) ? options.nullConditions.narrow(first, n) : condition.mul(0);
    nullConditions = [negative];
    owned.push(negative);
  } else if (conditioning.kind === 'named') {
    const batch = namedBatch(
      conditioning,
      options.conditions as NamedConditions,
      options.nullConditions as NamedConditions | undefined,
      options.model.nullConditions,
      first,
      n,
    );
    given = batch.given;
    nullConditions = batch.null;
    owned.push(...given, ...nullConditions);
  }
  const guided = new GuidedDenoiser({
    main,
    strategies: options.guidance,
    conditions: { given, null: nullConditions },
    unconditional,
    seeds,
    parallel: options.parallel,
    checkFinite: options.checkFinite,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // CFG++ needs a first-order sampler. Checked here, before any forward (and so
  // that explain() rejects it too); the sampler's own check only fires after
  // the first forward has run.
  if (guided.renoises && !FIRST_ORDER_SAMPLERS.includes(prep.sampler.name)) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_OPTION,
      `invalid sample options: sampler.name: '${prep.sampler.name}' is not a first-order sampler, and ` +
        `${options.guidance.filter((s) => s.renoiseBranch).map((s) => s.name).join(', ')} re-noises with the unconditional ` +
        "estimate, which needs one. Fix: use sampler { name: 'euler' }, 'euler_ancestral' or 'ddim'.",
    );
  }
  return guided;
}

/**
 * What sample() checks before it allocates: the run's result and one batch
 * against the memory limit (src/limits.ts, src/sample-memory.ts). Throws
 * ERR_OUT_OF_MEMORY naming the limit, or the options' own errors.
 */
export function checkSampleMemory(raw: SampleOptions): void {
  checkPreparedMemory(prepare(raw));
}

/**
 * The plan the sampler would run, per model evaluation: forwards, their batch
 * multiples and branches, and the active terms. Runs no forward.
 *
 * `evaluations` are the first batch's. `forwards` counts the whole run, every
 * batch (what sample() reports and the models' forward counters see), and
 * `modelEvaluations` is the samples through a model per input sample over the
 * whole run. A batch's plan depends only on its size and on whether its
 * labels are all null (then the given and null branches are one), so each such
 * kind of batch is planned once: explaining a 50,000-sample run costs what two
 * batches cost.
 */
export function explain(raw: SampleOptions): { evaluations: PlanSummary[]; batches: number; forwards: number; modelEvaluations: number } {
  const prep = prepare(raw);
  const { sigmas, sampler, count } = prep;
  const batches = Math.ceil(count / prep.options.batchSize);
  let first: PlanSummary[] | undefined;
  let forwards = 0;
  let sampleForwards = 0;
  const planned = new Map<string, PlanSummary[]>();
  const plan = (start: number, n: number): PlanSummary[] => {
    const owned: Tensor[] = [];
    try {
      const guided = guidedFor(prep, start, n, owned);
      const evaluations: PlanSummary[] = [];
      for (let i = 0; i < sigmas.length - 1; i++) {
        // Each sigma the sampler evaluates at in this step (Heun's churned one and the next,
        // DPM-Solver's midpoints, ...): a window edge may lie between them.
        for (const sigma of evaluationSigmas(sampler, sigmas, i)) evaluations.push(guided.explain(guided.stepInfo(i, sampler.steps, sigma)));
      }
      return evaluations;
    } finally {
      for (const t of owned) t.dispose();
    }
  };
  for (const group of batchGroups(prep)) {
    if (group.batches === 0) continue;
    const { start, n } = group;
    const key = `${n} ${batchIsUnconditional(prep, start, n)}`;
    let evaluations = planned.get(key);
    // With count, a plan does not depend on the batch's labels beyond `key`: plan one sample, allocate nothing per sample.
    if (!evaluations) planned.set(key, (evaluations = plan(start, prep.given ? n : 1)));
    first ??= evaluations;
    for (const e of evaluations) {
      forwards += e.forwards * group.batches;
      sampleForwards += e.modelEvaluations * n * group.batches;
    }
  }
  return { evaluations: first ?? [], batches, forwards, modelEvaluations: sampleForwards / count };
}

/**
 * Guided sampling: draws one sample per label (or `count`), batch by batch,
 * with the strategies in `guidance` stacked into one guided prediction per
 * step. Every sample depends only on its own seed, not on its batch. Rejects
 * with a TorchGuidanceError for bad options, for a run over the memory limit
 * (before allocating; src/limits.ts), and for NaN or infinity during sampling
 * (ERR_NON_FINITE, unless checkFinite is false); with ERR_ABORTED (its cause the
 * signal's reason, as Node's own APIs reject) when the
 * signal fires, at once, even while a forward runs.
 */
export async function sample(raw: SampleOptions): Promise<SampleResult> {
  const prep = prepare(raw);
  checkPreparedMemory(prep);
  const { options, main, sampler, sigmas, count } = prep;
  const { signal, onProgress, batchSize } = options;
  const started = performance.now();
  const timings = { totalMs: 0, forwardMs: 0, mixMs: 0, samplerMs: 0 };
  const batches = Math.ceil(count / batchSize);
  const decoding = await decoderOf(options.model, options.decode);
  const results: Tensor[] = [];
  const latents: Tensor[] = [];
  const labels: (number | null)[] = [];
  let forwards = 0;
  const checkAbort = () => {
    if (signal?.aborted) throw abortError(signal);
  };
  try {
    for (let b = 0; b < batches; b++) {
      checkAbort();
      const first = b * batchSize;
      const n = Math.min(batchSize, count - first);
      const owned: Tensor[] = [];
      let guided: GuidedDenoiser | undefined;
      try {
        guided = guidedFor(prep, first, n, owned);
        const denoiser = guided;
        const seeds = sampleSeeds(options.seed, first, n);
        const shape = [n, ...main.card.sampleShape];
        const device = options.model.device;
        using noise = randn(shape, { seed: seeds, device });
        const x = noise.mul(sigmas[0]!);
        const batchStart = performance.now();
        const images = await runSampler(sampler, sigmas, x, {
          denoise: async (current, sigma, step) => {
            checkAbort();
            const prediction = await denoiser.predict(current, denoiser.stepInfo(step, sampler.steps, sigma));
            const clip = options.clipDenoised;
            if (!clip) return prediction;
            const clipped = prediction.denoised.clamp(clip[0], clip[1]);
            prediction.denoised.dispose();
            return { ...prediction, denoised: clipped };
          },
          noise: (step, part = 0) =>
            randn(shape, { seed: seeds.map((s) => mixSeed(s, (part === 0 ? Streams.stepNoise : Streams.stepNoiseSecond) + BigInt(step))), device }),
          afterStep: (step, current) => {
            if (options.checkFinite && !current.allFinite()) {
              throw new TorchGuidanceError(
                ErrorCodes.NON_FINITE,
                `sampling produced NaN or infinity in x at step ${step + 1} of ${sampler.steps} (sampler ${sampler.name}, ` +
                  `sigma ${sigmas[step]} -> ${sigmas[step + 1]}), from a finite prediction: the sampler's arithmetic overflowed. ` +
                  'Fix: check the schedule (sigmaMax) and the sampler options; checkFinite: false turns this check off.',
              );
            }
            onProgress?.({ done: first, count, batch: b, batches, step: step + 1, steps: sampler.steps, elapsedMs: performance.now() - started });
          },
        });
        if (decoding) {
          const decoded = await decode(decoding.decoder, decoding.ref, images, signal).finally(() => {
            if (options.keepLatents) latents.push(images);
            else images.dispose();
          });
          results.push(decoded);
        } else {
          results.push(images);
        }
        for (const label of labelsFor(prep, first, n)) labels.push(label);
        forwards += guided.forwards;
        timings.forwardMs += guided.times.forwardMs;
        timings.mixMs += guided.times.mixMs;
        timings.samplerMs += performance.now() - batchStart - guided.times.forwardMs - guided.times.mixMs;
      } finally {
        guided?.dispose();
        for (const t of owned) t.dispose();
      }
    }
    const joined = (parts: Tensor[]) => {
      const all = parts.length === 1 ? parts[0]! : cat(parts);
      if (parts.length > 1) for (const p of parts) p.dispose();
      parts.length = 0;
      return all;
    };
    const images = joined(results);
    const kept = latents.length > 0 ? { latents: joined(latents) } : {};
    timings.totalMs = performance.now() - started;
    return { images, ...kept, labels, seeds: sampleSeeds(options.seed, 0, count), forwards, timings };
  } catch (error) {
    // Whatever was running when the signal fired (a forward cut short, the
    // sampler between steps) ends as ERR_ABORTED with the reason as its cause.
    if (signal?.aborted && !isTorchGuidanceError(error, ErrorCodes.ABORTED)) throw abortError(signal);
    throw error;
  } finally {
    for (const r of [...results, ...latents]) r.dispose();
  }
}
