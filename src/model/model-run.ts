/**
 * The parts of Model.run() around the native call: its options' checks, and
 * the CPU batch split that runs the chunks of one forward at once and joins
 * their outputs (the pure chunking and joining are in batch-split.ts).
 */
import { setMaxListeners } from 'node:events';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import type { Preconditioning } from '../core/native/binding.js';
import { isTensor, type Tensor } from '../core/tensor.js';
import type { NativePlanEntry } from '../hooks/attention.js';
import type { NativeModuleEntry } from '../hooks/module-hooks.js';
import { type Chunk, catCaptures, catOutputs, entriesForChunk, modulesForChunk } from './batch-split.js';
import { disposeOutput, type ForwardInput, type NativeHookResult } from './model-types.js';

/** One forward's hook plan, as the addon takes it. */
export interface NativePlan {
  batch: number;
  entries: NativePlanEntry[];
  modules: NativeModuleEntry[];
  preconditioning: Preconditioning | undefined;
  /** OpenMP threads for this forward alone (a chunk of a split batch); absent: the process-wide count. */
  intraOpThreads?: number;
}

/**
 * The intra-op threads each chunk of a split forward runs with: the
 * process-wide count shared by the chunks that run at once, so that they do
 * not ask for more cores than one forward would (native/src/runtime/intra_op_threads.h;
 * the gain is measured in docs/benchmarks.md).
 */
export function chunkIntraOpThreads(chunks: number, threads: { intraOp: number; jobs: number }): number {
  const atOnce = Math.max(1, Math.min(chunks, threads.jobs));
  return Math.max(1, Math.floor(threads.intraOp / atOnce));
}

/** The addon's call of one method with a plan. */
export type NativeCall = (method: string, inputs: readonly ForwardInput[], plan: NativePlan, signal: AbortSignal | undefined) => Promise<NativeHookResult>;

/** Checks run()'s `parallel` and `preconditioning` (ERR_INVALID_OPTION naming the field). */
export function checkRunOptions(parallel: number | 'auto', preconditioning: Preconditioning | undefined): void {
  if (parallel !== 'auto' && (!Number.isInteger(parallel) || parallel < 1)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `run: parallel must be a positive integer or 'auto', got ${String(parallel)}.`);
  }
  if (preconditioning) checkPreconditioning(preconditioning);
}

function checkPreconditioning(p: Preconditioning): void {
  for (const key of ['inputScale', 'time', 'skip', 'out'] as const) {
    if (typeof p[key] !== 'number' || !Number.isFinite(p[key])) {
      throw new TorchGuidanceError(
        ErrorCodes.INVALID_OPTION,
        `run: preconditioning.${key} must be a finite number, got ${String(p[key])}. Fix: pass the scalings of a finite sigma (Denoiser.scalings).`,
      );
    }
  }
}

/**
 * One forward with the batch split into chunks that run at once; their
 * outputs and captures concatenated. Every chunk is awaited and every
 * intermediate freed, also when one fails.
 */
export async function runChunks(
  call: NativeCall,
  method: string,
  inputs: readonly ForwardInput[],
  chunks: readonly Chunk[],
  plan: NativePlan,
  signal: AbortSignal | undefined,
): Promise<Pick<NativeHookResult, 'output' | 'captures'>> {
  const views: Tensor[] = [];
  const parts: NativeHookResult[] = [];
  const shared = chunkSignal(signal);
  try {
    // async: a synchronous throw (say, inputs the signature refuses) becomes
    // a rejection, so the chunks already started are still awaited and freed.
    const settled = await Promise.allSettled(
      chunks.map(async (chunk) => {
        const length = chunk.end - chunk.start;
        const chunkInputs = inputs.map((input) => {
          if (!isTensor(input) || input.shape[0] !== plan.batch) return input;
          const view = input.narrow(chunk.start, length);
          views.push(view);
          return view;
        });
        const chunkPlan = { ...plan, batch: length, entries: entriesForChunk(plan.entries, chunk), modules: modulesForChunk(plan.modules, chunk) };
        return call(method, chunkInputs, chunkPlan, shared);
      }),
    );
    for (const r of settled) if (r.status === 'fulfilled') parts.push(r.value);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return {
      output: catOutputs(parts.map((p) => p.output), chunks),
      captures: catCaptures(parts.map((p) => p.captures)),
    };
  } finally {
    for (const view of views) view.dispose();
    for (const part of parts) {
      disposeOutput(part.output);
      for (const [, t] of part.captures) t.dispose();
    }
  }
}

/**
 * One signal for the chunks of a split forward: each native call listens on
 * its signal, and dozens of chunks on the caller's own would trip Node's
 * leak warning for more than 10 listeners; this adds one listener to it.
 */
function chunkSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
  if (!signal) return undefined;
  const shared = AbortSignal.any([signal]);
  setMaxListeners(0, shared);
  return shared;
}
