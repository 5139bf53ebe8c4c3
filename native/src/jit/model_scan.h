// The trust check on a loaded (not yet run) TorchScript module.
//
// A TorchScript file is code: its graphs may call operators that reach
// outside the model (write or map files, print, reseed the process's
// generator, call other processes). Before any of its code runs (the
// attention pass, freezing's constant folding, the probe forward), every
// graph in the module's compilation unit (every method of every class, every
// function, every forked subgraph) is walked, and each operator must be on
// the allowlist: the tensor library (aten, prims, quantized kernels) and the
// TorchScript language (prim), less the operators with effects outside the
// model listed in model_scan.cpp. Values of native (torchbind) classes are
// refused too: their methods are native code the scan cannot see.
#pragma once

#include <torch/script.h>

#include <string>

namespace tg {

// Throws tg::Error (ERR_UNTRUSTED_MODEL) naming the first operator outside
// the allowlist, what it does, and where; `path` is for the message.
void ScanModule(const torch::jit::Module& module, const std::string& path);

}  // namespace tg
