#include "io/file_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "common/errors.h"

namespace tg {

namespace {

struct HeldLock {
  int fd;
  std::string path;
};

std::mutex g_mutex;
std::map<int64_t, HeldLock> g_locks;  // process-wide: worker threads share the file table
int64_t g_nextId = 1;

[[noreturn]] void Fail(const std::string& doing, const std::string& path, int error) {
  throw Error(code::kIo, doing + " '" + path + "' failed: " + std::strerror(error) + ". Fix: check that the directory is "
                                                                                  "writable and on a local file system.");
}

bool SameFile(int fd, const std::string& path) {
  struct stat held {};
  struct stat named {};
  if (::fstat(fd, &held) != 0 || ::lstat(path.c_str(), &named) != 0) return false;
  return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

// The holder's pid as written in the file, or 0: not written yet, or what a
// dead process left there (the holder has the lock but has not yet
// overwritten it).
int ReadPid(int fd) {
  char text[32] = {};
  ssize_t got = ::pread(fd, text, sizeof(text) - 1, 0);
  if (got <= 0) return 0;
  long pid = std::strtol(text, nullptr, 10);
  if (pid <= 0 || pid >= (1L << 30)) return 0;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return 0;
  return static_cast<int>(pid);
}

}  // namespace

LockAttempt TryLockFile(const std::string& path) {
  // A rival may unlink the file between our open and our lock: retry a few times.
  for (int attempt = 0; attempt < 16; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0) Fail("opening the lock file", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(code::kIo, "the lock file '" + path + "' is not a regular file. Fix: remove it.");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      if (error != EWOULDBLOCK) {
        ::close(fd);
        Fail("locking", path, error);
      }
      const int pid = ReadPid(fd);
      ::close(fd);
      return LockAttempt{0, pid};
    }
    if (!SameFile(fd, path)) {  // released (unlinked) and maybe re-created since we opened it
      ::close(fd);
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      const int error = errno;
      ::unlink(path.c_str());
      ::close(fd);
      Fail("writing the lock file", path, error);
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    const int64_t id = g_nextId++;
    g_locks.emplace(id, HeldLock{fd, path});
    return LockAttempt{id, 0};
  }
  throw Error(code::kIo, "could not lock '" + path + "': it was replaced again and again. Fix: check what else writes there.");
}

void UnlockFile(int64_t id) {
  HeldLock held{-1, ""};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto found = g_locks.find(id);
    if (found == g_locks.end()) return;
    held = found->second;
    g_locks.erase(found);
  }
  // Unlink while still holding the lock, then let go.
  if (SameFile(held.fd, held.path)) ::unlink(held.path.c_str());
  ::close(held.fd);
}

}  // namespace tg
