// LoraLinear: one linear layer y = x·Wᵀ with an optional LoRA adapter inside it
// (docs/formats.md §2 "PEFT LoRA Linear", docs/seed-behaviour.md §4):
//   y = x·Wᵀ + s · (drop(x)·Aᵀ)·Bᵀ,   W [out, in], A [r, in], B [out, r], s = α/r (α/√r rslora)
// Dropout applies to the LoRA input only, in training only, with a counter-based mask seeded
// per (micro-batch, layer, projection) so the backward can redraw the same mask instead of
// storing drop(x).
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace smol {

struct LoraLinear {
  Tensor weight;  // W [out, in]; no data when W is held quantised (`quant`)
  // W held block-quantised (inference only, docs/cpu-speed.md "Quantised inference"): the base
  // matmul is the backend's matmul_quantized; empty (blocks == nullptr) otherwise.
  QuantMatrix quant;
  Tensor weight_grad;  // dW [out, in] F32; empty (data == nullptr) when W is frozen
  // Adapter (present when lora_A.data != nullptr).
  Tensor lora_A, lora_B;            // A [r, in], B [out, r], F32
  Tensor lora_A_grad, lora_B_grad;  // same shapes, F32
  float scaling = 0.0f;             // s
  float dropout = 0.0f;             // p

  bool has_lora() const { return lora_A.data != nullptr; }
  bool quantized() const { return !quant.empty(); }
  int64_t in_features() const { return weight.shape[1]; }
  int64_t out_features() const { return weight.shape[0]; }
  int64_t rank() const { return has_lora() ? lora_A.shape[0] : 0; }
};

// Scratch a LoraLinear needs; sized by the caller for the largest T and in/out it will see.
struct LoraScratch {
  Tensor dropped;  // drop(x) [T, in_max]: the dropout output (forward) / dx_lora (backward)
  Tensor low;      // dy·B [T, r] in the backward; a group's stacked (dy·B)ᵀ [ΣR ≤ 3r, T]
};

// y [T, out] = x [T, in]·Wᵀ (+ addend [T, out] when given), the base matmul alone (dense or
// quantised W). The addend is the residual stream a projection adds into (docs/design.md §2.9):
// the dense matmul takes it as its C operand (one rounding of the sum on cuda).
void linear_base_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                         const Tensor& addend = {});

// y [T, out] += s·(drop(x)·Aᵀ)·Bᵀ, the adapter alone (nothing without one), for a caller that
// ran the base matmul itself (several quantised projections in one call). Arguments as below.
void lora_adapter_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                          Tensor lora_low, LoraScratch& scratch, bool apply_dropout,
                          uint64_t dropout_seed);

// y [T, out] = (addend +) x [T, in]·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ. `lora_low` [T, r] receives
// u = drop(x)·Aᵀ (kept by the caller for the backward). dropout_seed is used only when
// apply_dropout. With an addend (the residual stream, docs/design.md §2.9) the base matmul writes
// addend + x·Wᵀ and the LoRA product accumulates onto it (β = 1), as without one.
void lora_linear_forward(Backend& backend, const LoraLinear& layer, Tensor y, const Tensor& x,
                         Tensor lora_low, LoraScratch& scratch, bool apply_dropout,
                         uint64_t dropout_seed, const Tensor& addend = {});

// Given dy [T, out], x [T, in] and u = lora_low [T, r] from the forward:
//   dW += dyᵀ·x (if W trains);  dB += s·dyᵀ·u;  dA += s·(dy·B)ᵀ·drop(x);
//   dx (= or += when accumulate_dx) dy·W + s·drop'((dy·B)·A).
// dx may be empty (data == nullptr) when no input gradient is needed. weight_grad_done: the
// caller already accumulated dW (several projections' dW in one batched matmul, §2.9).
void lora_linear_backward(Backend& backend, const LoraLinear& layer, Tensor dx, bool accumulate_dx,
                          const Tensor& dy, const Tensor& x, const Tensor& lora_low,
                          LoraScratch& scratch, bool apply_dropout, uint64_t dropout_seed,
                          bool weight_grad_done = false);

}  // namespace smol
