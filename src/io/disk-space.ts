/**
 * Whether a write of a known size fits the file system it goes to, checked
 * before a long run starts rather than discovered as ENOSPC hours in.
 */
import { statfs } from 'node:fs/promises';

import { ErrorCodes, TorchGuidanceError } from '../core/errors.js';
import { formatBytes } from '../core/limits.js';
import { ioError } from '../core/io-error.js';

/** Throws ERR_IO when `bytes` more will not fit on the file system holding `dir`; `what` names the write, `fix` what to change. */
export async function checkDiskSpace(dir: string, bytes: number, what: string, fix: string): Promise<void> {
  let free: number;
  try {
    const info = await statfs(dir);
    free = Number(info.bavail) * Number(info.bsize);
  } catch (error) {
    throw ioError(error, 'reading the free space', dir);
  }
  if (bytes <= free) return;
  throw new TorchGuidanceError(
    ErrorCodes.IO,
    `${what} needs about ${formatBytes(bytes)} on the device of ${dir}, which has ${formatBytes(free)} free; nothing was written. Fix: ${fix}.`,
  );
}
