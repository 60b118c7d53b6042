// The default body of the composite ops lora_down_forward / lora_down_backward
// (kernels/backend.h): per member, the dropout primitive into scratch, then the matmul (and, for
// dx, matmul + dropout + axpy) — the operations the per-projection LoRA path runs
// (model/lora_linear.cpp), so the cpu backend's results are exactly those. A backend that applies
// the masks inside its kernels (fuses_lora_dropout(): cuda, kernels/cuda/lora_down.cu) replaces
// both (docs/design.md §2.7 "LoRA dropout on the fly").
#include "kernels/backend.h"

namespace smol {

namespace {

// drop_i(x) into scratch, or x itself when p = 0 (every element kept with scale 1: no copy).
Tensor dropped(Backend& backend, const Tensor& x, float p, uint64_t seed, const Tensor& scratch) {
  if (p <= 0.0f) return x;
  const Tensor out{scratch.data, scratch.dtype, x.shape};
  backend.dropout(out, x, p, seed);
  return out;
}

}  // namespace

void Backend::do_lora_down_forward(std::span<const Tensor> uts, const Tensor& x,
                                   std::span<const Tensor> as, float p,
                                   std::span<const uint64_t> seeds, Tensor scratch) {
  for (size_t i = 0; i < as.size(); ++i)  // utᵢ = Aᵢ·drop_i(x)ᵀ
    matmul(uts[i], as[i], dropped(*this, x, p, seeds[i], scratch), Transpose::No, Transpose::Yes);
}

void Backend::do_lora_down_backward(std::span<const Tensor> das, Tensor dx,
                                    std::span<const Tensor> gts, const Tensor& x,
                                    std::span<const Tensor> as, float p,
                                    std::span<const uint64_t> seeds, float s, Tensor scratch) {
  for (size_t i = 0; i < as.size(); ++i) {
    // dAᵢ += s·gtᵢ·drop_i(x)
    matmul(das[i], gts[i], dropped(*this, x, p, seeds[i], scratch), Transpose::No, Transpose::No, s,
           1.0f);
    if (!dx.data) continue;
    if (p <= 0.0f) {
      matmul(dx, gts[i], as[i], Transpose::Yes, Transpose::No, s, 1.0f);  // dx += s·gtᵢᵀ·Aᵢ
      continue;
    }
    // dx += s·drop_i(gtᵢᵀ·Aᵢ): the same mask (dropout is linear), scratch reused after dAᵢ.
    const Tensor dx_lora{scratch.data, scratch.dtype, x.shape};
    matmul(dx_lora, gts[i], as[i], Transpose::Yes, Transpose::No);
    dropout(dx_lora, dx_lora, p, seeds[i]);
    axpy(dx, dx_lora, s);
  }
}

}  // namespace smol
