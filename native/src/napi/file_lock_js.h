// The run lock for JS (src/io/run-lock.ts) over io/file_lock.h.
#pragma once

#include <napi.h>

namespace tg {

// tryLockFile(path) -> number (the lock's id) | { heldBy: pid } (pid 0 when
// not yet written). Throws ERR_IO when the file cannot be opened or locked.
Napi::Value TryLockFileJs(const Napi::CallbackInfo& info);

// unlockFile(id): removes the lock file and releases the lock. Idempotent.
Napi::Value UnlockFileJs(const Napi::CallbackInfo& info);

}  // namespace tg
