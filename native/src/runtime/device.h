// Parsing and checking device names: "cpu", "cuda", "cuda:N", "auto".
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace tg {

// "auto" picks cuda:0 when CUDA is usable, else the CPU. Throws
// ERR_UNKNOWN_DEVICE for anything else than the four forms, and
// ERR_CUDA_UNAVAILABLE when CUDA (or that ordinal) is not present.
at::Device ParseDevice(const std::string& name);

// "cpu" or "cuda:N".
std::string DeviceName(const at::Device& device);

bool CudaAvailable();
int CudaDeviceCount();

}  // namespace tg
