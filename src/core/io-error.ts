/**
 * File-system failures as typed errors. Node reports them as plain Errors
 * with an errno `code` (ENOSPC, EROFS, ...); the package turns them into
 * TorchGuidanceError ERR_IO, with the path, what was being done, the cause
 * in words and what to do, so that no caller (and no CLI exit) sees a raw
 * system error.
 */
import { access, constants, mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

import { ErrorCodes, TorchGuidanceError, isTorchGuidanceError } from './errors.js';

/** errno code -> the cause in words and the fix. */
const CAUSES: Record<string, [string, string]> = {
  ENOSPC: ['the device is full', 'free space on it, or write somewhere else'],
  EDQUOT: ['the disk quota is used up', 'free space within the quota, or write somewhere else'],
  EROFS: ['the file system is read-only', 'write to a writable location'],
  EACCES: ['permission denied', 'check the permissions, or use another location'],
  EPERM: ['the operation is not permitted', 'check the permissions, or use another location'],
  ENOENT: ['no such file or directory', 'check the path'],
  ENOTDIR: ['a part of the path is not a directory', 'check the path'],
  EISDIR: ['it is a directory', 'give a file'],
  EEXIST: ['it already exists', 'remove it or choose another name'],
  EMFILE: ['too many open files in this process', 'raise the limit (ulimit -n)'],
  ENFILE: ['too many open files on the system', 'close other programs or raise the limit'],
  EIO: ['an input/output error of the device', 'check the device (dmesg)'],
  EFBIG: ['the file is too large for the file system', 'write to a file system that allows larger files'],
  ENAMETOOLONG: ['the name is too long', 'use a shorter path'],
  ELOOP: ['too many symbolic links', 'check the path'],
  EBUSY: ['the resource is busy', 'try again later'],
  ENOTEMPTY: ['the directory is not empty', 'empty it or choose another'],
  EXDEV: ['it would cross file systems', 'keep the files on one file system'],
};

/** Whether `error` is a system error from the file system (an errno code). */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException & { code: string } {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((error as NodeJS.ErrnoException).code!);
}

/**
 * `error` as a TorchGuidanceError: system errors become ERR_IO saying what
 * failed (`doing`, e.g. "writing shard-00003.npz") at `path`; typed errors
 * pass through; anything else is rethrown unchanged by the caller's choice
 * (returned as is).
 */
export function ioError(error: unknown, doing: string, path?: string): unknown {
  if (isTorchGuidanceError(error) || !isSystemError(error)) return error;
  const [cause, fix] = CAUSES[error.code] ?? [error.message, 'check the path and the device'];
  const where = path ?? error.path;
  return new TorchGuidanceError(ErrorCodes.IO, `${doing}${where ? ` (${where})` : ''} failed: ${cause} (${error.code}). Fix: ${fix}.`, { cause: error });
}

/** Runs `work`, turning a system error into ERR_IO (see ioError). */
export async function withIoErrors<T>(doing: string, path: string | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw ioError(error, doing, path);
  }
}

/**
 * Why `dir` cannot be created, in words, when mkdir said ENOENT or EROFS:
 * the nearest existing ancestor and what is wrong with it (mkdir -p on a
 * read-only file system reports ENOENT for a missing parent it cannot make).
 */
export async function explainMkdirFailure(dir: string, error: NodeJS.ErrnoException): Promise<TorchGuidanceError> {
  let ancestor = dirname(dir);
  for (;;) {
    const info = await stat(ancestor).catch(() => undefined);
    if (info) break;
    const parent = dirname(ancestor);
    if (parent === ancestor) break;
    ancestor = parent;
  }
  const info = await stat(ancestor).catch(() => undefined);
  let why: string;
  if (!info) why = `none of its parents exists`;
  else if (!info.isDirectory()) why = `'${ancestor}' is not a directory`;
  else {
    const writable = await access(ancestor, constants.W_OK).then(
      () => true,
      (e: NodeJS.ErrnoException) => (e.code === 'EROFS' ? 'read-only' : false),
    );
    why =
      error.code === 'EROFS' || writable === 'read-only'
        ? `'${ancestor}' is on a read-only file system`
        : writable
          ? `the system refused (${error.code})`
          : `'${ancestor}' is not writable (permission denied)`;
  }
  return new TorchGuidanceError(ErrorCodes.IO, `could not create the directory '${dir}': ${why}. Fix: choose a location you can write to.`, {
    cause: error,
  });
}

/** mkdir -p `dir`, failing with ERR_IO that names the real cause. */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    if (isSystemError(error) && ['ENOENT', 'EROFS', 'EACCES', 'EPERM', 'ENOTDIR'].includes(error.code)) {
      throw await explainMkdirFailure(dir, error);
    }
    throw ioError(error, 'creating the directory', dir);
  }
}
