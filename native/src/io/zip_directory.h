// The central directory of a zip archive (what a TorchScript file is), read
// without extracting anything: each record's name, compression and sizes as
// the archive declares them, so that they can be checked against limits and
// against each other before libtorch reads a byte of them.
//
// Format: PKWARE APPNOTE 6.3, sections 4.3.7 (local header), 4.3.12 (central
// directory), 4.3.14-16 (end records, ZIP64), 4.5.3 (ZIP64 extra field).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/archive_file.h"

namespace tg {

struct ZipRecord {
  std::string name;
  uint16_t method = 0;         // 0 stored, 8 deflate
  uint32_t crc = 0;            // CRC-32 of the uncompressed bytes
  uint64_t compressedSize = 0;
  uint64_t size = 0;           // uncompressed
  uint64_t dataOffset = 0;     // where its (compressed) bytes start
};

// Throws tg::Error (ERR_NOT_TORCHSCRIPT, naming what is wrong) when the file
// is not a well-formed zip: no end record, a directory or a record outside
// the file, a record running into another, an unknown compression.
std::vector<ZipRecord> ReadZipDirectory(const ArchiveFile& file);

}  // namespace tg
