import { binaryPath, buildInfo, native, type NativeRuntimeInfo } from './native/binding.js';

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
