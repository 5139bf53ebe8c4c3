// A model file opened for loading. Regular files only: a FIFO passes an
// access check, then blocks the thread that reads it forever; a device or a
// directory is no archive either. The file is opened once (non-blocking, so
// not even opening a FIFO can hang) and everything, the checks and
// torch::jit::load, reads through that one descriptor: the file checked is
// the file loaded.
#pragma once

#include <caffe2/serialize/read_adapter_interface.h>

#include <cstdint>
#include <memory>
#include <string>

namespace tg {

class ArchiveFile : public caffe2::serialize::ReadAdapterInterface {
 public:
  // Throws tg::Error: ERR_MODEL_NOT_FOUND (missing, unreadable, not a
  // regular file) or ERR_IO (the system failed to open it).
  static std::shared_ptr<ArchiveFile> Open(const std::string& path);
  ~ArchiveFile() override;

  size_t size() const override { return size_; }
  // Reads up to `n` bytes at `pos`; fewer only at the end of the file.
  // Throws tg::Error (ERR_IO) on a read error.
  size_t read(uint64_t pos, void* buf, size_t n, const char* what = "") const override;

  const std::string& path() const { return path_; }

 private:
  ArchiveFile(int fd, size_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  int fd_;
  size_t size_;
  std::string path_;
};

}  // namespace tg
