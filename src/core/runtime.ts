import { binaryPath, buildInfo, native, type CudaMemory, type JobTimes, type NativeRuntimeInfo } from './native/binding.js';

export { setBlasThreads } from './blas.js';
export { setThreads, type ThreadSettings } from './threads.js';
export type { BlasInfo, CudaMemory, JobTimes } from './native/binding.js';

/** What {@link runtimeInfo} reports: libtorch, CUDA, threads, the loaded binary. */
export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The .node file this process loaded. */
  binaryPath: string;
  /** The facts recorded when that binary was built. */
  build: typeof buildInfo;
}

/** libtorch version, CUDA devices, thread settings, the BLAS libtorch calls and the loaded binary. */
export function runtimeInfo(): RuntimeInfo {
  return {
    ...native.runtimeInfo(),
    binaryPath,
    build: buildInfo,
  };
}

/**
 * Handles alive right now (for leak tests): tensors, models, native jobs
 * running, and torch threads started so far.
 */
export function liveHandles(): { tensors: number; models: number; jobs: number; torchThreads: number } {
  return native.liveHandles();
}

/**
 * The CUDA caching allocator's byte counts for device `index` (as
 * torch.cuda.memory_allocated / max_memory_allocated / memory_reserved give
 * them), or null where there is no such device or this build cannot read
 * them. `resetPeak` starts a new peak after reading, to measure one run.
 */
export function cudaMemory(index = 0, { resetPeak = false }: { resetPeak?: boolean } = {}): CudaMemory | null {
  return native.cudaMemory(index, resetPeak);
}

/**
 * Where the native jobs of this thread (loads, forwards, copies to JS) spent
 * their time since the last reset, summed over the jobs that settled: waiting
 * for a torch thread (`queueMs`), running there (`workMs`), waiting for the
 * event loop to pick the result up (`notifyMs`), and settling (`settleMs`).
 * The difference between an awaited call's wall time and `workMs` is what the
 * path from JS to libtorch and back costs; a large `notifyMs` means the event
 * loop was busy. Three clock reads per job; always on.
 * `reset` zeroes the sums after reading, to measure one run.
 */
export function jobTimes({ reset = false }: { reset?: boolean } = {}): JobTimes {
  return native.jobTimes(reset);
}
