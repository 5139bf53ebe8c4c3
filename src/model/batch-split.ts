/**
 * Splitting one forward's batch into chunks that run at the same time on the
 * torch threads (Model.run's `parallel` option).
 *
 * Why: on the CPU, libtorch's intra-op threads scale poorly on the small
 * convolutions and attention of image diffusion models: on a 2-core machine a
 * batch-32 forward with 2 OpenMP threads is barely faster than with one, while
 * two batch-16 forwards on two threads at once finish in about 0.6 of the time
 * (benchmarks/results/batch-parallel.md). Each sample's result depends only on
 * its own inputs, so the chunks' outputs, concatenated, are the batch's output
 * (to round-off: a convolution may pick another algorithm for another batch
 * size).
 *
 * Hooks act on batch slices, so each chunk gets the plan entries that
 * intersect it, rebased to its own start. Every action is per sample, except
 * module noise with one seed for a whole slice (randn([length, ...], { seed })):
 * cutting that slice would draw other noise, so no cut falls inside one.
 */
import type { NativePlanEntry } from '../hooks/attention.js';
import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { ForwardOutput } from './model.js';
import type { NativeModuleEntry } from '../hooks/module-hooks.js';
import { type Tensor, cat, isTensor } from '../core/tensor.js';

/**
 * parallel 'auto' makes no chunk smaller than this: at batch 2 the split lost
 * (benchmarks/results/batch-parallel.md), and chunks of 4 ran slower per
 * sample than chunks of 8.
 */
export const AUTO_MIN_CHUNK = 4;

/**
 * parallel 'auto' makes no chunk larger than this where the batch allows:
 * smaller chunks ran faster per sample, two at a time, than larger ones
 * (sampling the shipped UNet on a 2-core AMD EPYC, in one process, paired:
 * 32 rows as 4 chunks of 8 took 0.82-0.87 of 2 chunks of 16; 64 rows as
 * chunks of 8-16 took 0.84-0.93 of chunks of 32; 128 rows as chunks of 11-22
 * took 0.82-0.84 of chunks of 64; chunks of 4 were slower again). On a 2-core
 * Intel Xeon (benchmarks/chunk-size.ts, docs/benchmarks.md) the split gained
 * as much (whole took 1.54-1.57x auto's time) but chunk size mattered less:
 * from 8 to 32 samples all within -7 %..+12 % of auto, chunks of 4 slower
 * again (+7-13 %). One model on two machines: a larger model may prefer
 * larger chunks, which `parallel: K` gives; chunk-size.ts measures it.
 */
export const AUTO_MAX_CHUNK = 12;

/**
 * How many chunks parallel 'auto' splits a forward of `rows` samples into on
 * `threads` torch threads: a multiple of the thread count (so that no thread
 * idles in the last round) with chunks of at most AUTO_MAX_CHUNK samples, but
 * none below AUTO_MIN_CHUNK. One thread: no split.
 */
export function autoChunks(rows: number, threads: number): number {
  if (threads < 2) return 1;
  const rounds = Math.ceil(rows / (threads * AUTO_MAX_CHUNK));
  return Math.max(1, Math.min(threads * rounds, Math.floor(rows / AUTO_MIN_CHUNK)));
}

/** A chunk of the batch: samples [start, end). */
export interface Chunk {
  start: number;
  end: number;
}

/** Whether a cut before sample `at` would split a single-seed noise slice. */
function cutsNoise(at: number, modules: readonly NativeModuleEntry[]): boolean {
  return modules.some(
    (m) => m.action === 'noise' && !Array.isArray(m.seed) && m.start < at && at < m.start + m.length,
  );
}

/**
 * Up to `parts` contiguous chunks of `batch` samples, as equal as the
 * allowed cuts permit. Fewer when the batch is smaller than `parts` or the
 * noise slices leave no cut near an even split; one chunk means "do not split".
 */
export function chunkBatch(batch: number, parts: number, modules: readonly NativeModuleEntry[] = []): Chunk[] {
  const wanted = Math.max(1, Math.min(parts, batch));
  const cuts: number[] = [];
  for (let i = 1; i < wanted; i++) {
    const ideal = Math.round((i * batch) / wanted);
    const previous = cuts.at(-1) ?? 0;
    // The allowed cut nearest the even one, after the previous cut.
    let best: number | undefined;
    for (let at = previous + 1; at < batch; at++) {
      if (cutsNoise(at, modules)) continue;
      if (best === undefined || Math.abs(at - ideal) < Math.abs(best - ideal)) best = at;
    }
    if (best !== undefined && !cuts.includes(best)) cuts.push(best);
  }
  const bounds = [0, ...cuts, batch];
  return bounds.slice(1).map((end, i) => ({ start: bounds[i]!, end }));
}

