#include "runtime/device.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cctype>

#include "common/errors.h"

namespace tg {

bool CudaAvailable() { return torch::cuda::is_available(); }

int CudaDeviceCount() { return CudaAvailable() ? static_cast<int>(torch::cuda::device_count()) : 0; }

namespace {

at::Device CheckedCuda(int index, const std::string& name) {
  int count = CudaDeviceCount();
  if (count == 0) {
    throw Error(code::kCudaUnavailable,
                "device '" + name + "' asked for, but CUDA is not available in this process (" +
#ifdef TORCH_GUIDANCE_WITH_CUDA
                    "the addon was built with CUDA, but no GPU or driver was found" +
#else
                    "the addon was built against a CPU-only libtorch" +
#endif
                    "). Fix: use device 'cpu' or 'auto', or rebuild against a CUDA libtorch "
                    "(TORCH_GUIDANCE_LIBTORCH=/path/to/libtorch npm run build:native).");
  }
  if (index >= count) {
    throw Error(code::kCudaUnavailable, "device '" + name + "' asked for, but only " + std::to_string(count) +
                                            " CUDA device(s) exist (cuda:0 .. cuda:" + std::to_string(count - 1) +
                                            ").");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

at::Device ParseDevice(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "auto") return CudaDeviceCount() > 0 ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  if (name == "cuda") return CheckedCuda(0, name);
  const std::string prefix = "cuda:";
  if (name.size() > prefix.size() && name.size() <= prefix.size() + 3 && name.compare(0, prefix.size(), prefix) == 0) {
    std::string digits = name.substr(prefix.size());
    bool numeric = std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (numeric) return CheckedCuda(std::stoi(digits), name);
  }
  throw Error(code::kUnknownDevice,
              "unknown device '" + name + "'. Use 'auto', 'cpu', 'cuda' or 'cuda:N' (N a device index).");
}

std::string DeviceName(const at::Device& device) {
  if (device.is_cpu()) return "cpu";
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return device.str();
}

}  // namespace tg
