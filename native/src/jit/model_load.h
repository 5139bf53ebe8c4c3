// Loading a TorchScript model: the archive checks, torch::jit::load, the
// trust scan, the graph pass that inserts the hook ops, and freezing.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "jit/model_state.h"

namespace tg {

// How far a load may trust the file, and the memory it may take.
struct LoadLimits {
  bool trusted = false;
  uint64_t maxBytes = UINT64_MAX;
};

// Loads `path` into `state` on a torch thread: checks the archive before
// libtorch reads it and the graphs before any of their code runs (unless
// trusted), moves the module to `dtype`, inserts the hook ops when `hooks`
// (a model the pass cannot handle loads without sites, the reason in
// state.attentionPassError), then freezes it where it can be frozen.
// Throws ERR_NOT_TORCHSCRIPT, ERR_METHOD_NOT_FOUND, ERR_TOO_LARGE,
// ERR_UNTRUSTED_MODEL and the archive checks' errors.
void LoadModel(ModelState& state, const std::string& path, at::Device device, at::ScalarType dtype, bool hooks,
               const LoadLimits& limits);

}  // namespace tg
