/**
 * Atomic file writes: the bytes go to a temporary sibling (same directory, so
 * the rename never crosses a file system), which is fsynced and then renamed
 * over the target. A reader, a crash or a SIGKILL at any moment sees either
 * the old file or the whole new one, never a prefix. What a kill can leave is
 * a temporary file, which removeTempFiles() recognises by its name.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { ioError } from '../core/io-error.js';

/** `name.tmp-<pid>-<12 hex>`: the pattern writePng (src/image/png-encode.ts) uses too. */
const TEMP_SUFFIX = /\.tmp-\d+-[0-9a-f]{12}$/;

export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export function isTempFile(name: string): boolean {
  return TEMP_SUFFIX.test(name);
}

export interface AtomicWriteOptions {
  /** fsync the directory after the rename, so the new name survives a power loss (default true). */
  syncDir?: boolean;
}

/**
 * Creates `path` atomically: `write` fills the temporary file through its
 * handle (positional writes allowed), which is then fsynced, closed and
 * renamed over `path`. On any failure the temporary file is removed; a
 * file-system failure (disk full, read-only) is thrown as ERR_IO.
 */
export async function writeFileAtomic(
  path: string,
  write: (file: FileHandle) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  let file: FileHandle | undefined;
  try {
    file = await open(tmp, 'wx');
    await write(file);
    await file.sync();
    await file.close();
    file = undefined;
    await rename(tmp, path);
  } catch (error) {
    await file?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw ioError(error, 'writing the file', path);
  }
  if (options.syncDir ?? true) await syncDir(dirname(path));
}

/** writeFileAtomic for bytes already in memory. */
export async function writeBytesAtomic(path: string, bytes: Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(
    path,
    async (file) => {
      let offset = 0;
      while (offset < bytes.length) {
        const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset, offset);
        offset += bytesWritten;
      }
    },
    options,
  );
}

/** fsync a directory, making renames and unlinks in it durable. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw ioError(error, 'syncing the directory', dir);
  }
}

/** The names in `dir`, or none when it does not exist yet. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** The name a temporary file stands in for (`shard-00001.npz` for `shard-00001.npz.tmp-12-...`), or undefined. */
export function tempTarget(name: string): string | undefined {
  return isTempFile(name) ? name.replace(TEMP_SUFFIX, '') : undefined;
}

/**
 * Removes temporary files left in `dir` by an interrupted write (this
 * module's or writePng's) whose target `ours` recognises as a file of the
 * caller's own; returns their names. Other files, whatever their names, stay.
 */
export async function removeTempFiles(dir: string, ours: (target: string) => boolean): Promise<string[]> {
  const names = await readdirIfExists(dir);
  const stale = names.filter((name) => {
    const target = tempTarget(name);
    return target !== undefined && ours(target);
  });
  await Promise.all(stale.map((name) => unlink(join(dir, name)).catch(() => undefined)));
  return stale.map((name) => basename(name));
}
