import { config } from './config.js';
import { binaryPath, buildInfo, native, type NativeRuntimeInfo } from './native/binding.js';

export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The .node file this process loaded. */
  binaryPath: string;
  /** The facts recorded when that binary was built. */
  build: typeof buildInfo;
  uvThreadpoolSize: number;
  /** Native jobs (forwards) allowed to run at once: UV_THREADPOOL_SIZE - 1, at least 1. */
  maxConcurrentJobs: number;
}

/** libtorch version, CUDA devices, thread settings and the loaded binary. */
export function runtimeInfo(): RuntimeInfo {
  return {
    ...native.runtimeInfo(),
    binaryPath,
    build: buildInfo,
    uvThreadpoolSize: config.uvThreadpoolSize,
    maxConcurrentJobs: config.maxConcurrentJobs,
  };
}

/** Handles alive right now (for leak tests): tensors, models, native jobs running. */
export function liveHandles(): { tensors: number; models: number; jobs: number } {
  return native.liveHandles();
}
