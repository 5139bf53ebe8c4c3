import { binaryPath, buildInfo, native, type CudaMemory, type NativeRuntimeInfo } from './native/binding.js';

export type { CudaMemory } from './native/binding.js';

export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The .node file this process loaded. */
  binaryPath: string;
  /** The facts recorded when that binary was built. */
  build: typeof buildInfo;
}

/** libtorch version, CUDA devices, thread settings and the loaded binary. */
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
