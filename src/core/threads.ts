/**
 * Thread settings from code, beside their environment variables
 * (src/core/config.ts): torch's intra-op and inter-op counts and the torch
 * job threads, which libtorch and the addon take once per process, when the
 * addon starts (its first use: a tensor, a model, runtimeInfo()); and the
 * BLAS count, which may change at any time (setBlasThreads).
 */
import { isMainThread } from 'node:worker_threads';

import { z } from 'zod';

import { ErrorCodes, TorchGuidanceError } from './errors.js';
import { native, setStartSettings, startNative, type StartThreads } from './native/binding.js';
import { parseOptions } from './options.js';

const count = z.number().int().min(1).max(4096);

const threadSettingsSchema = z
  .object({
    /** Threads one forward (one torch job) may use: torch's intra-op count. TORCH_GUIDANCE_INTRAOP_THREADS; default the available cores. */
    intraOp: count.optional(),
    /** libtorch's inter-op pool. TORCH_GUIDANCE_INTEROP_THREADS; default 1. */
    interOp: count.optional(),
    /** Torch threads that run loads, forwards and copies, i.e. jobs at once. TORCH_GUIDANCE_JOB_THREADS; default 2. */
    jobs: count.optional(),
    /** Threads the BLAS gives one matrix multiply, or 'auto'; as setBlasThreads(). TORCH_GUIDANCE_BLAS_THREADS. */
    blas: z.union([count, z.literal('auto')]).optional(),
  })
  .strict();

/**
 * Options of {@link setThreads}: `intraOp`, `interOp` and `jobs` (whole
 * numbers from 1 to 4096) and `blas` (a count or `'auto'`); each one left
 * out keeps its setting.
 */
export type ThreadSettings = z.input<typeof threadSettingsSchema>;

/** Each torch count's option and its name in init's options and runtimeInfo(). */
const TORCH_COUNTS = [
  ['intraOp', 'intraOpThreads'],
  ['interOp', 'interOpThreads'],
  ['jobs', 'jobThreads'],
] as const;

/** The torch thread counts of the process, as libtorch and the addon report them. */
export interface TorchThreads {
  intraOp: number;
  interOp: number;
  jobs: number;
}

/**
 * Sets the thread counts from code, as the TORCH_GUIDANCE_*_THREADS
 * variables do from the environment (a count given here wins over its
 * variable). The torch counts (`intraOp`, `interOp`, `jobs`) apply when the
 * addon starts, so call this on the main thread before the first tensor,
 * model or runtimeInfo(); afterwards, or in a worker thread, counts other
 * than those in force throw ERR_THREADS_STARTED, since libtorch takes them
 * once per process. `blas` applies at once, as setBlasThreads() does.
 * Throws ERR_INVALID_OPTION for a bad value. runtimeInfo() reports the
 * counts in force.
 *
 * ```ts
 * import { setThreads, runtimeInfo } from 'torch-guidance';
 * setThreads({ intraOp: 4, jobs: 2, blas: 'auto' });
 * runtimeInfo().intraOpThreads; // 4
 * ```
 */
export function setThreads(settings: ThreadSettings): void {
  const parsed = parseOptions(threadSettingsSchema, settings, 'setThreads options');
  const torch = TORCH_COUNTS.filter(([option]) => parsed[option] !== undefined).map(([option, key]) => [option, key, parsed[option]!] as const);
  const blas = parsed.blas === undefined ? undefined : parsed.blas === 'auto' ? 0 : parsed.blas;
  const next: Partial<StartThreads> = Object.fromEntries(torch.map(([, key, value]) => [key, value]));
  if (blas !== undefined) next.blasThreads = blas;
  // A worker thread's addon shares the process's torch threads, which another thread may have set.
  if (isMainThread && setStartSettings(next)) return;
  const now = startNative();
  const differing = torch.filter(([, key, value]) => now[key] !== value);
  if (differing.length > 0) {
    throw new TorchGuidanceError(
      ErrorCodes.THREADS_STARTED,
      `setThreads: ${differing.map(([option, key, value]) => `${option} ${value} (now ${now[key]})`).join(', ')}: the torch threads are set once per process, ` +
        'when the addon starts, and it has started. Fix: call setThreads() on the main thread before the first tensor, model or ' +
        'runtimeInfo(), or set TORCH_GUIDANCE_INTRAOP_THREADS, TORCH_GUIDANCE_INTEROP_THREADS or TORCH_GUIDANCE_JOB_THREADS.',
    );
  }
  if (blas !== undefined) native.setBlasThreads(blas);
}

/** The torch thread counts in force; starts the addon if it has not started. */
export function torchThreads(): TorchThreads {
  const { intraOpThreads, interOpThreads, jobThreads } = startNative();
  return { intraOp: intraOpThreads, interOp: interOpThreads, jobs: jobThreads };
}
