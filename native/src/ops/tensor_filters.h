// Image filters of guidance strategies on an image batch [N, C, H, W]: SAG's
// Gaussian blur and the SAG paper's frequency-filter baseline.
#pragma once

#include <ATen/ATen.h>

namespace tg {

// Separable Gaussian blur over H and W with reflect padding (torchvision's
// gaussian_blur, which SAG uses), with a kernel of `size` taps. Throws
// ERR_INVALID_ARGUMENT unless `size` is odd with its half below the image
// side and sigma is a positive finite number; `op` names the caller in
// messages.
at::Tensor GaussianBlur(const at::Tensor& images, int64_t size, double sigma, const char* op);

// Keeps the spatial frequencies within `cutoff` (a fraction of Nyquist, in
// (0, 1]) of the centre, radially, through the 2-D FFT; in the input's dtype.
at::Tensor LowPass(const at::Tensor& images, double cutoff, const char* op);

// Throws ERR_INVALID_ARGUMENT unless `images` is a floating [N, C, H, W] batch.
void RequireImageBatch(const at::Tensor& images, const char* op);

}  // namespace tg
