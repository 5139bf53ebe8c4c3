/**
 * One writer per output directory: an exclusive lock on `<dir>/.lock`,
 * taken with flock(2) through the addon (native/src/io/file_lock.h). Taking it
 * is atomic and the kernel drops it when its process ends, so neither a
 * rival starting at the same moment nor a lock left by a killed run can let
 * two processes write at once. The file holds the owner's pid for messages.
 */
import { join } from 'node:path';

import { native } from '../core/native/binding.js';

export const LOCK = '.lock';

export type LockResult = { release: () => Promise<void> } | { heldBy: number };

/**
 * Takes the directory's lock, or returns the pid of the live process holding
 * it (0 when that process has not written its pid yet).
 */
export async function takeLock(dir: string): Promise<LockResult> {
  const taken = native.tryLockFile(join(dir, LOCK));
  if (typeof taken !== 'number') return { heldBy: taken.heldBy };
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      native.unlockFile(taken);
    },
  };
}
