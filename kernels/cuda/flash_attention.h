// Flash attention (flash_attention.cu, docs/design.md §2.5): what attention.cu dispatches to for
// bf16 inputs whose head dim is a multiple of 16 and at most 128. Contracts as in
// kernels/backend.h (attention_forward / attention_backward) over an uploaded layout.
#pragma once

#include <initializer_list>

#include "kernels/backend.h"
#include "kernels/cuda/attention_layout.h"
#include "kernels/cuda/cuda_context.h"

namespace smol::SMOL_GPU_NS {

// True when the flash kernels take these tensors: bf16, D ∈ {16, 32, …, 128}, every listed
// tensor 16-byte aligned (the tiles are loaded 16 bytes at a time).
bool flash_attention_supported(const Tensor& q, const Tensor& k, const Tensor& v,
                               std::initializer_list<const Tensor*> others);
// The forward of this layout takes the split-K decode kernel (q_len · Hq/Hkv ≤ 16 everywhere).
bool flash_use_decode(const DeviceAttentionLayout& layout, int64_t hq, int64_t hkv);

void flash_attention_forward(GpuContext& ctx, Tensor out, Tensor lse, const Tensor& q,
                             const Tensor& k, const Tensor& v, const DeviceAttentionLayout& layout,
                             float scale);
// With `rotary` (Backend::attention_rope_backward): dq and dk rotated by the negative angle in
// registers before their store; positions [T] is indexed by q's and k's token rows (Tq == Tk).
void flash_attention_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                              const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const DeviceAttentionLayout& layout, float scale,
                              const Backend::Rotary* rotary = nullptr);

}  // namespace smol::SMOL_GPU_NS
