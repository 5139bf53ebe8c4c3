/**
 * The native addon: loads it once, when the package is imported (see
 * scripts/binary-candidates.mjs for the search and its checks, so a missing
 * or unfit binary fails the import), and starts it on first use: registers
 * TorchGuidanceError with it and applies the thread settings. Starting on
 * first use rather than at import lets a program choose the torch thread
 * counts in code (setThreads, src/core/threads.ts), which libtorch and the
 * addon take once per process. Everything else imports `native` from here.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

import { type BuildInfo, loadBinary } from '../../../scripts/binary-candidates.mjs';
import { warnOnReferenceBlas } from '../blas-warning.js';
import { type Config, config } from '../config.js';
import { ErrorCodes, TorchGuidanceError } from '../errors.js';
import type { Dtype, DeviceName, NativeTensor, ResolvedDevice } from './tensor-types.js';

export interface CudaDeviceInfo {
  /** "cuda:N" */
  name: string;
  /** The card, e.g. "NVIDIA H100 80GB HBM3" (CUDA builds only). */
  model?: string;
  totalMemory?: number;
  computeCapability?: string;
}

/** The CUDA caching allocator's counts for one device, in bytes. */
export interface CudaMemory {
  /** Bytes in live tensors (torch.cuda.memory_allocated). */
  allocated: number;
  /** The most bytes in live tensors since the last reset (torch.cuda.max_memory_allocated). */
  peakAllocated: number;
  /** Bytes the allocator holds from the driver, in use or cached (torch.cuda.memory_reserved). */
  reserved: number;
}

/** The BLAS libtorch's matrix multiplies call in this process (native/src/runtime/blas_info.h). */
export interface BlasInfo {
  /**
   * 'reference' is Netlib's single-threaded BLAS (Debian's libblas3): matrix
   * multiplies run ~20x slower than on OpenBLAS. 'unknown': a BLAS this
   * package does not recognise, or none found.
   */
  name: 'openblas' | 'mkl' | 'blis' | 'atlas' | 'reference' | 'unknown';
  /** The file that provides libtorch's sgemm_ (symlinks resolved), or libtorch's own file where the BLAS is linked into it. */
  library: string | null;
  /** Threads one matrix multiply may use; null when the BLAS does not say. */
  threads: number | null;
  /** The vendor's build description (openblas_get_config(), MKL's version string). */
  config: string | null;
  /** 'pthreads': a pool of its own, one count for the process; 'openmp': the calling thread's OpenMP team (torch's intra-op count). */
  threading: 'pthreads' | 'openmp' | 'sequential' | null;
  /**
   * Who sets the thread count: 'auto' (this package:
   * max(1, floor(intra-op threads / torch job threads))), 'fixed'
   * (setBlasThreads or TORCH_GUIDANCE_BLAS_THREADS), 'external'
   * (OPENBLAS_NUM_THREADS), 'intra-op' (the BLAS follows torch's intra-op
   * threads) or 'none' (this BLAS cannot be set from here).
   */
  control: 'auto' | 'fixed' | 'external' | 'intra-op' | 'none';
}

export interface NativeRuntimeInfo {
  torchVersion: string;
  torchSource: string;
  libtorchPath: string;
  builtWithCuda: boolean;
  cudaAvailable: boolean;
  cudaDevices: CudaDeviceInfo[];
  intraOpThreads: number;
  interOpThreads: number;
  /** Torch threads running jobs (loads, forwards, copies) at once. */
  jobThreads: number;
  parallelInfo: string;
  /** How long process exit waits, in all, for native jobs still running (TORCH_GUIDANCE_EXIT_WAIT_MS). */
  exitWaitMs: number;
  /** The operator namespace of this addon's hook ops (`guidance`, or `guidance_N` beside another copy). */
  hookNamespace: string;
  blas: BlasInfo;
}

export interface MethodDescription {
  name: string;
  signature: string;
  inputs: { name: string; type: string; optional: boolean }[];
  output: string;
}

export interface NativeModelDescription {
  path: string;
  device: string;
  dtype: Dtype;
  frozen: boolean;
  parameterCount: number;
  parameterBytes: number;
  methods: MethodDescription[];
}

