#include "ops/seeded_noise.h"

#include <ATen/CPUGeneratorImpl.h>

namespace tg {

namespace {

at::Tensor RandnFrom(uint64_t seed, at::IntArrayRef shape) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  return at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

at::Tensor SeededNoise(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape) {
  if (!perSample) return RandnFrom(seeds.at(0), shape);
  // Each row is drawn in place from its own generator: normal_ on a
  // contiguous row draws exactly what randn of the row's shape would, and no
  // per-row tensor is made (a batch of millions would otherwise hold millions
  // of small tensors, and their stacked copy, at once).
  at::Tensor noise = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  for (size_t i = 0; i < seeds.size(); ++i) {
    at::Generator generator = at::detail::createCPUGenerator(seeds[i]);
    noise[static_cast<int64_t>(i)].normal_(0, 1, generator);
  }
  return noise;
}

}  // namespace tg
