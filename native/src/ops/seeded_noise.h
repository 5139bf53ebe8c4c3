// Seeded Gaussian and uniform noise, drawn the one way the package draws it.
//
// Noise is drawn on the CPU in float32 from a generator seeded explicitly, so
// a seed gives the same numbers on every device and in every dtype (callers
// convert and move the result). Used by Tensor.randn and by the module hook's
// noise and dropout actions, so hook noise equals randn() with the same seeds.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace tg {

// `shape`-shaped standard normal noise: from one generator seeded with
// seeds[0] when !perSample, else one generator per row of the first axis
// (seeds.size() == shape[0]), which makes a sample's noise independent of
// its batch.
at::Tensor SeededNoise(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape);

// The same for uniform noise on [0, 1), as torch.rand draws it from a
// generator with that seed.
at::Tensor SeededUniform(const std::vector<uint64_t>& seeds, bool perSample, at::IntArrayRef shape);

}  // namespace tg
