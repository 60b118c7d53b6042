// The default body of the composite ops lora_up_forward / lora_up_backward (kernels/backend.h):
// per member the matmuls the grouped and per-projection LoRA paths ran before these ops existed
// (model/llama_model.cpp, model/lora_linear.cpp), in the same order with the same α and β, so the
// cpu backend's results are exactly those. A backend that fuses the group (fuses_lora_up(): cuda,
// kernels/cuda/lora_up.cu) replaces both (docs/design.md §2.7 "LoRA up-projections fused").
#include "kernels/backend.h"

namespace smol {

void Backend::do_lora_up_forward(std::span<const Tensor> ys, std::span<const Tensor> uts,
                                 std::span<const Tensor> bs, float s) {
  for (size_t i = 0; i < bs.size(); ++i)  // yᵢ += s·utᵢᵀ·Bᵢᵀ
    matmul(ys[i], uts[i], bs[i], Transpose::Yes, Transpose::Yes, s, 1.0f);
}

void Backend::do_lora_up_backward(std::span<const Tensor> dbs, std::span<const Tensor> gts,
                                  std::span<const Tensor> dys, std::span<const Tensor> uts,
                                  std::span<const Tensor> bs, float s) {
  for (size_t i = 0; i < bs.size(); ++i) {
    matmul(dbs[i], dys[i], uts[i], Transpose::Yes, Transpose::Yes, s, 1.0f);  // dBᵢ += s·dyᵢᵀ·utᵢᵀ
    matmul(gts[i], bs[i], dys[i], Transpose::Yes, Transpose::Yes);  // gtᵢ = Bᵢᵀ·dyᵢᵀ
  }
}

}  // namespace smol
