/**
 * Environment variables, parsed once. All share the TORCH_GUIDANCE_ prefix,
 * except UV_THREADPOOL_SIZE, which is libuv's.
 *
 * - TORCH_GUIDANCE_BINARY: path of a torch_guidance.node to load instead of
 *   searching build/ and prebuilds/.
 * - TORCH_GUIDANCE_INTRAOP_THREADS: threads one forward may use (default: the
 *   machine's available parallelism).
 * - TORCH_GUIDANCE_INTEROP_THREADS: libtorch's inter-op pool (default 1:
 *   models here do not fork).
 * - UV_THREADPOOL_SIZE: libuv's pool (default 4). Forwards run there; at most
 *   `maxConcurrentJobs` (one less than the pool, at least 1) run at once, so
 *   file-system and DNS work always has a thread left.
 */
import { availableParallelism } from 'node:os';

import { ErrorCodes, TorchGuidanceError } from './errors.js';

export interface Config {
  binaryPath: string | undefined;
  intraOpThreads: number;
  interOpThreads: number;
  uvThreadpoolSize: number;
  maxConcurrentJobs: number;
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 4096) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `${name}=${raw} must be an integer from 1 to 4096.`);
  }
  return value;
}

function readConfig(): Config {
  const uvThreadpoolSize = positiveInt('UV_THREADPOOL_SIZE', 4);
  return {
    binaryPath: process.env.TORCH_GUIDANCE_BINARY || undefined,
    intraOpThreads: positiveInt('TORCH_GUIDANCE_INTRAOP_THREADS', availableParallelism()),
    interOpThreads: positiveInt('TORCH_GUIDANCE_INTEROP_THREADS', 1),
    uvThreadpoolSize,
    maxConcurrentJobs: Math.max(1, uvThreadpoolSize - 1),
  };
}

export const config: Readonly<Config> = Object.freeze(readConfig());
