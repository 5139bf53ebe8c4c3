#include "io/archive_checks.h"

#include <c10/core/ScalarType.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "common/errors.h"
#include "io/crc32.h"
#include "io/pickle_scan.h"
#include "io/zip_directory.h"

namespace tg {

namespace {

std::string Bytes(uint64_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(n);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[48];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

[[noreturn]] void NotTorchScript(const ArchiveFile& file, const std::string& why) {
  throw Error(code::kNotTorchScript, "'" + file.path() + "' is not a loadable TorchScript archive: " + why +
                                         ". Fix: export the model with torch.jit.script (or trace) and torch.jit.save, "
                                         "and copy the file again if it was damaged on the way.");
}

[[noreturn]] void TooLarge(const ArchiveFile& file, const std::string& what, uint64_t size, uint64_t limit) {
  throw Error(code::kTooLarge, "'" + file.path() + "': " + what + " declares " + Bytes(size) +
                                   ", more than the memory limit of " + Bytes(limit) +
                                   " that one load may use. Fix: if the model really is that large, raise the limit "
                                   "(TORCH_GUIDANCE_MEMORY_LIMIT, or setResourceLimits({ memoryBytes }))." );
}

// Every stored record against its CRC-32 (libtorch's reader does not check
// them): a damaged byte anywhere in the weights is an error, not a weight.
void CheckChecksums(const ArchiveFile& file, const std::vector<const ZipRecord*>& records) {
  std::vector<uint8_t> buffer(4 << 20);
  for (const ZipRecord* read : records) {
    const ZipRecord& record = *read;
    if (record.method != 0) continue;  // deflated: libtorch inflates it, and an inflate error is caught
    uint32_t crc = 0;
    for (uint64_t done = 0; done < record.size;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), record.size - done));
      if (file.read(record.dataOffset + done, buffer.data(), n) != n) NotTorchScript(file, "the record '" + record.name + "' is cut short");
      crc = Crc32(crc, buffer.data(), n);
      done += n;
    }
    if (crc != record.crc) NotTorchScript(file, "the record '" + record.name + "' fails its CRC-32 (its bytes were damaged)");
  }
}

// Bytes per element of torch.<name>Storage; nullopt for a name libtorch does not know.
std::optional<uint64_t> ElementSize(const std::string& name) {
  for (int i = 0; i < static_cast<int>(c10::ScalarType::NumOptions); ++i) {
    const auto type = static_cast<c10::ScalarType>(i);
    if (name == c10::toString(type)) return c10::elementSize(type);
  }
  return std::nullopt;
}

