#include "io/zip_directory.h"

#include <algorithm>
#include <cstring>

#include "common/errors.h"

namespace tg {

namespace {

constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kMax16 = 0xffffu;
constexpr size_t kEndRecordSize = 22;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) { return U16(p) | (static_cast<uint32_t>(U16(p + 2)) << 16); }
uint64_t U64(const uint8_t* p) { return U32(p) | (static_cast<uint64_t>(U32(p + 4)) << 32); }

[[noreturn]] void Malformed(const ArchiveFile& file, const std::string& why) {
  throw Error(code::kNotTorchScript, "'" + file.path() + "' is not a TorchScript archive: " + why +
                                         ". Fix: export the model with torch.jit.script (or trace) and torch.jit.save; "
                                         "a damaged or truncated copy must be copied again.");
}

std::vector<uint8_t> ReadExactly(const ArchiveFile& file, uint64_t at, uint64_t length, const char* what) {
  if (at > file.size() || length > file.size() - at) Malformed(file, std::string(what) + " lies past the end of the file");
  std::vector<uint8_t> bytes(length);
  if (file.read(at, bytes.data(), length) != length) Malformed(file, std::string(what) + " is cut short");
  return bytes;
}

// Where the central directory lies and how many records it declares, from
// the end record (or its ZIP64 form).
struct DirectoryLocation {
  uint64_t count = 0;
  uint64_t size = 0;
  uint64_t start = 0;
};

DirectoryLocation FindDirectory(const ArchiveFile& file) {
  const uint64_t fileSize = file.size();
  if (fileSize < kEndRecordSize) Malformed(file, "it is too short to be a zip archive");
  // The end record sits in the last 22 bytes plus a comment of up to 64 KiB.
  const uint64_t tailLength = std::min<uint64_t>(fileSize, kEndRecordSize + kMax16);
  const std::vector<uint8_t> tail = ReadExactly(file, fileSize - tailLength, tailLength, "the end record");
  int64_t end = -1;
  for (int64_t i = static_cast<int64_t>(tail.size() - kEndRecordSize); i >= 0; --i) {
    if (U32(&tail[i]) == kEndSignature) {
      end = i;
      break;
    }
  }
  if (end < 0) Malformed(file, "it has no zip end-of-directory record (not a zip, or truncated)");
  DirectoryLocation location{U16(&tail[end + 10]), U32(&tail[end + 12]), U32(&tail[end + 16])};
  if (location.count == kMax16 || location.size == kMax32 || location.start == kMax32) {
    if (end < 20 || U32(&tail[end - 20]) != kZip64LocatorSignature) Malformed(file, "its ZIP64 locator is missing");
    const uint64_t end64At = U64(&tail[end - 20 + 8]);
    const std::vector<uint8_t> end64 = ReadExactly(file, end64At, 56, "the ZIP64 end record");
    if (U32(end64.data()) != kZip64EndSignature) Malformed(file, "its ZIP64 end record is missing");
    location = {U64(&end64[32]), U64(&end64[40]), U64(&end64[48])};
  }
  if (location.start > fileSize || location.size > fileSize - location.start) {
    Malformed(file, "its central directory lies past the end of the file");
  }
  if (location.count > location.size / kCentralHeaderSize) {
    Malformed(file, "its central directory holds fewer records than it declares");
  }
  return location;
}

// The ZIP64 extra field in directory[extra, extraEnd): only the values whose
// 32-bit slot is 0xFFFFFFFF are there, in this order.
void ApplyZip64Extra(const ArchiveFile& file, const std::vector<uint8_t>& directory, size_t extra, size_t extraEnd,
                     ZipRecord& record, uint64_t& localOffset) {
  while (extra + 4 <= extraEnd) {
    const uint16_t id = U16(&directory[extra]);
    const uint16_t length = U16(&directory[extra + 2]);
    if (extra + 4 + length > extraEnd) break;
    if (id == 0x0001) {
      size_t p = extra + 4;
      auto take = [&](uint64_t& value) {
        if (value != kMax32) return;
        if (p + 8 > extra + 4 + length) Malformed(file, "the ZIP64 field of '" + record.name + "' is short");
        value = U64(&directory[p]);
        p += 8;
      };
      take(record.size);
      take(record.compressedSize);
      take(localOffset);
    }
    extra += 4 + length;
  }
}

// Record `index`, whose central header starts at directory[at], checked
// against its local header; returns where the next header starts.
size_t ReadRecord(const ArchiveFile& file, const std::vector<uint8_t>& directory, size_t at, uint64_t index,
                  uint64_t directoryStart, ZipRecord& record) {
  if (at + kCentralHeaderSize > directory.size() || U32(&directory[at]) != kCentralSignature) {
    Malformed(file, "its central directory is damaged at record " + std::to_string(index));
  }
  const uint8_t* h = &directory[at];
  record.method = U16(h + 10);
  record.crc = U32(h + 16);
  record.compressedSize = U32(h + 20);
  record.size = U32(h + 24);
  const size_t nameLength = U16(h + 28);
  const size_t extraLength = U16(h + 30);
  const size_t commentLength = U16(h + 32);
  uint64_t localOffset = U32(h + 42);
  if (at + kCentralHeaderSize + nameLength + extraLength + commentLength > directory.size()) {
    Malformed(file, "its central directory is damaged at record " + std::to_string(index));
  }
  record.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), nameLength);
  const size_t extra = at + kCentralHeaderSize + nameLength;
  const size_t extraEnd = extra + extraLength;
  ApplyZip64Extra(file, directory, extra, extraEnd, record, localOffset);
  if (record.method != 0 && record.method != 8) {
    Malformed(file, "record '" + record.name + "' uses zip compression method " + std::to_string(record.method) +
                        ", which libtorch cannot read");
  }
  if (record.method == 0 && record.compressedSize != record.size) {
    Malformed(file, "record '" + record.name + "' is stored, yet its two sizes differ");
  }
  const std::vector<uint8_t> local = ReadExactly(file, localOffset, kLocalHeaderSize, "a record's header");
  if (U32(local.data()) != kLocalSignature) Malformed(file, "the header of record '" + record.name + "' is damaged");
  record.dataOffset = localOffset + kLocalHeaderSize + U16(&local[26]) + U16(&local[28]);
  if (record.dataOffset > directoryStart || record.compressedSize > directoryStart - record.dataOffset) {
    Malformed(file, "record '" + record.name + "' runs into the central directory (the archive is truncated or damaged)");
  }
  return extraEnd + commentLength;
}

}  // namespace

std::vector<ZipRecord> ReadZipDirectory(const ArchiveFile& file) {
  const DirectoryLocation location = FindDirectory(file);
  const std::vector<uint8_t> directory = ReadExactly(file, location.start, location.size, "the central directory");
  std::vector<ZipRecord> records;
  records.reserve(location.count);
  size_t at = 0;
  for (uint64_t i = 0; i < location.count; ++i) {
    ZipRecord record;
    at = ReadRecord(file, directory, at, i, location.start, record);
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace tg
