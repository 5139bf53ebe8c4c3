/**
 * The BLAS thread count from JS: setBlasThreads(), and how many chunks
 * `parallel: 'auto'` may run at once given the BLAS (splitThreads in
 * src/batch-split.ts). The count itself is kept natively, for the whole
 * process (native/src/blas_threads.h), so worker threads see one setting.
 */
import { splitThreads } from './batch-split.js';
import { config } from './config.js';
import { ErrorCodes, TorchGuidanceError } from './errors.js';
import { type BlasInfo, native } from './native/binding.js';

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
 * Same as TORCH_GUIDANCE_BLAS_THREADS. Returns the BLAS facts after the change.
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

/** Torch threads `parallel: 'auto'` spreads a CPU forward over, given the BLAS's thread setting now. */
export function autoSplitThreads(): number {
  return splitThreads(config.jobThreads, blasInfo(), config.intraOpThreads);
}
