// Reads a TorchScript pickle (data.pkl, constants.pkl) without building any
// object: only what a load would do with it. It records the classes the
// pickle names (GLOBAL) and, for each tensor storage it refers to, the
// storage's record key, element type and element count, so that the record
// sizes can be checked against them before libtorch copies the records.
//
// It follows the opcodes of pickle protocol 2 (and the few of 3-4 that
// TorchScript's pickler may write); anything else is refused. Format:
// Python's Lib/pickletools.py; the storage tuple is what TorchScript's
// Pickler::pushStorageOfTensor writes: ('storage', torch.<T>Storage, key,
// location, numel).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tg {

struct PickledStorage {
  std::string key;       // the record under <archive>/<pickle name>/<key>
  std::string typeName;  // "Float" for torch.FloatStorage
  int64_t numel = 0;
};

struct PickleScan {
  std::vector<std::string> globals;  // "module.name" of every GLOBAL
  std::vector<PickledStorage> storages;
};

// Throws std::runtime_error, naming the offset and the problem, when the
// bytes are not such a pickle.
PickleScan ScanPickle(const uint8_t* data, size_t size);

}  // namespace tg
