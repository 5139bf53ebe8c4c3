/**
 * Resource limits: what one request may plan to use, checked against the
 * numbers a caller gives (a sample count, a batch size, a file's declared
 * sizes) before anything is allocated, so that a request the machine cannot
 * serve fails with a typed error naming the limit instead of exhausting the
 * machine. Estimates are deliberately simple (the tensors a step keeps alive,
 * the bytes a file says it holds); they bound requests, not every byte.
 *
 * The limit is TORCH_GUIDANCE_MEMORY_LIMIT (src/config.ts; default 75 % of
 * the machine's memory) until setResourceLimits() changes it.
 */
import { config } from './config.js';
import { type ErrorCode, ErrorCodes, TorchGuidanceError } from './errors.js';

/** The limits one request is checked against before it allocates (setResourceLimits, TORCH_GUIDANCE_MEMORY_LIMIT). */
export interface ResourceLimits {
  /**
   * Bytes one request may plan to use: a sample() batch's working set, its
   * result, an image set or a model archive read into memory.
   */
  memoryBytes: number;
}

let limits: ResourceLimits = { memoryBytes: config.memoryLimit };

/** The limits in force. */
export function resourceLimits(): Readonly<ResourceLimits> {
  return limits;
}

/**
 * Raises or lowers the limits for this thread's later requests (each worker
 * thread has its own). Returns the limits in force afterwards.
 */
export function setResourceLimits(next: Partial<ResourceLimits>): Readonly<ResourceLimits> {
  const bytes = next.memoryBytes;
  if (bytes !== undefined && (!Number.isFinite(bytes) || bytes < 1)) {
    throw new TorchGuidanceError(ErrorCodes.INVALID_OPTION, `setResourceLimits: memoryBytes must be a positive number of bytes, got ${String(bytes)}.`);
  }
  limits = { ...limits, ...(bytes === undefined ? {} : { memoryBytes: Math.floor(bytes) }) };
  return limits;
}

/** A byte count for messages: 3.1 GiB. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** How to raise the limit, for the end of messages. */
export const RAISE_LIMIT = 'raise the limit with TORCH_GUIDANCE_MEMORY_LIMIT (e.g. "16GiB" or "90%") or setResourceLimits({ memoryBytes })';

/**
 * Throws `code` (ERR_OUT_OF_MEMORY by default) when `bytes` is over the
 * memory limit. `what` names the request ("a batch of 8000000 samples");
 * `fix` is what to do first (a smaller batch), before raising the limit.
 */
export function checkMemory(bytes: number, what: string, fix: string, code: ErrorCode = ErrorCodes.OUT_OF_MEMORY): void {
  const limit = limits.memoryBytes;
  if (bytes <= limit) return;
  throw new TorchGuidanceError(
    code,
    `${what} needs about ${formatBytes(bytes)}, more than the memory limit of ${formatBytes(limit)}; nothing was allocated. ` +
      `Fix: ${fix}, or ${RAISE_LIMIT}.`,
  );
}
