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

#include <cstdint>
#include <string>

namespace tg {

// The outcome of TryLockFile: `id` names a lock now held, or `id` is 0 and
// `heldBy` is the pid written by the process that holds it (0 when not yet
// written).
struct LockAttempt {
  int64_t id = 0;
  int heldBy = 0;
};

// Takes the lock on `path` (created if missing) without waiting. Throws
// ERR_IO when the file cannot be opened, locked or written.
LockAttempt TryLockFile(const std::string& path);

// Removes the lock file and releases the lock. Idempotent.
void UnlockFile(int64_t id);

}  // namespace tg