export interface NativeModel {
  /** With `signal`, the promise rejects with ERR_ABORTED when it fires, even mid-forward (the work goes on, its result dropped). */
  call(
    method: string,
    inputs: unknown[],
    plan?: {
      batch: number;
      probe?: boolean;
      entries?: unknown[];
      modules?: unknown[];
      preconditioning?: Preconditioning;
    },
    signal?: AbortSignal,
  ): Promise<unknown>;
  readonly attentionSites: { id: number; path: string; kind: 'softmax' | 'sdpa' | 'mha' }[];
  /** A record under the archive's extra/nulls/ (a version 2 card's null conditions), or null. */
  extraRecord(name: string): Buffer | null;
  /** Every softmax and fused attention op the attention pass saw (native/src/jit/attention_pass.h). */
  readonly attentionCandidates: { path: string; op: string; site: number | null; reason: string | null; attention: boolean }[];
  /** Module outputs the graph pass tagged; hasInput: the call has a tensor argument (skip needs one). */
  readonly moduleSites: { id: number; path: string; hasInput: boolean }[];
  describe(): NativeModelDescription;
  readonly card: string | null;
  readonly device: ResolvedDevice;
  readonly dtype: Dtype;
  readonly forwardCount: number;
  readonly plainForwardCount: number;
  /** The intra-op threads the last call() ran with on its torch thread (a split batch's chunks run with fewer). */
  readonly lastForwardThreads: number;
  lastOptimizedGraph(): string | null;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeBinding {
  Tensor: {
    fromArray(data: ArrayBufferView, shape: readonly number[], options?: { dtype?: Dtype; device?: DeviceName }): NativeTensor;
    randn(
      shape: readonly number[],
      options: { seed: number | bigint | readonly (number | bigint)[]; dtype?: Dtype; device?: DeviceName },
    ): NativeTensor;
    full(shape: readonly number[], value: number, options?: { dtype?: Dtype; device?: DeviceName }): NativeTensor;
    cat(tensors: readonly NativeTensor[]): NativeTensor;
    prototype: NativeTensor;
  };
  Model: {
    load(
      path: string,
      options: { device: DeviceName; dtype: Dtype; attentionHooks?: boolean; trust?: 'full' | 'scan'; memoryLimit?: number; signal?: AbortSignal },
    ): Promise<NativeModel>;
  };
  init(options: {
    errorClass: typeof TorchGuidanceError;
    intraOpThreads: number;
    interOpThreads: number;
    jobThreads: number;
    /** -1: leave the BLAS as its environment set it, 0: auto, n: n threads. */
    blasThreads: number;
    exitWaitMs: number;
  }): NativeRuntimeInfo;
  runtimeInfo(): NativeRuntimeInfo;
  blasInfo(): BlasInfo;
  /** -1 | 0 (auto) | n, as init's blasThreads; returns the BLAS facts after the change. */
  setBlasThreads(setting: number): BlasInfo;
  liveHandles(): { tensors: number; models: number; jobs: number; torchThreads: number };
  cudaMemory(index: number, resetPeak: boolean): CudaMemory | null;
  jobTimes(reset: boolean): JobTimes;
  /** Waits (at most the exit wait, in all) for running jobs; ends the process with `exitCode` if one never returns. */
  prepareExit(exitCode: number): void;
  /** An exclusive flock on `path` (created if missing): its id, or the pid written there by the process that holds it (0: not yet written). */
  tryLockFile(path: string): number | { heldBy: number };
  /** Removes the lock file and releases the lock. */
  unlockFile(id: number): void;
  /**
   * Mean and unbiased covariance (dim × dim, row-major) of a feature matrix, in
   * float64 on a torch thread. `name` names the set in errors (fewer than two
   * rows, a row holding NaN or infinity: ERR_INVALID_ARGUMENT).
   */
  featureMoments(set: NativeFeatureMatrix, options?: { name?: string; signal?: AbortSignal }): Promise<{ mean: Float64Array; cov: Float64Array }>;
  /** The Fréchet distance between two Gaussians and its terms, in float64 on a torch thread (native/src/ops/feature_statistics.h). */
  frechetDistance(a: NativeGaussian, b: NativeGaussian, options?: { signal?: AbortSignal }): Promise<FrechetTerms>;
  /** Squared Euclidean distances between the rows of `a` and of `b`, [a.count, b.count] row-major, in float64. */
  squaredDistances(a: NativeFeatureMatrix, b: NativeFeatureMatrix, options?: { signal?: AbortSignal }): Promise<Float64Array>;
  /**
   * Squared distance from each row to its k-th nearest other row (1 ≤ k < count), in blocks of
   * `blockRows` rows (default: an eighth of the set, at most about 64 MB of distances per block).
   */
  kthNeighbourRadii(set: NativeFeatureMatrix, k: number, options?: { blockRows?: number; signal?: AbortSignal }): Promise<Float64Array>;
  /**
   * Improved precision/recall counts: `precise` generated rows inside some real row's k-NN ball,
   * `recalled` real rows inside some generated row's, with both sets' radii; in blocks of
   * `blockRows` rows (default as kthNeighbourRadii's for the radii, about 64 MB of distances for
   * the cross distances). `realRadii`: the real set's radii when known.
   */
  precisionRecall(
    real: NativeFeatureMatrix,
    fake: NativeFeatureMatrix,
    k: number,
    options?: { realRadii?: Float64Array; blockRows?: number; signal?: AbortSignal },
  ): Promise<{ precise: number; recalled: number; realRadii: Float64Array; fakeRadii: Float64Array }>;
}

/** `count` feature vectors of `dim` values, row-major; copied by the addon when a computation starts. */
export interface NativeFeatureMatrix {
  data: Float32Array | Float64Array;
  count: number;
  dim: number;
}

/** A Gaussian as the addon reads it: `dim` mean values and dim × dim covariance values, row-major. */
export interface NativeGaussian {
  dim: number;
  mean: Float32Array | Float64Array;
  cov: Float32Array | Float64Array;
}

/** The Fréchet distance and its terms (native/src/ops/feature_statistics.h). */
export interface FrechetTerms {
  /** meanTerm + traceCov1 + traceCov2 − 2 traceSqrtProduct. */
  distance: number;
  /** ‖μ1 − μ2‖². */
  meanTerm: number;
  traceCov1: number;
  traceCov2: number;
  /** tr (Σ1 Σ2)^½. */
  traceSqrtProduct: number;
  /** 'cholesky': from a Cholesky factor of Σ1 (or Σ2); 'eigh': both singular, from Σ1^½. */
  method: 'cholesky' | 'eigh';
}

/** c_in, c_noise, c_skip and c_out of one forward (RunOptions.preconditioning; native/src/ops/preconditioning.h). */
export interface Preconditioning {
  inputScale: number;
  time: number;
  skip: number;
  out: number;
}

/** Where native jobs (loads, forwards, copies to JS) spent their time; see runtime.ts jobTimes(). */
export interface JobTimes {
  /** Jobs settled (their promise resolved or rejected) since the last reset. */
  jobs: number;
  /** Summed over those jobs, in ms: submitted until a torch thread started it. */
  queueMs: number;
  /** Running on the torch thread (the forward itself, the copy, the load). */
  workMs: number;
  /** Finished until the main thread picked the result up (a busy event loop shows here). */
  notifyMs: number;
  /** Building the JS result and settling the promise. */
  settleMs: number;
}

/** The thread counts the addon starts with (init's options). */
export interface StartThreads {
  intraOpThreads: number;
  interOpThreads: number;
  jobThreads: number;
  /** -1: leave the BLAS as its environment set it, 0: auto, n: n threads. */
  blasThreads: number;
}

/** config.blasThreads as init's blasThreads: -1 keep, 0 auto, n fixed. */
function blasSetting(setting: Config['blasThreads']): number {
  return setting === 'keep' ? -1 : setting === 'auto' ? 0 : setting;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function load(): { binding: NativeBinding; binaryPath: string; buildInfo: BuildInfo } {
  let found;
  try {
    found = loadBinary(packageRoot, config.binaryPath);
  } catch (error) {
    throw new TorchGuidanceError(ErrorCodes.BINARY_NOT_FOUND, (error as Error).message, { cause: error });
  }
  const binding = found.binding as NativeBinding;
  // `using t = ...` support: the native class has dispose(), not the symbol.
  const proto = binding.Tensor.prototype as unknown as Record<symbol, unknown>;
  proto[Symbol.dispose] = function (this: NativeTensor) {
    this.dispose();
  };
  return { binding, binaryPath: found.path, buildInfo: found.buildInfo };
}

const loaded = load();
export const { binaryPath, buildInfo } = loaded;

/** The settings the addon will start with; setThreads may change them until it starts. */
let startThreads: StartThreads = {
  intraOpThreads: config.intraOpThreads,
  interOpThreads: config.interOpThreads,
  jobThreads: config.jobThreads,
  blasThreads: blasSetting(config.blasThreads),
};
/** What init answered, once this thread's addon has started. */
let started: NativeRuntimeInfo | undefined;

/** Changes the settings the addon will start with; false when it has already started (then nothing changes). */
export function setStartSettings(next: Partial<StartThreads>): boolean {
  if (started) return false;
  startThreads = { ...startThreads, ...next };
  return true;
}

/**
 * Starts this thread's addon if it has not started, and returns what init
 * answered: the thread counts in force. In a worker thread the process's
 * torch threads were set by the first start in the process.
 */
export function startNative(): NativeRuntimeInfo {
  if (started) return started;
  const { binding } = loaded;
  started = binding.init({ errorClass: TorchGuidanceError, ...startThreads, exitWaitMs: config.exitWaitMs });
  if (isMainThread) {
    warnOnReferenceBlas(started.blas, config.allowReferenceBlas);
    // Exiting while a forward runs: let running jobs finish (and start no
    // queued one) before C++ static destructors run under them. Only the main
    // thread's exit ends the process.
    process.once('exit', (code) => binding.prepareExit(typeof code === 'number' ? code : 0));
  }
  return started;
}

/** The addon, started on first use of any of its members. */
export const native: NativeBinding = new Proxy(loaded.binding, {
  get(target, key, receiver) {
    if (!started) startNative();
    return Reflect.get(target, key, receiver);
  },
});
