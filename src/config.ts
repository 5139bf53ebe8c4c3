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
 */
import { availableParallelism } from 'node:os';

import { ErrorCodes, TorchGuidanceError } from './errors.js';

export interface Config {
  binaryPath: string | undefined;
  intraOpThreads: number;
  interOpThreads: number;
  jobThreads: number;
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
  return {
    binaryPath: process.env.TORCH_GUIDANCE_BINARY || undefined,
    intraOpThreads: positiveInt('TORCH_GUIDANCE_INTRAOP_THREADS', availableParallelism()),
    interOpThreads: positiveInt('TORCH_GUIDANCE_INTEROP_THREADS', 1),
    jobThreads: positiveInt('TORCH_GUIDANCE_JOB_THREADS', 2),
  };
}

export const config: Readonly<Config> = Object.freeze(readConfig());
