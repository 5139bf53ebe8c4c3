// An exclusive lock on a file, for "one writer per output directory".
//
// flock(2) is taken on the lock file itself, so taking it is one atomic step
// of the kernel: no window in which a rival sees a lock file without an
// owner and takes it for stale, and a lock dies with its process (a kill
// leaves no stale lock to guess about). The owner's pid is written into the
// file only for messages. Releasing unlinks the file while still holding the
// lock; a rival that opened the old file meanwhile sees, once it gets the
// lock, that the path now names another file (or none) and tries again.
#pragma once

#include <napi.h>

namespace tg {

// tryLockFile(path) -> number (the lock's id) | { heldBy: pid } (pid 0 when
// not yet written). Throws ERR_IO when the file cannot be opened or locked.
Napi::Value TryLockFileJs(const Napi::CallbackInfo& info);

// unlockFile(id): removes the lock file and releases the lock. Idempotent.
Napi::Value UnlockFileJs(const Napi::CallbackInfo& info);

}  // namespace tg
