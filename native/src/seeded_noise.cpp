#include "seeded_noise.h"

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
  std::vector<int64_t> row(shape.begin() + 1, shape.end());
  std::vector<at::Tensor> rows;
  rows.reserve(seeds.size());
  for (uint64_t seed : seeds) rows.push_back(RandnFrom(seed, row));
  return rows.empty() ? at::empty(shape, at::kFloat) : at::stack(rows);
}

}  // namespace tg