std::string Read(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

// Each tensor storage named by pickle `archive` (data, constants) against its record.
void CheckStorages(const ArchiveFile& file, caffe2::serialize::PyTorchStreamReader& reader,
                   const std::map<std::string, const ZipRecord*>& records, const std::string& prefix,
                   const std::string& archive, bool trusted) {
  const std::string pickle = archive + ".pkl";
  if (records.count(prefix + pickle) == 0) {
    NotTorchScript(file, "it has no " + pickle + " (a torch.save() file, or one from PyTorch before 1.3)");
  }
  const std::string bytes = Read(reader, pickle);
  PickleScan scan;
  try {
    scan = ScanPickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  } catch (const std::runtime_error& e) {
    NotTorchScript(file, pickle + " is damaged (" + e.what() + ")");
  }
  if (!trusted) {
    for (const std::string& global : scan.globals) {
      if (global.rfind("__torch__.torch.classes.", 0) == 0) {
        throw Error(code::kUntrustedModel,
                    "'" + file.path() + "' holds an object of the native class " + global +
                        ", whose __setstate__ is native code that would run while the file loads, before its graph "
                        "could be checked. Fix: load it with loadModel(path, { trust: 'full' }) (CLI: --trust) if you "
                        "trust where the file comes from.");
      }
    }
  }
  for (const PickledStorage& storage : scan.storages) {
    if (storage.numel == 0) continue;  // libtorch reads no record for it
    const std::string name = prefix + archive + "/" + storage.key;
    auto found = records.find(name);
    if (found == records.end()) NotTorchScript(file, "the record '" + name + "' of a tensor is missing");
    const std::optional<uint64_t> element = ElementSize(storage.typeName);
    if (!element) NotTorchScript(file, "a tensor has the unknown storage type torch." + storage.typeName + "Storage");
    const uint64_t numel = static_cast<uint64_t>(storage.numel);
    if (numel > UINT64_MAX / *element || numel * *element > found->second->size) {
      const std::string needs = numel > UINT64_MAX / *element ? "more than 16 EiB" : Bytes(numel * *element);
      NotTorchScript(file, "the record '" + name + "' holds " + Bytes(found->second->size) + " but its tensor needs " +
                               needs + " (" + std::to_string(storage.numel) + " " + storage.typeName +
                               " elements): the record is truncated");
    }
  }
}

// Code that runs during torch::jit::load: a TorchScript class's __setstate__.
void CheckLoadTimeCode(const ArchiveFile& file, caffe2::serialize::PyTorchStreamReader& reader,
                       const std::map<std::string, const ZipRecord*>& records, const std::string& prefix) {
  for (const auto& [name, record] : records) {
    const std::string relative = name.substr(prefix.size());
    if (relative.rfind("code/", 0) != 0 || relative.size() < 3 || relative.compare(relative.size() - 3, 3, ".py") != 0) continue;
    const std::string source = Read(reader, relative);
    if (source.find("def __setstate__(") != std::string::npos) {
      throw Error(code::kUntrustedModel,
                  "'" + file.path() + "' defines __setstate__ (in " + relative +
                      "), which TorchScript runs while the file loads, before its graph could be checked. Fix: load it "
                      "with loadModel(path, { trust: 'full' }) (CLI: --trust) if you trust where the file comes from.");
    }
  }
}

}  // namespace

void CheckArchive(const std::shared_ptr<ArchiveFile>& file, uint64_t maxBytes, bool trusted) {
  const std::vector<ZipRecord> list = ReadZipDirectory(*file);
  if (list.empty()) NotTorchScript(*file, "the zip archive is empty");
  const size_t slash = list.front().name.find('/');
  if (slash == std::string::npos) NotTorchScript(*file, "its records are not in one folder, as torch.jit.save writes them");
  const std::string prefix = list.front().name.substr(0, slash + 1);

  std::map<std::string, const ZipRecord*> records;
  std::vector<const ZipRecord*> loaded;  // what torch::jit::load reads
  uint64_t total = 0;
  for (const ZipRecord& record : list) {
    if (!records.emplace(record.name, &record).second) NotTorchScript(*file, "the record '" + record.name + "' appears twice");
    const bool extra = record.name.rfind(prefix + "extra/", 0) == 0;
    if (record.name == prefix + "extra/model.json" && record.size > kMaxCardBytes) {
      throw Error(code::kModelCard, "the model card (model.json inside '" + file->path() + "') declares " +
                                        Bytes(record.size) + "; a card is at most " + Bytes(kMaxCardBytes) +
                                        ". Fix: store the card's JSON only (models/README.md describes its fields).");
    }
    if (record.name == prefix + "extra/model.json") loaded.push_back(&record);
    if (extra) continue;  // other extra files are never read
    loaded.push_back(&record);
    if (record.size > maxBytes) TooLarge(*file, "the record '" + record.name + "'", record.size, maxBytes);
    total += record.size;
    if (total > maxBytes) TooLarge(*file, "the archive's records together", total, maxBytes);
  }
  CheckChecksums(*file, loaded);

  try {
    caffe2::serialize::PyTorchStreamReader reader(std::static_pointer_cast<caffe2::serialize::ReadAdapterInterface>(file));
    CheckStorages(*file, reader, records, prefix, "constants", trusted);
    CheckStorages(*file, reader, records, prefix, "data", trusted);
    if (!trusted) CheckLoadTimeCode(*file, reader, records, prefix);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const auto* c10Error = dynamic_cast<const c10::Error*>(&e);
    const std::string message = c10Error ? c10Error->what_without_backtrace() : e.what();
    NotTorchScript(*file, "libtorch cannot read it (" + message.substr(0, message.find('\n')) + ")");
  }
}

}  // namespace tg
