// Host <-> backend transfers in fp32 whatever the tensor's dtype (F32 as is, BF16 converted on
// the host with round-to-nearest-even), for weight IO and reading logits.
#pragma once

#include <vector>

#include "io/host_tensor.h"
#include "kernels/backend.h"

namespace smol {

std::vector<float> download_f32(Backend& backend, const Tensor& src);
void upload_f32(Backend& backend, Tensor dst, const float* host);  // host holds dst.numel()
// A tensor as a HostTensor of its shape (fp32 values, as download_f32).
HostTensor download_host_tensor(Backend& backend, const Tensor& src);

}  // namespace smol
