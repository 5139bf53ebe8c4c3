#include "ops/seeded_noise.h"

#include <ATen/CPUGeneratorImpl.h>

namespace tg {

namespace {

using Fill = void (*)(at::Tensor&, at::Generator&);

// Fills a float32 tensor of `shape` from one generator seeded with seeds[0],
// or each row of the first axis from its own (seeds.size() == shape[0]).
// Each row is drawn in place: normal_ or uniform_ on a contiguous row draws
// exactly what randn or rand of the row's shape would, and no per-row tensor
// is made (a batch of millions would otherwise hold millions of small
// tensors, and their stacked copy, at once).
at::Tensor Seeded(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape, Fill fill) {
  at::Tensor noise = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  if (!perSample) {
    at::Generator generator = at::detail::createCPUGenerator(seeds.at(0));
    fill(noise, generator);
    return noise;
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    at::Generator generator = at::detail::createCPUGenerator(seeds[i]);
    at::Tensor row = noise[static_cast<int64_t>(i)];
    fill(row, generator);
  }
  return noise;
}

}  // namespace

at::Tensor SeededNoise(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape) {
  return Seeded(seeds, perSample, shape, [](at::Tensor& t, at::Generator& g) { t.normal_(0, 1, g); });
}

at::Tensor SeededUniform(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape) {
  return Seeded(seeds, perSample, shape, [](at::Tensor& t, at::Generator& g) { t.uniform_(0, 1, g); });
}

}  // namespace tg
