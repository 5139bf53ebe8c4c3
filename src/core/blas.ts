/**
 * The BLAS thread count from JS: setBlasThreads(), and how many chunks
 * `parallel: 'auto'` may run at once given the BLAS (splitThreads). The
 * count itself is kept natively, for the whole process
 * (native/src/runtime/blas_threads.h), so worker threads see one setting.
 */
import { ErrorCodes, TorchGuidanceError } from './errors.js';
import { type BlasInfo, native } from './native/binding.js';
import { torchThreads } from './threads.js';

/** runtimeInfo().blas alone: cheap enough to ask before every forward. */
export function blasInfo(): BlasInfo {
  return native.blasInfo();
}

/**
 * Sets how many threads the BLAS gives one matrix multiply, for the whole
 * process, from now on: a count, or 'auto' (the default:
 * max(1, floor(intra-op threads / torch job threads)), so that the torch
 * threads running forwards at once, the chunks of a CPU batch split among
 * them, never ask the BLAS for more threads than the budget). OpenBLAS cuts a
 * matrix multiply differently for another count, so a change moves results by
 * round-off, as `parallel` does; the count is never changed behind your back,
 * so the same call gives the same result whatever else runs.
 * Takes effect where the result's `control` is 'auto' or 'fixed' (an OpenBLAS
 * with its own threads); an OpenMP OpenBLAS and MKL follow torch's intra-op
 * count instead ('intra-op'), and the reference BLAS has one thread ('none').
 * Same as TORCH_GUIDANCE_BLAS_THREADS and setThreads({ blas }). Returns the
 * BLAS facts after the change.
 */
export function setBlasThreads(threads: number | 'auto'): BlasInfo {
  if (threads !== 'auto' && (!Number.isInteger(threads) || threads < 1 || threads > 4096)) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_ARGUMENT,
      `setBlasThreads: give a whole number of threads from 1 to 4096, or 'auto'; got ${String(threads)}.`,
    );
  }
  return native.setBlasThreads(threads === 'auto' ? 0 : threads);
}

/** Torch threads `parallel: 'auto'` spreads a CPU forward over, given the thread counts in force and the BLAS's setting now. */
export function autoSplitThreads(): number {
  const { jobs, intraOp } = torchThreads();
  return splitThreads(jobs, blasInfo(), intraOp);
}

/**
 * How many torch threads parallel 'auto' spreads a forward over, given the
 * BLAS: `jobThreads`, unless the chunks' matrix multiplies would then ask for
 * more threads than one job may use (`budget`, the intra-op count).
 *
 * Why: each chunk runs as its own job, and a BLAS with a thread pool of its
 * own (OpenBLAS built with pthreads) gives every calling job its thread count.
 * Under the default 'auto' BLAS control that count is the budget divided by
 * the torch threads (native/src/runtime/blas_threads.h), so the split never passes the
 * budget. Where the count is set otherwise ('fixed' by setBlasThreads or
 * TORCH_GUIDANCE_BLAS_THREADS, 'external' by OPENBLAS_NUM_THREADS), K chunks
 * run K times that many BLAS threads, so only floor(budget / threads) chunks
 * run at once: pinning the BLAS at every core means one forward at a time. A single-threaded BLAS (the reference one) or one that shares torch's
 * own OpenMP threads ('intra-op': MKL, OpenMP OpenBLAS) adds no threads of its
 * own, and the split is the only way a single-threaded BLAS's work reaches a
 * second core.
 */
export function splitThreads(
  jobThreads: number,
  blas: { control: string; threads: number | null },
  budget: number,
): number {
  const pinned = (blas.control === 'fixed' || blas.control === 'external') && blas.threads !== null && blas.threads > 1;
  return pinned ? Math.max(1, Math.min(jobThreads, Math.floor(budget / blas.threads!))) : jobThreads;
}
