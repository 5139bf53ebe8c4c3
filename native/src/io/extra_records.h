// Extra files a TorchScript archive carries beside the model card: the
// records under `extra/<folder>` (a version 2 card's null conditions live
// under `extra/nulls/`), listed from the zip directory so that libtorch's
// loader can be asked for them by name along with model.json.
#pragma once

#include <string>
#include <vector>

#include "io/archive_file.h"

namespace tg {

// The names of the records under `extra/<folder>` (e.g. "nulls/"), relative
// to `extra/` as torch::jit::load's ExtraFilesMap keys them.
std::vector<std::string> ExtraRecordNames(const ArchiveFile& file, const std::string& folder);

}  // namespace tg
