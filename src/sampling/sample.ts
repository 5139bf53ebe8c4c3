/**
 * sample(): draws images from a denoiser with any stack of guidance
 * strategies. Samples run in batches; sample i of a run with seed s uses seed
 * s + i for all of its noise, so its result does not depend on its batch.
 * The options are in sample-options.ts, what happens before any forward in
 * sample-prepare.ts, and explain() in explain.ts.
 */
import { ErrorCodes, TorchGuidanceError, abortError, isTorchGuidanceError } from '../core/errors.js';
import type { GuidedDenoiser } from '../guidance/guided-denoiser.js';
import { decode } from '../model/decode.js';
import type { DenoiserCard } from '../model/model-card.js';
import { Model } from '../model/model.js';
import { Streams, mixSeed, sampleSeeds } from '../core/seeds.js';
import { runSampler } from './samplers/samplers.js';
import { type Tensor, cat, randn } from '../core/tensor.js';
import type { SampleOptions, SampleResult } from './sample-options.js';
import { type Prepared, checkPreparedMemory, guidedFor, labelsFor, prepare } from './sample-prepare.js';

export type { SampleOptions, SampleProgress, SampleResult } from './sample-options.js';

/** The decoder stage sample() runs, if any: `decode` false skips it; a Model replaces the card's decoder. */
async function decoderOf(model: Model, option: boolean | Model | undefined): Promise<{ decoder: Model; ref: NonNullable<DenoiserCard['decoder']> } | undefined> {
  const card = model.card as DenoiserCard;
  if (option === false) return undefined;
  if (option instanceof Model) return { decoder: option, ref: card.decoder ?? { file: '', scalingFactor: 1, shiftFactor: 0 } };
  const decoder = await model.loadDecoder();
  return decoder && card.decoder ? { decoder, ref: card.decoder } : undefined;
}

/**
 * Guided sampling: draws one sample per label (or `count`), batch by batch,
 * with the strategies in `guidance` stacked into one guided prediction per
 * step. Every sample depends only on its own seed, not on its batch. Rejects
 * with a TorchGuidanceError for bad options, for a run over the memory limit
 * (before allocating; src/core/limits.ts), and for NaN or infinity during
 * sampling (ERR_NON_FINITE, unless checkFinite is false); with ERR_ABORTED (its
 * cause the signal's reason, as Node's own APIs reject) when the signal fires,
 * at once, even while a forward runs.
 */
export async function sample(raw: SampleOptions): Promise<SampleResult> {
  const prep = prepare(raw);
  checkPreparedMemory(prep);
  const { options, count } = prep;
  const { signal, batchSize } = options;
  const started = performance.now();
  const run: RunState = {
    prep,
    started,
    batches: Math.ceil(count / batchSize),
    decoding: await decoderOf(options.model, options.decode),
    results: [],
    latents: [],
    labels: [],
    forwards: 0,
    timings: { totalMs: 0, forwardMs: 0, mixMs: 0, samplerMs: 0 },
  };
  try {
    for (let b = 0; b < run.batches; b++) {
      if (signal?.aborted) throw abortError(signal);
      await sampleBatch(run, b);
    }
    const images = joined(run.results);
    const kept = run.latents.length > 0 ? { latents: joined(run.latents) } : {};
    run.timings.totalMs = performance.now() - started;
    return { images, ...kept, labels: run.labels, seeds: sampleSeeds(options.seed, 0, count), forwards: run.forwards, timings: run.timings };
  } catch (error) {
    // Whatever was running when the signal fired (a forward cut short, the
    // sampler between steps) ends as ERR_ABORTED with the reason as its cause.
    if (signal?.aborted && !isTorchGuidanceError(error, ErrorCodes.ABORTED)) throw abortError(signal);
    throw error;
  } finally {
    for (const r of [...run.results, ...run.latents]) r.dispose();
  }
}

/** A sample() call in progress: what its batches have made so far. */
interface RunState {
  prep: Prepared;
  started: number;
  batches: number;
  decoding: Awaited<ReturnType<typeof decoderOf>>;
  /** Each batch's images (decoded, with a decoder), and its latents with keepLatents; owned until joined. */
  results: Tensor[];
  latents: Tensor[];
  labels: (number | null)[];
  forwards: number;
  timings: SampleResult['timings'];
}

/** Samples batch `b` of the run into `run`: its own guided denoiser, noise from its samples' seeds, the sampler, the decoder. */
async function sampleBatch(run: RunState, b: number): Promise<void> {
  const { prep } = run;
  const { options, count } = prep;
  const first = b * options.batchSize;
  const n = Math.min(options.batchSize, count - first);
  const owned: Tensor[] = [];
  let guided: GuidedDenoiser | undefined;
  try {
    guided = guidedFor(prep, first, n, owned);
    const batchStart = performance.now();
    const images = await denoiseBatch(run, b, guided, first, n);
    if (run.decoding) {
      const decoded = await decode(run.decoding.decoder, run.decoding.ref, images, options.signal).finally(() => {
        if (options.keepLatents) run.latents.push(images);
        else images.dispose();
      });
      run.results.push(decoded);
    } else {
      run.results.push(images);
    }
    for (const label of labelsFor(prep, first, n)) run.labels.push(label);
    run.forwards += guided.forwards;
    run.timings.forwardMs += guided.times.forwardMs;
    run.timings.mixMs += guided.times.mixMs;
    run.timings.samplerMs += performance.now() - batchStart - guided.times.forwardMs - guided.times.mixMs;
  } finally {
    guided?.dispose();
    for (const t of owned) t.dispose();
  }
}

/** Runs the sampler over one batch from its starting noise; the final x, which the caller owns. */
async function denoiseBatch(run: RunState, b: number, denoiser: GuidedDenoiser, first: number, n: number): Promise<Tensor> {
  const { options, main, sampler, sigmas, count } = run.prep;
  const { signal, onProgress } = options;
  const seeds = sampleSeeds(options.seed, first, n);
  const shape = [n, ...main.card.sampleShape];
  const device = options.model.device;
  using noise = randn(shape, { seed: seeds, device });
  const x = noise.mul(sigmas[0]!);
  return await runSampler(sampler, sigmas, x, {
    denoise: async (current, sigma, step) => {
      if (signal?.aborted) throw abortError(signal);
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
      onProgress?.({ done: first, count, batch: b, batches: run.batches, step: step + 1, steps: sampler.steps, elapsedMs: performance.now() - run.started });
    },
  });
}

/** The batches' tensors as one, freeing the parts; `parts` is left empty, so the caller's cleanup frees nothing twice. */
function joined(parts: Tensor[]): Tensor {
  const all = parts.length === 1 ? parts[0]! : cat(parts);
  if (parts.length > 1) for (const p of parts) p.dispose();
  parts.length = 0;
  return all;
}