/** The slice [start, start + length) ∩ chunk, rebased to the chunk's start; null when empty. */
function intersect(start: number, length: number, chunk: Chunk): { start: number; length: number } | null {
  const from = Math.max(start, chunk.start);
  const to = Math.min(start + length, chunk.end);
  return to > from ? { start: from - chunk.start, length: to - from } : null;
}

/** The attention plan entries that act on `chunk`, rebased to it. */
export function entriesForChunk(entries: readonly NativePlanEntry[], chunk: Chunk): NativePlanEntry[] {
  return entries.flatMap((entry) => {
    const part = intersect(entry.start, entry.length, chunk);
    return part ? [{ ...entry, ...part }] : [];
  });
}

/**
 * The module entries that act on `chunk`, rebased to it. Per-sample seeds are
 * sliced with the samples; a single seed's slice is never cut (chunkBatch).
 */
export function modulesForChunk(modules: readonly NativeModuleEntry[], chunk: Chunk): NativeModuleEntry[] {
  return modules.flatMap((entry) => {
    const part = intersect(entry.start, entry.length, chunk);
    if (!part) return [];
    const rebased: NativeModuleEntry = { ...entry, ...part };
    if (Array.isArray(entry.seed)) {
      const offset = chunk.start + part.start - entry.start;
      rebased.seed = entry.seed.slice(offset, offset + part.length);
    }
    return [rebased];
  });
}

/**
 * The chunks' outputs joined into the batch's: tensors concatenated along the
 * batch, arrays and objects element by element, other values equal in every
 * chunk. Checks the whole structure before making any tensor, so a refusal
 * leaks nothing.
 */
export function catOutputs(outputs: readonly ForwardOutput[], chunks: readonly Chunk[]): ForwardOutput {
  checkJoinable(outputs, chunks);
  return join(outputs);
}

function checkJoinable(outputs: readonly ForwardOutput[], chunks: readonly Chunk[]): void {
  const [head] = outputs;
  if (isTensor(head)) {
    const aligned = outputs.every((t, i) => isTensor(t) && t.shape[0] === chunks[i]!.end - chunks[i]!.start);
    if (!aligned) throw notBatched('a tensor output that does not lead with the batch');
  } else if (Array.isArray(head)) {
    head.forEach((_, i) => checkJoinable(outputs.map((o) => (o as ForwardOutput[])[i]!), chunks));
  } else if (head !== null && typeof head === 'object') {
    for (const key of Object.keys(head)) checkJoinable(outputs.map((o) => (o as Record<string, ForwardOutput>)[key]!), chunks);
  } else if (!outputs.every((o) => o === head)) {
    throw notBatched(`a non-tensor output that differs between chunks (${String(head)})`);
  }
}

function join(outputs: readonly ForwardOutput[]): ForwardOutput {
  const [head] = outputs;
  if (isTensor(head)) return cat(outputs as Tensor[]);
  if (Array.isArray(head)) return head.map((_, i) => join(outputs.map((o) => (o as ForwardOutput[])[i]!)));
  if (head !== null && typeof head === 'object') {
    return Object.fromEntries(Object.keys(head).map((key) => [key, join(outputs.map((o) => (o as Record<string, ForwardOutput>)[key]!))]));
  }
  return head as ForwardOutput;
}

function notBatched(what: string): TorchGuidanceError {
  return new TorchGuidanceError(
    ErrorCodes.INVALID_OPTION,
    `run: parallel split the batch, but the method returned ${what}, so the chunks cannot be joined. Fix: run it with parallel: 1.`,
  );
}

/** Each site's captured maps from the chunks that captured it, concatenated in batch order. */
export function catCaptures(perChunk: readonly (readonly [number, Tensor][])[]): [number, Tensor][] {
  const bySite = new Map<number, Tensor[]>();
  for (const captures of perChunk) for (const [site, t] of captures) bySite.set(site, [...(bySite.get(site) ?? []), t]);
  return [...bySite].map(([site, maps]) => [site, cat(maps)]);
}
