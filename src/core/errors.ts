/**
 * Every failure torch-guidance reports is a TorchGuidanceError with a stable
 * `code`; the message names the problem and the fix. Native errors are
 * created as this class too (the addon receives it at init).
 */

export const ErrorCodes = {
  /** A function argument has the wrong type or value. */
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  /** An options object failed validation; the message names the field. */
  INVALID_OPTION: 'ERR_INVALID_OPTION',
  /** No file at the model path. */
  MODEL_NOT_FOUND: 'ERR_MODEL_NOT_FOUND',
  /** The file is not a TorchScript archive. */
  NOT_TORCHSCRIPT: 'ERR_NOT_TORCHSCRIPT',
  /** The archive's model.json is not valid JSON (or, later, not a valid card). */
  MODEL_CARD: 'ERR_MODEL_CARD',
  /** The model has no method of that name. */
  METHOD_NOT_FOUND: 'ERR_METHOD_NOT_FOUND',
  /** Wrong number of inputs for the method's signature. */
  INPUT_COUNT: 'ERR_INPUT_COUNT',
  /** An input has the wrong kind (a number where a Tensor is expected, ...). */
  INPUT_TYPE: 'ERR_INPUT_TYPE',
  /** The model rejected the inputs' shapes. */
  INPUT_SHAPE: 'ERR_INPUT_SHAPE',
  /** The model's code failed for another reason. */
  FORWARD_FAILED: 'ERR_FORWARD_FAILED',
  /** The model returned a value with no JS form. */
  OUTPUT_TYPE: 'ERR_OUTPUT_TYPE',
  /** A device name other than auto, cpu, cuda, cuda:N. */
  UNKNOWN_DEVICE: 'ERR_UNKNOWN_DEVICE',
  /** CUDA (or that CUDA ordinal) is not available in this process. */
  CUDA_UNAVAILABLE: 'ERR_CUDA_UNAVAILABLE',
  /** A dtype name that is not in the dtype table. */
  UNKNOWN_DTYPE: 'ERR_UNKNOWN_DTYPE',
  /** A Tensor or Model used after dispose(). */
  DISPOSED: 'ERR_DISPOSED',
  /** An allocation failed (host or device), or a request's estimated memory is over the memory limit (src/limits.ts). */
  OUT_OF_MEMORY: 'ERR_OUT_OF_MEMORY',
  /** A file or a record in it declares more bytes than a resource limit allows (the limit is named); nothing was read. */
  TOO_LARGE: 'ERR_TOO_LARGE',
  /** A model file calls operators with effects outside the model (named); load it with trust: 'full' if its source is trusted. */
  UNTRUSTED_MODEL: 'ERR_UNTRUSTED_MODEL',
  /** Sampling produced NaN or infinity; the message names the step and the strategy. */
  NON_FINITE: 'ERR_NON_FINITE',
  /** The file system refused a read or write (disk full, read-only, permissions); the message names the path and the cause. */
  IO: 'ERR_IO',
  /** Every torch thread is held by an aborted call that never returned; nothing more can run in this process. */
  THREADS_STUCK: 'ERR_THREADS_STUCK',
  /** A hook's site selector matches no attention or module site (the message lists them). */
  NO_MATCHING_SITE: 'ERR_NO_MATCHING_SITE',
  /**
   * A hook's selector reaches attention the graph pass could not hook (the
   * message names it and why): the hook would perturb only part of the
   * model's attention.
   */
  UNHOOKED_ATTENTION: 'ERR_UNHOOKED_ATTENTION',
  /** identity or blur asked for on a cross-attention site. */
  CROSS_ATTENTION: 'ERR_CROSS_ATTENTION',
  /** blur on a site whose query grid is unknown (the model has no card to probe with). */
  NO_GRID: 'ERR_NO_GRID',
  /** skip on a module (or attention block) whose output does not have its input's shape, or that has no module hook. */
  NOT_SKIPPABLE: 'ERR_NOT_SKIPPABLE',
  /** The operation was aborted through its AbortSignal. */
  ABORTED: 'ERR_ABORTED',
  /** No native binary could be loaded; the message lists what was tried. */
  BINARY_NOT_FOUND: 'ERR_BINARY_NOT_FOUND',
  /** setThreads() asked for other torch thread counts after the addon started: libtorch takes them once per process. */
  THREADS_STARTED: 'ERR_THREADS_STARTED',
  /** The sampling queue's Redis cannot be reached (the message names the address and how to start Redis). */
  QUEUE_UNREACHABLE: 'ERR_QUEUE_UNREACHABLE',
  /** A queue worker's model file is not the file the run was planned with (the SHA-256s differ). */
  MODEL_MISMATCH: 'ERR_MODEL_MISMATCH',
  /** A queue worker would sample with other settings than the run's (device kind, torch threads): the bytes would differ. */
  SETTINGS_MISMATCH: 'ERR_SETTINGS_MISMATCH',
  /** A queue worker cannot see the run's output folder or its manifest. */
  RUN_NOT_FOUND: 'ERR_RUN_NOT_FOUND',
  /** A queue job whose data is not a shard of a sampling run (another program's job, or another version's). */
  INVALID_JOB: 'ERR_INVALID_JOB',
  /** Shards of a queued run failed on every attempt; rerunning the coordinator retries them. */
  SHARDS_FAILED: 'ERR_SHARDS_FAILED',
  /** Another libtorch error. */
  TORCH: 'ERR_TORCH',
  /** An unexpected native failure. */
  NATIVE: 'ERR_NATIVE',
} as const;

/** One of the stable `ERR_*` codes in {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Marks instances across copies of this module (see Symbol.hasInstance below). */
const BRAND = Symbol.for('torch-guidance.error');

/**
 * The error every public function throws or rejects with: a stable `code` from
 * {@link ErrorCodes} and a message that names the problem and the fix.
 */
export class TorchGuidanceError extends Error {
  override readonly name = 'TorchGuidanceError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * `instanceof` by brand, not by prototype: when the package is loaded twice
   * in one process (two installed copies, or a loader that instantiates the
   * module again), the addon creates errors of whichever copy initialised it
   * last, and a prototype check in the other copy would miss them.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** True when `error` is a TorchGuidanceError, optionally with the given code. */
export function isTorchGuidanceError(error: unknown, code?: ErrorCode): error is TorchGuidanceError {
  return error instanceof TorchGuidanceError && (code === undefined || error.code === code);
}

export function abortError(signal: AbortSignal): TorchGuidanceError {
  // A reason that already is an abort of ours (the CLI's "interrupted by SIGINT") is passed on as it is.
  if (isTorchGuidanceError(signal.reason, ErrorCodes.ABORTED)) return signal.reason;
  return new TorchGuidanceError(ErrorCodes.ABORTED, 'the operation was aborted', { cause: signal.reason });
}
