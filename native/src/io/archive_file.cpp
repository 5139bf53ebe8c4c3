#include "io/archive_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace tg {

namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

std::shared_ptr<ArchiveFile> ArchiveFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR || error == EACCES || error == EPERM || error == ELOOP) {
      throw Error(code::kModelNotFound, "no readable model file at '" + path + "' (" + std::strerror(error) +
                                            "). Fix: check the path and its permissions.");
    }
    throw Error(code::kIo, "could not open the model file '" + path + "': " + std::strerror(error) + ".");
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw Error(code::kIo, "could not stat the model file '" + path + "': " + std::strerror(error) + ".");
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw Error(code::kModelNotFound, "'" + path + "' is " + KindOf(info.st_mode) +
                                          ", not a model file: models load from regular files only. Fix: give the "
                                          "path of a TorchScript archive (.pt) on disk.");
  }
  // Regular files never block; plain blocking reads from here on.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return std::shared_ptr<ArchiveFile>(new ArchiveFile(fd, static_cast<size_t>(info.st_size), path));
}

ArchiveFile::~ArchiveFile() { ::close(fd_); }

size_t ArchiveFile::read(uint64_t pos, void* buf, size_t n, const char*) const {
  size_t done = 0;
  auto* out = static_cast<char*>(buf);
  while (done < n) {
    ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(pos + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      throw Error(code::kIo, "could not read the model file '" + path_ + "': " + std::strerror(errno) + ".");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace tg
