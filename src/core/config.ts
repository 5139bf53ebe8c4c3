/**
 * Environment variables, parsed once. All share the TORCH_GUIDANCE_ prefix.
 * The thread counts may also be set from code (setThreads,
 * src/core/threads.ts), which wins over these.
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
 * - TORCH_GUIDANCE_MEMORY_LIMIT: the memory one request may plan to use
 *   (src/limits.ts): bytes ("8000000000"), with a unit ("8GiB", "512MB") or
 *   a share of the machine's memory ("50%"). Default 75 % of the physical
 *   memory (or of the cgroup's limit, when lower).
 * - TORCH_GUIDANCE_EXIT_WAIT_MS: how long process exit waits, in all, for
 *   native jobs still running (default 60000); see native/src/runtime/inflight.h.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';

import { ErrorCodes, TorchGuidanceError } from './errors.js';

export interface Config {
  binaryPath: string | undefined;
  intraOpThreads: number;
  interOpThreads: number;
  jobThreads: number;
  /** 'auto', a fixed count, or 'keep' (OPENBLAS_NUM_THREADS is set and TORCH_GUIDANCE_BLAS_THREADS is not). */
  blasThreads: number | 'auto' | 'keep';
  allowReferenceBlas: boolean;
  /** Bytes one request may plan to use (TORCH_GUIDANCE_MEMORY_LIMIT). */
  memoryLimit: number;
  exitWaitMs: number;
}

/** Physical memory, or the cgroup's limit when that is lower (a container). */
export function machineMemory(): number {
  let memory = totalmem();
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const limit = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(limit) && limit > 0) memory = Math.min(memory, limit);
    } catch {
      // no such cgroup file here
    }
  }
  return memory;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 2 ** 10, m: 1e6, mb: 1e6, mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30, t: 1e12, tb: 1e12, tib: 2 ** 40 };

/** "8GiB", "512MB", "8e9", "50%" (of machineMemory()) -> bytes. */
export function parseByteSize(raw: string, name: string): number {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*(%|[a-z]*)\s*$/i.exec(raw);
  const unit = match?.[2]?.toLowerCase() ?? '';
  const value = match ? Number(match[1]) : NaN;
  const bytes = unit === '%' ? (value / 100) * machineMemory() : value * (UNITS[unit] ?? NaN);
  if (!Number.isFinite(bytes) || bytes < 1 || (unit === '%' && value > 100)) {
    throw new TorchGuidanceError(
      ErrorCodes.INVALID_OPTION,
      `${name}=${raw} is not a memory size. Fix: give bytes ("8000000000"), a size with a unit ("8GiB", "512MB") or a share of the machine's memory ("50%").`,
    );
  }
  return Math.floor(bytes);
}

function nonNegativeInt(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `${name}=${raw} must be an integer from 0 to ${max}.`);
  }
  return value;
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
    memoryLimit: process.env.TORCH_GUIDANCE_MEMORY_LIMIT
      ? parseByteSize(process.env.TORCH_GUIDANCE_MEMORY_LIMIT, 'TORCH_GUIDANCE_MEMORY_LIMIT')
      : Math.floor(machineMemory() * 0.75),
    exitWaitMs: nonNegativeInt('TORCH_GUIDANCE_EXIT_WAIT_MS', 60_000, 3_600_000),
  };
}

export const config: Readonly<Config> = Object.freeze(readConfig());
