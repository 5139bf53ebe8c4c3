/**
 * What sample() and explain() do before any forward: check the options
 * against the model, work out each sample's label, build a batch's guided
 * denoiser with its conditions, and check the run against the memory limit.
 */
import type { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { checkMemory, resourceLimits } from '../core/limits.js';
import { parseOptions } from '../core/options.js';
import { mixSeed, sampleSeed, sampleSeeds } from '../core/seeds.js';
import { type Tensor, isTensor, tensor } from '../core/tensor.js';
import { torchThreads } from '../core/threads.js';
import { Denoiser } from '../guidance/denoiser.js';
import { GuidedDenoiser } from '../guidance/guided-denoiser.js';
import { type NamedConditions, namedBatch, namedCount } from './named-conditions.js';
import { estimateSampleMemory } from './sample-memory.js';
import { type SampleOptions, sampleSchema } from './sample-options.js';
import { FIRST_ORDER_SAMPLERS, type Sampler } from './samplers/samplers.js';
import { sigmasFor } from './samplers/sigma-schedules.js';

/** A sample() or explain() call's checked options, with what they imply for the run. */
export interface Prepared {
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
export function labelsFor(prep: Prepared, first: number, n: number): (number | null)[] {
  if (prep.given) return prep.given.slice(first, first + n);
  if (prep.main.conditioning.kind !== 'class') return [];
  return Array.from({ length: n }, (_, k) => labelAt(prep, first + k)!);
}

/** Checks the options, also against the model (labels, conditions), and works out the run's count, sampler and sigmas. */
export function prepare(raw: SampleOptions): Prepared {
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
export function batchIsUnconditional(prep: Prepared, first: number, n: number): boolean {
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
export function batchGroups(prep: Prepared): { start: number; n: number; batches: number }[] {
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
export function checkPreparedMemory(prep: Prepared): void {
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
    splitThreads: model.device === 'cpu' ? model.splitThreads : 1,
    jobThreads: torchThreads().jobs,
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

/**
 * The guided denoiser of the batch [first, first + n) with its conditions;
 * the condition tensors it makes go into `owned`, for the caller to free.
 */
export function guidedFor(prep: Prepared, first: number, n: number, owned: Tensor[]): GuidedDenoiser {
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
 * against the memory limit (src/core/limits.ts, sample-memory.ts). Throws
 * ERR_OUT_OF_MEMORY naming the limit, or the options' own errors.
 */
export function checkSampleMemory(raw: SampleOptions): void {
  checkPreparedMemory(prepare(raw));
}
