// What a TorchScript archive declares, checked before torch::jit::load reads
// it: libtorch trusts an archive's sizes (it allocates what a record claims,
// and backs a tensor with whatever bytes its record has, reading past a
// short one), and it runs a class's __setstate__ while it loads.
//
//  * the zip is well formed (zip_directory.h), every record is there once,
//    and every stored record matches its CRC-32 (libtorch's reader skips it);
//  * no record, and not all of them together, is larger than `maxBytes`
//    (ERR_TOO_LARGE), and the card (extra/model.json) is at most
//    kMaxCardBytes (ERR_MODEL_CARD);
//  * every tensor storage the pickles name has a record at least as large as
//    its elements (ERR_NOT_TORCHSCRIPT: truncated);
//  * unless `trusted`: no class defines __setstate__ and no object of a
//    native (torchbind) class is pickled, since either would run code during
//    the load, before jit/model_scan.h could look at it (ERR_UNTRUSTED_MODEL).
#pragma once

#include <cstdint>

#include "io/archive_file.h"

namespace tg {

// A model card is a page of JSON; this leaves it a thousand times that.
constexpr uint64_t kMaxCardBytes = 1 << 20;

void CheckArchive(const std::shared_ptr<ArchiveFile>& file, uint64_t maxBytes, bool trusted);

}  // namespace tg
