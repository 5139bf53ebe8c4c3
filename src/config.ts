/**
 * Environment variables, parsed once. All share the TORCH_GUIDANCE_ prefix.
 *
 * - TORCH_GUIDANCE_BINARY: path of a torch_guidance.node to load instead of
 *   searching build/ and prebuilds/.
 * - TORCH_GUIDANCE_INTRAOP_THREADS: threads one forward may use (default: the
 *   machine's available parallelism).
 * - TORCH_GUIDANCE_INTEROP_THREADS: libtorch's inter-op pool (default 1:
 *   models here do not fork).
 * - TORCH_GUIDANCE_JOB_THREADS: torch threads that run loads, forwards and
 *   copies (default 2), i.e. how many such jobs run at once. They are the
 *   addon's own threads, not libuv's pool, so UV_THREADPOOL_SIZE needs no
 *   change and file-system work never waits behind a forward.
 * - TORCH_GUIDANCE_BLAS_THREADS: threads the BLAS (OpenBLAS with its own
 *   pthreads pool) gives one matrix multiply: 'auto' (default:
 *   max(1, floor(intra-op threads / job threads)), so the jobs running at once
 *   never pass the intra-op budget) or a count. Unset while
 *   OPENBLAS_NUM_THREADS is set: that setting is kept. See docs/performance.md.
 * - TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS=1: do not warn when libtorch runs on
 *   the single-threaded reference BLAS (and let the test that checks for a
 *   fast BLAS pass on such a machine).
 */
import { availableParallelism } from 'node:os';

import { ErrorCodes, TorchGuidanceError } from './errors.js';

export interface Config {
  binaryPath: string | undefined;
  intraOpThreads: number;
  interOpThreads: number;
  jobThreads: number;
  /** 'auto', a fixed count, or 'keep' (OPENBLAS_NUM_THREADS is set and TORCH_GUIDANCE_BLAS_THREADS is not). */
  blasThreads: number | 'auto' | 'keep';
  allowReferenceBlas: boolean;
}

function positiveInt(name: string, fallback: number, accepted = 'an integer from 1 to 4096'): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 4096) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `${name}=${raw} must be ${accepted}.`);
  }
  return value;
}

function blasThreads(): number | 'auto' | 'keep' {
  const raw = process.env.TORCH_GUIDANCE_BLAS_THREADS;
  if (raw === undefined || raw === '') return process.env.OPENBLAS_NUM_THREADS ? 'keep' : 'auto';
  return raw === 'auto' ? 'auto' : positiveInt('TORCH_GUIDANCE_BLAS_THREADS', 1, 'an integer from 1 to 4096, or auto');
}

/** Set to 1 (or true, yes): only these mean yes, so that a typo never silences a warning by accident. */
function flagOn(name: string): boolean {
  return ['1', 'true', 'yes'].includes((process.env[name] ?? '').toLowerCase());
}

function readConfig(): Config {
  return {
    binaryPath: process.env.TORCH_GUIDANCE_BINARY || undefined,
    intraOpThreads: positiveInt('TORCH_GUIDANCE_INTRAOP_THREADS', availableParallelism()),
    interOpThreads: positiveInt('TORCH_GUIDANCE_INTEROP_THREADS', 1),
    jobThreads: positiveInt('TORCH_GUIDANCE_JOB_THREADS', 2),
    blasThreads: blasThreads(),
    allowReferenceBlas: flagOn('TORCH_GUIDANCE_ALLOW_REFERENCE_BLAS'),
  };
}

export const config: Readonly<Config> = Object.freeze(readConfig());
